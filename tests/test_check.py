"""``tokecon check``: budget files of named scenarios with thresholds; pass/fail table, exit 1 on a
failure, 2 on a bad file; markdown, JSON and JUnit output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tokecon
from tokecon.api.commands import ANALYSES
from tokecon.cli.main import app
from tokecon.commands.check import junit_xml, load_budget
from tokecon.errors import TokeconError
from tokecon.results import METRICS

COMMANDS = {c.name: c for c in ANALYSES}  # every analysis command runs in a budget file

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


def run_check(path: Path):
    """``tokecon check`` through the Python API: one row per scenario."""
    return tokecon.check(budget=path)


def checks(result) -> dict[str, dict]:
    """Every threshold's check of a one-scenario budget, by threshold."""
    (row,) = result.rows
    return {c["threshold"]: c for c in row["checks"]}


def test_example_budget_passes_and_covers_decode_and_prefill():
    r = runner.invoke(app, ["check", str(EXAMPLE)])
    assert r.exit_code == 0, r.output
    assert "pass" in r.stdout and "FAIL" not in r.stdout
    scenarios = load_budget(EXAMPLE)
    assert {"decode", "prefill", "serve", "embed"} <= {s.command for s in scenarios} <= set(COMMANDS)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and " pass " in ln]
    assert len(lines) == len(scenarios)  # one line per scenario
    assert f"{len(scenarios)} of {len(scenarios)} scenarios pass" in r.stdout


def test_values_equal_the_command_they_check(tmp_path):
    path = budget(tmp_path, DECODE.format(usd=100))
    result = run_check(path)
    core = tokecon.decode(model="llama3-70b", gpus="4xH100", batch=[16, 64], context=4096)
    usd, tpot = checks(result)["max_usd_per_mtok"], checks(result)["max_tpot_ms"]
    assert usd["value"] == max(r["usd_per_mtok"] for r in core.rows)  # worst = the most expensive row
    assert tpot["value"] == pytest.approx(max(r["tpot_s"] for r in core.rows) * 1e3)
    assert usd["where"] == "4xh100-sxm batch 16" and usd["passed"]
    (row,) = result.rows  # one row per scenario
    assert {"scenario", "command", "status", "summary", "passed", "checks", "violations"} <= set(row)
    assert row["scenario"] == "chat" and row["command"] == "decode" and row["status"] == "pass" and row["passed"]
    assert row["summary"].startswith("USD/Mtok <= 100: ") and row["summary"].endswith("at 4xh100-sxm batch 16; 1 more pass")
    assert row["violations"] == []


