"""Obsolescence: an older device's fleet against a newer one, year by year, for one workload.

Per device, at the workload's operating point (tokecon.serving.batching): T tok/s per GPU, W its all-in watts
(tokecon.economics.energy), capital(y) its server-share capital in year y, and
    Q   = T x 3600 x 8760 x u / 1e6                 Mtok per GPU-year (u: utilisation)
    c(y) = TCO USD/GPU-h at the capital of year y / (T x 3600) x 1e6          full cost per Mtok
    m    = energy USD/GPU-h / u / (T x 3600) x 1e6                        running cost per Mtok
Market price of a token, p(y) = the newer device's rental price in year y / its tokens per hour: what a
token costs a renter on the newest hardware (prices from tokecon.economics.prices, interpolated and projected).

    value of an old GPU at y   V(y) = sum_t max(p(y+t-1/2) - m_old, 0) x Q_old / (1+i)^t      t = 1 .. years left
    per MW of facility power   Q/MW = Q / (W x PUE / 1e6),  K/MW = capital(y) x (1 + facility ratio) / (W x PUE / 1e6)
    replace at y (same power)  NPV(y) = sum_{t=1..n} p(y+t-1/2) x (Q/MW_new - Q/MW_old) / (1+i)^t - K/MW_new(y)
    payback                    K/MW_new(y) / (p(y+1/2) x (Q/MW_new - Q/MW_old)) years

Assumes: a site limited by its power (the scarce input of AI data centres, whence "tokens per MW"): the
replacement fills the same MW, so the electricity bill is unchanged and the gain is the extra tokens
sold at the market price; n = the depreciation years; the old devices' resale value is not counted
(a lower bound on the NPV); the old GPU's value counts the years left in the table's horizon.

Worked number (test_fleet): one year, i = 10 %, p = 1 USD/Mtok, Q/MW 100,000 -> 200,000 Mtok/MW-year,
K/MW 50,000 USD: NPV = 1 x 100,000 / 1.1 - 50,000 = 40,909 USD per MW; payback 0.5 years.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.economics.costs import HOURS_PER_YEAR, CostModel, energy_usd_per_hour, gpu_hour_cost
from tokecon.economics.prices import price_at
from tokecon.physics.specs import Hardware
from tokecon.records import record
from tokecon.units import MTOK, SECONDS_PER_HOUR


@record
class Side:
    """One device at the workload's operating point."""

    hardware: Hardware
    tok_s_per_gpu: float  # tokens (input + output) per second per GPU at the operating point
    label: str


def mtok_per_gpu_year(side: Side, cost: CostModel) -> float:
    return side.tok_s_per_gpu * SECONDS_PER_HOUR * HOURS_PER_YEAR * cost.utilisation / MTOK


def facility_mw_per_gpu(side: Side, cost: CostModel) -> float:
    return side.hardware.all_in_power_w * cost.pue / 1e6


def usd_per_mtok(usd_per_gpu_hour: float, side: Side) -> float:
    return float(economics.usd_per_mtok(usd_per_gpu_hour, side.tok_s_per_gpu))


def full_cost(side: Side, cost: CostModel, year: float) -> tuple[float, float, str]:
    """(USD/Mtok at the TCO of a GPU bought in ``year``, its capital at server share, how that price was found)."""
    buy = price_at(side.hardware, "purchase", year)
    tco = gpu_hour_cost(side.hardware, replace(cost, method="tco", purchase_usd=buy.usd))
    return usd_per_mtok(tco.usd_per_gpu_hour, side), buy.usd, buy.how


def running_cost(side: Side, cost: CostModel) -> float:
    """USD/Mtok of electricity alone (what an old, paid-for GPU still costs to run)."""
    return usd_per_mtok(energy_usd_per_hour(side.hardware, cost) / cost.utilisation, side)


def market_price(new: Side, year: float) -> tuple[float, str]:
    """USD/Mtok a renter pays for this workload's tokens on the newer device in ``year``."""
    rent = price_at(new.hardware, "rental", year)
    return usd_per_mtok(rent.usd, new), rent.how


