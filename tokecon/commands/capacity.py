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

from tokecon.catalogs.catalog import Catalog
from tokecon.commands import arrivals
from tokecon.commands.common import resolved_inputs, serving_request, sources, varied
from tokecon.commands.serve import concurrencies
from tokecon.commands.serving import (
    REVENUE_COLUMNS,
    check_workload,
    cost_inputs,
    cost_notes,
    interactivity_note,
    serving_assumptions,
    serving_method,
)
from tokecon.economics import money as economics
from tokecon.economics.money import ListPrices
from tokecon.errors import TokeconError
from tokecon.fidelity import uncertainty
from tokecon.results import Column, Result, Thresholds
from tokecon.serving import batching as serving
from tokecon.serving import disagg
from tokecon.serving.deploy import Deployed, deploy, sized
from tokecon.serving.resolve import parse_gpus, require_fit
from tokecon.serving.points import aggregated, disaggregated, point_rows, pool_label
from tokecon.serving.pools import deploy_pools
from tokecon.serving.request import ServingRequest
from tokecon.serving.search import pool_pairs
from tokecon.units import SECONDS_PER_DAY

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
    Column("ttft_p99_s", "TTFT p99 80% range [ms]", "time_range", hide=2),
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
    rows = point_rows(aggregated(d, st), price_split, list_prices=list_prices)
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
        "facility_mw_needed": n_dep * point["facility_power_w"] / 1e6,  # every deployment's all-in power x PUE (tokecon.economics.energy)
    }


def _daily_revenue(point: dict[str, Any], tokens_per_day: float, usd_day: float, list_prices: ListPrices) -> dict[str, Any]:
    """The day's volume at list prices (input and output shares of the request shape; the prefix-hit
    share of input at the cached price) against the fleet's cost of the day."""
    inp, out = point.get("mean_input_tokens", point["input_tokens"]), point.get("mean_output_tokens", point["output_tokens"])
    share_in = inp / (inp + out)
    per_s = tokens_per_day / SECONDS_PER_DAY
    daily = economics.daily_margin(list_prices, per_s * share_in, per_s * (1.0 - share_in), point.get("prefix_hit", 0.0), usd_day)
    return {k: float(v) for k, v in daily.items()}


def poisson_row(d: Deployed, opts: ServingRequest, slo: Thresholds, tokens_per_day: float, headroom: float,
                input_len: int, output_len: int) -> tuple[dict[str, Any], str]:
    """Deployments sized for Poisson arrivals of the daily volume: each of D takes Lambda / D requests/s
    (random routing splits a Poisson stream into Poisson streams), and D is the fewest for which that
    share stays within the highest rate lambda* meeting the latency limits. The row is the open-loop
    steady state at Lambda / D, with the limit that binds at lambda*; and a note."""
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


def _disagg_capacity(catalog: Catalog, opts: ServingRequest, spec, inp: int, out: int, tokens_per_day: float, headroom: float,
                     slo: Thresholds) -> tuple[dict[str, Any], Deployed | None]:
    """The disaggregated layout within ``spec``'s GPUs (tokecon.commands.disagg.search) whose
    highest-throughput point meets ``slo``, sized like an aggregated deployment."""
    found = pool_pairs(catalog, opts, spec, inp, out)
    ok = [(r, d) for p, d, st in found
          for r in point_rows(disaggregated(p, d, st, opts.modes.prefix_hit, opts.modes.length_mix), list_prices=opts.modes.prices)
          if r["fits"] and not slo.check(r)]
    if not ok:
        why = "no disaggregated layout fits a part of the GPUs" if not found else "no disaggregated point meets the SLO"
        return {"mode": "disagg", "deployment": f"{spec.label} disaggregated", "violations": [why]}, (found[0][1] if found else None)
    best, d = max(ok, key=lambda rd: rd[0]["total_tok_s_per_gpu"])
    return {**capacity_row(d, best, tokens_per_day, headroom, list_prices=opts.modes.prices), "violations": []}, d


