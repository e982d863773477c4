"""Every command declared once (tokecon.api.commands), read by three front ends: the CLI (cli/build.py),
budget files (``tokecon check``) and the Python API (``tokecon.decode(...)``). The same scenario gives
the same rows through all three; budget keys are the declared options; every option has help and a
flag; ``import tokecon`` stays light."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

import tokecon
from tokecon.api import FUNCTIONS
from tokecon.api.commands import ANALYSES, BY_NAME, COMMANDS
from tokecon.api.declare import call, threshold_opt
from tokecon.cli.main import app
from tokecon.errors import TokeconError
from tokecon.results import METRICS

from helpers import json_rows

runner = CliRunner()

#: one scenario per analysis command: its options (budget keys and API keywords) and one threshold it
#: computes, loose enough to pass
SCENARIOS: dict[str, tuple[dict[str, Any], str | None, float | None]] = {
    "compare": ({"model": "llama3-70b", "gpus": ["4xH100", "2xH200", "8xL4"], "output_len": 512}, "max_usd_per_mtok", 1000.0),
    "decode": ({"model": "llama3-70b", "gpus": ["4xH100", "2xH200"], "batch": [16, 64], "context": 4096}, "max_tpot_ms", 1000.0),
    "prefill": ({"model": "llama3-8b", "gpus": "1xH100", "batch": [1, 4], "input_len": 1024}, "max_ttft_ms", 1e5),
    "embed": ({"model": "bge-large", "gpus": ["1xL4", "1xH100"], "batch": [8, 32]}, "max_usd_per_mtok", 100.0),
    "serve": ({"model": "llama3-70b", "gpus": "4xH100", "concurrency": [8, "max"], "input_len": 2048, "output_len": 512},
              "max_tpot_ms", 1000.0),
    "frontier": ({"model": "llama3-8b", "gpus": ["1xH100", "1xL40S"], "mode": "agg"}, "min_tok_s_per_user", 5.0),
    "capacity": ({"model": "llama3-8b", "gpus": "1xH100", "tokens_per_day": 1e9}, "max_usd_per_mtok", 1000.0),
    "moe": ({"model": "qwen3-30b-a3b", "gpus": "8xH100", "nodes": [1, 2]}, "min_tok_s_per_gpu", 1.0),
    "tenants": ({"model": "llama3-8b", "gpus": "1xH100", "adapters": [1, 10]}, "max_usd_per_mtok", 1000.0),
    "fleet": ({"model": "llama3-8b", "old": "1xA100", "new": "1xH100", "years": 2}, None, None),  # no threshold applies
}


def argv(name: str, raw: dict[str, Any]) -> list[str]:
    """The command line of ``raw`` (option name -> value), written with each option's declared flag."""
    cmd = BY_NAME[name]
    opts = {n: opt for n, opt, _ in cmd.option_fields()}
    out = name.split(" ")
    for key, value in raw.items():
        opt = opts.get(key)
        if opt is None:  # a threshold
            out += [threshold_opt(key).flag, str(value)]
        elif opt.argument:
            out.append(str(value))
        elif opt.kind == "bool":
            out += [opt.flag] if value else []
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                out += [opt.flag, str(item)]
    return out


def budget(tmp_path: Path, scenarios: dict[str, dict[str, Any]]) -> Path:
    path = tmp_path / "budget.toml"
    path.write_text(tomli_w.dumps({"scenarios": scenarios}))
    return path


def worst(rows: list[dict[str, Any]], threshold: str) -> float:
    """What a budget check reports: the worst value of the threshold's figure over the command's rows."""
    m = METRICS[threshold]
    values = [r[m.row_key] * m.scale for r in rows if r.get(m.row_key) is not None]
    return (max if m.upper else min)(values)


