"""``tokecon compare``: one workload across device configurations, ranked; ``--baseline``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tokecon.physics import memory
from tokecon.cli.main import app
from tokecon.commands.common import CommonOptions
from tokecon.commands.compare import run_compare
from tokecon.commands.decode import run_decode
from tokecon.cli.render import fmt_value
from tokecon.results import Thresholds

from helpers import scenario

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def compare_json(*args: str) -> dict:
    r = invoke("compare", *args, "-f", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_whole_catalog_is_compared(catalog):
    """Every device is a row or counted as skipped (the time it takes is in bench/bench.py)."""
    r = invoke("compare", "--model", "llama3-70b", "--phase", "decode", "--batch", "64", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    skipped = next(n for n in doc["notes"] if n.startswith("Skipped"))
    assert len(doc["rows"]) + int(skipped.split()[1]) == len(catalog.hardware)


def test_auto_size_is_the_smallest_power_of_two_that_holds_the_batch(catalog):
    doc = compare_json("-m", "llama3-70b", "--batch", "64")
    assert doc["auto_sized"] is True
    for row in doc["rows"]:
        n, hw = row["n_gpus"], catalog.hardware.get(row["hardware"])
        assert row["fits"] and row["tp"] == n and n & (n - 1) == 0 and n <= hw.scaleup_domain
        if n > 1:  # half as many would not hold 64 x 2048 tokens of KV cache next to the weights
            smaller = scenario(catalog, "llama3-70b", row["hardware"], n // 2)
            assert int(memory.max_batch(smaller, np.asarray(2048.0))) < 64
    skipped = " ".join(doc["notes"])
    assert "rtx-4090 (8 hold" in skipped  # one PCIe card per domain, 8 cards cannot hold 141 GB + KV


def test_compare_row_equals_the_decode_row():
    doc = compare_json("-m", "llama3-70b", "-g", "4xH100", "--tp", "4", "--batch", "64")
    dec = run_decode(CommonOptions("llama3-70b", ("4xH100",), tp=4), [64], 2048, Thresholds()).rows[0]
    row = doc["rows"][0]
    for key in ("usd_per_mtok", "tok_s_per_gpu", "step_time_s", "memory_used_bytes_per_gpu", "bound"):
        assert row[key] == dec[key]
    assert row["latency_s"] == dec["tpot_s"]


def test_figures_of_merit_by_hand(catalog):
    """H100 SXM: 989.4e12 FLOP/s x achievable fraction / 2.99 USD/h (e.g. x 0.72 -> 238e12);
    3.35e12 B/s x achievable fraction / 2.99 USD/h. The fractions are the catalog's fitted device
    factor times the default engine's (vLLM) scale, at most the family's measured best matmul fraction
    (MAMF, tokecon.physics.efficiency: 0.80 on Hopper)."""
    from tokecon.physics.efficiency import MAMF_FRACTION

    hw, eng = catalog.hardware.get("h100-sxm"), catalog.engines.get("vllm")
    ce = min(MAMF_FRACTION[hw.family], hw.efficiency.compute * eng.compute_scale)
    me = min(1.0, hw.efficiency.memory_bw * eng.memory_bw_scale)
    row = compare_json("-m", "llama3-8b", "-g", "1xH100")["rows"][0]
    assert row["flop_s_per_usd_per_hour"] == pytest.approx(989.4e12 * ce / 2.99, rel=1e-9)
    assert row["bytes_s_per_usd_per_hour"] == pytest.approx(3.35e12 * me / 2.99, rel=1e-9)
    ideal = compare_json("-m", "llama3-8b", "-g", "1xH100", "--ideal", "--usd-per-gpu-hour", "2")["rows"][0]
    assert ideal["flop_s_per_usd_per_hour"] == pytest.approx(989.4e12 / 2, rel=1e-9)


def test_given_gpus_pick_the_smallest_tp_that_holds_the_batch():
    doc = compare_json("-m", "deepseek-v3", "--phase", "decode", "-g", "8xH200", "-g", "8xB200", "-g", "72xGB200",
                       "-g", "8xMI355X")
    by = {r["hardware"]: r for r in doc["rows"]}
    assert by["gb200"]["n_gpus"] == 72 and by["gb200"]["tp"] < 72 and 128 % by["gb200"]["tp"] == 0
    assert by["h200"]["tp"] == 8  # 671 GB of fp8 weights need all eight
    assert [r["rank"] for r in doc["rows"]] == [1, 2, 3, 4]
    costs = [r["usd_per_mtok"] for r in doc["rows"]]
    assert costs == sorted(costs)


@pytest.mark.parametrize("sort, key, descending", [
    ("flop-per-usd", "flop_s_per_usd_per_hour", True),
    ("bytes-per-usd", "bytes_s_per_usd_per_hour", True),
    ("tok-s-per-gpu", "tok_s_per_gpu", True),
    ("latency", "latency_s", False),
    ("usd_per_hour", "usd_per_hour", False),
])
def test_sort_by_any_column(sort, key, descending):
    doc = compare_json("-m", "qwen3-embedding-8b", "--phase", "embed", "--sort", sort)
    values = [r[key] for r in doc["rows"] if r["rank"]]
    assert values == sorted(values, reverse=descending)
    assert [r["rank"] for r in doc["rows"] if r["rank"]] == list(range(1, len(values) + 1))


def test_table_highlights_the_winner_with_units():
    r = invoke("compare", "-m", "qwen3-embedding-8b", "--phase", "embed", "--sort", "flop-per-usd")
    assert r.exit_code == 0, r.output
    for header in ("devices", "memory/GPU [GB]", "fits", "tok/s embedded per GPU", "time/batch [ms]", "USD/h",
                   "USD/Mtok embedded", "TFLOP/s per USD/h", "GB/s per USD/h", "rank"):
        assert header in r.stdout
    text = " ".join(r.stdout.split())
    assert "* best by FLOP/s per USD/h" in text and "compute-bound, so FLOP/s per USD/h decides" in text
    first = next(line for line in r.stdout.splitlines() if line.startswith("| 1x"))
    assert "*" in first and first.rstrip("| ").endswith("1")


def test_markdown_and_csv_views():
    md = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "-f", "markdown")
    assert md.exit_code == 0 and md.stdout.count("\n| ") >= 3 and "**" in md.stdout
    csv = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "-f", "csv")
    assert csv.exit_code == 0 and "usd_per_mtok" in csv.stdout.splitlines()[0]


def test_explicit_gpus_that_cannot_hold_the_model():
    doc = compare_json("-m", "llama3-70b", "-g", "1xH100", "-g", "2xH200")
    bad = next(r for r in doc["rows"] if r["hardware"] == "h100-sxm")
    assert bad["fits"] is False and bad["rank"] is None and bad["usd_per_mtok"] is None
    assert doc["rows"][-1] is not None and doc["rows"][-1]["hardware"] == "h100-sxm"
    assert "does not fit" in invoke("compare", "-m", "llama3-70b", "-g", "1xH100", "-g", "2xH200").stdout


def test_thresholds_exit_1():
    r = invoke("compare", "-m", "llama3-70b", "--max-usd-per-mtok", "0.5")
    assert r.exit_code == 1 and "cross a threshold" in r.stderr
    assert invoke("compare", "-m", "llama3-70b", "--max-usd-per-mtok", "1000").exit_code == 0


@pytest.mark.parametrize("args, needle", [
    (("-m", "llama3-70b", "--tp", "2"), "--tp needs --gpus"),
    (("-m", "llama3-70b", "--sort", "vibes"), "unknown --sort"),
    (("-m", "llama3-70b", "--sort", "change"), "unknown --sort"),
    (("-m", "llama3-70b", "--batch", "0"), "--batch"),
    (("-m", "bge-large", "--phase", "embed", "--context", "4096"), "512"),
    (("-m", "llama3-70b", "--phase", "train"), "train"),
])
def test_bad_input_exit_2(args, needle):
    r = invoke("compare", *args)
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


# --- --baseline (issue 6) --------------------------------------------------------------------


def test_baseline_shows_the_change(tmp_path):
    gpus = ("-g", "4xH100", "-g", "2xH200", "-g", "1xB300")
    old = compare_json("-m", "llama3-70b", *gpus)
    by = {r["hardware"]: r for r in old["rows"]}
    by["h100-sxm"]["usd_per_mtok"] *= 2.0  # it used to cost twice as much
    old["rows"] = [r for r in old["rows"] if r["hardware"] != "b300"]  # and the B300 was not compared
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))

    doc = compare_json("-m", "llama3-70b", *gpus, "--baseline", str(path))
    now = {r["hardware"]: r for r in doc["rows"]}
    assert now["h100-sxm"]["usd_per_mtok_rel_change"] == pytest.approx(-0.5, rel=1e-12)
    assert now["h100-sxm"]["baseline_usd_per_mtok"] == pytest.approx(2 * now["h100-sxm"]["usd_per_mtok"])
    assert now["h200"]["usd_per_mtok_rel_change"] == 0.0 and now["h200"]["tok_s_per_gpu_rel_change"] == 0.0
    assert now["b300"]["usd_per_mtok_rel_change"] is None
    notes = " ".join(doc["notes"])
    assert "1 configuration(s) cheaper, 0 dearer, 1 unchanged" in notes and "Not in the baseline: 1xb300" in notes

    table = invoke("compare", "-m", "llama3-70b", *gpus, "--baseline", str(path), "--sort", "change")
    assert table.exit_code == 0, table.output
    assert "USD/Mtok change [%]" in table.stdout and "-50.0%" in table.stdout and "+0.0%" in table.stdout
    assert fmt_value(-0.5, "signed_pct") == "-50.0%" and fmt_value(0.123, "signed_pct") == "+12.3%"


def test_baseline_notes_rows_that_are_gone_and_changed_inputs(tmp_path):
    old = compare_json("-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "--batch", "32")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    doc = compare_json("-m", "llama3-70b", "-g", "4xH100", "--baseline", str(path))
    notes = " ".join(doc["notes"])
    assert "In the baseline only: 2xh200" in notes and "batch 32, this run 64" in notes
    assert doc["rows"][0]["tok_s_per_gpu_rel_change"] > 0  # batch 64 amortises the weights better


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"command": "decode", "rows": []}', "not of `tokecon compare`"),
    ('[1, 2, 3]', "expected the output of `tokecon compare"),
    ('{"command": "compare", "model": "llama3-8b", "phase": "decode", "rows": []}', "compares llama3-8b"),
    ('{"command": "compare", "model": "llama3-70b", "phase": "decode", "rows": [{"hardware": 1, "usd_per_mtok": "x"}]}', None),
])
def test_baseline_bad_files(tmp_path, content, needle):
    path = tmp_path / "old.json"
    path.write_text(content)
    r = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "--baseline", str(path))
    if needle is None:  # malformed rows are ignored, never a crash
        assert r.exit_code == 0 and "Not in the baseline: 4xh100" in " ".join(r.stdout.split())
        return
    assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output


def test_baseline_missing_file(tmp_path):
    r = invoke("compare", "-m", "llama3-70b", "--baseline", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and "cannot read" in r.stderr


def test_core_run_compare_matches_cli():
    core = run_compare(CommonOptions("gpt-oss-120b", ()), "prefill", 4, 4096, Thresholds()).to_dict()
    doc = compare_json("-m", "gpt-oss-120b", "--phase", "prefill", "-b", "4", "-c", "4096")
    assert doc["rows"] == json.loads(json.dumps(core["rows"]))
    assert all(r["latency_s"] == r["ttft_s"] for r in doc["rows"])
