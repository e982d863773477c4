"""A device's prices with their provenance: which point is current, its scope, and its value at any date.

Every catalog price point (``[[NAME.price_points]]``, :class:`tokecon.physics.specs.PricePoint`) states its kind
(purchase, rental, tco), scope, source class, date, buyer tier and, for rentals, its kind. Two rules turn them into the
figures a command uses by default:

    current rental  = the newest point of the first non-empty group, in this order:
                      source class primary > secondary > derived, then (tier, rental kind)
                      neocloud on_demand > neocloud reserved > hyperscaler on_demand > hyperscaler reserved >
                      retail on_demand > retail reserved > spot;
                      several points at that date: their lower median (always a quoted price)
    current capital = the same over PRIMARY purchase points only, tiers hyperscaler > neocloud > retail, each
                      normalised to server share before the median (a device without a primary purchase price
                      has no default capital: a secondary or derived one stays a point to price at by hand):
                          server share = price x overhead(scope)
                          overhead     = 1 for server_share, rack_share, system;
                                         SERVER_OVERHEAD (1.35) for chip, card, baseboard in an 8-GPU or PCIe server;
                                         RACK_OVERHEAD (1.53) for chip, card, baseboard of a rack-scale device (NVL72)

A value's class is the weaker of its point and its overhead (a primary chip price x a derived rack overhead is
derived). A stated ``rental_usd_per_hour`` or ``purchase_usd`` in a catalog entry (a user's own figure) wins over
the points and is reported as stated. A point is stale when it is more than a year older than the date asked about.

Prices at a date interpolate over the points of the chosen group only (one tier, one rental kind, one scope after
normalisation), so an on-demand hyperscaler list price never bends a neocloud contract series:

    between two points a < t < b:  P(t) = P(a) x (P(b) / P(a))^((t - a) / (b - a))   (geometric interpolation)
    after the last point:          P(t) = P(last) x (1 + r)^(t - last)  when the fitted trend r < 0, else held flat
    before the first point:        P(t) = P(first)                       (held flat)

r is the least-squares slope of ln P against the year over the group: hardware prices fall roughly exponentially
once a generation ships, so a rising fit is never projected forward. A trend needs points at least a year apart and
falls at most 50% a year: the steepest fall in the catalog, H100 neocloud on-demand from RunPod's 3.99 USD/h
(2024-07) to Cudo Compute's 2.45 (2025-03), is -52%/year (Epoch AI's archived price pages).

A date ``YYYY-MM`` is read as the middle of that month; ``YYYY`` as the middle of the year.

Worked numbers: h100-sxm's current rental is Cudo Compute's 2.45 USD/GPU-h (2025-03: RunPod 2.99 the same month,
lower median 2.45); its capital is Epoch AI's 2025 chip ASP 25,699 USD x 1.35 = 34,694 USD server share. Its
rental half-way between 2024-07 (RunPod 3.99) and 2024-09 (Lambda 2.99): 3.99 x (2.99 / 3.99)^0.5 = 3.45 USD/GPU-h.
"""

from __future__ import annotations

import bisect
import datetime
import math
from typing import Any, Iterable

from tokecon.errors import TokeconError
from tokecon.physics.specs import Hardware, PricePoint
from tokecon.records import record

KINDS = ("purchase", "rental", "tco")
SCOPES = ("chip", "card", "baseboard", "server_share", "rack_share", "system", "all_in")
SOURCE_CLASSES = ("primary", "secondary", "derived")
TIERS = ("hyperscaler", "neocloud", "retail")
RENTAL_KINDS = ("on_demand", "reserved", "spot")
UNITS = ("per_gpu", "instance")
RENTAL_PREFERENCE = (("neocloud", "on_demand"), ("neocloud", "reserved"), ("hyperscaler", "on_demand"),
                     ("hyperscaler", "reserved"), ("retail", "on_demand"), ("retail", "reserved"),
                     ("neocloud", "spot"), ("hyperscaler", "spot"), ("retail", "spot"))
CAPITAL_PREFERENCE = TIERS
STALE_YEARS = 1.0


@record
class Overhead:
    """What a GPU's share of its system costs over the bare accelerator, and where the factor comes from."""

    name: str
    factor: float
    source_class: str
    source: str