def test_failure_exits_1_with_table_markdown_json_and_junit(tmp_path):
    path = budget(tmp_path, DECODE.format(usd=0.01))
    r = runner.invoke(app, ["check", str(path)])
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and "0 of 1 scenarios pass (1 of 2 checks); failing: chat." in " ".join(r.stdout.split())
    assert r.stderr.startswith("tokecon: 1 of 1 budget scenarios failed (first: chat: USD/Mtok <= 0.01: 4xh100-sxm batch 16:")

    md = runner.invoke(app, ["check", str(path), "--format", "markdown"])
    assert md.exit_code == 1 and "| scenario | command | status |" in md.stdout and "| FAIL |" in md.stdout

    junit = tmp_path / "out" / "report.xml"
    js = runner.invoke(app, ["check", str(path), "-f", "json", "--junit", str(junit)])
    doc = json.loads(js.stdout)
    assert js.exit_code == 1 and doc["command"] == "check" and doc["passed"] is False and doc["failed"] == 1
    assert doc["scenarios"] == 1 and doc["checks"] == 2 and len(doc["rows"]) == 1
    (row,) = doc["rows"]
    assert row["status"] == "FAIL" and row["passed"] is False and row["summary"].endswith("1 of 2 checks fail")
    assert {c["threshold"]: c["passed"] for c in row["checks"]} == {"max_usd_per_mtok": False, "max_tpot_ms": True}
    assert row["violations"] == ["USD/Mtok <= 0.01: " + row["checks"][0]["violations"][0]]
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
    assert doc["rows"][0]["status"] == "FAIL" and doc["rows"][0]["checks"][0]["value"] is None


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
        ('[scenarios.a]\ncommand = "decod"\n', "'command' must be one of compare, decode, prefill, embed, serve, frontier, "
                                             "capacity, moe, tenants, fleet, got 'decod'"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\n', "[scenarios.a]: no thresholds"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd = 1\n',
         "[scenarios.a]: unknown option 'max_usd' for decode (did you mean 'max_usd_per_mtok'?)"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd = 1\nmax_tpot_ms = 1\n',
         "[scenarios.a]: unknown option 'max_usd' for decode (did you mean 'max_usd_per_mtok'?)"),
        ('[scenarios.a]\ncommand = "serve"\nmodel = "llama3-8b"\ngpus = "1xH100"\nconcurency = 4\nmax_tpot_ms = 1\n',
         "unknown option 'concurency' for serve (did you mean 'concurrency'?)"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nconcurrency = 4\nmax_tpot_ms = 1\n',
         "unknown option 'concurrency' for decode"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd_per_mtok = "1"\n', "'max_usd_per_mtok' must be a finite number"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd_per_mtok = nan\n', "must be a finite number"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\ncontext = 1.5\nmax_tpot_ms = 1\n', "'context' must be an integer"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = []\nmax_tpot_ms = 1\n', "'gpus' must be a string or a non-empty list"),
        ('[scenarios.a]\ncommand = "decode"\ngpus = "1xH100"\nmax_tpot_ms = 1\n', "[scenarios.a]: decode needs 'model'"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_ttft_ms = 5\n',
         "threshold 'max_ttft_ms' does not apply to command decode (its thresholds: max_usd_per_mtok, min_tok_s_per_gpu, "
         "max_tpot_ms, min_tok_s_per_user)"),
        ('[scenarios.a]\ncommand = "prefill"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_usd_per_mtok_out = 5\n',
         "threshold 'max_usd_per_mtok_out' does not apply to command prefill"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "nope"\ngpus = "1xH100"\nmax_tpot_ms = 1\n', "[scenarios.a]: unknown model 'nope'"),
        ('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nbatch = "1,x"\nmax_tpot_ms = 1\n', "'batch' expects comma-separated"),
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
    """Every threshold of tokecon.results is some analysis command's, and every command's thresholds are
    known ones: a budget file accepts exactly the flags' names."""
    declared = {name for c in ANALYSES for name in c.thresholds}
    assert declared == set(METRICS)


def test_check_defaults_match_the_cli(tmp_path):
    """A budget means what the flags mean: the same declaration gives both their defaults (decode's
    --context 2048, prefill's --input-len 2048), so a scenario without them equals the bare command."""
    text = ('[scenarios.d]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nbatch = 8\nmax_tpot_ms = 1000\n'
            '[scenarios.p]\ncommand = "prefill"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_ttft_ms = 100000\n')
    d, p = run_check(budget(tmp_path, text)).rows
    cli_d = json.loads(runner.invoke(app, ["decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "8", "-f", "json"]).stdout)
    cli_p = json.loads(runner.invoke(app, ["prefill", "-m", "llama3-8b", "-g", "1xH100", "-f", "json"]).stdout)
    assert cli_d["context_tokens"] == 2048 and cli_p["input_tokens"] == 2048
    assert d["checks"][0]["value"] == pytest.approx(max(r["tpot_s"] for r in cli_d["rows"]) * 1e3, rel=1e-12)
    assert p["checks"][0]["value"] == pytest.approx(max(r["ttft_s"] for r in cli_p["rows"]) * 1e3, rel=1e-12)
    defaults = {name: default for name, _, default in COMMANDS["decode"].option_fields()}
    assert defaults["context"] == 2048
    assert {name: default for name, _, default in COMMANDS["prefill"].option_fields()}["input_len"] == 2048


def test_serve_and_embed_scenarios_match_their_commands(tmp_path):
    text = ('[scenarios.s]\ncommand = "serve"\nmodel = "llama3-8b"\ngpus = "1xH100"\nconcurrency = [8, "max"]\n'
            'output_len = 256\nusd_per_gpu_hour = 2.0\nmax_tpot_ms = 1000\n'
            '[scenarios.e]\ncommand = "embed"\nmodel = "bge-large"\ngpus = "1xL4"\nbatch = 32\nmax_usd_per_mtok = 100\n')
    rows = run_check(budget(tmp_path, text)).rows
    serve = tokecon.serve(model="llama3-8b", gpus="1xH100", concurrency=[8, "max"], output_len=256, usd_per_gpu_hour=2.0)
    embed = tokecon.embed(model="bge-large", gpus="1xL4", batch=32)
    assert [r["scenario"] for r in rows] == ["s", "e"] and [r["command"] for r in rows] == ["serve", "embed"]
    assert rows[0]["checks"][0]["value"] == pytest.approx(
        max(r["tpot_s"] for r in serve.rows if r.get("tpot_s") is not None) * 1e3)
    assert rows[1]["checks"][0]["value"] == pytest.approx(max(r["usd_per_mtok"] for r in embed.rows))
    assert all(r["passed"] for r in rows)


def test_junit_never_overwrites_the_budget(tmp_path):
    """--junit naming the budget file itself would destroy the input: refused, exit 2, file intact."""
    budget = tmp_path / "budget.toml"
    budget.write_text('[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = ["1xH100"]\nmax_tpot_ms = 100\n')
    before = budget.read_bytes()
    result = CliRunner().invoke(app, ["check", str(budget), "--junit", str(budget)])
    assert result.exit_code == 2 and "budget file itself" in result.output
    assert budget.read_bytes() == before


def _threshold_flags(command: str) -> set[str]:
    import typer.main

    cmd = typer.main.get_command(app).commands[command]
    return {p.name for p in cmd.params if getattr(p, "rich_help_panel", None) == "Thresholds"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_budget_thresholds_are_the_command_flags(command):
    """One set of thresholds per command: its CLI flags and its budget keys are the same names."""
    assert set(COMMANDS[command].thresholds) == _threshold_flags(command)


def test_an_option_named_like_a_threshold_is_not_a_silent_check(tmp_path):
    """fleet's --min-tok-s-per-user sets its operating point (an option, not one of its thresholds); a budget
    giving only that has no threshold to check and must say so, never pass a check on a value it lacks."""
    assert "min_tok_s_per_user" not in COMMANDS["fleet"].thresholds
    assert "min_tok_s_per_user" in {name for name, _, _ in COMMANDS["fleet"].option_fields()}
    path = budget(tmp_path, '[scenarios.f]\ncommand = "fleet"\nmodel = "llama3-8b"\nold = "1xA100"\nnew = "1xH100"\n'
                            'min_tok_s_per_user = 20\n')
    with pytest.raises(TokeconError, match="no thresholds"):
        run_check(path)


def test_check_help_lists_each_command_thresholds():
    r = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "80"})
    assert r.exit_code == 0 and max(map(len, r.stdout.splitlines())) <= 80
    shown = " ".join(r.stdout.split())  # the listing wraps at 80 columns
    for name, spec in COMMANDS.items():
        assert f"{name}: {', '.join(spec.thresholds)}" in shown


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
    status = {c["threshold"]: (c["passed"], c["value"]) for c in result.rows[0]["checks"]}
    assert status["max_usd_per_mtok_in"] == (True, pytest.approx(row["usd_per_mtok_input"]))
    assert status["max_usd_per_mtok_out"] == (False, pytest.approx(row["usd_per_mtok_output"]))
    assert status["max_usd_per_mtok_blended"] == (True, pytest.approx(row["usd_per_mtok"]))
    assert status["max_usd_per_mtok"] == (False, pytest.approx(row["usd_per_mtok"]))


def test_budget_checks_a_disaggregated_layout_as_serve_does(tmp_path):
    path = budget(tmp_path, '[scenarios.pd]\ncommand = "serve"\nmodel = "llama3-70b"\nprefill_gpus = "4xH100"\n'
                            'decode_gpus = "8xH100"\ndecode_workers = 2\nconcurrency = ["64"]\nmax_usd_per_mtok = 100\n')
    row = run_check(path).rows[0]["checks"][0]
    r = runner.invoke(app, ["serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "8xH100",
                            "--decode-workers", "2", "-c", "64", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert row["value"] == pytest.approx(json.loads(r.stdout)["rows"][0]["usd_per_mtok"]) and row["passed"]
    none = budget(tmp_path, '[scenarios.x]\ncommand = "serve"\nmodel = "llama3-70b"\nmax_usd_per_mtok = 1\n', "none.toml")
    r = runner.invoke(app, ["check", str(none)])
    assert r.exit_code == 2 and "--prefill-gpus and --decode-gpus" in r.stderr
