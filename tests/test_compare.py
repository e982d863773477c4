"""``tokecon compare``: which hardware is cheapest for a workload, at an SLO. Device configurations
ranked by blended USD/Mtok at each one's cheapest operating point meeting the SLO (default: 20 tok/s
per user, TTFT <= 2 s), searching layouts as frontier does; ``--baseline``.

Per-phase comparisons of device configurations (decode, prefill, embeddings at a batch) moved to
those commands with several ``-g``: tests/test_embed.py (figures of merit, compute-bound ranking) and
tests/test_cli.py (decode across devices)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import tokecon
from tokecon.api.commands import BY_NAME, COMPARE_SLO
from tokecon.cli.main import app
from tokecon.cli.render import fmt_value
from tokecon.commands.compare import default_gpus
from tokecon.serving import sram

from helpers import json_rows

runner = CliRunner()

GPUS = ("-g", "4xH100", "-g", "2xH200", "-g", "8xL4")  # 8xL4 serves no user at 20 tok/s: it misses the SLO


def invoke(*args: str):
    return runner.invoke(app, list(args))


def compare_json(*args: str, code: int = 0) -> dict:
    r = invoke("compare", *args, "-f", "json")
    assert r.exit_code == code, r.output
    return json.loads(r.stdout)


def ranked(doc: dict) -> list[dict]:
    return [r for r in doc["rows"] if r.get("rank")]


def test_whole_catalog_is_compared_on_one_node_each(catalog):
    """Without --gpus every catalog device is compared, one node each (min(8, scale-up domain) GPUs;
    an SRAM machine on as many chips as hold the model): each is a row or named as skipped."""
    doc = compare_json("-m", "llama3-70b")
    skipped = next(n for n in doc["notes"] if n.startswith("Skipped"))
    names = [s.strip(" .") for s in skipped.split(": ", 1)[1].split(",")]
    assert len(doc["rows"]) + len(names) == len(catalog.hardware)
    assert sorted([r["hardware"] for r in doc["rows"]] + [n.split("x", 1)[1] for n in names]) == sorted(
        hw.key for hw in catalog.hardware)
    for row in doc["rows"]:
        hw = catalog.hardware.get(row["hardware"])
        count = int(row["device"].split("x", 1)[0])
        if sram.is_sram(hw):  # llama3-70b's 141 GB need hundreds of Groq chips, several Cerebras wafers
            assert count > 1 and row["n_gpus"] == count
        else:  # a disaggregated answer may use a part of the node's GPUs
            assert count == min(8, hw.scaleup_domain) and row["n_gpus"] <= count, row["device"]
    assert default_gpus(catalog) == [hw.key if sram.is_sram(hw) else f"{min(8, hw.scaleup_domain)}x{hw.key}"
                                     for hw in catalog.hardware]


def test_the_default_slo_is_an_interactive_chat_service():
    """20 tok/s per user and TTFT <= 2 s unless a threshold flag says otherwise; every ranked row meets it."""
    assert COMPARE_SLO == {"min_tok_s_per_user": 20.0, "max_ttft_ms": 2000.0}
    assert BY_NAME["compare"].slo == COMPARE_SLO
    doc = compare_json("-m", "llama3-70b", *GPUS)
    assert doc["slo"] == COMPARE_SLO
    for row in ranked(doc):
        assert row["slo"] == "ok" and row["fits"]
        assert row["tok_s_per_user"] >= 20.0 and row["ttft_s"] <= 2.0
    missed = [r for r in doc["rows"] if not r.get("rank")]
    assert [r["device"] for r in missed] == ["8xl4"]
    assert missed[0]["slo"].startswith("no point meets the SLO") and "tok/s per user below 20" in missed[0]["slo"]
    slo = next(n for n in doc["notes"] if n.startswith("SLO:"))
    assert "TTFT [ms] <= 2000" in slo and "tok/s per user >= 20" in slo and "Missed by: 8xl4" in slo
    # a threshold flag overrides its default; the other default stays
    strict = compare_json("-m", "llama3-70b", *GPUS, "--min-tok-s-per-user", "50")
    assert strict["slo"] == {"min_tok_s_per_user": 50.0, "max_ttft_ms": 2000.0}
    assert all(r["tok_s_per_user"] >= 50.0 for r in ranked(strict))
    by = {r["device"]: r for r in doc["rows"]}
    for row in ranked(strict):  # a stricter SLO never makes a configuration cheaper
        assert row["usd_per_mtok"] >= by[row["device"]]["usd_per_mtok"] - 1e-12


def test_ranked_by_blended_usd_per_mtok_and_the_misses_last():
    doc = compare_json("-m", "deepseek-v3", "-g", "8xH200", "-g", "8xB200", "-g", "72xGB200", "-g", "8xMI355X")
    assert [r["rank"] for r in doc["rows"]] == [1, 2, 3, 4]
    costs = [r["usd_per_mtok"] for r in doc["rows"]]
    assert costs == sorted(costs)
    assert {r["device"] for r in doc["rows"]} == {"8xh200", "8xb200", "72xgb200", "8xmi355x"}
    mixed = compare_json("-m", "llama3-70b", *GPUS)
    ranks = [r.get("rank") for r in mixed["rows"]]
    assert ranks == [1, 2, None]  # the configuration that misses the SLO comes last, unranked
    assert mixed["rows"][0]["usd_per_mtok"] <= mixed["rows"][1]["usd_per_mtok"]


def test_each_answer_is_the_cheapest_point_of_frontiers_sweep_meeting_the_slo():
    """compare sweeps as frontier sweeps; under the same SLO its row for a device is frontier's answer."""
    gpus = ["4xH100", "2xH200"]
    cmp = tokecon.compare(model="llama3-70b", gpus=gpus)
    front = tokecon.frontier(model="llama3-70b", gpus=gpus, **COMPARE_SLO)
    answers = {r["device"]: r for r in front.preface[0].rows}
    for row in cmp.rows:
        best = answers[row["device"]]
        for key in ("layout", "concurrency", "usd_per_mtok", "tok_s_per_user", "ttft_s", "output_tok_s_per_gpu", "mode"):
            assert row[key] == best[key], key
        # and no point of the device's frontier meeting the SLO is cheaper
        meeting = [r for r in front.rows if r["device"] == row["device"] and r["slo"] == "ok"]
        assert meeting and all(r["usd_per_mtok"] >= row["usd_per_mtok"] for r in meeting)