SERVER_OVERHEAD = Overhead(
    "server overhead", 1.35, "primary",
    "SemiAnalysis 'AI Server Cost Analysis' (2023-05) DGX H100 BoM: 269k USD sale price / 195k for 8 GPUs and the "
    "baseboard = 1.38 (web.archive.org/web/20230529125834/https://www.semianalysis.com/p/ai-server-cost-analysis-memory-is, "
    "as quoted in Epoch AI ml_hardware.csv); retail DGX over HGX board or module 1.22-1.50 (Epoch AI Hardware prices.csv, "
    "github.com/epoch-research/training-cost-trends, 2024-03..2025-03): host CPUs, memory, NICs, chassis, scale-up switches")
RACK_OVERHEAD = Overhead(
    "rack-scale overhead", 1.53, "derived",
    "NVIDIA's 5 M USD per GB200 NVL72 (Ian Buck at the InferenceMAX launch, 2025-10, as reported by the press) / 72 = "
    "69,444 USD per GPU, taken to include the cluster network, less that network (Epoch AI: 19% of cluster cost, "
    "CLUSTER_INTERCONNECT_COST_FRACTION in github.com/epoch-research/training-cost-trends cost_analysis_standalone.py) = "
    "56,250, over Epoch AI's 2025 Blackwell ASP 36,742 (github.com/epoch-research/ai-chip-counts) = 1.53: Grace share, "
    "NVLink switch trays, liquid-cooled rack")


def overhead(scope: str, rack_scale: bool) -> Overhead | None:
    """The overhead that takes a price of ``scope`` to server share (None: it is one already)."""
    if scope in ("chip", "card", "baseboard"):
        return RACK_OVERHEAD if rack_scale else SERVER_OVERHEAD
    return None


def year_of(date: str) -> float:
    """``"2024-10"`` -> 2024.79 (mid-October); ``"2024"`` -> 2024.5."""
    parts = date.split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else None
    except (ValueError, IndexError):
        raise TokeconError(f"a date must be YYYY-MM or YYYY, got {date!r}") from None
    if month is not None and not 1 <= month <= 12 or len(parts) > 2:
        raise TokeconError(f"a date must be YYYY-MM or YYYY, got {date!r}")
    return year + 0.5 if month is None else year + (month - 0.5) / 12.0


def this_month() -> str:
    """Today as ``YYYY-MM`` (the default as-of date and the latest date a price may carry)."""
    return datetime.date.today().strftime("%Y-%m")


def stale(point: PricePoint, as_of: str | None = None) -> bool:
    """True when ``point`` is more than a year older than ``as_of`` (default: this month)."""
    return year_of(as_of or this_month()) - year_of(point.date) > STALE_YEARS


def _weaker(*classes: str) -> str:
    return max(classes, key=lambda c: SOURCE_CLASSES.index(c) if c in SOURCE_CLASSES else len(SOURCE_CLASSES))


def _group_keys(kind: str) -> list[tuple[str, tuple[str, ...]]]:
    """(source class, (tier[, rental kind])) in order of preference for ``kind`` (tiers alone but for rentals;
    primary points alone for a purchase)."""
    prefs: Iterable[tuple[str, ...]] = RENTAL_PREFERENCE if kind == "rental" else [(t,) for t in CAPITAL_PREFERENCE]
    classes = ("primary",) if kind == "purchase" else SOURCE_CLASSES
    return [(c, pref) for c in classes for pref in prefs]


def _matches(p: PricePoint, source_class: str, pref: tuple[str, ...]) -> bool:
    return p.source_class == source_class and p.tier == pref[0] and (len(pref) == 1 or p.rental_kind == pref[1])


def group(points: Iterable[PricePoint], kind: str) -> list[PricePoint]:
    """The points of ``kind`` the current-value rule draws on: the first non-empty group (module docstring)."""
    of_kind = [p for p in points if p.kind == kind]
    for source_class, pref in _group_keys(kind):
        chosen = [p for p in of_kind if _matches(p, source_class, pref)]
        if chosen:
            return chosen
    return []


