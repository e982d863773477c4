"""Price thresholds on serving commands: input, output and blended USD/Mtok, each checked against
its own column, and the plain --max-usd-per-mtok said to be the blended one (issue 11)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tokecon.cli.main import app

runner = CliRunner()
SERVE = ["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8"]


def _row() -> dict:
    return json.loads(runner.invoke(app, [*SERVE, "-f", "json"]).stdout)["rows"][0]


def test_serve_checks_each_side_against_its_column():
    row = _row()
    out = runner.invoke(app, [*SERVE, "--max-usd-per-mtok-out", f"{row['usd_per_mtok_output'] * 0.99}"])
    assert out.exit_code == 1 and "USD/Mtok out above" in out.stderr
    inp = runner.invoke(app, [*SERVE, "--max-usd-per-mtok-in", f"{row['usd_per_mtok_input'] * 1.01}"])
    assert inp.exit_code == 0, inp.output
    # input tokens cost less than the blended price here, so a limit between the two tells them apart
    assert row["usd_per_mtok_input"] < row["usd_per_mtok"]
    between = f"{(row['usd_per_mtok_input'] + row['usd_per_mtok']) / 2}"
    assert runner.invoke(app, [*SERVE, "--max-usd-per-mtok-in", between]).exit_code == 0
    assert runner.invoke(app, [*SERVE, "--max-usd-per-mtok-blended", between]).exit_code == 1


def test_plain_price_threshold_is_the_blended_one_and_says_so():
    row = _row()
    for limit, code in ((row["usd_per_mtok"] * 0.99, 1), (row["usd_per_mtok"] * 1.01, 0)):
        plain = runner.invoke(app, [*SERVE, "--max-usd-per-mtok", f"{limit}", "-f", "json"])
        blended = runner.invoke(app, [*SERVE, "--max-usd-per-mtok-blended", f"{limit}", "-f", "json"])
        assert plain.exit_code == blended.exit_code == code
    notes = json.loads(plain.stdout)["notes"]
    assert any(n.startswith("--max-usd-per-mtok checks the blended price") for n in notes)
    assert not any("checks the blended price" in n for n in json.loads(blended.stdout)["notes"])


def test_frontier_answer_meets_an_output_price_limit():
    args = ["frontier", "-m", "llama3-8b", "-g", "1xH100", "-f", "json"]
    rows = json.loads(runner.invoke(app, args).stdout)["rows"]
    prices = sorted(r["usd_per_mtok_output"] for r in rows)
    limit = prices[len(prices) // 2]
    r = runner.invoke(app, [*args, "--max-usd-per-mtok-out", f"{limit}"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    best = [row for row in doc["rows"] if row.get("device_best")]
    assert len(best) == 1 and best[0]["usd_per_mtok_output"] <= limit
    assert doc["slo"] == {"max_usd_per_mtok_out": limit}
    assert any("USD/Mtok out above" in row["slo"] for row in doc["rows"])


def test_capacity_with_an_input_price_no_point_meets():
    r = runner.invoke(app, ["capacity", "-m", "llama3-8b", "-g", "1xH100", "--tokens-per-day", "1e9",
                            "--max-usd-per-mtok-in", "1e-9"])
    assert r.exit_code == 1 and "no concurrency meets the SLO" in r.stderr


def test_price_sides_are_not_offered_where_there_is_one_price():
    r = runner.invoke(app, ["decode", "-m", "llama3-8b", "-g", "1xH100", "--max-usd-per-mtok-out", "1"])
    assert r.exit_code == 2 and "No such option" in r.output


def test_negative_thresholds_are_bad_input():
    """A negative maximum would fail every row and a negative minimum none: exit 2, not a verdict."""
    for flag in ("--max-tpot-ms", "--min-tok-s-per-user", "--max-usd-per-mtok-in"):
        r = runner.invoke(app, ["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8", flag, "-1"])
        assert r.exit_code == 2 and f"{flag} must be >= 0" in r.stderr, r.output