def test_compare_row_equals_the_serve_row_at_its_operating_point():
    """One layout asked (--tp 4, aggregated): the answer is serve's row at that concurrency."""
    row = tokecon.compare(model="llama3-70b", gpus="4xH100", tp=4, mode="agg").rows[0]
    assert row["layout"] == "TP4" and row["mode"] == "agg" and row["rank"] == 1
    served = tokecon.serve(model="llama3-70b", gpus="4xH100", tp=4, concurrency=[row["concurrency"]]).rows[0]
    for key in ("usd_per_mtok", "usd_per_mtok_input", "usd_per_mtok_output", "ttft_s", "tpot_s", "tok_s_per_user",
                "output_tok_s_per_gpu", "total_tok_s_per_gpu", "memory_used_bytes_per_gpu", "bound", "usd_per_gpu_hour"):
        assert row[key] == served[key], key


def test_winner_note_splits_the_lead_into_price_and_speed():
    """USD/Mtok = USD/GPU-h / tokens per GPU-hour: the winner's lead over the runner-up is the ratio of
    their GPU-hour prices over the ratio of their throughputs per GPU at the SLO."""
    result = tokecon.compare(model="llama3-70b", gpus=["4xH100", "2xH200", "8xL4"])
    top, second = result.rows[:2]
    lead = second["usd_per_mtok"] / top["usd_per_mtok"]
    price = second["usd_per_gpu_hour"] / top["usd_per_gpu_hour"]
    speed = top["total_tok_s_per_gpu"] / second["total_tok_s_per_gpu"]
    assert lead == pytest.approx(price * speed, rel=1e-9)
    answer = result.notes[0]
    assert answer.startswith(f"* {top['device']} is the cheapest meeting the SLO: {top['usd_per_mtok']:.3g} USD/Mtok")
    assert f"{lead:.2f}x cheaper than {second['device']}" in answer and f"{speed:.2f}x the tokens per GPU" in answer
    assert result.highlight == {0} and result.highlight_reason == "cheapest meeting the SLO"
    # the method (serving model, energy, each device's efficiency) is behind --explain, not in the notes
    assert len(result.notes) <= 6 and result.method
    assert any(m.startswith("Continuous batching") for m in result.method)
    assert not any(n.startswith("Continuous batching") for n in result.notes)


