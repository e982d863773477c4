"""Hourly cost per GPU: rental, total cost of ownership, the [cost] file, --explain-cost."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.economics.costs import CostModel, capital_recovery_factor, cost_model, gpu_hour_cost, resolve_cost_model
from tokecon.errors import TokeconError

runner = CliRunner()
HARDWARE = load_catalog(use_user_home=False).hardware  # module level: hypothesis examples stay small


def test_capital_recovery_factor_worked_numbers():
    # 10 % over 5 years: 0.1 x 1.61051 / 0.61051 = 0.26380 (standard annuity tables)
    assert capital_recovery_factor(0.10, 5) == pytest.approx(0.263797, rel=1e-5)
    assert capital_recovery_factor(0.0, 4) == pytest.approx(0.25)
    # an annuity of CRF x P repays P: discounted payments sum to P
    i, n = 0.07, 6
    assert sum(capital_recovery_factor(i, n) / (1 + i) ** t for t in range(1, n + 1)) == pytest.approx(1.0)


def test_tco_worked_number_h100(catalog):
    """h100-sxm: 34,694 USD server share (Epoch AI's 2025 ASP 25,699 x 1.35), 1,370 W all-in (SemiAnalysis);
    facility 0.40x, 5 y at 10 %, PUE 1.3, 0.10 USD/kWh: 48,572 x 0.26380 / 8760 = 1.4627 USD/h
    + 1.37 x 1.3 x 0.10 = 0.1781 USD/h -> 1.641 USD/GPU-h."""
    b = gpu_hour_cost(catalog.hardware.get("h100"), CostModel(method="tco"))
    assert b.capital_usd_per_hour == pytest.approx(25_699.35 * 1.35 * 1.4 * 0.263797 / 8760, rel=1e-5)
    assert b.energy_usd_per_hour == pytest.approx(0.1781)
    assert b.usd_per_gpu_hour == pytest.approx(1.6408, rel=1e-4)
    half = gpu_hour_cost(catalog.hardware.get("h100"), CostModel(method="tco", utilisation=0.5))
    assert half.usd_per_gpu_hour == pytest.approx(2 * b.usd_per_gpu_hour)


def test_rental_is_the_catalog_price_or_the_override(catalog):
    h200 = catalog.hardware.get("h200")
    assert gpu_hour_cost(h200, CostModel()).usd_per_gpu_hour == h200.rental_usd_per_hour
    assert gpu_hour_cost(h200, CostModel(usd_per_gpu_hour=2.0, utilisation=0.8)).usd_per_gpu_hour == pytest.approx(2.5)


@settings(max_examples=60, deadline=None)
@given(r1=st.floats(0.0, 1.0), r2=st.floats(0.0, 1.0), years=st.floats(1.0, 15.0), purchase=st.floats(1e3, 1e5))
def test_tco_grows_with_interest_rate(r1, r2, years, purchase):
    lo, hi = sorted((r1, r2))
    hw = HARDWARE.get("b200")
    a = gpu_hour_cost(hw, CostModel(method="tco", interest_rate=lo, depreciation_years=years, purchase_usd=purchase))
    b = gpu_hour_cost(hw, CostModel(method="tco", interest_rate=hi, depreciation_years=years, purchase_usd=purchase))
    assert b.usd_per_gpu_hour >= a.usd_per_gpu_hour * (1 - 1e-12)
    if hi - lo > 1e-6:
        assert b.usd_per_gpu_hour > a.usd_per_gpu_hour


@settings(max_examples=40, deadline=None)
@given(y1=st.floats(1.0, 20.0), y2=st.floats(1.0, 20.0), rate=st.floats(0.0, 0.5))
def test_tco_falls_with_longer_depreciation(y1, y2, rate):
    short, long = sorted((y1, y2))
    hw = HARDWARE.get("h100")
    cost = [gpu_hour_cost(hw, CostModel(method="tco", interest_rate=rate, depreciation_years=y)).usd_per_gpu_hour
            for y in (short, long)]
    assert cost[1] <= cost[0] * (1 + 1e-12)


NO_PRICE = """[hardware.x100]
name = "A device without a purchase price"
vendor = "Test"
family = "hopper"
memory_gb = 80.0
memory_bw_tb_s = 3.35
bf16_tflop_s = 989.0
scaleup_link = "NVLink 4"
scaleup_bw_gb_s = 450.0
scaleup_domain = 8
scaleout_bw_gb_s = 50.0
power_w = 700
rental_usd_per_hour = 2.0
source = "test"
[hardware.x100.efficiency]
compute = 0.7
memory_bw = 0.8
link = 0.8
collective_latency_us = 8.0
"""


def test_tco_without_a_purchase_price_names_the_fix(catalog):
    unpriced = replace(catalog.hardware.get("h200"), purchase_usd=None, price_points=())
    with pytest.raises(TokeconError, match="--purchase-usd"):
        gpu_hour_cost(unpriced, CostModel(method="tco"))
    by_device = CostModel(method="tco", purchase_usd={"H200-SXM": 32_000.0})
    assert gpu_hour_cost(catalog.hardware.get("h200"), by_device).purchase_usd == 32_000.0


def test_cost_file_then_flags(tmp_path):
    path = tmp_path / "cost.toml"
    path.write_text('[cost]\nmethod = "tco"\ninterest_rate = 0.08\npue = 1.2\n[cost.purchase_usd]\nh200 = 31000\n')
    model = resolve_cost_model(path, {"pue": 1.5, "method": None})
    assert model.method == "tco" and model.interest_rate == 0.08 and model.pue == 1.5
    assert model.purchase_usd == {"h200": 31000.0}
    assert resolve_cost_model(path, {"method": "rental"}).method == "rental"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[cost]\ninterest_rat = 0.1\n', "did you mean 'interest_rate'"),
        ('[cost]\npue = 0.5\n', "pue must be >= 1"),
        ('[cost]\nmethod = "lease"\n', "must be one of rental, tco"),
        ('[costs]\npue = 1.2\n', "expected a [cost] table"),
        ('[cost\n', "TOML syntax error"),
    ],
)
def test_bad_cost_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "cost.toml"
    path.write_text(text)
    with pytest.raises(TokeconError, match=None) as err:
        resolve_cost_model(path, {})
    assert message in str(err.value) and str(path) in str(err.value)


def test_bad_flag_values():
    with pytest.raises(TokeconError, match="--utilisation must be >= 0.01"):
        cost_model({"utilisation": 0.0})
    with pytest.raises(TokeconError, match="--interest-rate"):
        cost_model({"interest_rate": float("nan")})


def test_cli_tco_and_explain_cost(tmp_path):
    args = ["serve", "-m", "llama3-70b", "-g", "4xH100", "-c", "64", "--cost", "tco", "--explain-cost"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "Cost per GPU-hour (tco): h100-sxm: capital 1.463 USD/h" in " ".join(r.stdout.split())
    doc = json.loads(runner.invoke(app, [*args, "-f", "json"]).stdout)
    row = doc["rows"][0]
    assert row["cost_method"] == "tco" and row["usd_per_gpu_hour"] == pytest.approx(1.6408, rel=1e-4)
    assert row["usd_per_hour"] == pytest.approx(4 * row["usd_per_gpu_hour"])
    assert doc["cost"]["per_gpu_hour"]["h100-sxm"]["capital_recovery_factor"] == pytest.approx(0.263797, rel=1e-5)
    # the same through a [cost] file
    path = tmp_path / "cost.toml"
    path.write_text('[cost]\nmethod = "tco"\n')
    doc2 = json.loads(runner.invoke(app, ["serve", "-m", "llama3-70b", "-g", "4xH100", "-c", "64", "--cost-file",
                                          str(path), "-f", "json"]).stdout)
    assert doc2["rows"][0]["usd_per_gpu_hour"] == row["usd_per_gpu_hour"]


@pytest.mark.parametrize("command", ["serve", "frontier"])
def test_cli_tco_missing_price_exit_2(tmp_path, command):
    """A device without a purchase price says so (frontier used to report 'does not fit')."""
    path = tmp_path / "x100.toml"
    path.write_text(NO_PRICE)
    args = [command, "-m", "llama3-70b", "-g", "8xx100", "--cost", "tco", "--catalog", str(path)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--purchase-usd" in r.stderr and "does not fit" not in r.stderr
    ok = runner.invoke(app, [*args, "--purchase-usd", "32000", "-f", "json"])
    assert ok.exit_code == 0, ok.output


def test_tco_cost_scales_usd_per_mtok_exactly(catalog):
    """Same throughput, different hourly price: USD/Mtok scales by the price ratio."""
    import tokecon

    a = tokecon.serve(model="llama3-70b", gpus="4xH100", concurrency=[64]).rows[0]
    b = tokecon.serve(model="llama3-70b", gpus="4xH100", concurrency=[64], cost="tco").rows[0]
    assert a["cost_method"] == "rental" and b["cost_method"] == "tco" and a["usd_per_gpu_hour"] != b["usd_per_gpu_hour"]
    assert b["output_tok_s"] == a["output_tok_s"]
    assert b["usd_per_mtok_output"] / a["usd_per_mtok_output"] == pytest.approx(b["usd_per_gpu_hour"] / a["usd_per_gpu_hour"])
