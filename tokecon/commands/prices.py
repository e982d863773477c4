"""``tokecon prices list`` and ``tokecon prices show DEVICE``: every price tokecon multiplies by, traced to a
dated source (the rows: tokecon.economics.prices.list_rows and show_rows)."""

from __future__ import annotations

from typing import Any

from tokecon.catalogs.catalog import load_catalog
from tokecon.economics import prices
from tokecon.results import Column, Result

LIST_COLUMNS = [
    Column("device", "device", "str"),
    Column("rental_usd_per_gpu_hour", "rental [USD/GPU-h]", "usd"),
    Column("rental_kind", "rental kind", "str", hide=2),
    Column("rental_date", "date", "str", hide=1),
    Column("rental_source_class", "class", "str", hide=1),
    Column("capital_usd_per_gpu", "capital [USD/GPU, server share]", "int"),
    Column("capital_quoted_scope", "quoted as", "str", hide=2),
    Column("capital_date", "date", "str", hide=2),
    Column("tco_usd_per_gpu_hour", "published TCO [USD/GPU-h]", "usd", hide=1),
    Column("all_in_power_w", "all-in [W]", "int", hide=2),
]

SHOW_COLUMNS = [
    Column("kind", "kind", "str"),
    Column("date", "date", "str"),
    Column("value", "value", "str"),
    Column("scope", "scope", "str", hide=1),
    Column("source_class", "class", "str"),
    Column("tier", "tier", "str", hide=1),
    Column("flags", "marks", "str"),
    Column("provider", "provider", "str", hide=2),
]


def prices_list(o: Any, limits: Any = None) -> Result:
    """Each device's current rental and capital with where they come from."""
    cat = load_catalog(tuple(o.catalog))
    as_of = o.as_of or prices.this_month()
    rows = prices.list_rows(sorted(cat.hardware, key=lambda h: h.key), as_of, o.tco_source or "SemiAnalysis", o.tier or "hyperscaler")
    stale = [r["device"] for r in rows if r["rental_stale"]]
    weak = [r["device"] for r in rows if r["rental_source_class"] in ("secondary", "derived")]
    notes = ["Current values: the newest point of the preferred kind (tokecon.economics.prices); capital at server share. "
             "`tokecon prices show DEVICE` lists every point with its source."]
    if stale:
        notes.append(f"Rental older than a year at {as_of}: {', '.join(stale)}.")
    if weak:
        notes.append(f"Rental from a secondary or derived point: {', '.join(weak)}.")
    return Result("prices list", {"as_of": as_of, "files": cat.files_for("hardware")}, rows, LIST_COLUMNS,
                  group_key=None, notes=notes)


def prices_show(o: Any, limits: Any = None) -> Result:
    """Every dated point of one device: value, scope, class, tier, provider, source; stale, derived, current."""
    hw = load_catalog(tuple(o.catalog)).hardware.get(o.name)
    as_of = o.as_of or prices.this_month()
    rows = prices.show_rows(hw, as_of)
    for r in rows:
        r["value"] = (f"{r['usd_per_gpu']:,.0f} USD/GPU" + (f" = {r['server_share_usd_per_gpu']:,.0f} server share"
                                                            if r["overhead"] else "")
                      if r["kind"] == "purchase" else f"{r['usd_per_gpu_hour']:.3g} USD/GPU-h")
        r["flags"] = ", ".join(f for f, on in (("current", r["current"]), ("stale", r["stale"]), ("derived", r["derived"])) if on)
    notes = [f"{hw.key}: rental {hw.rental_usd_per_hour:.3g} USD/GPU-h ({hw.price_date or 'undated'}); capital "
             + (f"{hw.purchase_usd:,.0f} USD per GPU at server share" if hw.purchase_usd else "not priced (no primary point)")
             + f"; all-in power {hw.all_in_power_w:,.0f} W (board {hw.power_w:,.0f} W). Sources: --format json or csv."]
    return Result(f"prices show {hw.key}", {"hardware": hw.key, "as_of": as_of}, rows, SHOW_COLUMNS, group_key=None,
                  notes=notes, sources={f"hardware:{hw.key}": hw.origin})
