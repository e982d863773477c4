"""``tokecon capacity``: how many GPUs and nodes a daily token volume needs.

    required tok/s   = tokens per day / 86,400 s x headroom          (input + output tokens)
    deployments      = ceil(required tok/s / total tok/s of one deployment at the operating point)
    GPUs             = deployments x GPUs per deployment;   nodes = GPUs / GPUs per scale-up domain

The operating point is a concurrency (``max`` by default: the cheapest per token), or, with an SLO
(interactivity floor, TTFT/TPOT ceiling), the highest-throughput concurrency that meets it.
Requests have the shape --input-len/--output-len, or --output-len with an input:output ratio.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tokecon import serving
from tokecon.catalog import Catalog
from tokecon.commands.common import efficiency_note, resolved_inputs, sources
from tokecon.commands.serve import (
    Deployed,
    ServeOptions,
    cost_inputs,
    cost_notes,
    deploy,
    interactivity_note,
    model_note,
    point_rows,
    split_note,
)
from tokecon.errors import TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.scenario import check_context, parse_gpus, positive_ints, require_fit

SECONDS_PER_DAY = 86_400.0

COLUMNS = [
    Column("deployment", "devices", "str"),
    Column("concurrency", "concurrency", "int", hide=1),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("ttft_s", "TTFT [ms]", "time", hide=1),
    Column("total_tok_s", "tok/s per deployment", "rate", hide=2),
    Column("tokens_per_day_capacity", "Mtok/day per deployment", "rate", hide=2),
    Column("capacity_multiple", "volume fits x times", "num", hide=2),
    Column("deployments_needed", "deployments", "int", hide=1),
    Column("gpus_needed", "GPUs", "int"),
    Column("nodes_needed", "nodes", "int"),
    Column("usd_per_day", "USD/day", "usd"),
    Column("usd_per_mtok_served", "USD/Mtok served", "usd"),
]


def request_shape(input_len: int | None, output_len: int, ratio: float | None) -> int:
    """Prompt tokens per request: given, or ``ratio`` x output tokens (default 1024)."""
    if ratio is not None:
        if input_len is not None:
            raise TokeconError("give --input-len or --input-output-ratio, not both")
        if not (0 < ratio <= 1e4 and math.isfinite(ratio)):
            raise TokeconError(f"--input-output-ratio must be in (0, 10000], got {ratio}")
        return max(1, round(ratio * output_len))
    return 1024 if input_len is None else input_len


def operating_point(d: Deployed, st: serving.ServingTimes, slo: Thresholds, price_split: float | None) -> dict[str, Any] | None:
    """The highest-throughput point of ``st`` that meets ``slo`` (None when none does)."""
    rows = point_rows(d, st, price_split)
    ok = [r for r in rows if r["fits"] and not slo.check(r)]
    return max(ok, key=lambda r: (r["total_tok_s"], -r["concurrency"])) if ok else None


def capacity_row(d: Deployed, point: dict[str, Any], tokens_per_day: float, headroom: float) -> dict[str, Any]:
    dep, hw = d.scenario.deployment, d.scenario.hardware
    required = tokens_per_day / SECONDS_PER_DAY * headroom
    per_deployment = point["total_tok_s"]
    n_dep = max(1, math.ceil(required / per_deployment))
    node = min(hw.scaleup_domain, dep.n_gpus)
    gpus = n_dep * dep.n_gpus
    usd_day = n_dep * d.scenario.usd_per_hour * 24.0
    return {
        **point,
        "tokens_per_day": tokens_per_day,
        "headroom": headroom,
        "required_tok_s": required,
        "tokens_per_day_capacity": per_deployment * SECONDS_PER_DAY / 1e6,  # Mtok/day, the header's unit
        "load_fraction": required / per_deployment,
        "capacity_multiple": per_deployment / required,
        "deployments_needed": n_dep,
        "gpus_needed": gpus,
        "gpus_per_node": node,
        "nodes_needed": math.ceil(gpus / node),
        "usd_per_day": usd_day,
        "usd_per_mtok_served": usd_day / (tokens_per_day / 1e6),
    }


def run_capacity(
    opts: ServeOptions,
    tokens_per_day: float,
    input_len: int | None,
    output_len: int,
    ratio: float | None,
    concurrency: list[int | str] | None,
    headroom: float,
    slo: Thresholds,
) -> Result:
    opts.validate()
    if not (0 < tokens_per_day <= 1e18 and math.isfinite(tokens_per_day)):
        raise TokeconError(f"--tokens-per-day must be a positive number up to 1e18, got {tokens_per_day}")
    if not (1 <= headroom <= 100 and math.isfinite(headroom)):
        raise TokeconError(f"--headroom must be between 1 and 100 (peak over average load), got {headroom}")
    if concurrency is not None and len(concurrency) != 1:
        raise TokeconError("capacity takes one --concurrency (a number or 'max')")
    inp = request_shape(input_len, output_len, ratio)
    positive_ints([inp, output_len], "--input-len/--output-len")
    if output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token)")
    catalog: Catalog = opts.common.load()
    model = catalog.models.get(opts.common.model)
    context = inp + output_len
    check_context(model, context, "--input-len + --output-len")
    has_slo = any(v is not None for v in slo.__dict__.values())
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    deployed: list[Deployed] = []
    for g in opts.common.gpus:
        d = deploy(catalog, opts, parse_gpus(g, catalog), context)
        deployed.append(d)
        scn = d.scenario
        require_fit(scn, context)
        per_unit = int(serving.max_running(scn, inp, output_len))
        units = scn.deployment.replicas
        if concurrency and concurrency[0] != "max":
            conc = np.asarray([float(concurrency[0])])
        elif concurrency or not has_slo:
            conc = np.asarray([float(per_unit * units)])
        else:
            conc = serving.batch_grid(per_unit, 4) * units
        st = serving.serve(scn, conc, inp, output_len, opts.chunked_prefill)
        point = operating_point(d, st, slo, opts.price_split)
        if point is None:
            row = point_rows(d, st, opts.price_split, [0])[0]
            swept = has_slo and not concurrency
            row["violations"] = ["no concurrency meets the SLO"] if swept else slo.check(row)
            rows.append(row)
            continue
        row = capacity_row(d, point, tokens_per_day, headroom)
        row["violations"] = []
        rows.append(row)
        notes.append(
            f"{d.label}: {row['total_tok_s']:,.0f} tok/s at concurrency {row['concurrency']} = "
            f"{row['tokens_per_day_capacity'] / 1e3:,.2f} Gtok/day per deployment; {tokens_per_day / 1e9:g} Gtok/day x headroom "
            f"{headroom:g} needs {row['required_tok_s']:,.0f} tok/s, {row['load_fraction']:.1%} of one deployment."
        )
        notes.extend(interactivity_note(d.label, row, slo))
        notes.append(efficiency_note(scn))
    answered = [i for i, r in enumerate(rows) if "usd_per_day" in r]
    highlight = {min(answered, key=lambda i: rows[i]["usd_per_day"])} if len(answered) > 1 else set()
    notes.append(f"Requests of {inp} input + {output_len} output tokens; tokens per day count both; "
                 f"a node is one scale-up domain (at most the GPUs of one deployment).")
    notes.extend(slo.blended_note())
    notes.append(model_note(deployed[0].scenario, opts.chunked_prefill))
    notes.append(split_note(opts.price_split))
    if opts.explain_cost:
        notes.extend(cost_notes(deployed, opts))
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": [d.scenario.deployment.label for d in deployed],
        "tokens_per_day": tokens_per_day,
        "input_tokens": inp,
        "output_tokens": output_len,
        "headroom": headroom,
        "slo": {k: v for k, v in slo.__dict__.items() if v is not None},
        "cost": cost_inputs(deployed, opts),
    }
    return Result("capacity", inputs, rows, COLUMNS, group_key=None, notes=notes, highlight=highlight,
                  highlight_reason="cheapest per day", sources=sources([d.scenario for d in deployed]))
