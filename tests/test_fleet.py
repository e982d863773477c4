"""tokecon fleet: old fleet vs new, year by year (tokecon.economics.fleet), and the article's obsolescence claim."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.economics import fleet
from tokecon.economics import prices
from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.serving.request import DeviceRequest
from tokecon.commands.fleet import operating_point
from tokecon.serving.request import ServingRequest
from tokecon.economics.costs import CostModel, capital_recovery_factor

runner = CliRunner()
CATALOG = load_catalog(use_user_home=False)


def test_replacement_npv_worked_number():
    # tokecon.economics.fleet docstring: one year at 10 %, 1 USD/Mtok, 100,000 extra Mtok per MW-year, 50,000 USD/MW
    assert fleet.replacement_npv(np.array([1.0]), 100_000.0, 50_000.0, 0.10) == pytest.approx(100_000 / 1.1 - 50_000)


@settings(max_examples=40, deadline=None)
@given(p=st.floats(0.01, 10.0), dq=st.floats(1.0, 1e8), k=st.floats(1e3, 1e8), i=st.floats(0.001, 0.5), n=st.integers(1, 10))
def test_npv_at_a_constant_price_is_the_annuity_over_the_capital_recovery_factor(p, dq, k, i, n):
    # sum_t p dq / (1+i)^t = p dq / CRF(i, n)
    got = fleet.replacement_npv(np.full(n, p), dq, k, i)
    assert got == pytest.approx(p * dq / capital_recovery_factor(i, n) - k, rel=1e-9, abs=1e-6 * k)


def _cost_at_own_launch_price(gpus: str) -> float:
    """USD/Mtok of llama3-70b (1k in / 1k out, max throughput) at the TCO of the device's first dated purchase price."""
    opts = ServingRequest(DeviceRequest("llama3-70b", (gpus,)))
    d, point = operating_point(CATALOG, opts, gpus, 1024, 1024, None)
    side = fleet.Side(d.scenario.hardware, point["total_tok_s_per_gpu"], gpus)
    launch = prices.year_of(prices.series(side.hardware, "purchase")[0].date)
    return fleet.full_cost(side, CostModel(method="tco"), launch)[0]


@pytest.mark.parametrize("older, newer", [("8xH100", "8xB200"), ("8xMI300X", "8xMI355X")])
def test_newer_generations_are_cheaper_per_token_at_their_own_prices(older, newer):
    """The article: 'newer generations have better cost per token despite higher prices'. (The catalog has no
    primary A100 price from its launch years, only 2025 ones; GB200 is B200's GPU in a rack whose share costs
    more, and a 70B model on 8 GPUs gains nothing from NVL72; GB300 has no primary price.)"""
    assert _cost_at_own_launch_price(newer) < _cost_at_own_launch_price(older)


def _fleet(*args):
    r = runner.invoke(app, ["fleet", "-m", "llama3-70b", *args, "-f", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize("old, new", [("8xA100", "8xH100"), ("8xH100", "8xB200"), ("8xB200", "8xGB200"),
                                      ("8xMI300X", "8xMI355X")])  # GB300 has no primary purchase price
def test_cli_fleet_rows_are_consistent(old, new):
    doc = _fleet("--old", old, "--new", new, "--years", "4")
    rows = doc["rows"]
    assert [r["year"] for r in rows] == [2026, 2027, 2028, 2029]
    values = [r["old_value_usd_per_gpu"] for r in rows]
    assert values == sorted(values, reverse=True)  # the old GPU is worth less every year
    for r in rows:
        assert r["replace_pays"] == (r["replace_npv_usd_per_mw"] >= 0)
        old_mw = CATALOG.hardware.get(old[2:]).all_in_power_w * 1.3 / 1e6
        assert r["replace_npv_usd_per_old_gpu"] == pytest.approx(r["replace_npv_usd_per_mw"] * old_mw)
        assert r["old_running_usd_per_mtok"] < r["old_usd_per_mtok"]  # electricity is part of the full cost
        if r["replace_pays"]:  # prices that do not rise: an NPV >= 0 repays the capital within the 5 years
            assert r["replace_payback_years"] < 5
    # after the newest rental point a price is held or falls (SemiAnalysis' contract rates rose in 2026: MI355X)
    last = prices.year_of(prices.series(CATALOG.hardware.get(new[2:]), "rental")[-1].date)
    market = [r["market_usd_per_mtok"] for r in rows if r["year"] + 0.5 >= last]
    assert market == sorted(market, reverse=True)
    assert any("Market price of a token" in n for n in doc["method_notes"])  # how it is computed: --explain
    assert doc["notes"][0].startswith(("* Replacing pays from", "Replacing never pays within 4 years"))


def test_cli_fleet_dearer_money_makes_replacing_pay_less():
    cheap, dear = (_fleet("--old", "8xMI300X", "--new", "8xMI355X", "--interest-rate", rate)["rows"][0]
                   for rate in ("0.02", "0.20"))
    assert dear["replace_npv_usd_per_mw"] < cheap["replace_npv_usd_per_mw"]
    assert dear["new_usd_per_mtok"] > cheap["new_usd_per_mtok"]


def test_cli_fleet_table_fits_and_bad_input_exit_2():
    r = runner.invoke(app, ["fleet", "-m", "llama3-70b", "--old", "8xA100", "--new", "8xH100"])
    assert r.exit_code == 0 and "replace NPV" in r.stdout
    slow = runner.invoke(app, ["fleet", "-m", "llama3-70b", "--old", "8xA100", "--new", "8xH100", "--min-tok-s-per-user", "5000"])
    assert slow.exit_code == 2 and "--min-tok-s-per-user" in slow.stderr
    bad = runner.invoke(app, ["fleet", "-m", "llama3-70b", "--old", "8xA100", "--new", "8xH100", "--years", "0"])
    assert bad.exit_code == 2
