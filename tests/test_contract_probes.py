"""Targeted probes from issue 11's hostile-input list: each was an internal error or a silent,
misleading answer, and must be one clear line with exit 2 (or a correct answer)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokecon.cli.main import app

runner = CliRunner()
LONG = "x" * 300  # longer than a file name may be (255 bytes on Linux): stat() raises ENAMETOOLONG


@pytest.mark.parametrize("args", [
    ["models", "import", LONG, "--name", "n"],
    ["frontier", "-m", "llama3-8b", "-g", "1xH100", "--plot", f"/{LONG}/a.png"],
])
def test_a_file_name_too_long_is_bad_input(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "internal error" not in r.stderr and "File name too long" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_save_through_a_dangling_symlink_creates_nothing_elsewhere(isolated_home, tmp_path):
    target = tmp_path / "elsewhere" / "deep" / "hardware.toml"
    link = isolated_home / "hardware.toml"
    link.symlink_to(target)
    r = runner.invoke(app, ["hardware", "add", "c1", "--like", "h100", "--save"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"{link}: a symlink to {target}, which does not resolve" in r.stderr
    assert not (tmp_path / "elsewhere").exists()
    # the writer refuses on its own too, whoever calls it
    from tokecon.catalogs.write import save_entry
    from tokecon.errors import CatalogError

    with pytest.raises(CatalogError, match="which does not exist; refusing to create it"):
        save_entry(link, "c1", {"name": "c1"})
    assert not (tmp_path / "elsewhere").exists()


def test_a_symlink_loop_as_the_user_catalog_is_bad_input(isolated_home):
    link = isolated_home / "hardware.toml"
    link.symlink_to(link)
    for args in (["hardware", "add", "c1", "--like", "h100", "--save"], ["decode", "-m", "llama3-8b", "-g", "1xH100"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "internal error" not in r.stderr and "does not resolve" in r.stderr
    from tokecon.catalogs.write import save_entry
    from tokecon.errors import CatalogError

    with pytest.raises(CatalogError, match="unusable symlink"):
        save_entry(link, "c1", {"name": "c1"})


def test_save_through_a_symlink_to_an_existing_file_writes_the_target(isolated_home, tmp_path):
    target = tmp_path / "mine.toml"
    target.write_text("")
    (isolated_home / "hardware.toml").symlink_to(target)
    r = runner.invoke(app, ["hardware", "add", "c1", "--like", "h100", "--save"])
    assert r.exit_code == 0, r.output
    assert "[c1]" in target.read_text() and (isolated_home / "hardware.toml").is_symlink()


@pytest.mark.parametrize("args, message", [
    (["serve", "-m", "llama3-8b", "-g", "1xH100", "--utilisation", "5e-324"], "--utilisation must be >= 0.01 and <= 1"),
    (["frontier", "-m", "llama3-8b", "-g", "1xH100", "--utilisation", "1e-6"], "--utilisation must be >= 0.01 and <= 1"),
    (["embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "--utilization", "5e-324"], "--utilization must be a fraction from 0.01 to 1"),
])
def test_a_vanishing_utilisation_names_itself(args, message):
    """5e-324 used to report '--usd-per-gpu-hour ... got inf' (serve), 'does not fit' (frontier) or a
    null price on a row that fits (embed)."""
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and message in r.stderr and "usd-per-gpu-hour" not in r.stderr


def test_a_cost_file_names_its_implausible_field(tmp_path):
    bad = tmp_path / "cost.toml"
    bad.write_text("[cost]\ndepreciation_years = 1e-300\n")
    r = runner.invoke(app, ["serve", "-m", "llama3-8b", "-g", "1xH100", "--cost-file", str(bad)])
    assert r.exit_code == 2 and f"{bad}: [cost] depreciation_years must be >= 0.1" in r.stderr


def test_an_implausible_tco_price_names_the_cost_inputs(tmp_path):
    """Each input within its limits, the product not: 1e9 USD, 100x other capital, 10% of a year."""
    cost = tmp_path / "cost.toml"
    cost.write_text('[cost]\nmethod = "tco"\npurchase_usd = 1e9\nother_capital_ratio = 100\ndepreciation_years = 0.1\n'
                    "interest_rate = 10\nutilisation = 0.01\n")
    r = runner.invoke(app, ["serve", "-m", "llama3-8b", "-g", "1xH100", "--cost-file", str(cost)])
    assert r.exit_code == 2 and "tco cost of h100-sxm" in r.stderr and "implausible" in r.stderr
    assert "--usd-per-gpu-hour" not in r.stderr


def test_an_efficiency_of_1e_300_is_refused(tmp_path):
    r = runner.invoke(app, ["hardware", "add", "tiny", "--like", "h100", "--compute-efficiency", "1e-300"])
    assert r.exit_code == 2 and "--compute-efficiency = 1e-300 is implausibly small (at least 0.01)" in r.stderr
    text = runner.invoke(app, ["hardware", "add", "t", "--like", "h100"]).stdout
    cat = tmp_path / "cat.toml"
    cat.write_text(re.sub(r"(?m)^memory_bw = .*$", "memory_bw = 1e-300", text))
    r = runner.invoke(app, ["hardware", "list", "--catalog", str(cat)])
    assert r.exit_code == 2 and "field 'memory_bw' = 1e-300 is implausibly small" in r.stderr


def test_hardware_add_names_a_changed_efficiency():
    r = runner.invoke(app, ["hardware", "add", "half", "--like", "h100", "--compute-efficiency", "0.5"])
    assert r.exit_code == 0 and "changed: efficiency.compute" in r.stdout and "changed: nothing" not in r.stdout


def test_measured_values_that_are_not_positive_are_skipped_with_the_reason(tmp_path):
    from tokecon.fidelity.validation import load_measurements

    head, *rows = (Path(__file__).parents[1] / "validation" / "measurements.csv").read_text().splitlines()[:4]
    col = head.split(",").index("value")
    bad = []
    for line, value in zip(rows, ["-5", "0", "abc"]):
        import csv
        import io

        cells = next(csv.reader(io.StringIO(line)))
        cells[col] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(cells)
        bad.append(out.getvalue())
    path = tmp_path / "m.csv"
    path.write_text(head + "\n" + "".join(bad))
    assert len(load_measurements(path)) == 3
    r = runner.invoke(app, ["validate", "--measurements", str(path), "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["skipped"] for row in doc["rows"]] == [f"measured value {v!r} is not a positive number" for v in ("-5", "0", "abc")]
    assert any("no row predicted" in n for n in doc["notes"])


def test_moe_exposed_communication_is_never_negative():
    """With overlap the step is max(busy, comm) + overhead: the exposed part is max(comm - busy, 0), not
    a difference of sums that rounded to -3.5e-18 s."""
    r = runner.invoke(app, ["moe", "-m", "deepseek-v3", "-g", "16xH200", "-g", "32xH200", "-g", "72xGB200", "-f", "json"])
    assert r.exit_code == 0, r.output
    rows = [row for row in json.loads(r.stdout)["rows"] if row["fits"]]
    assert rows and all(row["comm_exposed_s"] >= 0.0 for row in rows)
    for row in rows:
        busy = row["compute_bound_s"] + row["memory_bound_s"]
        assert row["step_time_s"] == pytest.approx(busy + row["comm_exposed_s"] + row["overhead_s"], rel=1e-12)


BIG = "9" * 5000  # Python refuses to convert integers of more than 4,300 digits (ValueError)


@pytest.mark.parametrize("name, text, args", [
    ("cat.toml", f"[hardware.x]\nmemory_gb = {BIG}\n", ["hardware", "list", "--catalog"]),
    ("budget.toml", f'[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nbatch = {BIG}\n', ["check"]),
    ("cost.toml", f"[cost]\npue = {BIG}\n", ["serve", "-m", "llama3-8b", "-g", "1xH100", "--cost-file"]),
])
def test_a_5000_digit_integer_in_a_toml_file_is_bad_input(tmp_path, name, text, args):
    path = tmp_path / name
    path.write_text(text)
    r = runner.invoke(app, [*args, str(path)])
    assert r.exit_code == 2 and "internal error" not in r.stderr
    assert f"{path}: not usable as" in r.stderr and "more than 4,300 digits" in r.stderr


def test_a_5000_digit_integer_in_the_user_catalog_blocks_save_cleanly(isolated_home):
    (isolated_home / "hardware.toml").write_text(f"[x]\nmemory_gb = {BIG}\n")
    r = runner.invoke(app, ["hardware", "add", "c1", "--like", "h100", "--save"])
    assert r.exit_code == 2 and "more than 4,300 digits" in r.stderr and "internal error" not in r.stderr


def test_long_concurrency_lists_cost_linear_time(monkeypatch):
    """serve -c with thousands of values was quadratic: every row recomputed the bound of all points.
    Counted, not timed: the bound is computed a fixed number of times however long the list."""
    from tokecon.serving.batching import ServingTimes

    calls = []
    original = ServingTimes.bound
    monkeypatch.setattr(ServingTimes, "bound", property(lambda self: calls.append(1) or original.fget(self)))
    counts = []
    for n in (10, 400):
        calls.clear()
        r = runner.invoke(app, ["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", ",".join(map(str, range(1, n + 1))),
                                "-f", "json"])
        assert r.exit_code == 0, r.output
        assert len(json.loads(r.stdout)["rows"]) == n
        counts.append(len(calls))
    assert counts[0] == counts[1]


def test_json_is_written_in_blocks():
    """json.dump wrote one small piece per token (millions of writes for 100k rows); one huge write hid a
    reader that left (`| head -c1` exited 0): 64 KiB blocks do neither."""
    import io

    from tokecon.cli.render import render_json
    from tokecon.results import Column, Result

    class Counting(io.StringIO):
        writes = 0

        def write(self, s):
            Counting.writes += 1
            return super().write(s)

    out = Counting()
    render_json(Result("t", {}, [{"a": i, "b": [i, i]} for i in range(1000)], [Column("a", "a")]), out)
    size = len(out.getvalue())
    assert Counting.writes == -(-size // (1 << 16)) and len(json.loads(out.getvalue())["rows"]) == 1000


def test_context_reaches_llama4_scouts_maximum():
    """Scout reads 10,485,760 tokens (its config's max_position_embeddings); the flag cap was 10,000,000."""
    r = runner.invoke(app, ["decode", "-m", "llama4-scout", "-g", "8xH200", "-c", "10485760", "-b", "1", "-f", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["context_tokens"] == 10_485_760 and row["fits"]
    over = runner.invoke(app, ["decode", "-m", "llama4-scout", "-g", "8xH200", "-c", "10485761", "-b", "1"])
    assert over.exit_code == 2 and "exceeds llama4-scout's maximum context of 10485760 tokens" in over.stderr