def test_table_highlights_the_winner_with_units():
    r = invoke("compare", "-m", "llama3-70b", *GPUS)
    assert r.exit_code == 0, r.output
    for header in ("rank", "devices", "layout", "concurrency", "tok/s per user", "out tok/s per GPU", "TTFT [ms]",
                   "USD/GPU-h", "USD/Mtok blended", "80% range [USD/Mtok]"):
        assert header in r.stdout
    winner = compare_json("-m", "llama3-70b", *GPUS)["rows"][0]["device"]
    first = next(line for line in r.stdout.splitlines() if line.startswith("|  1"))
    assert "1 *" in first and winner in first
    missed = next(line for line in r.stdout.splitlines() if "8xl4" in line and line.startswith("|"))
    assert "—" in missed.split("|")[1]  # no rank
    text = " ".join(r.stdout.split())
    assert f"* {winner} is the cheapest meeting the SLO" in text and "Missed by: 8xl4" in text
    assert "How these figures are computed" not in r.stdout
    explained = invoke("compare", "-m", "llama3-70b", *GPUS, "--explain")
    assert explained.exit_code == 0 and "How these figures are computed" in explained.stdout
    assert "Continuous batching" in explained.stdout


def test_markdown_and_csv_views():
    md = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "-f", "markdown")
    assert md.exit_code == 0 and md.stdout.count("\n| ") >= 3 and "**" in md.stdout and "USD/Mtok blended" in md.stdout
    csv = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "-f", "csv")
    assert csv.exit_code == 0
    header = csv.stdout.splitlines()[0].split(",")
    assert {"usd_per_mtok", "rank", "device", "layout", "mode", "slo"} <= set(header) and len(csv.stdout.splitlines()) == 3


def test_explicit_gpus_that_cannot_hold_the_model_are_skipped():
    doc = compare_json("-m", "llama3-70b", "-g", "1xH100", "-g", "2xH200")
    assert [r["device"] for r in doc["rows"]] == ["2xh200"] and doc["rows"][0]["rank"] == 1
    assert any(n.startswith("Skipped, llama3-70b fits no layout") and n.rstrip(".").endswith("1xh100-sxm")
               for n in doc["notes"])
    r = invoke("compare", "-m", "llama3-70b", "-g", "1xH100")  # none holds it: bad input, exit 2
    assert r.exit_code == 2 and "does not fit on any of 1xH100" in r.stderr


def test_thresholds_exit_1_only_when_no_configuration_meets_them():
    r = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "--max-usd-per-mtok", "0.01")
    assert r.exit_code == 1 and "cross a threshold" in r.stderr and "USD/Mtok above 0.01" in r.stderr
    assert "No configuration meets the SLO" in r.stdout
    doc = compare_json("-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "--max-usd-per-mtok", "0.01", code=1)
    assert all(r["violations"] and r.get("rank") is None for r in doc["rows"])
    # one configuration meeting it is an answer: exit 0, the other simply unranked
    assert invoke("compare", "-m", "llama3-70b", *GPUS).exit_code == 0
    assert invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "--max-usd-per-mtok", "1000").exit_code == 0


@pytest.mark.parametrize("args, needle", [
    (("-m", "llama3-70b", "--tp", "2"), "--tp needs --gpus"),
    (("-m", "llama3-70b", "-g", "4xH100", "--sort", "vibes"), "No such option: --sort"),
    (("-m", "llama3-70b", "-g", "4xH100", "--batch", "4"), "No such option: --batch"),
    (("-m", "llama3-70b", "-g", "4xH100", "--phase", "decode"), "No such option: --phase"),
    (("-m", "llama3-70b", "-g", "4xH100", "-i", "0"), "--input-len"),
    (("-m", "llama3-70b", "-g", "4xH100", "-o", "1"), "--output-len must be at least 2"),
    (("-m", "bge-large", "-i", "4096"), "512"),
    (("-m", "llama3-70b", "--mode", "train"), "train"),
])
def test_bad_input_exit_2(args, needle):
    r = invoke("compare", *args)
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


# --- --baseline (issue 6) --------------------------------------------------------------------


