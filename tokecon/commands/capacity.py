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

from tokecon.economics import money as economics
from tokecon.serving import batching as serving
from tokecon.catalogs.catalog import Catalog
from tokecon.commands.common import efficiency_note, resolved_inputs, sources
from tokecon.commands.disagg import rows as disagg_rows
from tokecon.commands.disagg import search as disagg_search
from tokecon.commands.serve import (
    Deployed,
    ServeOptions,
    cost_inputs,
    cost_notes,
    deploy,
    interactivity_note,
    mode_notes,
    model_note,
    point_rows,
    sized,
    split_note,
)
from tokecon.economics.money import ListPrices
from tokecon.errors import TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.units import SECONDS_PER_DAY
from tokecon.serving.deploy import check_context, parse_gpus, positive_ints, require_fit

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
    Column("facility_mw_needed", "facility MW", "num", hide=3),
    Column("tok_s_per_mw", "tok/s per MW", "rate", hide=3),
    Column("energy_share", "energy share", "pct", hide=3),
]

POISSON_COLUMNS = [  # sized for Poisson arrivals (percentile limits): the load each deployment takes and its tail
    Column("deployment", "devices", "str"),
    Column("request_rate", "req/s each", "num", hide=1),
    Column("max_request_rate_within_limits", "req/s within limits", "num", hide=2),
    Column("ttft_p99_s", "TTFT p99 [ms]", "time"),
    Column("tpot_p99_s", "TPOT p99 [ms]", "time", hide=1),
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


def operating_point(d: Deployed, st: serving.ServingTimes, slo: Thresholds, price_split: float | None,
                    list_prices: ListPrices | None = None) -> dict[str, Any] | None:
    """The highest-throughput point of ``st`` that meets ``slo`` (None when none does)."""
    rows = point_rows(d, st, price_split, list_prices=list_prices)
    ok = [r for r in rows if r["fits"] and not slo.check(r)]
    return max(ok, key=lambda r: (r["total_tok_s"], -r["concurrency"])) if ok else None


def deployments_needed(tokens_per_day: float, headroom: float, per_deployment: float) -> int:
    """ceil(tokens per day / 86,400 s x headroom / tok/s one deployment carries), at least 1."""
    return max(1, math.ceil(tokens_per_day / SECONDS_PER_DAY * headroom / per_deployment))


def capacity_row(d: Deployed, point: dict[str, Any], tokens_per_day: float, headroom: float,
                 per_deployment: float | None = None, list_prices: ListPrices | None = None) -> dict[str, Any]:
    """Deployments of the point's GPUs and hourly price (aggregated, or both pools of a disaggregated
    one) when one deployment carries ``per_deployment`` tok/s (default: the point's throughput); at
    ``list_prices``, the day's revenue and margin."""
    hw = d.scenario.hardware
    n_gpus, usd_h = point["n_gpus"], point["usd_per_hour"]
    required = tokens_per_day / SECONDS_PER_DAY * headroom
    per_deployment = point["total_tok_s"] if per_deployment is None else per_deployment
    n_dep = deployments_needed(tokens_per_day, headroom, per_deployment)
    node = min(hw.scaleup_domain, n_gpus)
    gpus = n_dep * n_gpus
    usd_day = n_dep * usd_h * 24.0
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
        **(_daily_revenue(point, tokens_per_day, usd_day, list_prices) if list_prices else {}),
        "facility_mw_needed": n_dep * point["facility_power_w"] / 1e6,  # every deployment's board power x PUE (tokecon.economics.energy)
    }


def _daily_revenue(point: dict[str, Any], tokens_per_day: float, usd_day: float, list_prices: ListPrices) -> dict[str, Any]:
    """The day's volume at list prices (input and output shares of the request shape; the prefix-hit
    share of input at the cached price) against the fleet's cost of the day."""
    inp, out = point.get("mean_input_tokens", point["input_tokens"]), point.get("mean_output_tokens", point["output_tokens"])
    share_in = inp / (inp + out)
    per_s = tokens_per_day / SECONDS_PER_DAY
    daily = economics.daily_margin(list_prices, per_s * share_in, per_s * (1.0 - share_in), point.get("prefix_hit", 0.0), usd_day)
    return {k: float(v) for k, v in daily.items()}


