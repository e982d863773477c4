"""``tokecon fleet``: replace an older device's fleet by a newer one? One workload, year by year.

The serving model (tokecon.serving.search ``sweep``, as frontier sweeps) finds each device's operating point; tokecon.economics.fleet turns the two into costs, the market price of a token, the old
device's falling value and the NPV and payback of replacing it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.commands.capacity import operating_point as capacity_point
from tokecon.commands.common import assumptions, cost_model, device_request, resolved_inputs, sources
from tokecon.commands.serving import check_workload, model_note
from tokecon.economics import fleet
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import Deployed
from tokecon.serving.resolve import parse_gpus
from tokecon.serving.request import ServingRequest
from tokecon.serving.search import sweep
from tokecon.values import positive_ints

COLUMNS = [
    Column("year", "year", "str"),
    Column("new_layout", "new layout", "str", hide=2),
    Column("old_usd_per_mtok", "old USD/Mtok", "usd"),
    Column("old_running_usd_per_mtok", "old running USD/Mtok", "usd", hide=2),
    Column("new_usd_per_mtok", "new USD/Mtok", "usd"),
    Column("market_usd_per_mtok", "market USD/Mtok", "usd"),
    Column("old_value_usd_per_gpu", "old value [USD/GPU]", "int", hide=1),
    Column("replace_npv_usd_per_old_gpu", "replace NPV [USD/old GPU]", "int"),
    Column("replace_payback_years", "payback [y]", "num", hide=1),
]


def operating_point(catalog: Catalog, opts: ServingRequest, gpus: str, input_len: int, output_len: int,
                    min_tok_s_per_user: float | None) -> tuple[Deployed, dict[str, Any]]:
    """Over every layout and concurrency ``frontier`` sweeps, the point that makes the most tokens per GPU
    while serving each user at least ``min_tok_s_per_user`` (max throughput without a floor)."""
    spec = parse_gpus(gpus, catalog)
    swept = sweep(opts, catalog, spec, input_len, output_len)
    if not swept:
        raise DoesNotFitError(f"{catalog.models.get(opts.common.model).key} does not fit on {spec.label} at "
                              f"{input_len + output_len} tokens per request")
    points = [(d, row) for d, st in swept
              if (row := capacity_point(d, st, Thresholds(min_tok_s_per_user=min_tok_s_per_user), None)) is not None]
    if not points:
        fastest = max(float(np.nanmax(np.where(st.fits, st.tok_s_per_user, np.nan))) for _, st in swept)
        raise TokeconError(f"{spec.label} serves at most {fastest:.1f} tok/s per user on this workload: "
                           f"lower --min-tok-s-per-user (asked {min_tok_s_per_user:g})")
    return max(points, key=lambda p: p[1]["total_tok_s_per_gpu"])  # the layouts share the GPUs: most per GPU


def run(o: Any, limits: Thresholds) -> Result:
    """``tokecon fleet``: tokecon.api.commands.FleetOptions."""
    opts = ServingRequest(device_request(o, (o.old, o.new)), cost=cost_model(o, "tco"))
    positive_ints([o.years], "--years")
    if not 2000 <= o.start <= 2100:
        raise TokeconError(f"--from must be a year between 2000 and 2100, got {o.start}")
    if o.years > 30:
        raise TokeconError(f"--years must be at most 30, got {o.years}")
    catalog = opts.common.load()
    check_workload(catalog.models.get(o.model), o.input_len, o.output_len)
    rental = replace(opts, cost=replace(opts.cost, method="rental"))  # serving needs no price; fleet prices by TCO
    sides, points, deployed = [], [], []
    for gpus in (o.old, o.new):
        d, point = operating_point(catalog, rental, gpus, o.input_len, o.output_len, o.min_tok_s_per_user)
        deployed.append(d)
        points.append(point)
        sides.append(fleet.Side(d.scenario.hardware, point["total_tok_s_per_gpu"], d.scenario.deployment.label))
    rows, method = fleet.compare(sides[0], sides[1], opts.cost, o.start, o.years)
    for row in rows:
        row["usd_per_mtok"] = row["new_usd_per_mtok"]  # what --max-usd-per-mtok checks: the new fleet's full cost
        row["old_layout"], row["new_layout"] = (f"{d.layout_label}, {p['concurrency']} in flight"
                                                for d, p in zip(deployed, points))
    floor = (f"the most tokens per GPU at >= {o.min_tok_s_per_user:g} tok/s per user" if o.min_tok_s_per_user
             else "max throughput; --min-tok-s-per-user sets a floor")
    notes = [f"{d.label}: {p['concurrency']} requests in flight ({floor}): {p['total_tok_s_per_gpu']:,.0f} tok/s per GPU "
             f"(input + output), {p['tok_s_per_user']:.1f} tok/s per user." for d, p in zip(deployed, points)]
    pays = next((r for r in rows if r["replace_pays"]), None)
    notes.insert(0, f"* Replacing pays from {pays['year']}: NPV {pays['replace_npv_usd_per_old_gpu']:,.0f} USD per old GPU."
                 if pays else f"Replacing never pays within {o.years} years at these prices.")
    notes += assumptions([d.scenario for d in deployed], {d.scenario.hardware.key: "TCO at each year's purchase price" for d in deployed})
    c = opts.cost
    method += [f"Costs: TCO at each year's purchase price, {c.depreciation_years:g} years at {c.interest_rate:.0%}, PUE {c.pue:g}, "
               f"{c.usd_per_kwh:g} USD/kWh, utilisation {c.utilisation:.0%}; running = electricity alone; old value = what its "
               "tokens still earn over the running cost, to the horizon.", model_note(deployed[0].scenario, None)]
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "old": deployed[0].scenario.deployment.label, "new": deployed[1].scenario.deployment.label,
        "input_tokens": o.input_len, "output_tokens": o.output_len, "min_tok_s_per_user": o.min_tok_s_per_user,
        "from": o.start, "years": o.years,
        "cost": {k: v for k, v in c.__dict__.items() if k not in ("method", "usd_per_gpu_hour", "purchase_usd")},
    }  # fmt: skip
    highlight = {next((i for i, r in enumerate(rows) if r["replace_pays"]), -1)} - {-1}
    result = Result("fleet", inputs, rows, COLUMNS, group_key=None, notes=notes, highlight=highlight, method=method,
                    highlight_reason="first year replacing pays", sources=sources([d.scenario for d in deployed]))
    return limits.apply(result)