def test_baseline_shows_the_change(tmp_path):
    gpus = ("-g", "4xH100", "-g", "2xH200", "-g", "1xB300")
    old = compare_json("-m", "llama3-70b", *gpus)
    by = {r["device"]: r for r in old["rows"]}
    by["4xh100-sxm"]["usd_per_mtok"] *= 2.0  # it used to cost twice as much
    old["rows"] = [r for r in old["rows"] if r["device"] != "1xb300"]  # and the B300 was not compared
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))

    doc = compare_json("-m", "llama3-70b", *gpus, "--baseline", str(path))
    now = {r["device"]: r for r in doc["rows"]}
    assert now["4xh100-sxm"]["usd_per_mtok_rel_change"] == pytest.approx(-0.5, rel=1e-12)
    assert now["4xh100-sxm"]["baseline_usd_per_mtok"] == pytest.approx(2 * now["4xh100-sxm"]["usd_per_mtok"])
    assert now["2xh200"]["usd_per_mtok_rel_change"] == 0.0
    assert now["1xb300"]["usd_per_mtok_rel_change"] is None and now["1xb300"]["baseline_usd_per_mtok"] is None
    notes = " ".join(doc["notes"])
    assert f"Against baseline {path}: 1 of 2 configurations cheaper" in notes
    assert "largest change 4xh100-sxm" in notes and "(-50.0%)" in notes

    table = invoke("compare", "-m", "llama3-70b", *gpus, "--baseline", str(path))
    assert table.exit_code == 0, table.output
    assert "change" in table.stdout and "-50.0%" in table.stdout and "+0.0%" in table.stdout
    assert fmt_value(-0.5, "signed_pct") == "-50.0%" and fmt_value(0.123, "signed_pct") == "+12.3%"


def test_baseline_with_no_configuration_in_common(tmp_path):
    old = compare_json("-m", "llama3-70b", "-g", "2xH200")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    doc = compare_json("-m", "llama3-70b", "-g", "4xH100", "--baseline", str(path))
    assert doc["rows"][0]["usd_per_mtok_rel_change"] is None
    assert f"Against baseline {path}: no configuration in both." in doc["notes"]


def test_baseline_says_when_it_ran_another_workload(tmp_path):
    old = compare_json("-m", "llama3-70b", "-g", "4xH100", "-o", "512")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    doc = compare_json("-m", "llama3-70b", "-g", "4xH100", "--baseline", str(path))
    assert doc["rows"][0]["usd_per_mtok_rel_change"] is not None  # compared ...
    said = [n for n in doc["notes"] if "baseline" in n.lower() and "512" in n and "1024" in n]
    assert said, doc["notes"]  # ... and the different output length is said


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"command": "decode", "rows": []}', "expected the output of `tokecon compare"),
    ('[1, 2, 3]', "expected the output of `tokecon compare"),
    ('{"command": "compare", "model": "llama3-8b", "rows": []}', "compares llama3-8b"),
    ('{"command": "compare", "model": "llama3-70b", "rows": [{"device": 1, "usd_per_mtok": "x"}, 7]}', None),
])
def test_baseline_bad_files(tmp_path, content, needle):
    path = tmp_path / "old.json"
    path.write_text(content)
    r = invoke("compare", "-m", "llama3-70b", "-g", "4xH100", "--baseline", str(path))
    if needle is None:  # malformed rows are ignored, never a crash
        assert r.exit_code == 0 and "no configuration in both" in " ".join(r.stdout.split())
        return
    assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output


def test_baseline_missing_file(tmp_path):
    r = invoke("compare", "-m", "llama3-70b", "--baseline", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and "cannot read" in r.stderr


def test_python_api_matches_cli():
    core = tokecon.compare(model="gpt-oss-120b", gpus=["8xH100", "8xB200"], input_len=4096, output_len=512)
    doc = compare_json("-m", "gpt-oss-120b", "-g", "8xH100", "-g", "8xB200", "-i", "4096", "-o", "512")
    assert doc["rows"] == json_rows(core)
    assert doc["notes"] == core.notes and doc["method_notes"] == core.method
    assert all(r["input_tokens"] == 4096 and r["output_tokens"] == 512 for r in doc["rows"])


def test_a_sweep_over_many_devices_reports_its_progress_and_a_quick_one_draws_no_bar():
    """compare and frontier report each device swept (the CLI draws a bar on a terminal once the work
    has run a second: a 20,000-device --catalog sweeps for minutes); a quick answer or a pipe gets none."""
    from tokecon.api.declare import call
    from tokecon.cli.show import progress

    seen: list[tuple[str, int, int]] = []
    call(BY_NAME["compare"], {"model": "llama3-8b", "gpus": ["1xH100", "1xL40S", "1xA100"]},
         progress=lambda *a: seen.append(a))
    assert seen == [("devices", 1, 3), ("devices", 2, 3), ("devices", 3, 3)]
    with progress() as report:  # under a second: nothing drawn
        report("devices", 1, 3)
    assert report.__self__.bar is None
    with progress(after_s=0.0) as report:  # long enough, but stderr is not a terminal under pytest
        report("devices", 1, 3)
    assert report.__self__.bar is None