def poisson_row(d: Deployed, opts: ServeOptions, slo: Thresholds, tokens_per_day: float, headroom: float,
                input_len: int, output_len: int) -> tuple[dict[str, Any], str]:
    """Deployments sized for Poisson arrivals of the daily volume: each of D takes Lambda / D requests/s
    (random routing splits a Poisson stream into Poisson streams), and D is the fewest for which that
    share stays within the highest rate lambda* meeting the latency limits. The row is the open-loop
    steady state at Lambda / D, with the limit that binds at lambda*; and a note."""
    from tokecon.commands import arrivals

    tokens = input_len + output_len
    required_rate = tokens_per_day / SECONDS_PER_DAY * headroom / tokens
    top, binding, near = arrivals.max_rate_within(d, opts, slo, input_len, output_len)
    if top <= 0.0:
        rows, _ = arrivals.rate_rows(d, opts, [near["request_rate"]], input_len, output_len)
        rows[0]["violations"] = [f"no request rate meets the limits, even near zero load: {'; '.join(slo.check(near))}"]
        return rows[0], f"{d.label}: no load is light enough for the latency limits."
    n_dep = deployments_needed(tokens_per_day, headroom, top * tokens)
    rows, ol = arrivals.rate_rows(d, opts, [required_rate / n_dep], input_len, output_len)
    row = capacity_row(d, rows[0], tokens_per_day, headroom, top * tokens, opts.modes.prices)
    names = ", ".join("--" + b.replace("_", "-") for b in binding) or f"stability (at most {ol.max_request_rate:.4g} req/s)"
    row |= {"max_request_rate_within_limits": top, "binding_limits": binding, "violations": slo.check(row)}
    return row, (f"{d.label}: Poisson arrivals at {required_rate:,.4g} req/s ({tokens_per_day / 1e9:g} Gtok/day x headroom "
                 f"{headroom:g}, {tokens} tokens each); one deployment meets the limits up to {top:,.4g} req/s "
                 f"({names} binds), so {n_dep} share the load at {required_rate / n_dep:,.4g} req/s each.")


def _disagg_capacity(catalog: Catalog, opts: ServeOptions, spec, inp: int, out: int, tokens_per_day: float, headroom: float,
                     slo: Thresholds) -> tuple[dict[str, Any], Deployed | None]:
    """The disaggregated layout within ``spec``'s GPUs (tokecon.commands.disagg.search) whose
    highest-throughput point meets ``slo``, sized like an aggregated deployment."""
    found = disagg_search(catalog, opts, spec, inp, out)
    ok = [(r, d) for p, d, st in found for r in disagg_rows(p, d, st, modes=opts.modes) if r["fits"] and not slo.check(r)]
    if not ok:
        why = "no disaggregated layout fits a part of the GPUs" if not found else "no disaggregated point meets the SLO"
        return {"mode": "disagg", "deployment": f"{spec.label} disaggregated", "violations": [why]}, (found[0][1] if found else None)
    best, d = max(ok, key=lambda rd: rd[0]["total_tok_s_per_gpu"])
    return {**capacity_row(d, best, tokens_per_day, headroom, list_prices=opts.modes.prices), "violations": []}, d