def _given_disagg_capacity(catalog: Catalog, opts: ServingRequest, inp: int, out: int, tokens_per_day: float, headroom: float,
                           slo: Thresholds) -> tuple[dict[str, Any], list[str], list[Deployed]]:
    """The disaggregated layout the flags give (--prefill-gpus/--decode-gpus, workers balanced when
    not given), at the highest-throughput concurrency of a fine grid (8 points per doubling) that meets
    ``slo``, sized like an aggregated deployment."""
    p, d, x, y = deploy_pools(catalog, opts, opts.disagg, inp, out)
    top = int(serving.max_running(d.scenario, inp, out, opts.modes.length_mix)) * d.scenario.deployment.replicas * y
    grid = np.unique(np.round(serving.batch_grid(max(top, 1), 8)))
    st = disagg.serve(p.scenario, d.scenario, x, y, grid, inp, out, opts.disagg.prefill_batch, opts.modes.prefix_hit,
                      opts.modes.length_mix)
    rows = point_rows(disaggregated(p, d, st, opts.modes.prefix_hit, opts.modes.length_mix), list_prices=opts.modes.prices)
    notes = [f"Disaggregated {x}P{y}D: {pool_label(p, x, 'prefill')} + {pool_label(d, y, 'decode')}."]
    ok = [r for r in rows if r["fits"] and not slo.check(r)]
    if not ok:
        return {**rows[-1], "violations": ["no concurrency of this layout meets the SLO"]}, notes, [p, d]
    best = max(ok, key=lambda r: (r["total_tok_s"], -r["concurrency"]))
    return {**capacity_row(d, best, tokens_per_day, headroom, list_prices=opts.modes.prices), "violations": []}, notes, [p, d]


def _aggregated(d: Deployed, opts: ServingRequest, o: Any, slo: Thresholds, inp: int, out: int,
                notes: list[str]) -> dict[str, Any]:
    """One aggregated deployment sized for the volume at its operating point: a given concurrency,
    else the highest-throughput concurrency meeting the SLO (max throughput without one)."""
    scn = d.scenario
    has_slo = any(v is not None for v in slo.__dict__.values())
    per_unit = int(serving.max_running(scn, inp, out, opts.modes.length_mix))
    units = scn.deployment.replicas
    if o.concurrency:
        conc = np.asarray([float(concurrencies(o.concurrency, per_unit * units)[0])])
    else:
        conc = serving.batch_grid(per_unit, 4) * units if has_slo else np.asarray([float(per_unit * units)])
    st = serving.serve(scn, conc, inp, out, opts.chunked_prefill, **opts.serve_modes())
    point = operating_point(d, st, slo, opts.price_split, opts.modes.prices)
    if point is None:
        row = point_rows(aggregated(d, st), opts.price_split, [0], opts.modes.prices)[0]
        row["violations"] = ["no concurrency meets the SLO"] if has_slo and not o.concurrency else slo.check(row)
        return row
    row = {**capacity_row(d, point, o.tokens_per_day, o.headroom, list_prices=opts.modes.prices), "violations": []}
    notes += interactivity_note(d.label, row, slo)
    return row


def _checked(o: Any, slo: Thresholds) -> tuple[int, bool]:
    """The request's prompt length and whether the volume is sized for Poisson arrivals (percentile
    limits), after checking the options capacity alone takes."""
    if not (0 < o.tokens_per_day <= 1e18 and math.isfinite(o.tokens_per_day)):
        raise TokeconError(f"--tokens-per-day must be a positive number up to 1e18, got {o.tokens_per_day}")
    if not (1 <= o.headroom <= 100 and math.isfinite(o.headroom)):
        raise TokeconError(f"--headroom must be between 1 and 100 (peak over average load), got {o.headroom}")
    if o.concurrency is not None and len(o.concurrency) != 1:
        raise TokeconError("capacity takes one --concurrency (a number or 'max')")
    poisson = slo.max_ttft_p99_ms is not None or slo.max_tpot_p99_ms is not None
    if poisson and o.concurrency:
        raise TokeconError("--concurrency fixes requests in flight; percentile limits size for Poisson arrivals of the "
                           "daily volume: give one or the other")
    return request_shape(o.input_len, o.output_len, o.input_output_ratio), poisson