@record
class Quote:
    """One point as the rules read it: its value per GPU at server share (purchase) or per GPU-hour."""

    point: PricePoint
    usd: float
    overhead: Overhead | None = None

    @property
    def source_class(self) -> str:
        return _weaker(self.point.source_class, *(() if self.overhead is None else (self.overhead.source_class,)))

    def describe(self) -> str:
        """``Epoch AI hyperscaler chip price 25,699 USD (2025-07, primary) x 1.35 server overhead (primary)``."""
        p = self.point
        if p.kind != "purchase":
            kind = f" {p.rental_kind.replace('_', '-')}" if p.rental_kind else ""
            return f"{p.provider or 'a'} {p.tier}{kind} {p.kind} {p.usd:.2f} USD/GPU-h ({p.date}, {p.source_class})"
        times = f" x {self.overhead.factor:g} {self.overhead.name} ({self.overhead.source_class})" if self.overhead else ""
        return f"{p.provider or 'a'} {p.tier} {p.scope.replace('_', ' ')} price {p.usd:,.0f} USD ({p.date}, {p.source_class}){times}"


def quote(point: PricePoint, rack_scale: bool) -> Quote:
    """``point`` as the rules read it: a purchase normalised to server share by :func:`overhead`."""
    if point.kind != "purchase":
        return Quote(point, point.usd)
    over = overhead(point.scope, rack_scale)
    return Quote(point, point.usd * (over.factor if over else 1.0), over)