def _given_disagg_capacity(catalog: Catalog, opts: ServeOptions, inp: int, out: int, tokens_per_day: float, headroom: float,
                           slo: Thresholds) -> tuple[dict[str, Any], list[str], list[Deployed]]:
    """The disaggregated layout the flags give (--prefill-gpus/--decode-gpus, workers balanced when
    not given), at the highest-throughput concurrency of a fine grid (8 points per doubling) that meets
    ``slo``, sized like an aggregated deployment."""
    from tokecon.commands.disagg import deploy_pools, serve_rows

    _, d, _, y = deploy_pools(catalog, opts, opts.disagg, inp, out)
    top = int(serving.max_running(d.scenario, inp, out, opts.modes.length_mix)) * d.scenario.deployment.replicas * y
    grid = [int(c) for c in np.unique(np.round(serving.batch_grid(max(top, 1), 8)))]
    rows, notes, deployed = serve_rows(catalog, opts, opts.disagg, grid, inp, out)
    ok = [r for r in rows if r["fits"] and not slo.check(r)]
    if not ok:
        return {**rows[-1], "violations": ["no concurrency of this layout meets the SLO"]}, notes, deployed
    best = max(ok, key=lambda r: (r["total_tok_s"], -r["concurrency"]))
    return {**capacity_row(deployed[-1], best, tokens_per_day, headroom, list_prices=opts.modes.prices), "violations": []}, notes, deployed


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
    poisson = slo.max_ttft_p99_ms is not None or slo.max_tpot_p99_ms is not None
    if poisson and concurrency:
        raise TokeconError("--concurrency fixes requests in flight; percentile limits size for Poisson arrivals of the "
                           "daily volume: give one or the other")
    rows: list[dict[str, Any]] = []
    notes: list[str] = opts.scope_note()
    deployed: list[Deployed] = []
    if opts.disagg is not None:
        if poisson or concurrency:
            raise TokeconError("a given disaggregated layout is sized at its best concurrency meeting the SLO; "
                               "drop --concurrency and the percentile limits")
        row, notes, deployed = _given_disagg_capacity(catalog, opts, inp, output_len, tokens_per_day, headroom, slo)
        rows.append(row)
    elif not opts.common.gpus:
        raise TokeconError("give --gpus (aggregated) or --prefill-gpus and --decode-gpus (disaggregated)")
    for g in opts.common.gpus:
        if opts.layouts != "agg":
            row, d = _disagg_capacity(catalog, opts, parse_gpus(g, catalog), inp, output_len, tokens_per_day, headroom, slo)
            rows.append(row)
            deployed += [d] if d is not None else []
            if "usd_per_day" in row:
                notes.append(f"{g} disaggregated, best within its GPUs: {row['deployment']}, {row['total_tok_s']:,.0f} tok/s "
                             f"at concurrency {row['concurrency']} ({row['load_fraction']:.1%} of one deployment needed).")
            if opts.layouts == "disagg":
                continue
        d = deploy(catalog, opts, sized(catalog, opts, parse_gpus(g, catalog), context), context)
        deployed.append(d)
        scn = d.scenario
        require_fit(scn, context)
        if poisson:
            row, line = poisson_row(d, opts, slo, tokens_per_day, headroom, inp, output_len)
            rows.append(row)
            notes.extend([line, *interactivity_note(d.label, row, slo), efficiency_note(scn)])
            continue
        per_unit = int(serving.max_running(scn, inp, output_len, opts.modes.length_mix))
        units = scn.deployment.replicas
        if concurrency and concurrency[0] != "max":
            conc = np.asarray([float(concurrency[0])])
        elif concurrency or not has_slo:
            conc = np.asarray([float(per_unit * units)])
        else:
            conc = serving.batch_grid(per_unit, 4) * units
        st = serving.serve(scn, conc, inp, output_len, opts.chunked_prefill, **opts.serve_modes())
        point = operating_point(d, st, slo, opts.price_split, opts.modes.prices)
        if point is None:
            row = point_rows(d, st, opts.price_split, [0], opts.modes.prices)[0]
            swept = has_slo and not concurrency
            row["violations"] = ["no concurrency meets the SLO"] if swept else slo.check(row)
            rows.append(row)
            continue
        row = capacity_row(d, point, tokens_per_day, headroom, list_prices=opts.modes.prices)
        row["violations"] = []
        rows.append(row)
        notes.append(
            f"{d.label}: {row['total_tok_s']:,.0f} tok/s at concurrency {row['concurrency']} = "
            f"{row['tokens_per_day_capacity'] / 1e3:,.2f} Gtok/day per deployment; {tokens_per_day / 1e9:g} Gtok/day x headroom "
            f"{headroom:g} needs {row['required_tok_s']:,.0f} tok/s, {row['load_fraction']:.1%} of one deployment."
        )
        notes.extend(interactivity_note(d.label, row, slo))
        notes.append(efficiency_note(scn))
    if not deployed:
        raise TokeconError(f"{model.key} has no disaggregated layout within {', '.join(opts.common.gpus)} "
                           "(no part of the GPUs holds it as a worker): use --mode agg or more GPUs")
    for r in rows:
        r.setdefault("mode", "agg")  # as frontier's rows: which kind of layout answers
    answered = [i for i, r in enumerate(rows) if "usd_per_day" in r]
    highlight = {min(answered, key=lambda i: rows[i]["usd_per_day"])} if len(answered) > 1 else set()
    notes.append(f"Requests of {inp} input + {output_len} output tokens; tokens per day count both; "
                 f"a node is one scale-up domain (at most the GPUs of one deployment).")
    notes.extend(slo.blended_note())
    if opts.disagg is None:  # a given disaggregated layout's notes say how its pools serve and are priced
        notes.append(model_note(deployed[0].scenario, opts.chunked_prefill))
    notes.extend(mode_notes(deployed[0].scenario, opts.modes.prefix_hit, opts.modes.prices))
    if poisson:
        from tokecon.commands.arrivals import MODEL_NOTE

        notes.append(MODEL_NOTE)
    if opts.disagg is None:
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
        **opts.modes.inputs(deployed[0].scenario),
    }
    columns = (POISSON_COLUMNS if poisson else COLUMNS) + opts.modes.columns()
    return Result("capacity", inputs, rows, columns, group_key=None, notes=notes,
                  highlight=highlight, highlight_reason="cheapest per day", sources=sources([d.scenario for d in deployed]))