# --- 1. the same scenario through the three front ends ------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_cli_budget_and_python_api_give_the_same_rows(name, tmp_path):
    raw, threshold, limit = SCENARIOS[name]
    given = {**raw, **({threshold: limit} if threshold else {})}
    api = getattr(tokecon, name)(**given)
    assert api.rows and api.command == name

    r = runner.invoke(app, [*argv(name, given), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["command"] == name
    assert doc["rows"] == json_rows(api)
    assert doc["notes"] == api.notes and doc["method_notes"] == api.method

    as_budget = call(BY_NAME[name], given, style="budget", base=tmp_path)  # what a budget scenario runs
    assert json_rows(as_budget, explain=True) == json_rows(api, explain=True)

    if threshold is None:
        return
    (row,) = tokecon.check(budget=budget(tmp_path, {"s": {"command": name, **given}})).rows
    assert row["passed"] and row["command"] == name
    (check,) = row["checks"]
    assert check["threshold"] == threshold and check["limit"] == limit
    assert check["value"] == worst(api.rows, threshold) == worst(doc["rows"], threshold)


@pytest.mark.parametrize("name", ["decode", "serve", "compare"])
def test_a_failing_budget_reports_the_command_worst_row(name, tmp_path):
    """The same scenario with a limit its worst row crosses: check fails there, naming the value the
    command computes; the CLI exits 1 on the same rows."""
    raw, threshold, _ = SCENARIOS[name]
    rows = getattr(tokecon, name)(**raw, **{threshold: 1000.0}).rows
    value = worst(rows, threshold)
    tight = value * (0.999 if METRICS[threshold].upper else 1.001)
    (row,) = tokecon.check(budget=budget(tmp_path, {"s": {"command": name, **raw, threshold: tight}})).rows
    assert row["status"] == "FAIL" and row["checks"][0]["value"] == value and row["checks"][0]["violations"]
    if name != "compare":  # compare takes a limit as its SLO: crossed by some, it is an answer for the others
        r = runner.invoke(app, [*argv(name, {**raw, threshold: tight}), "-f", "json"])
        assert r.exit_code == 1 and "cross a threshold" in r.stderr


# --- 2. budget keys are the declared options ---------------------------------------------------


def test_budget_takes_pp_as_the_flag_does(tmp_path):
    raw = {"model": "llama3-8b", "gpus": "8xH100", "concurrency": [64], "pp": 2}
    (row,) = tokecon.check(budget=budget(tmp_path, {"pp": {"command": "serve", **raw, "max_tpot_ms": 1000.0}})).rows
    served = tokecon.serve(**raw)
    assert served.rows[0]["pp"] == 2 and "PP2" in served.rows[0]["layout"]
    assert row["passed"] and row["checks"][0]["value"] == worst(served.rows, "max_tpot_ms")
    flat = tokecon.serve(**{**raw, "pp": None})
    assert worst(flat.rows, "max_tpot_ms") != row["checks"][0]["value"]  # pp = 2 reached the command
    cli = runner.invoke(app, [*argv("serve", raw), "-f", "json"])
    assert cli.exit_code == 0 and json.loads(cli.stdout)["rows"] == json_rows(served)


def test_budget_takes_an_option_that_is_only_declared(tmp_path):
    """ep is no threshold and no common option: only serve's declaration knows it."""
    raw = {"model": "qwen3-30b-a3b", "gpus": "8xH100", "concurrency": [64], "attention_dp": True, "ep": 4}
    (row,) = tokecon.check(budget=budget(tmp_path, {"ep": {"command": "serve", **raw, "max_tpot_ms": 1000.0}})).rows
    served = tokecon.serve(**raw).rows
    assert served[0]["ep"] == 4 and served[0]["attention_dp"] is True
    assert row["passed"] and row["checks"][0]["value"] == worst(served, "max_tpot_ms")


@pytest.mark.parametrize("key, hint", [("concurency", "did you mean 'concurrency'?"), ("expert_parallel", "")])
def test_budget_refuses_an_unknown_key_with_a_hint(tmp_path, key, hint):
    path = budget(tmp_path, {"s": {"command": "serve", "model": "llama3-8b", "gpus": "1xH100", key: 4, "max_tpot_ms": 1.0}})
    with pytest.raises(TokeconError) as err:
        tokecon.check(budget=path)
    assert f"[scenarios.s]: unknown option '{key}' for serve" in str(err.value) and hint in str(err.value)
    r = runner.invoke(app, ["check", str(path)])
    assert r.exit_code == 2 and "unknown option" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(TokeconError, match=f"unknown option '{key}' for serve"):  # the API refuses it alike
        tokecon.serve(model="llama3-8b", gpus="1xH100", **{key: 4})


@pytest.mark.parametrize("name", [c.name for c in ANALYSES])
def test_check_runs_a_scenario_of_every_analysis_command(name, tmp_path):
    raw, threshold, limit = SCENARIOS[name]
    threshold, limit = (threshold, limit) if threshold else ("max_usd_per_mtok", 1000.0)
    assert threshold in BY_NAME[name].thresholds  # one the command declares ...
    (row,) = tokecon.check(budget=budget(tmp_path, {name: {"command": name, **raw, threshold: limit}})).rows
    assert row["scenario"] == name and row["command"] == name and row["status"] == "pass"
    assert row["checks"][0]["value"] is not None  # ... and computes


def test_every_analysis_command_has_a_scenario_here():
    assert {c.name for c in ANALYSES} == set(SCENARIOS) == {
        "compare", "decode", "prefill", "embed", "serve", "frontier", "capacity", "moe", "tenants", "fleet"}


# --- 3. every option has help and a flag, and shows in --help ----------------------------------


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_every_declared_option_has_help_a_flag_and_shows_in_help(cmd):
    r = runner.invoke(app, [*cmd.name.split(" "), "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    for name, opt, _ in cmd.option_fields():
        assert opt.help.strip(), (cmd.name, name)
        if opt.argument:  # a positional argument: no flag, shown by its name or metavar with its help
            assert (opt.metavar or name) in r.stdout and opt.help in " ".join(r.stdout.split()), (cmd.name, name)
            continue
        assert opt.flags and opt.flag.startswith("--"), (cmd.name, name, opt.flags)
        assert opt.flag in r.stdout, (cmd.name, opt.flag)
    for name in cmd.thresholds:
        assert threshold_opt(name).help and threshold_opt(name).flag in r.stdout


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_every_help_has_examples_that_fit_80_columns(cmd):
    r = runner.invoke(app, [*cmd.name.split(" "), "--help"], env={"COLUMNS": "80"})
    assert r.exit_code == 0 and "Examples:" in r.stdout
    shown = [line for line in r.stdout.split("Examples:")[1].splitlines() if line.strip()]
    assert cmd.examples and len(shown) == sum(e.count("\n") + 1 for e in cmd.examples)
    for line in shown:
        assert len(line) <= 80, (cmd.name, len(line), line)
    for example in cmd.examples:
        assert example == f"tokecon {cmd.name}" or example.startswith(f"tokecon {cmd.name} ")


# --- 4. the Python API ---------------------------------------------------------------------------


def test_import_tokecon_is_light_and_reaches_every_command():
    code = ("import sys, tokecon\n"
            "heavy = [m for m in ('typer', 'rich', 'numpy', 'click') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert callable(tokecon.compare) and tokecon.compare.__name__ == 'compare'\n"
            "assert 'typer' not in sys.modules and 'rich' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_every_command_is_a_function_with_its_options_as_keywords():
    assert list(FUNCTIONS) == [c.python_name for c in COMMANDS]
    assert set(FUNCTIONS) == {"compare", "decode", "prefill", "embed", "serve", "frontier", "capacity", "moe", "tenants",
                              "fleet", "validate", "check", "hardware_list", "hardware_show", "hardware_add", "models_list",
                              "models_show", "models_import", "engines_list", "engines_show", "prices_list", "prices_show"}
    for cmd in COMMANDS:
        function = getattr(tokecon, cmd.python_name)
        params = inspect.signature(function).parameters
        assert set(params) == {n for n, _, _ in cmd.option_fields()} | set(cmd.thresholds), cmd.name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
        assert cmd.description in function.__doc__
    compare = inspect.signature(tokecon.compare).parameters
    assert compare["min_tok_s_per_user"].default == 20.0 and compare["max_ttft_ms"].default == 2000.0  # its SLO
    assert inspect.signature(tokecon.fleet).parameters["start"].default == 2026  # --from
    with pytest.raises(AttributeError):
        tokecon.no_such_command  # noqa: B018


def test_api_values_follow_the_command_line_rules():
    """A string, a list or "1,8" for a list; one-line TokeconError on bad input, as the CLI says it."""
    a = tokecon.decode(model="llama3-8b", gpus="1xH100", batch="1,8")
    b = tokecon.decode(model="llama3-8b", gpus=["1xH100"], batch=[1, 8])
    assert json_rows(a) == json_rows(b) and [r["batch"] for r in a.rows] == [1, 8]
    with pytest.raises(TokeconError, match="decode needs 'gpus'"):
        tokecon.decode(model="llama3-8b")
    with pytest.raises(TokeconError, match="context= must be an integer, got 'long'"):
        tokecon.decode(model="llama3-8b", gpus="1xH100", context="long")
    with pytest.raises(TokeconError, match="does not apply to command decode"):
        tokecon.decode(model="llama3-8b", gpus="1xH100", max_ttft_ms=1)
    fleet = tokecon.fleet(model="llama3-8b", old="1xA100", new="1xH100", start=2027, years=2)
    assert [r["year"] for r in fleet.rows] == [2027, 2028]
    doc = fleet.to_dict()
    assert doc["command"] == "fleet" and doc["from"] == 2027 and isinstance(doc["method_notes"], list)
