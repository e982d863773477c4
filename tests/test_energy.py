"""Energy per token, tok/s per MW and the energy share (tokecon.economics.energy), checked by hand and through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokecon.cli.main import app
from tokecon.economics.energy import energy_fields

runner = CliRunner()


def test_worked_number():
    # tokecon.economics.energy docstring: 8x H100 SXM (all-in 1,370 W, board 700 W) at 10,000 tok/s (5,000 out),
    # PUE 1.3, 0.10 USD/kWh, 8 x 2.99 USD/h
    f = energy_fields(8 * 700.0, 1.3, 0.10, 10_000.0, 5_000.0, 8 * 2.99, all_in_w=8 * 1370.0)
    assert float(f["joules_per_token"]) == pytest.approx(1.096)
    assert float(f["joules_per_output_token"]) == pytest.approx(2.192)
    assert float(f["tok_s_per_mw"]) == pytest.approx(10_000 / 0.014248)  # 0.702 Mtok/s per MW
    assert float(f["energy_usd_per_mtok"]) == pytest.approx(1.4248 / 3.6e7 * 1e6)  # 0.0396
    assert float(f["energy_share"]) == pytest.approx(1.4248 / 23.92)
    assert float(f["joules_per_token_board"]) == pytest.approx(0.56)
    assert float(f["tok_s_per_mw_board"]) == pytest.approx(10_000 / 0.00728)  # 1.374 Mtok/s per MW at the board


def _json(args):
    r = runner.invoke(app, [*args, "-f", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize("cost", [[], ["--cost", "tco", "--pue", "1.2", "--usd-per-kwh", "0.15"]])
def test_serve_rows_carry_energy_consistent_with_power_and_price(cost):
    doc = _json(["serve", "-m", "llama3-70b", "-g", "8xH100", "-c", "1,64", *cost])
    pue = 1.2 if cost else 1.3
    for row in doc["rows"]:
        board_w = 8 * 700.0
        all_in_w = row["all_in_power_w"]  # H100's published all-in power per GPU (SemiAnalysis: 1,370 W)
        assert all_in_w == pytest.approx(8 * 1370.0)
        assert row["joules_per_token"] * row["total_tok_s"] == pytest.approx(all_in_w)
        assert row["joules_per_output_token"] * row["output_tok_s"] == pytest.approx(all_in_w)
        assert row["tok_s_per_mw"] == pytest.approx(row["total_tok_s"] / (all_in_w * pue / 1e6))
        assert row["joules_per_token_board"] * row["total_tok_s"] == pytest.approx(board_w)
        # both are prices of the same tokens, so their ratio is the energy share of the hourly price
        assert row["energy_usd_per_mtok"] / row["usd_per_mtok"] == pytest.approx(row["energy_share"])
    if cost:  # TCO: the energy share is the energy line of the cost breakdown (both on all-in power)
        per_gpu = doc["cost"]["per_gpu_hour"]["h100-sxm"]
        assert doc["rows"][0]["all_in_power_w"] == pytest.approx(8 * per_gpu["all_in_power_w"])
        assert doc["rows"][0]["energy_share"] == pytest.approx(per_gpu["energy_usd_per_hour"] / per_gpu["usd_per_gpu_hour"])


def test_energy_keys_in_frontier_compare_capacity():
    assert "tok_s_per_mw" in _json(["frontier", "-m", "llama3-8b", "-g", "1xH100"])["rows"][0]
    assert "joules_per_token" in _json(["compare", "-m", "llama3-8b", "-g", "1xH100"])["rows"][0]
    cap = _json(["capacity", "-m", "llama3-8b", "-g", "1xH100", "--tokens-per-day", "1e9"])["rows"][0]
    assert cap["facility_mw_needed"] == pytest.approx(cap["gpus_needed"] * 1370 * 1.3 / 1e6)  # H100's all-in power


def test_frontier_rank_by_tok_s_per_mw_picks_the_most_tokens_per_mw():
    args = ["frontier", "-m", "llama3-70b", "-g", "8xH100", "-g", "8xB200", "--min-tok-s-per-user", "30"]
    by_mw = _json([*args, "--rank-by", "tok-s-per-mw"])
    ok = [r for r in by_mw["rows"] if r.get("slo") == "ok"]
    best = max(ok, key=lambda r: r["tok_s_per_mw"])
    assert by_mw["notes"][0].startswith(f"* {best['device']} {best['layout']} at concurrency {best['concurrency']}: "
                                        "most tok/s per MW meeting the SLO")
    bad = runner.invoke(app, [*args, "--rank-by", "watts"])
    assert bad.exit_code == 2 and "--rank-by" in bad.stderr