def _by_date(points: Iterable[PricePoint], rack_scale: bool) -> list[Quote]:
    """One quote per date, oldest first: the lower median of that date's values (always a quoted price)."""
    dates: dict[float, list[Quote]] = {}
    for p in points:
        dates.setdefault(year_of(p.date), []).append(quote(p, rack_scale))
    return [sorted(qs, key=lambda q: q.usd)[(len(qs) - 1) // 2] for _, qs in sorted(dates.items())]


def pick(points: Iterable[PricePoint], kind: str, rack_scale: bool = False) -> Quote | None:
    """The current ``kind`` price by the module docstring's rule (None when there is no point of that kind)."""
    dated = _by_date(group(points, kind), rack_scale)
    return dated[-1] if dated else None


@record
class Current:
    """A device's current price of one kind: the value a command uses, and where it comes from."""

    usd: float
    quote: Quote | None  # None: stated in the catalog entry, not one of its points
    source_class: str
    note: str


def current(hw: Hardware, kind: str) -> Current | None:
    """``hw``'s current rental (USD/GPU-h) or capital (``purchase``, USD per GPU at server share); None when none."""
    if kind not in ("rental", "purchase"):
        raise TokeconError(f"a current price is a rental or a purchase, got {kind!r}")
    value = hw.rental_usd_per_hour if kind == "rental" else hw.purchase_usd
    if value is None:
        return None
    q = pick(hw.price_points, kind, hw.rack_scale)
    if q is not None and math.isclose(q.usd, value, rel_tol=1e-9):
        what = "rental" if kind == "rental" else f"capital {q.usd:,.0f} USD server share"
        return Current(value, q, q.source_class, f"{hw.key} {what}: {q.describe()}")
    field = "rental_usd_per_hour" if kind == "rental" else "purchase_usd"
    return Current(value, None, "stated", f"{hw.key} {kind}: {field} stated in its catalog entry (scope and source not given)")


def rental_kind(hw: Hardware) -> str | None:
    """The buyer tier and kind of ``hw``'s current rental in words ("neocloud on-demand"); None for a
    rental stated in the catalog entry (no point behind it) or none."""
    now = current(hw, "rental")
    q = now.quote if now else None
    return f"{q.point.tier} {q.point.rental_kind.replace('_', '-')}" if q is not None else None


def series(hw: Hardware, kind: str, tco_source: str | None = None, tier: str | None = None) -> list[PricePoint]:
    """The points a price at a date interpolates over, one per date (the lower median), oldest first, purchase
    prices at server share: the current value's group, or a stated current value alone; for ``tco``, the points of
    ``tco_source`` and ``tier``."""
    if kind == "tco":
        points = [p for p in hw.price_points if p.kind == "tco" and p.tier == tier
                  and p.provider.casefold() == (tco_source or "").casefold()]
        return [q.point for q in _by_date(group(points, "tco"), False)]
    now = current(hw, kind)
    if now is None:
        return []
    if now.quote is None:
        return [PricePoint(hw.price_date or this_month(), kind, now.usd, now.note)]
    return [PricePoint(q.point.date, kind, q.usd, q.point.source, "server_share" if kind == "purchase" else q.point.scope,
                       q.source_class, q.point.tier, q.point.rental_kind, provider=q.point.provider)
            for q in _by_date(group(hw.price_points, kind), hw.rack_scale)]


MIN_TREND_SPAN_YEARS = 1.0
MAX_FALL_PER_YEAR = -0.5  # H100 neocloud on-demand 2024-2025 (module docstring)


def trend_per_year(points: list[PricePoint]) -> float | None:
    """Fitted relative change per year, exp(slope of ln P on the year) - 1, at most a fall of
    ``MAX_FALL_PER_YEAR``; None when the dates span less than ``MIN_TREND_SPAN_YEARS``."""
    years = [year_of(p.date) for p in points]
    if len(years) < 2 or max(years) - min(years) < MIN_TREND_SPAN_YEARS:
        return None
    logs = [math.log(p.usd) for p in points]
    mx, my = sum(years) / len(years), sum(logs) / len(logs)
    slope = sum((x - mx) * (y - my) for x, y in zip(years, logs)) / sum((x - mx) ** 2 for x in years)
    return max(math.expm1(slope), MAX_FALL_PER_YEAR)


@record
class PriceAt:
    """A price at a date and how it was obtained (``how``: one line for the notes)."""

    usd: float
    how: str


def price_at(hw: Hardware, kind: str, year: float, tco_source: str | None = None, tier: str | None = None) -> PriceAt:
    """``hw``'s ``kind`` price at ``year`` (a float year, e.g. 2027.0), interpolated or extrapolated as the module
    docstring says over :func:`series`; raises when the catalog has no point of that kind."""
    if kind not in KINDS:
        raise TokeconError(f"price kind must be one of {', '.join(KINDS)}, got {kind!r}")
    points = series(hw, kind, tco_source, tier)
    if not points:
        if kind == "tco":
            raise TokeconError(f"{hw.key} has no published TCO from '{tco_source}' for tier '{tier}'; "
                               f"published: {published_tco(hw) or 'none'}")
        flag = "--purchase-usd" if kind == "purchase" else "--usd-per-gpu-hour"
        raise TokeconError(f"{hw.key} has no {kind} price in the catalog; give {flag} or add [[{hw.key}.price_points]]")
    years = [year_of(p.date) for p in points]
    label = {"purchase": "capital (server share)", "rental": "rental", "tco": f"{tco_source} {tier} TCO"}[kind]

    def money(v: float) -> str:
        return f"{v:,.0f} USD" if kind == "purchase" else f"{v:.2f} USD/GPU-h"

    if year <= years[0]:
        how = "at" if year == years[0] else "held flat before"
        return PriceAt(points[0].usd, f"{hw.key} {label} {money(points[0].usd)}: {how} the first point ({points[0].date})")
    if year >= years[-1]:
        last = points[-1]
        rate = trend_per_year(points)
        if rate is None or rate >= 0 or year == years[-1]:
            why = "" if year == years[-1] else (" (no falling trend to project)" if rate is not None else " (no year of dates for a trend)")
            return PriceAt(last.usd, f"{hw.key} {label} {money(last.usd)}: held at the last point ({last.date}){why}")
        value = last.usd * (1.0 + rate) ** (year - years[-1])
        capped = " (the cap)" if rate == MAX_FALL_PER_YEAR else ""
        return PriceAt(value, f"{hw.key} {label} {money(value)}: extrapolated from {last.date} at the fitted "
                              f"{rate:+.0%}/year{capped} over {points[0].date}..{last.date}")
    j = bisect.bisect_right(years, year)
    a, b = points[j - 1], points[j]
    ya, yb = years[j - 1], years[j]
    value = a.usd * (b.usd / a.usd) ** ((year - ya) / (yb - ya)) if yb > ya else b.usd
    return PriceAt(value, f"{hw.key} {label} {money(value)}: interpolated between {a.date} ({money(a.usd)}) and "
                          f"{b.date} ({money(b.usd)})")


def published_tco(hw: Hardware) -> str:
    """The published TCO sources and tiers of ``hw``, e.g. ``SemiAnalysis hyperscaler, SemiAnalysis neocloud``."""
    return ", ".join(dict.fromkeys(f"{p.provider} {p.tier}" for p in hw.price_points if p.kind == "tco"))


# --- rows for `prices list` and `prices show` ----------------------------------------------------------------------

def _current_fields(prefix: str, now: Current | None, as_of: str) -> dict[str, Any]:
    q = now.quote if now else None
    p = q.point if q else None
    return {
        f"{prefix}_source_class": now.source_class if now else None,
        f"{prefix}_date": p.date if p else None,
        f"{prefix}_tier": p.tier if p else None,
        f"{prefix}_provider": p.provider if p else None,
        f"{prefix}_stale": stale(p, as_of) if p else None,
    }


def list_rows(hardware: Iterable[Hardware], as_of: str | None = None, tco_source: str = "SemiAnalysis",
              tier: str = "hyperscaler") -> list[dict[str, Any]]:
    """One row per device for ``prices list``: the current rental and capital with scope, class, date, tier and
    staleness at ``as_of`` (default this month), the newest published TCO of ``tco_source`` and ``tier``, and
    board and all-in power."""
    as_of = as_of or this_month()
    rows = []
    for hw in hardware:
        rent, capital = current(hw, "rental"), current(hw, "purchase")
        cq = capital.quote if capital else None
        tco = series(hw, "tco", tco_source, tier)
        rows.append({
            "device": hw.key,
            "rental_usd_per_gpu_hour": rent.usd if rent else None,
            "rental_kind": rent.quote.point.rental_kind if rent and rent.quote else None,
            "rental_scope": rent.quote.point.scope if rent and rent.quote else None,
            **_current_fields("rental", rent, as_of),
            "capital_usd_per_gpu": capital.usd if capital else None,
            "capital_scope": "server_share" if capital else None,
            "capital_quoted_scope": cq.point.scope if cq else None,
            "capital_overhead": cq.overhead.factor if cq and cq.overhead else (1.0 if cq else None),
            **_current_fields("capital", capital, as_of),
            "tco_usd_per_gpu_hour": tco[-1].usd if tco else None,
            "tco_date": tco[-1].date if tco else None,
            "board_power_w": hw.power_w,
            "all_in_power_w": hw.all_in_power_w,
        })  # fmt: skip
    return rows


def show_rows(hw: Hardware, as_of: str | None = None) -> list[dict[str, Any]]:
    """Every price point of ``hw`` for ``prices show``, by kind and date: its value (``usd_per_gpu`` for a purchase,
    ``usd_per_gpu_hour`` for a rental or TCO), the purchase at server share, scope, class, tier, kind, unit, source,
    whether it is stale at ``as_of`` (default this month), derived, or the current value."""
    as_of = as_of or this_month()
    used = {id(now.quote.point) for now in (current(hw, "rental"), current(hw, "purchase")) if now and now.quote}
    rows = []
    for p in sorted(hw.price_points, key=lambda p: (KINDS.index(p.kind), year_of(p.date), p.usd)):
        q = quote(p, hw.rack_scale)
        rows.append({
            "device": hw.key, "date": p.date, "kind": p.kind,
            "usd_per_gpu": p.usd if p.kind == "purchase" else None,
            "usd_per_gpu_hour": None if p.kind == "purchase" else p.usd,
            "server_share_usd_per_gpu": q.usd if p.kind == "purchase" else None,
            "overhead": q.overhead.factor if q.overhead else None,
            "scope": p.scope, "source_class": p.source_class, "derived": p.source_class == "derived",
            "derived_from": list(p.derived_from), "tier": p.tier, "rental_kind": p.rental_kind or None,
            "unit": p.unit, "gpus_per_unit": p.gpus_per_unit, "provider": p.provider,
            "stale": stale(p, as_of), "current": id(p) in used, "source": p.source,
        })  # fmt: skip
    return rows
