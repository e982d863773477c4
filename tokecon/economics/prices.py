"""A device's market price at any date, from the catalog's dated price points.

    between two points a < t < b:  P(t) = P(a) x (P(b) / P(a))^((t - a) / (b - a))   (geometric interpolation)
    after the last point:          P(t) = P(last) x (1 + r)^(t - last)  when the fitted trend r < 0, else held flat
    before the first point:        P(t) = P(first)                       (held flat)

r is the least-squares slope of ln P against the year over all points of that kind: hardware
prices fall roughly exponentially once a generation ships (H100 rental 8 USD/h in mid-2023, 2.99
in Oct 2024, 1.70 in Oct 2025: SemiAnalysis via the catalog's sources), so a rising fit (H200's
purchase price went up while Blackwell was scarce) is never projected forward. A trend needs
points at least a year apart (two quotes a month apart, from different kinds of source, are noise,
not a trend) and falls at most 50% a year, the steepest fall on record (H100 rental: 8 USD/h in
mid-2023 to 1.70 in Oct 2025 is -49%/year).

A date ``YYYY-MM`` is read as the middle of that month; ``YYYY`` as the middle of the year. The
catalog's current ``rental_usd_per_hour`` at ``price_date`` is a rental point of its own, and
``purchase_usd`` is one when a device has no dated purchase point.

Worked number: h100-sxm rental between 2024-10 (2.99) and 2025-10 (1.70): at 2025-04 (half-way),
2.99 x (1.70 / 2.99)^0.5 = 2.25 USD/GPU-h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tokecon.errors import TokeconError
from tokecon.physics.specs import Hardware, PricePoint

KINDS = ("purchase", "rental")


def year_of(date: str) -> float:
    """``"2024-10"`` -> 2024.79 (mid-October); ``"2024"`` -> 2024.5."""
    parts = date.split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else None
    except (ValueError, IndexError):
        raise TokeconError(f"a date must be YYYY-MM or YYYY, got {date!r}") from None
    return year + 0.5 if month is None else year + (month - 0.5) / 12.0


def series(hw: Hardware, kind: str) -> list[PricePoint]:
    """The dated points of ``kind`` for ``hw``, oldest first (the catalog's current fields included)."""
    points = [p for p in hw.price_points if p.kind == kind]
    if kind == "rental" and hw.price_date and not any(p.date == hw.price_date for p in points):
        points.append(PricePoint(hw.price_date, "rental", hw.rental_usd_per_hour, "catalog rental_usd_per_hour"))
    if kind == "purchase" and not points and hw.purchase_usd is not None:
        points.append(PricePoint(hw.price_date or "2026", "purchase", hw.purchase_usd, "catalog purchase_usd"))
    return sorted(points, key=lambda p: (year_of(p.date), p.usd))


MIN_TREND_SPAN_YEARS = 1.0
MAX_FALL_PER_YEAR = -0.5  # H100 rental 2023-2025 (module docstring)


def trend_per_year(points: list[PricePoint]) -> float | None:
    """Fitted relative change per year, exp(slope of ln P on the year) - 1, at most a fall of
    ``MAX_FALL_PER_YEAR``; None when the dates span less than ``MIN_TREND_SPAN_YEARS``."""
    years = np.array([year_of(p.date) for p in points])
    if years.size < 2 or years.max() - years.min() < MIN_TREND_SPAN_YEARS:
        return None
    slope = np.polyfit(years, np.log([p.usd for p in points]), 1)[0]
    return max(float(math.expm1(slope)), MAX_FALL_PER_YEAR)


@dataclass(frozen=True)
class PriceAt:
    """A price at a date and how it was obtained (``how``: one line for the notes)."""

    usd: float
    how: str


def price_at(hw: Hardware, kind: str, year: float) -> PriceAt:
    """``hw``'s ``kind`` price at ``year`` (a float year, e.g. 2027.0), interpolated or extrapolated as
    the module docstring says; raises when the catalog has no point of that kind."""
    if kind not in KINDS:
        raise TokeconError(f"price kind must be one of {', '.join(KINDS)}, got {kind!r}")
    points = series(hw, kind)
    if not points:
        flag = "--purchase-usd" if kind == "purchase" else "--usd-per-gpu-hour"
        raise TokeconError(f"{hw.key} has no {kind} price in the catalog; give {flag} or add [[{hw.key}.price_points]]")
    years = [year_of(p.date) for p in points]

    def money(v: float) -> str:
        return f"{v:,.0f} USD" if kind == "purchase" else f"{v:.2f} USD/GPU-h"

    if year <= years[0]:
        how = "at" if year == years[0] else "held flat before"
        return PriceAt(points[0].usd, f"{hw.key} {kind} {money(points[0].usd)}: {how} the first point ({points[0].date})")
    if year >= years[-1]:
        last = points[-1]
        rate = trend_per_year(points)
        if rate is None or rate >= 0 or year == years[-1]:
            why = "" if year == years[-1] else (" (no falling trend to project)" if rate is not None else " (no year of dates for a trend)")
            return PriceAt(last.usd, f"{hw.key} {kind} {money(last.usd)}: held at the last point ({last.date}){why}")
        value = last.usd * (1.0 + rate) ** (year - years[-1])
        capped = " (the cap)" if rate == MAX_FALL_PER_YEAR else ""
        return PriceAt(value, f"{hw.key} {kind} {money(value)}: extrapolated from {last.date} at the fitted "
                              f"{rate:+.0%}/year{capped} over {points[0].date}..{last.date}")
    j = int(np.searchsorted(years, year, side="right"))
    a, b = points[j - 1], points[j]
    ya, yb = years[j - 1], years[j]
    value = a.usd * (b.usd / a.usd) ** ((year - ya) / (yb - ya)) if yb > ya else b.usd
    return PriceAt(value, f"{hw.key} {kind} {money(value)}: interpolated between {a.date} ({money(a.usd)}) and "
                          f"{b.date} ({money(b.usd)})")
