"""Answers before tables (frontier, capacity), a word when the answer is not interactive, and help
with examples that run (issue 11)."""

from __future__ import annotations

import json
import shlex

import pytest
import typer.main
from typer.testing import CliRunner

import tokecon
from tokecon.api.commands import COMMANDS as DECLARED
from tokecon.cli.main import app
from tokecon.commands.serving import INTERACTIVE_TOK_S, interactivity_note
from tokecon.results import Thresholds

runner = CliRunner()
COMMANDS = [c.name for c in DECLARED if " " not in c.name]  # compare, decode, ..., validate, check


def frontier(slo: Thresholds, *gpus: str):
    return tokecon.frontier(model="llama3-70b", gpus=list(gpus), **{k: v for k, v in slo.__dict__.items() if v is not None})


def answers(result):
    """frontier's answer per device (the table before the frontier), or None without an SLO."""
    return result.preface[0] if result.preface else None


def example_lines(help_text: str) -> list[str]:
    """The examples under a command's help, a line ending in a backslash joined to the next."""
    lines = [line.strip() for line in help_text.split("Examples:")[1].splitlines() if line.strip()]
    out: list[str] = []
    for line in lines:
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1].rstrip() + " " + line
        else:
            out.append(line)
    return out


def test_frontier_answers_per_device_first():
    result = frontier(Thresholds(min_tok_s_per_user=30), "4xH100", "8xH200")
    answer = answers(result)
    assert [r["device"] for r in answer.rows] == ["4xh100-sxm", "8xh200"]
    for row in answer.rows:  # the cheapest of that device's points meeting the SLO (each is in the result)
        ok = [r for r in result.rows if r["device"] == row["device"] and r["slo"] == "ok"]
        assert row["usd_per_mtok"] == min(r["usd_per_mtok"] for r in ok)
        assert row["tok_s_per_user"] >= 30
    star = answer.rows[next(iter(answer.highlight))]
    assert star["usd_per_mtok"] == min(r["usd_per_mtok"] for r in answer.rows)
    out = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "4xH100", "-g", "8xH200", "--min-tok-s-per-user", "30"]).stdout
    assert out.index("the cheapest point meeting the SLO, per device") < out.index("frontier: llama3-70b on 4xh100-sxm")


def test_frontier_answer_names_a_device_that_meets_nothing_and_none_without_slo():
    loose = frontier(Thresholds(min_tok_s_per_user=1e-3), "4xH100", "8xH200")
    fastest = {d: max(r["tok_s_per_user"] for r in loose.rows if r["device"] == d) for d in ("4xh100-sxm", "8xh200")}
    slow, fast = sorted(fastest, key=fastest.get)  # the fastest point of each device is on its frontier
    answer = answers(frontier(Thresholds(min_tok_s_per_user=sum(fastest.values()) / 2), "4xH100", "8xH200"))
    assert {r["device"]: r["layout"] for r in answer.rows}[slow] == "no point meets the SLO"
    assert {r["device"]: r.get("concurrency") for r in answer.rows}[fast] is not None
    assert answers(frontier(Thresholds(), "4xH100")) is None
    out = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "4xH100"]).stdout
    assert "per device" not in out


def test_capacity_with_several_devices_is_one_table_with_the_cheapest_starred():
    args = ["capacity", "-m", "deepseek-v3", "-g", "8xH200", "-g", "8xB200", "--tokens-per-day", "1e9", "-f", "json"]
    rows = json.loads(runner.invoke(app, args).stdout)["rows"]
    out = runner.invoke(app, args[:-2]).stdout
    assert out.count("+-\n") <= 1 and out.splitlines()[0] == "capacity"  # one table, not one per device
    cheapest = min(rows, key=lambda r: r["usd_per_day"])
    star = next(line for line in out.splitlines() if " * " in line)
    assert cheapest["deployment"].split(",")[0] in star
    assert f"* {cheapest['deployment']}: " in out and "the cheapest per day." in " ".join(out.split())


def test_a_slow_answer_says_so_unless_a_floor_was_given():
    row = {"tok_s_per_user": 5.9}
    note = interactivity_note("8xh200", row, Thresholds())
    assert "5.9 tok/s per user" in note[0] and "--min-tok-s-per-user" in note[0]
    assert interactivity_note("8xh200", row, Thresholds(min_tok_s_per_user=1)) == []
    assert interactivity_note("8xh200", {"tok_s_per_user": INTERACTIVE_TOK_S}, Thresholds()) == []
    base = ["capacity", "-m", "deepseek-v3", "-g", "8xH200", "--tokens-per-day", "1e9", "--input-output-ratio", "3", "-o", "512"]
    doc = json.loads(runner.invoke(app, base + ["-f", "json"]).stdout)
    slow = doc["rows"][0]["tok_s_per_user"] < INTERACTIVE_TOK_S
    assert any("--min-tok-s-per-user" in n for n in doc["notes"]) == slow
    floored = json.loads(runner.invoke(app, base + ["--min-tok-s-per-user", "1", "-f", "json"]).stdout)
    assert not any("--min-tok-s-per-user" in n for n in floored["notes"])
    result = frontier(Thresholds(max_ttft_ms=1e4), "8xH200")
    best = result.rows[next(iter(result.highlight))]
    assert any("--min-tok-s-per-user" in n for n in result.notes) == (best["tok_s_per_user"] < INTERACTIVE_TOK_S)
    note = interactivity_note("8xh200", best, Thresholds())
    assert all(n in result.notes for n in note)  # beside the answer, not in the method


def test_top_level_help_is_not_cut_at_80_columns():
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).stdout
    commands = out.split("Commands:")[1]
    assert "..." not in commands
    for name in [*COMMANDS, "hardware", "models", "engines"]:
        assert f"  {name} " in commands


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_has_examples_that_run(name):
    out = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).stdout
    examples = example_lines(out)
    assert 1 <= len(examples) <= 2 and all(e.startswith(f"tokecon {name} ") for e in examples)
    for example in examples:
        args = shlex.split(example)[1:]
        if "--junit" in args:
            continue  # would write a file; the same command without it runs above
        if "--fit" in args:  # minutes of refitting (tests/test_validate.py runs the fit): parsed, not run
            command = typer.main.get_command(app).commands[args[0]]
            assert command.make_context(args[0], args[1:]).params["fit"] is True, example
            continue
        assert runner.invoke(app, args, env={"TOKECON_HOME": "/nonexistent-tokecon-home"}).exit_code in (0, 1), example
