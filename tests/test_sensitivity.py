"""--vary: USD/Mtok re-priced at each value of one cost input, with its elasticity (tokecon.economics.sensitivity)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.economics.costs import CostModel, capital_recovery_factor, gpu_hour_cost
from tokecon.economics.sensitivity import elasticity

runner = CliRunner()
H100 = load_catalog(use_user_home=False).hardware.get("h100-sxm")
TCO = CostModel(method="tco")


def test_interest_rate_elasticity_from_the_capital_recovery_factor():
    # d ln C / d ln i = capital share x i CRF'(i) / CRF(i), CRF' = g/(g-1) - i n (1+i)^(n-1) / (g-1)^2, g = (1+i)^n
    i, n = 0.10, 5.0
    g = (1 + i) ** n
    d_crf = g / (g - 1) - i * n * (1 + i) ** (n - 1) / (g - 1) ** 2  # 2.6380 - 1.9641 = 0.6739
    assert d_crf == pytest.approx(0.6739, abs=1e-4)
    parts = gpu_hour_cost(H100, TCO)
    share = parts.capital_usd_per_hour / (parts.capital_usd_per_hour + parts.energy_usd_per_hour)  # 1.463 / 1.641
    hand = share * i * d_crf / capital_recovery_factor(i, n)
    assert hand == pytest.approx(0.228, abs=1e-3)  # the worked number in tokecon.economics.sensitivity
    assert elasticity(H100, TCO, "interest-rate", i) == pytest.approx(hand, rel=1e-6)


def test_elasticities_with_closed_forms():
    parts = gpu_hour_cost(H100, TCO)
    share = parts.capital_usd_per_hour / (parts.capital_usd_per_hour + parts.energy_usd_per_hour)
    assert elasticity(H100, TCO, "purchase-usd", H100.purchase_usd) == pytest.approx(share, rel=1e-6)  # capital is linear in it
    assert elasticity(H100, TCO, "usd-per-kwh", 0.10) == pytest.approx(1 - share, rel=1e-6)
    assert elasticity(H100, TCO, "utilisation", 0.5) == pytest.approx(-1.0, rel=1e-6)
    assert elasticity(H100, CostModel(), "usd-per-gpu-hour", 2.0) == pytest.approx(1.0, rel=1e-6)
    assert elasticity(H100, TCO, "depreciation-years", 5.0) < 0  # longer recovery, cheaper hours


@settings(max_examples=30, deadline=None)
@given(i=st.floats(0.001, 0.5))
def test_cost_per_token_rises_with_the_interest_rate(i):
    """The article: 'the economics are also highly sensitive to interest rates' - dearer money, dearer tokens."""
    assert elasticity(H100, TCO, "interest-rate", i) > 0


def _run(args):
    return runner.invoke(app, args)


def test_cli_vary_serve_table_and_json():
    args = ["serve", "-m", "llama3-70b", "-g", "8xH100", "-g", "8xB200", "-c", "64", "--cost", "tco",
            "--vary", "interest-rate=0.02,0.05,0.10"]
    r = _run([*args, "-f", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 2 * 3
    for device in ("h100-sxm", "b200"):
        mine = [row for row in rows if row["hardware"] == device]
        costs = [row["usd_per_mtok"] for row in mine]
        assert costs == sorted(costs) and costs[0] < costs[-1]  # rises with the rate
        assert mine[-1]["usd_per_mtok_rel_change"] == pytest.approx(0.0, abs=1e-12)  # 0.10 is the base
        assert mine[-1]["usd_per_mtok"] == pytest.approx(mine[-1]["base_usd_per_mtok"])
    table = _run(args)
    assert table.exit_code == 0 and "elasticity" in table.stdout


@pytest.mark.parametrize("command", [["decode", "-b", "8"], ["compare", "-g", "4xH100"], ["frontier", "-g", "4xH100"],
                                     ["capacity", "-g", "4xH100", "--tokens-per-day", "1e9"]])
def test_cli_vary_on_every_pricing_command(command):
    r = _run([command[0], "-m", "llama3-70b", *([] if "-g" in command else ["-g", "4xH100"]), *command[1:],
              "--vary", "usd-per-gpu-hour=1,2", "-f", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert rows and all(row["elasticity"] == pytest.approx(1.0) for row in rows)
    by_value = {row["vary_value"]: row["usd_per_mtok"] for row in rows}
    assert by_value[2.0] == pytest.approx(2 * by_value[1.0])


@pytest.mark.parametrize("vary, message", [("interest-rate=0.1", "--cost tco"), ("rent=1", "NAME"),
                                           ("usd-per-gpu-hour=x", "numbers"), ("utilisation=1.5", "utilisation")])
def test_cli_vary_bad_input_exit_2(vary, message):
    r = _run(["serve", "-m", "llama3-70b", "-g", "4xH100", "-c", "8", "--vary", vary])
    assert r.exit_code == 2 and message in r.stderr, r.output


def test_elasticity_at_a_bound_takes_a_one_sided_step():
    """PUE 1 and utilisation 1 are the options' bounds: a central step would leave them. Energy is linear
    in the PUE, so its elasticity is the energy share of the hour at PUE 1; utilisation's is -1."""
    at_one = gpu_hour_cost(H100, CostModel(method="tco", pue=1.0))
    share = at_one.energy_usd_per_hour / at_one.usd_per_gpu_hour
    assert elasticity(H100, TCO, "pue", 1.0) == pytest.approx(share, rel=1e-3)
    assert elasticity(H100, TCO, "utilisation", 1.0) == pytest.approx(-1.0, rel=1e-6)
    r = _run(["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8", "--cost", "tco", "--vary", "pue=1,1.5", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert [row["elasticity"] > 0 for row in json.loads(r.stdout)["rows"]] == [True, True]


def test_vary_twice_is_bad_input():
    r = _run(["serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8", "--vary", "utilisation=1", "--vary", "usd-per-gpu-hour=2"])
    assert r.exit_code == 2 and "give --vary once" in r.stderr and len(r.stderr.strip().splitlines()) == 1