def discount(rate: float, years: int) -> np.ndarray:
    """1 / (1+i)^t for t = 1 .. years."""
    return 1.0 / (1.0 + rate) ** np.arange(1, years + 1)


def replacement_npv(prices: np.ndarray, extra_mtok_per_mw: float, capex_per_mw: float, rate: float) -> float:
    """NPV per MW of replacing, ``prices`` = market USD/Mtok in each year of the new fleet's life."""
    return float(np.sum(prices * extra_mtok_per_mw * discount(rate, prices.size)) - capex_per_mw)


def compare(old: Side, new: Side, cost: CostModel, start: int, years: int) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per year from ``start``: each side's cost per Mtok, the market price, the old GPU's value,
    and the NPV and payback of replacing the old fleet by the new in that year; plus notes."""
    n = int(np.ceil(cost.depreciation_years))
    mw_old, mw_new = facility_mw_per_gpu(old, cost), facility_mw_per_gpu(new, cost)
    q_old, q_new = mtok_per_gpu_year(old, cost), mtok_per_gpu_year(new, cost)
    extra_per_mw = q_new / mw_new - q_old / mw_old
    m_old, m_new = running_cost(old, cost), running_cost(new, cost)
    horizon = start + years
    price = {y: market_price(new, y + 0.5)[0] for y in range(start, horizon + n)}
    rows: list[dict[str, Any]] = []
    for y in range(start, horizon):
        c_old, buy_old, _ = full_cost(old, cost, y + 0.5)
        c_new, buy_new, _ = full_cost(new, cost, y + 0.5)
        left = np.array([price[t] for t in range(y, horizon)])
        value = float(np.sum(np.maximum(left - m_old, 0.0) * q_old * discount(cost.interest_rate, left.size)))
        capex_per_mw = buy_new * (1.0 + cost.other_capital_ratio) / mw_new
        life = np.array([price[t] for t in range(y, y + n)])
        npv = replacement_npv(life, extra_per_mw, capex_per_mw, cost.interest_rate)
        gain = price[y] * extra_per_mw
        rows.append({
            "year": y,
            "old": old.label, "new": new.label,
            "old_usd_per_mtok": c_old, "old_running_usd_per_mtok": m_old,
            "new_usd_per_mtok": c_new, "new_running_usd_per_mtok": m_new,
            "market_usd_per_mtok": price[y],
            "old_purchase_usd": buy_old, "new_purchase_usd": buy_new,
            "old_value_usd_per_gpu": value,
            "old_mtok_per_mw_year": q_old / mw_old, "new_mtok_per_mw_year": q_new / mw_new,
            "replace_npv_usd_per_mw": npv,
            "replace_npv_usd_per_old_gpu": npv * mw_old,
            "replace_payback_years": capex_per_mw / gain if gain > 0 else None,
            "replace_pays": npv >= 0,
        })  # fmt: skip
    notes = [
        f"Market price of a token: {new.label}'s rental price / its tokens per hour ({market_price(new, start + 0.5)[1]}).",
        f"Purchase prices: {full_cost(old, cost, start + 0.5)[2]}; {full_cost(new, cost, start + 0.5)[2]}.",
        f"Replacing fills the same facility power (a power-limited site): {q_new / mw_new:,.0f} instead of "
        f"{q_old / mw_old:,.0f} Mtok per MW-year; NPV over {n} years at {cost.interest_rate:.0%}, old fleet's resale not counted.",
    ]
    first = next((r for r in rows if r["replace_pays"]), None)
    if extra_per_mw <= 0:
        notes.insert(0, f"{new.label} makes no more tokens per MW than {old.label}: replacing never pays on a power-limited site.")
    elif first is None:
        notes.insert(0, f"Replacing {old.label} by {new.label} does not pay by {horizon - 1} (NPV < 0 every year).")
    else:
        notes.insert(0, f"Replacing {old.label} by {new.label} pays from {first['year']}: NPV {first['replace_npv_usd_per_mw']:,.0f} "
                        f"USD per MW, payback {first['replace_payback_years']:.1f} years.")
    return rows, notes
