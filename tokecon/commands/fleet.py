"""``tokecon fleet``: replace an older device's fleet by a newer one? One workload, year by year.

The serving model (tokecon.commands.serve ``deploy``, tokecon.serving.batching ``serve``) finds each device's
operating point; tokecon.economics.fleet turns the two into costs, the market price of a token, the old
device's falling value and the NPV and payback of replacing it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tokecon.economics import fleet
from tokecon.catalogs.catalog import Catalog
from tokecon.commands.capacity import operating_point as capacity_point
from tokecon.commands.common import efficiency_note, resolved_inputs, sources
from tokecon.commands.frontier import sweep
from tokecon.commands.serve import Deployed, ServeOptions, model_note
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import check_context, parse_gpus, positive_ints

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


def operating_point(catalog: Catalog, opts: ServeOptions, gpus: str, input_len: int, output_len: int,
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


def run_fleet(opts: ServeOptions, old: str, new: str, input_len: int, output_len: int,
              min_tok_s_per_user: float | None, start: int, years: int) -> Result:
    opts.validate()
    positive_ints([input_len, output_len, years], "--input-len/--output-len/--years")
    if not 2000 <= start <= 2100:
        raise TokeconError(f"--from must be a year between 2000 and 2100, got {start}")
    if years > 30:
        raise TokeconError(f"--years must be at most 30, got {years}")
    if output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token)")
    catalog = opts.common.load()
    check_context(catalog.models.get(opts.common.model), input_len + output_len, "--input-len + --output-len")
    rental = replace(opts, cost=replace(opts.cost, method="rental"))  # serving needs no price; fleet prices by TCO
    sides, points, deployed = [], [], []
    for gpus in (old, new):
        d, point = operating_point(catalog, rental, gpus, input_len, output_len, min_tok_s_per_user)
        deployed.append(d)
        points.append(point)
        sides.append(fleet.Side(d.scenario.hardware, point["total_tok_s_per_gpu"], d.scenario.deployment.label))
    rows, notes = fleet.compare(sides[0], sides[1], opts.cost, start, years)
    for row in rows:
        row["old_layout"], row["new_layout"] = (f"{d.layout.label(d.scenario.deployment.n_gpus)} c{p['concurrency']}"
                                                for d, p in zip(deployed, points))
    floor = (f"the most tokens per GPU at >= {min_tok_s_per_user:g} tok/s per user" if min_tok_s_per_user
             else "max throughput; --min-tok-s-per-user sets a floor")
    for d, p in zip(deployed, points):
        notes.append(f"{d.label}: concurrency {p['concurrency']} ({floor}): {p['total_tok_s_per_gpu']:,.0f} tok/s per GPU "
                     f"(input + output), {p['tok_s_per_user']:.1f} tok/s per user.")
        notes.append(efficiency_note(d.scenario))
    notes.append(f"Costs: TCO at each year's purchase price, {opts.cost.depreciation_years:g} years at {opts.cost.interest_rate:.0%}, "
                 f"PUE {opts.cost.pue:g}, {opts.cost.usd_per_kwh:g} USD/kWh, utilisation {opts.cost.utilisation:.0%}; "
                 "running = electricity alone; old value = what its tokens still earn over the running cost, to the horizon.")
    notes.append(model_note(deployed[0].scenario, opts.chunked_prefill))
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "old": deployed[0].scenario.deployment.label, "new": deployed[1].scenario.deployment.label,
        "input_tokens": input_len, "output_tokens": output_len, "min_tok_s_per_user": min_tok_s_per_user,
        "from": start, "years": years,
        "cost": {k: v for k, v in opts.cost.__dict__.items() if k not in ("method", "usd_per_gpu_hour", "purchase_usd")},
    }  # fmt: skip
    highlight = {next((i for i, r in enumerate(rows) if r["replace_pays"]), -1)} - {-1}
    return Result("fleet", inputs, rows, COLUMNS, group_key=None, notes=notes, highlight=highlight,
                  highlight_reason="first year replacing pays", sources=sources([d.scenario for d in deployed]))