def run(o: Any, slo: Thresholds) -> Result:
    """``tokecon capacity``: tokecon.api.commands.CapacityOptions."""
    opts = serving_request(o, o.mode)
    inp, poisson = _checked(o, slo)
    out = o.output_len
    catalog: Catalog = opts.common.load()
    check_workload(catalog.models.get(o.model), inp, out)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    deployed: list[Deployed] = []
    if opts.disagg is not None:
        if poisson or o.concurrency:
            raise TokeconError("a given disaggregated layout is sized at its best concurrency meeting the SLO; "
                               "drop --concurrency and the percentile limits")
        row, notes, deployed = _given_disagg_capacity(catalog, opts, inp, out, o.tokens_per_day, o.headroom, slo)
        rows.append(row)
    elif not o.gpus:
        raise TokeconError("give --gpus (aggregated) or --prefill-gpus and --decode-gpus (disaggregated)")
    for g in o.gpus:
        if opts.layouts != "agg":
            row, d = _disagg_capacity(catalog, opts, parse_gpus(g, catalog), inp, out, o.tokens_per_day, o.headroom, slo)
            rows.append(row)
            deployed += [d] if d is not None else []
            if opts.layouts == "disagg":
                continue
        d = deploy(catalog, opts, sized(catalog, opts, parse_gpus(g, catalog), inp + out), inp + out)
        deployed.append(d)
        require_fit(d.scenario, inp + out)
        if poisson:
            row, line = poisson_row(d, opts, slo, o.tokens_per_day, o.headroom, inp, out)
            rows.append(row)
            notes += [line, *interactivity_note(d.label, row, slo)]
        else:
            rows.append(_aggregated(d, opts, o, slo, inp, out, notes))
    if not deployed:
        raise TokeconError(f"{o.model} has no disaggregated layout within {', '.join(o.gpus)} "
                           "(no part of the GPUs holds it as a worker): use --mode agg or more GPUs")
    for r in rows:
        r.setdefault("mode", "agg")  # as frontier's rows: which kind of layout answers
    answered = [i for i, r in enumerate(rows) if "usd_per_day" in r]
    highlight = {min(answered, key=lambda i: rows[i]["usd_per_day"])} if answered else set()
    if highlight:
        r = rows[min(highlight)]
        notes.insert(0, f"* {r['deployment']}: {r['deployments_needed']:,} deployment(s), {r['gpus_needed']:,} GPUs on "
                        f"{r['nodes_needed']:,} nodes, {r['usd_per_day']:,.0f} USD/day ({r['usd_per_mtok_served']:.3g} USD per "
                        f"million tokens served) for {o.tokens_per_day / 1e9:g} Gtok/day x headroom {o.headroom:g}"
                        + (", the cheapest per day." if len(answered) > 1 else "."))
    ranged = any(r.get("latency_interval_group") == "arrivals" for r in rows)
    notes += ([arrivals.NEAR_CAPACITY] if poisson and answered else []) + ([uncertainty.arrivals_note()] if ranged else []) \
        + serving_assumptions(deployed) + opts.scope_note() \
        + slo.blended_note()
    if opts.explain_cost:
        notes += cost_notes(deployed, opts)
    method = [f"Requests of {inp} input + {out} output tokens; tokens per day count both; a node is one scale-up domain "
              "(at most the GPUs of one deployment)."] + serving_method(deployed, opts, opts.disagg is None)
    method += [arrivals.MODEL_NOTE] if poisson else []
    inputs = {
        **resolved_inputs(deployed[0].scenario), "gpus": [d.scenario.deployment.label for d in deployed],
        "tokens_per_day": o.tokens_per_day, "input_tokens": inp, "output_tokens": out, "headroom": o.headroom,
        "slo": {k: v for k, v in slo.__dict__.items() if v is not None}, "cost": cost_inputs(deployed, opts),
        **opts.modes.inputs(deployed[0].scenario),
    }
    columns = (POISSON_COLUMNS if poisson else COLUMNS) + (REVENUE_COLUMNS if opts.modes.prices is not None else [])
    result = Result("capacity", inputs, rows, columns, group_key=None, notes=notes, highlight=highlight,
                    highlight_reason="cheapest per day", method=method, sources=sources([d.scenario for d in deployed]))
    return varied(result, o, opts.cost, catalog)
