"""The command line: output contract, exit codes, one-line errors; through CliRunner and through a
real subprocess of the installed ``tokecon``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import tokecon
from tokecon.cli.main import app
from tokecon.commands.phase import PREFILL, phase_rows
from tokecon.serving.request import DeviceRequest

from helpers import json_rows

runner = CliRunner()

DECODE_ROW_KEYS = {"hardware", "n_gpus", "tp", "batch", "fits", "bound", "flop", "bytes", "compute_time_s",
                   "memory_time_s", "comm_time_s", "usd_per_hour", "usd_per_mtok", "context_tokens", "step_time_s",
                   "tok_s", "tok_s_per_gpu", "tok_s_per_user", "memory_used_bytes_per_gpu"}
PREFILL_ROW_KEYS = {"hardware", "n_gpus", "tp", "batch", "fits", "bound", "flop", "bytes", "compute_time_s",
                    "memory_time_s", "comm_time_s", "usd_per_hour", "usd_per_mtok", "input_tokens", "ttft_s", "tok_s"}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_decode_table_has_units_and_highlight():
    r = invoke("decode", "--model", "llama3-70b", "--gpus", "4xH100")
    assert r.exit_code == 0, r.output
    for header in ("time/token [ms]", "tok/s per user", "tok/s per GPU", "total tok/s", "bound", "memory/GPU [GB]", "USD/Mtok out"):
        assert header in r.stdout
    # the answer first: the cheapest row and why (memory-bound, at the largest batch whose KV cache fits)
    assert "* 4xh100-sxm at batch" in r.stdout and "the cheapest: memory-bound" in r.stdout
    assert "re-reads 35.3 GB of weights per GPU" in r.stdout and "KV cache fits" in r.stdout
    assert "\x1b[" not in r.stdout  # not a terminal: no colour codes


def test_decode_json_equals_core_rows():
    r = invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "-g", "8xH200", "-g", "2xB200", "--context", "4096", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["command"] == "decode" and doc["model"] == "llama3-70b"
    core = tokecon.decode(model="llama3-70b", gpus=["4xH100", "8xH200", "2xB200"], context=4096)
    assert doc["rows"] == json_rows(core)
    assert {r["hardware"] for r in doc["rows"]} == {"h100-sxm", "h200", "b200"}
    for row in doc["rows"]:
        assert DECODE_ROW_KEYS <= set(row)
        assert row["fits"] is True


def test_default_batches_are_powers_of_two_up_to_the_largest_that_fits():
    doc = json.loads(invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "-f", "json").stdout)
    batches = [r["batch"] for r in doc["rows"]]
    max_b = doc["rows"][0]["max_batch"]
    assert batches[-1] == max_b and batches[:-1] == [2**i for i in range(len(batches) - 1)]
    assert all(b < max_b for b in batches[:-1])


def test_prefill_json_contract():
    r = invoke("prefill", "--model", "llama3-70b", "--gpus", "4xH100", "--input-len", "2048", "--batch", "1,8", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["batch"] for row in doc["rows"]] == [1, 8]
    core = tokecon.prefill(model="llama3-70b", gpus="4xH100", batch=[1, 8], input_len=2048)
    assert doc["rows"] == json_rows(core)
    request = DeviceRequest("llama3-70b", ("4xH100",))
    (scn,) = request.scenarios(request.load())
    direct = phase_rows(scn, PREFILL, [1, 8], 2048)  # the physics' rows, before thresholds and notes
    for row, raw in zip(doc["rows"], direct):
        assert row["ttft_s"] == raw["ttft_s"] and row["usd_per_mtok"] == raw["usd_per_mtok"]
    for row in doc["rows"]:
        assert PREFILL_ROW_KEYS <= set(row)
        assert row["bound"] == "compute"


def test_prefill_compares_device_configurations():
    """Several -g on one phase (what `compare --phase prefill` did): a row per configuration and batch,
    equal to the Python API's, each configuration's cheapest row named in the notes."""
    args = ("prefill", "-m", "gpt-oss-120b", "-g", "1xH100", "-g", "2xH200", "-g", "1xB200", "-b", "4", "-i", "4096")
    doc = json.loads(invoke(*args, "-f", "json").stdout)
    core = tokecon.prefill(model="gpt-oss-120b", gpus=["1xH100", "2xH200", "1xB200"], batch=4, input_len=4096)
    assert doc["rows"] == json_rows(core)
    assert [(r["hardware"], r["n_gpus"], r["batch"]) for r in doc["rows"]] == [("h100-sxm", 1, 4), ("h200", 2, 4), ("b200", 1, 4)]
    assert all(r["input_tokens"] == 4096 and r["ttft_s"] > 0 for r in doc["rows"])
    answers = [n for n in doc["notes"] if n.startswith("* ")]
    assert [a.split(" ")[1] for a in answers] == ["1xh100-sxm", "2xh200", "1xb200"]
    assert all("USD/Mtok in, the cheapest" in a for a in answers)


def test_threshold_crossed_exits_1_with_summary():
    r = invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "--batch", "1,64", "--max-usd-per-mtok", "2.0")
    assert r.exit_code == 1
    assert "cross a threshold" in r.stderr and "batch 1" in r.stderr
    r = invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "--batch", "64", "--max-usd-per-mtok", "1000")
    assert r.exit_code == 0


def test_ttft_threshold_on_prefill():
    assert invoke("prefill", "-m", "llama3-8b", "-g", "1xH100", "--max-ttft-ms", "0.001").exit_code == 1
    assert invoke("prefill", "-m", "llama3-8b", "-g", "1xH100", "--max-ttft-ms", "100000").exit_code == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["decode", "-m", "llama3-7b", "-g", "4xH100"], "closest: llama3-70b"),
        (["decode", "-m", "llama3-70b", "-g", "4xH1000"], "unknown device 'H1000'"),
        (["decode", "-m", "llama3-70b", "-g", "four H100s"], "unknown device 'four H100s'"),
        (["decode", "-m", "llama3-70b", "-g", "4x"], "malformed --gpus"),
        (["decode", "-m", "llama3-70b", "-g", "0xH100"], "malformed --gpus"),
        (["decode", "-m", "llama3-70b", "-g", "3xH100"], "does not divide"),
        (["decode", "-m", "llama3-70b", "-g", "4xH100", "--context", "0"], "--context"),
        (["decode", "-m", "llama3-70b", "-g", "4xH100", "--batch", "0"], "--batch"),
        (["decode", "-m", "llama3-70b", "-g", "4xH100", "--batch", "a,b"], "--batch"),
        (["prefill", "-m", "llama3-70b", "-g", "4xH100", "--input-len", "-1"], "--input-len"),
        (["decode", "-m", "llama3-70b", "-g", "4xH100", "--dtype", "fp7"], "unknown data type"),
        (["decode", "-m", "llama3-70b", "-g", "4xH100", "--bogus"], "No such option"),
        (["decode", "-m", "llama3-70b"], "--gpus"),
        (["decode", "-m", "llama3-70b", "-g", "4xH100", "--context", "10000000"], "maximum context"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert fragment in lines[0]
    assert "Traceback" not in r.output


def test_model_that_cannot_fit_names_memory_and_smallest_count():
    r = invoke("decode", "-m", "llama3-70b", "-g", "1xH100")
    assert r.exit_code == 2
    assert "141.1 GB of weights" in r.stderr and "smallest that fits: 2xh100-sxm" in r.stderr


def test_batch_that_does_not_fit_predicts_nothing():
    doc = json.loads(invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "--batch", "100000", "-f", "json").stdout)
    row = doc["rows"][0]
    assert row["fits"] is False and row["step_time_s"] is None and row["usd_per_mtok"] is None


def test_csv_and_markdown():
    r = invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "1,2", "-f", "csv")
    header = r.stdout.splitlines()[0].split(",")
    assert "usd_per_mtok" in header and "step_time_s" in header and len(r.stdout.splitlines()) == 3
    r = invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "1,2", "-f", "markdown")
    assert r.stdout.count("\n|") >= 3 and "USD/Mtok out" in r.stdout


def test_ideal_is_faster_and_labelled():
    real = json.loads(invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "1", "-f", "json").stdout)
    ideal = json.loads(invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "1", "--ideal", "-f", "json").stdout)
    assert ideal["rows"][0]["step_time_s"] < real["rows"][0]["step_time_s"]
    assert ideal["ideal"] is True and any("upper bound" in n for n in ideal["notes"])


def test_usd_override_scales_cost():
    a = json.loads(invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "8", "--usd-per-gpu-hour", "1", "-f", "json").stdout)
    b = json.loads(invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "8", "--usd-per-gpu-hour", "2", "-f", "json").stdout)
    assert b["rows"][0]["usd_per_mtok"] == pytest.approx(2 * a["rows"][0]["usd_per_mtok"])


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.startswith("tokecon ")


def _installed_tokecon() -> list[str]:
    exe = shutil.which("tokecon", path=os.path.dirname(sys.executable)) or shutil.which("tokecon")
    return [exe] if exe else [sys.executable, "-m", "tokecon"]


def test_installed_command_in_subprocess_from_another_directory(tmp_path):
    """The installed console script finds its catalogs from any working directory."""
    cmd = _installed_tokecon() + ["decode", "--model", "llama3-70b", "--gpus", "4xH100", "--format", "json"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TOKECON_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["rows"] and doc["rows"][0]["hardware"] == "h100-sxm"
    bad = subprocess.run(_installed_tokecon() + ["decode", "-m", "nope", "-g", "1xH100"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tokecon", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "tokecon" in proc.stdout


def test_core_imports_neither_typer_nor_rich():
    code = ("import sys, tokecon.commands.phase, tokecon.commands.serve, tokecon.api, tokecon.catalogs.catalog;"
            "tokecon.api.decode(model='llama3-8b', gpus='1xH100', batch=1);"
            "assert 'typer' not in sys.modules and 'rich' not in sys.modules, sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_explain_breaks_the_cheapest_step_into_operations():
    """Components first: the parts sum to the total, and --explain shows them."""
    doc = json.loads(invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "-b", "1,64", "--explain", "-f", "json").stdout)
    broken_down = [row for row in doc["rows"] if "breakdown" in row]
    cheapest = min(doc["rows"], key=lambda r: r["usd_per_mtok"])
    assert broken_down == [cheapest] and cheapest["batch"] == 64  # the highlighted (cheapest) row
    for row in broken_down:
        parts = sum(d["time_s"] for d in row["breakdown"].values())
        assert parts + row["overhead_s"] == pytest.approx(row["step_time_s"], rel=1e-9)
        assert sum(d["flop"] for d in row["breakdown"].values()) == pytest.approx(row["flop"], rel=1e-9)
        assert row["breakdown"]["comm/allreduce"]["bound"] == "communication"
    r = invoke("prefill", "-m", "llama3-8b", "-g", "1xH100", "--explain")
    assert r.exit_code == 0 and "prefill --explain" in r.stdout and "mlp/ffn" in r.stdout and "engine overhead" in r.stdout
    plain = json.loads(invoke("decode", "-m", "llama3-70b", "-g", "4xH100", "-b", "1", "-f", "json").stdout)
    assert "breakdown" not in plain["rows"][0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_threshold_is_bad_input(value):
    """A threshold of NaN could never be crossed: the gate would pass by accident. Exit 2, one line."""
    result = CliRunner().invoke(app, ["decode", "-m", "llama3-8b", "-g", "1xH100", "--max-usd-per-mtok", value])
    assert result.exit_code == 2
    assert "must be a finite number" in result.output and "Traceback" not in result.output


def test_hardware_list_names_each_catalog_once():
    result = CliRunner().invoke(app, ["hardware", "list"])
    assert result.exit_code == 0
    assert "built-in, built-in" not in result.stdout


def test_threshold_the_command_does_not_compute_is_refused():
    """serve at fixed concurrency computes no p99 (only --request-rate does): --max-ttft-p99-ms would pass
    silently; it is bad input, naming what applies. decode has no such flag at all (one set of
    thresholds per command)."""
    result = CliRunner().invoke(app, ["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8", "--max-ttft-p99-ms", "1"])
    assert result.exit_code == 2
    assert "does not apply to `serve`" in result.output and "--max-tpot-ms" in result.output
    result = CliRunner().invoke(app, ["decode", "-m", "llama3-8b", "-g", "1xH100", "--max-ttft-ms", "1"])
    assert result.exit_code == 2 and "No such option: --max-ttft-ms" in result.output


@pytest.mark.parametrize("command", ["decode", "serve", "compare", "moe", "frontier", "capacity"])
def test_help_shows_no_python_types(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "<list[" not in result.stdout and "COUNTxDEVICE" in result.stdout


def test_a_data_type_without_hardware_says_which_rate_was_assumed():
    """fp4 on H100 (no FP4 tensor cores): the note says the matmuls ran at the bf16 rate."""
    result = CliRunner().invoke(app, ["decode", "-m", "llama3-8b", "-g", "1xH100", "--dtype", "fp4", "-b", "8", "--explain"])
    assert result.exit_code == 0
    assert "no fp4 tensor-core rate" in result.stdout and "bf16 rate (989 TFLOP/s dense)" in result.stdout
    doc = json.loads(invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "--dtype", "fp4", "-b", "8", "-f", "json").stdout)
    assert any("no fp4 tensor-core rate" in n for n in doc["method_notes"])  # a method note, behind --explain
    plain = CliRunner().invoke(app, ["decode", "-m", "llama3-8b", "-g", "1xH100", "--dtype", "fp8", "-b", "8", "--explain"])
    assert plain.exit_code == 0 and "How these figures are computed" in plain.stdout
    assert "tensor-core rate" not in plain.stdout


@pytest.mark.parametrize("args", [["decode", "-m", "llama3-8b", "-g", "1xH100", "--catalog", "/dev/zero"],
                                  ["validate", "--measurements", "/dev/zero"],
                                  ["models", "import", "/dev/zero"],
                                  ["compare", "-m", "llama3-8b", "-g", "1xH100", "--baseline", "/dev/zero"]])
def test_special_files_are_refused_not_read(args):
    """/dev/zero would be read until memory runs out (and a FIFO would hang): one line, exit 2."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "regular file" in result.output


@pytest.mark.parametrize("fmt", [
    "csv",
    "json",
])
def test_closed_pipe_is_not_a_crossed_threshold(fmt):
    """`tokecon ... -f json | head -c1`: the reader leaves early; exit 141 (SIGPIPE, as a shell
    reports it), never 1, which CI reads as "budget crossed". Through the installed command."""
    exe = shutil.which("tokecon")
    if exe is None:
        pytest.skip("tokecon is not on PATH")
    proc = subprocess.Popen([exe, "validate", "-f", fmt], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert b"Traceback" not in proc.stderr.read()


def test_hostile_files_give_one_line_not_an_internal_error(tmp_path):
    """A config.json with a 5,000-digit integer, a measurements CSV with other columns: exit 2 with
    a message, never "internal error"."""
    config = tmp_path / "c.json"
    config.write_text('{"hidden_size": ' + "9" * 5000 + "}")
    other = tmp_path / "m.csv"
    other.write_text("a,b\n1,2\n")
    for args in (["models", "import", str(config)], ["validate", "--measurements", str(other)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "internal error" not in result.output, result.output
