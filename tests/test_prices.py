"""Dated price points: every device priced and sourced, interpolation as tokecon.economics.prices states it."""

from __future__ import annotations

import pytest

from tokecon.catalogs.catalog import load_catalog, validate_entry
from tokecon.errors import CatalogError
from tokecon.economics.prices import price_at, series, trend_per_year, year_of

CATALOG = load_catalog(use_user_home=False)
DEVICES = [hw.key for hw in CATALOG.hardware]
# devices on the market long enough to have more than one observed price (issue 12: A100, H100, ...)
OLD_ENOUGH = ["a100-40gb", "a100-80gb", "h100-sxm", "h200", "h20", "b200"]
# devices with explicit dated points of both kinds (GB300, L40S, L4, RTX PRO 6000 and CS-3 have no sourced purchase)
PRICED = ["a100-40gb", "a100-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h100-nvl", "h200", "h20", "h800", "gh200",
          "b200", "b300", "gb200", "rtx-3090", "rtx-4090", "rtx-5090", "mi300x", "mi325x", "mi355x", "tpu-v5e", "tpu-v5p",
          "tpu-v6e", "gaudi3", "groq-lpu"]


@pytest.mark.parametrize("key", DEVICES)
def test_every_device_has_a_dated_sourced_rental_and_a_capital_where_a_primary_price_exists(key):
    hw = CATALOG.hardware.get(key)
    assert series(hw, "rental")
    for p in hw.price_points:
        assert p.source.strip() and 2015 < year_of(p.date) < 2027 and p.usd > 0
    primary = [p for p in hw.price_points if p.kind == "purchase" and p.source_class == "primary"]
    assert (hw.purchase_usd is not None) == bool(primary), "--cost tco works on every device with a primary purchase price"


@pytest.mark.parametrize("key", PRICED)
def test_priced_devices_have_explicit_points_of_both_kinds(key):
    assert {"purchase", "rental"} <= {p.kind for p in CATALOG.hardware.get(key).price_points}


@pytest.mark.parametrize("key", OLD_ENOUGH)
def test_old_devices_have_prices_at_two_dates_or_more(key):
    hw = CATALOG.hardware.get(key)
    dates = {p.date for p in hw.price_points}
    assert len(dates) >= 2, key


def test_interpolation_worked_number():
    # module docstring: h100-sxm rental half-way between 2024-07 (RunPod 3.99) and 2024-09 (Lambda 2.99) = 3.99 x (2.99/3.99)^0.5
    hw = CATALOG.hardware.get("h100-sxm")
    got = price_at(hw, "rental", (year_of("2024-07") + year_of("2024-09")) / 2)
    assert got.usd == pytest.approx(3.99 * (2.99 / 3.99) ** 0.5, rel=1e-9)
    assert "interpolated between 2024-07" in got.how


def test_extrapolation_falls_with_the_fitted_trend_and_is_said():
    hw = CATALOG.hardware.get("h100-sxm")
    rate = trend_per_year(series(hw, "purchase"))
    assert rate is not None and rate < 0  # H100 capital: Epoch AI's ASP 30,741 (2022) to 25,699 (2025), x 1.35
    later = price_at(hw, "purchase", 2028.37)
    last = series(hw, "purchase")[-1]
    assert later.usd == pytest.approx(last.usd * (1 + rate) ** (2028.37 - year_of(last.date)))
    assert "extrapolated" in later.how
    before = price_at(hw, "purchase", 2020.0)
    assert before.usd == series(hw, "purchase")[0].usd and "held flat" in before.how


def test_a_bad_price_point_names_file_entry_and_field():
    entry = dict(CATALOG_ENTRY)
    where = {"scope": "chip", "source_class": "primary", "tier": "retail"}
    entry["price_points"] = [{"date": "2024-13", "kind": "purchase", "usd": 1.0, "source": "x", **where}]
    with pytest.raises(CatalogError, match="date"):
        validate_entry("hardware", "x", entry, "f.toml")
    entry["price_points"] = [{"date": "2024-01", "kind": "rental", "usd": 1.0, "source": "x", **where, "scope": "server_share"}]
    with pytest.raises(CatalogError, match="usd_per_hour"):
        validate_entry("hardware", "x", entry, "f.toml")


CATALOG_ENTRY = {
    "name": "x", "vendor": "v", "family": "hopper", "memory_gb": 80.0, "memory_bw_tb_s": 3.0, "bf16_tflop_s": 900.0,
    "scaleup_link": "l", "scaleup_bw_gb_s": 400.0, "scaleup_domain": 8, "scaleout_bw_gb_s": 50.0, "power_w": 700,
    "rental_usd_per_hour": 2.0, "source": "s",
    "efficiency": {"compute": 0.7, "memory_bw": 0.8, "link": 0.8, "collective_latency_us": 8.0},
}


def test_shown_price_points_name_their_unit_as_the_catalog_does():
    """`hardware show -f json`: a purchase in USD per GPU (``usd``), a rental in USD per GPU-hour (``usd_per_hour``)."""
    import json

    from typer.testing import CliRunner

    from tokecon.cli.main import app

    r = CliRunner().invoke(app, ["hardware", "show", "a100-40gb", "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    points = doc["price_points"]
    assert {p["kind"] for p in points} == {"purchase", "rental"} and doc["spec"]["price_points"] == points
    for p in points:
        value = "usd" if p["kind"] == "purchase" else "usd_per_hour"
        assert value in p and ({"usd", "usd_per_hour"} - {value}).isdisjoint(p)
        assert {"date", "kind", "source", "scope", "source_class", "tier", "unit"} <= set(p)


def test_a_trend_needs_a_year_of_dates_and_falls_at_most_half_a_year():
    """Two quotes a month apart (10.5 then 6.41 USD/h) would fit a -99.7%/year fall: no trend. Points a
    year apart falling 90% fit -90%/year: capped at -50% (H100 rental 2023-2025, the steepest on record)."""
    from tokecon.physics.specs import PricePoint

    month = [PricePoint("2026-02", "rental", 10.5, "x"), PricePoint("2026-03", "rental", 6.41, "x")]
    assert trend_per_year(month) is None
    year = [PricePoint("2024-01", "rental", 10.0, "x"), PricePoint("2025-01", "rental", 1.0, "x")]
    assert trend_per_year(year) == -0.5
    h100 = [PricePoint("2023-07", "rental", 8.0, "x"), PricePoint("2025-10", "rental", 1.70, "x")]
    assert -0.5 < trend_per_year(h100) < -0.45
