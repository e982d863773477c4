"""``tokecon check``: budget files of named scenarios with thresholds; pass/fail table, exit 1 on a
failure, 2 on a bad file; markdown, JSON and JUnit output."""

from __future__ import annotations

import inspect
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokecon.cli.main import app
from tokecon.commands.check import COMMANDS, METRICS, junit_xml, load_budget, run_check, threshold_names
from tokecon.commands.common import CommonOptions
from tokecon.commands.decode import run_decode
from tokecon.errors import TokeconError
from tokecon.results import Thresholds

runner = CliRunner()
EXAMPLE = Path(__file__).parents[1] / "examples" / "budget.toml"

DECODE = """
[scenarios.chat]
command = "decode"
model = "llama3-70b"
gpus = "4xH100"
batch = [16, 64]
context = 4096
max_usd_per_mtok = {usd}
max_tpot_ms = 50
"""


def budget(tmp_path, text: str, name: str = "budget.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_budget_passes_and_covers_decode_and_prefill():
    r = runner.invoke(app, ["check", str(EXAMPLE)])
    assert r.exit_code == 0, r.output
    assert "pass" in r.stdout and "FAIL" not in r.stdout
    assert {s.command for s in load_budget(EXAMPLE)} == set(COMMANDS)  # the example shows every command


def test_values_equal_the_command_they_check(tmp_path):
    path = budget(tmp_path, DECODE.format(usd=100))
    result = run_check(path)
    core = run_decode(CommonOptions("llama3-70b", ("4xH100",)), [16, 64], 4096, Thresholds())
    usd = next(r for r in result.rows if r["threshold"] == "max_usd_per_mtok")
    tpot = next(r for r in result.rows if r["threshold"] == "max_tpot_ms")
    assert usd["value"] == max(r["usd_per_mtok"] for r in core.rows)  # worst = the most expensive row
    assert tpot["value"] == pytest.approx(max(r["tpot_s"] for r in core.rows) * 1e3)
    assert usd["where"] == "4xh100-sxm batch 16" and usd["passed"]


def test_failure_exits_1_with_table_markdown_json_and_junit(tmp_path):
    path = budget(tmp_path, DECODE.format(usd=0.01))
    r = runner.invoke(app, ["check", str(path)])
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and "1 of 2 budget checks pass; failing: chat" in r.stdout
    assert r.stderr.startswith("tokecon: 1 of 2 budget checks failed (first: chat: 4xh100-sxm batch 16:")

    md = runner.invoke(app, ["check", str(path), "--format", "markdown"])
    assert md.exit_code == 1 and "| scenario | command | check |" in md.stdout and "| FAIL |" in md.stdout

    junit = tmp_path / "out" / "report.xml"
    js = runner.invoke(app, ["check", str(path), "-f", "json", "--junit", str(junit)])
    doc = json.loads(js.stdout)
    assert js.exit_code == 1 and doc["command"] == "check" and doc["passed"] is False and doc["failed"] == 1
    assert {r["threshold"]: r["passed"] for r in doc["rows"]} == {"max_usd_per_mtok": False, "max_tpot_ms": True}
    assert doc["sources"]["model:llama3-70b"].endswith("models.toml")
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "2" and suite.get("failures") == "1"
    failures = suite.findall(".//failure")
    assert len(failures) == 1 and "USD/Mtok above 0.01" in failures[0].get("message")


def test_does_not_fit_is_a_failure_not_a_crash(tmp_path):
    path = budget(tmp_path, '[scenarios.big]\ncommand = "decode"\nmodel = "llama3-405b"\ngpus = "1xL4"\nmax_usd_per_mtok = 10\n')
    r = runner.invoke(app, ["check", str(path), "-f", "json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and "does not fit" in doc["rows"][0]["violations"][0]


def test_defaults_and_relative_paths(tmp_path):
    (tmp_path / "cat.toml").write_text('[engines.slow]\nname = "Slow"\ncompute_scale = 0.5\nmemory_bw_scale = 0.5\n'
                                       'step_overhead_ms = 5\nsource = "test"\n')
    text = ('[defaults]\ncatalog = "cat.toml"\nengine = "slow"\nmodel = "llama3-8b"\ngpus = ["1xH100", "1xH200"]\n'
            '[scenarios.a]\ncommand = "prefill"\ninput-len = 1024\nmax_ttft_ms = 10000\n')
    result = run_check(budget(tmp_path, text))
    assert result.rows[0]["passed"] and result.sources["engine:slow"] == str(tmp_path / "cat.toml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[scenario.a]\n", "unknown top-level key 'scenario' (did you mean 'scenarios'?)"),
        ("[defaults]\n", "no scenarios"),
        ('[scenarios.a]\ncommand = "decod"\n', "'command' must be one of decode, embed, prefill, serve"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\n', "[scenarios.a]: no thresholds"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd = 1\n', "unknown key 'max_usd'"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd_per_mtok = "1"\n', "'max_usd_per_mtok' must be a finite number"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd_per_mtok = nan\n', "must be a finite number"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\ncontext = 1.5\nmax_tpot_ms = 1\n', "'context' must be an integer"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = []\nmax_tpot_ms = 1\n', "'gpus' must be a string or a non-empty list"),
        ('[scenarios.a]\ncommand = "decode"\ngpus = "1xH100"\nmax_tpot_ms = 1\n', "[scenarios.a]: missing 'model'"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_ttft_ms = 5\n',
         "threshold 'max_ttft_ms' does not apply to command decode (its thresholds: max_usd_per_mtok, min_tok_s_per_gpu, "
         "max_tpot_ms, min_tok_s_per_user)"),
        ('[scenarios.a]\ncommand = "prefill"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd_per_mtok_out = 5\n',
         "threshold 'max_usd_per_mtok_out' does not apply to command prefill"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "nope"\ngpus = "1xH100"\nmax_tpot_ms = 1\n', "[scenarios.a]: unknown model 'nope'"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nbatch = "1,x"\nmax_tpot_ms = 1\n', "batch expects comma-separated"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nbatch = 0\nmax_tpot_ms = 1\n', "must be a positive integer"),
        ("scenarios = 3\n", "no scenarios"),
        ("[scenarios]\na = 3\n", "[scenarios.a]: must be a table"),
        ("x = [\n", "TOML syntax error"),
    ],
)
def test_bad_budget_files_exit_2_with_one_line(tmp_path, text, message):
    path = budget(tmp_path, text)
    with pytest.raises(TokeconError) as err:
        run_check(path)
    assert message in str(err.value) and str(err.value).startswith(str(path))
    r = runner.invoke(app, ["check", str(path), "--junit", str(tmp_path / "j.xml")])
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and message in r.stderr
    assert not (tmp_path / "j.xml").exists()


def test_missing_budget_file(tmp_path):
    r = runner.invoke(app, ["check", str(tmp_path / "none.toml")])
    assert r.exit_code == 2 and "cannot read budget file" in r.stderr


def test_junit_escapes_hostile_names(tmp_path):
    text = DECODE.format(usd=0.01).replace("[scenarios.chat]", '[scenarios."<a & \\"b\\"> \\u0001"]')
    xml = junit_xml(run_check(budget(tmp_path, text)))
    root = ET.fromstring(xml)
    assert root.find(".//testcase").get("classname") == 'tokecon.check.<a & "b"> ?'


def test_every_threshold_is_understood():
    """Thresholds added to tokecon.results are accepted by budget files; the known ones show values."""
    assert set(METRICS) <= set(threshold_names())


def test_check_defaults_match_the_cli():
    """The defaults check assumes for a command equal the CLI's, so a budget means what the flags mean."""
    import tokecon.cli.decode as d
    import tokecon.cli.prefill as p

    assert inspect.signature(d.decode).parameters["context"].default == 2048
    assert inspect.signature(p.prefill).parameters["input_len"].default == 2048
    src = inspect.getsource(COMMANDS["decode"].run) + inspect.getsource(COMMANDS["prefill"].run)
    assert 'o.get("context", 2048)' in src and 'o.get("input_len", 2048)' in src


def test_serve_and_embed_scenarios_match_their_commands(tmp_path):
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.embed import run_embed
    from tokecon.commands.serve import ServeOptions, run_serve

    text = ('[scenarios.s]\ncommand = "serve"\nmodel = "llama3-8b"\ngpus = "1xH100"\nconcurrency = [8, "max"]\n'
            'output_len = 256\nusd_per_gpu_hour = 2.0\nmax_tpot_ms = 1000\n'
            '[scenarios.e]\ncommand = "embed"\nmodel = "bge-large"\ngpus = "1xL4"\nbatch = 32\nmax_usd_per_mtok = 100\n')
    rows = run_check(budget(tmp_path, text)).rows
    serve = run_serve(ServeOptions(CommonOptions("llama3-8b", ("1xH100",)), cost=__import__("tokecon.economics.costs").economics.costs.CostModel(usd_per_gpu_hour=2.0)),
                      [8, "max"], 1024, 256, Thresholds())
    embed = run_embed(CommonOptions("bge-large", ("1xL4",)), [32], None, Thresholds())
    assert rows[0]["value"] == pytest.approx(max(r["tpot_s"] for r in serve.rows if r.get("tpot_s") is not None) * 1e3)
    assert rows[1]["value"] == pytest.approx(max(r["usd_per_mtok"] for r in embed.rows))
    assert all(r["passed"] for r in rows)


def test_junit_never_overwrites_the_budget(tmp_path):
    """--junit naming the budget file itself would destroy the input: refused, exit 2, file intact."""
    from typer.testing import CliRunner

    from tokecon.cli.main import app

    budget = tmp_path / "budget.toml"
    budget.write_text('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = ["1xH100"]\n')
    before = budget.read_bytes()
    result = CliRunner().invoke(app, ["check", str(budget), "--junit", str(budget)])
    assert result.exit_code == 2 and "budget file itself" in result.output
    assert budget.read_bytes() == before


def _threshold_flags(command: str) -> set[str]:
    import typer.main

    cmd = typer.main.get_command(app).commands[command]
    return {p.name for p in cmd.params if p.name in threshold_names()}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_budget_thresholds_are_the_command_flags(command):
    """One set of thresholds per command: its CLI flags and its budget keys are the same names."""
    assert set(COMMANDS[command].thresholds) == _threshold_flags(command)


def test_check_help_lists_each_command_thresholds():
    r = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for name, spec in COMMANDS.items():
        assert f"{name}: {', '.join(spec.thresholds)}" in r.stdout


def test_serve_price_thresholds_in_a_budget(tmp_path):
    """max_usd_per_mtok_in/_out/_blended check the matching serve column; the plain name is blended."""
    args = ["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8", "-f", "json"]
    row = json.loads(runner.invoke(app, args).stdout)["rows"][0]
    text = ('[scenarios.s]\ncommand = "serve"\nmodel = "llama3-8b"\ngpus = "1xH100"\nconcurrency = [8]\n'
            f'max_usd_per_mtok_in = {row["usd_per_mtok_input"] * 1.01}\n'
            f'max_usd_per_mtok_out = {row["usd_per_mtok_output"] * 0.99}\n'
            f'max_usd_per_mtok_blended = {row["usd_per_mtok"] * 1.01}\n'
            f'max_usd_per_mtok = {row["usd_per_mtok"] * 0.99}\n')
    result = run_check(budget(tmp_path, text))
    status = {r["threshold"]: (r["passed"], r["value"]) for r in result.rows}
    assert status["max_usd_per_mtok_in"] == (True, pytest.approx(row["usd_per_mtok_input"]))
    assert status["max_usd_per_mtok_out"] == (False, pytest.approx(row["usd_per_mtok_output"]))
    assert status["max_usd_per_mtok_blended"] == (True, pytest.approx(row["usd_per_mtok"]))
    assert status["max_usd_per_mtok"] == (False, pytest.approx(row["usd_per_mtok"]))


def test_budget_checks_a_disaggregated_layout_as_serve_does(tmp_path):
    path = budget(tmp_path, '[scenarios.pd]\ncommand = "serve"\nmodel = "llama3-70b"\nprefill_gpus = "4xH100"\n'
                            'decode_gpus = "8xH100"\ndecode_workers = 2\nconcurrency = ["64"]\nmax_usd_per_mtok = 100\n')
    row = run_check(path).rows[0]
    r = runner.invoke(app, ["serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "8xH100",
                            "--decode-workers", "2", "-c", "64", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert row["value"] == pytest.approx(json.loads(r.stdout)["rows"][0]["usd_per_mtok"]) and row["passed"]
    none = budget(tmp_path, '[scenarios.x]\ncommand = "serve"\nmodel = "llama3-70b"\nmax_usd_per_mtok = 1\n', "none.toml")
    r = runner.invoke(app, ["check", str(none)])
    assert r.exit_code == 2 and "--prefill-gpus and --decode-gpus" in r.stderr
