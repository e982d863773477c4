"""``tokecon frontier``: the Pareto frontier of output tok/s per GPU against tok/s per user.

For each device configuration every layout (TP degrees with the rest as replicas; for MoE models
attention-DP with each EP size) is served at a geometric grid of concurrencies up to the most
that run at once, by KV admission and the engine's cap (:func:`tokecon.serving.batching.serve`, one
vectorised call per layout). The points
no other point beats on both axes form the frontier, as SemiAnalysis' InferenceMAX plots it.
With an SLO (interactivity floor, TTFT or TPOT ceiling, price or throughput limit) the cheapest
point of the whole sweep that meets it is named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.serving import batching as serving
from tokecon.serving import sram
from tokecon.fidelity import uncertainty
from tokecon.commands.common import efficiency_note, resolved_inputs, sources
from tokecon.commands.disagg import rows as disagg_rows
from tokecon.commands.disagg import search as disagg_search
from tokecon.commands.serve import (
    ENERGY_COLUMNS,
    Deployed,
    ServeOptions,
    cost_inputs,
    cost_notes,
    deploy,
    interactivity_note,
    mode_notes,
    model_note,
    point_rows,
    requested_layout,
    sized,
    split_note,
)
from tokecon.economics.costs import gpu_hour_cost
from tokecon.economics.energy import NOTE as energy_note
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import check_context, parse_gpus, positive_ints

COLUMNS = [
    Column("mode", "mode", "str", hide=2),
    Column("layout", "layout", "str"),
    Column("concurrency", "concurrency", "int"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate"),
    Column("ttft_s", "TTFT [ms]", "time", hide=1),
    Column("tpot_s", "TPOT [ms]", "time", hide=2),
    Column("usd_per_mtok_input", "USD/Mtok in", "usd", hide=1),
    Column("usd_per_mtok_output", "USD/Mtok out", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
    Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
    *ENERGY_COLUMNS,
    Column("speed_premium_usd_per_mtok_per_tok_s", "premium [USD/Mtok per tok/s]", "usd", hide=2),
]

# --rank-by: which point is each device's answer (row key, and whether smaller is better)
RANK_BY = {"usd-per-mtok": ("usd_per_mtok", True), "tok-s-per-mw": ("tok_s_per_mw", False)}
# how each rank names its winner: in a note, in the answer table's title, as the highlight's reason
_RANK_WORDS = {"usd-per-mtok": ("Cheapest", "the cheapest point", "cheapest"),
               "tok-s-per-mw": ("Most tok/s per MW", "the point with the most tok/s per MW", "most tok/s per MW")}


def _rank_words(rank_by: str) -> str:
    return _RANK_WORDS[rank_by][0]


def _best(rows: list[dict[str, Any]], rank_by: str) -> dict[str, Any]:
    """The first of ``rows`` that ranks best by ``rank_by``."""
    key, smaller = RANK_BY[rank_by]
    return (min if smaller else max)(rows, key=lambda r: r[key])


def _better(a: dict[str, Any], b: dict[str, Any], rank_by: str) -> bool:
    key, smaller = RANK_BY[rank_by]
    return a[key] < b[key] if smaller else a[key] > b[key]


def sweep(opts: ServeOptions, catalog, spec, input_len: int, output_len: int) -> list[tuple[Deployed, serving.ServingTimes]]:
    """Every fitting layout of one device configuration, each at its concurrency grid."""
    model = catalog.models.get(opts.common.model)
    context = input_len + output_len
    asked = requested_layout(opts, spec, model.is_moe, model.key)
    candidates = sram.pipeline_layouts if sram.is_sram(spec.hardware) else serving.candidate_layouts
    layouts = [asked] if asked else candidates(model, spec.count)
    gpu_hour_cost(spec.hardware, opts.cost)  # a missing price is the user's to fix, not a layout that does not fit
    out, refused = [], []
    for layout in layouts:
        try:
            d = deploy(catalog, opts, spec, context, layout)
        except TokeconError as exc:
            refused.append(exc)  # a layout the model cannot take (heads not divisible, ...)
            continue
        scn = d.scenario
        per_unit = int(serving.max_running(scn, input_len, output_len, opts.modes.length_mix))
        if per_unit < 1:
            continue
        conc = serving.batch_grid(per_unit, 3) * scn.deployment.replicas
        out.append((d, serving.serve(scn, conc, input_len, output_len, opts.chunked_prefill, **opts.serve_modes())))
    if len(refused) == len(layouts):  # not one layout deployed: the options are wrong (an unknown engine, ...), say so
        raise refused[0]
    return out


def winner_note(label: str, frontier: list[dict[str, Any]]) -> str:
    """Where along the frontier (tok/s per user, ascending) disaggregated points win: their count,
    their range and the widest run of consecutive ones."""
    flags = [r["mode"] == "disagg" for r in frontier]
    if not any(flags):
        return f"{label}: aggregated serving wins along the whole frontier (no disaggregated point on it)."
    speeds = [r["tok_s_per_user"] for r in frontier]
    runs, start = [], None
    for i, f in enumerate(flags + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i - 1))
            start = None
    lo, hi = max(runs, key=lambda r: r[1] - r[0])
    span = f"{speeds[lo]:.1f}-{speeds[hi]:.1f}" if hi > lo else f"{speeds[lo]:.1f}"
    return (f"{label}: disaggregated prefill/decode wins at {sum(flags)} of {len(flags)} frontier points, between "
            f"{min(s for s, f in zip(speeds, flags) if f):.1f} and {max(s for s, f in zip(speeds, flags) if f):.1f} tok/s per user "
            f"(consecutively at {span}); aggregated elsewhere.")


def run_frontier(opts: ServeOptions, input_len: int, output_len: int, slo: Thresholds, rank_by: str = "usd-per-mtok") -> Result:
    opts.validate()
    if slo.max_ttft_p99_ms is not None or slo.max_tpot_p99_ms is not None:
        raise TokeconError("frontier sweeps requests in flight; the percentile limits (--max-ttft-p99-ms, --max-tpot-p99-ms) "
                           "apply to Poisson arrivals: use serve --request-rate or capacity")
    if rank_by not in RANK_BY:
        raise TokeconError(f"--rank-by must be one of {', '.join(RANK_BY)}, got '{rank_by}'")
    catalog = opts.common.load()
    positive_ints([input_len, output_len], "--input-len/--output-len")
    if output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token)")
    model = catalog.models.get(opts.common.model)
    check_context(model, input_len + output_len, "--input-len + --output-len")
    has_slo = any(v is not None for v in slo.__dict__.values())
    rows: list[dict[str, Any]] = []
    notes: list[str] = opts.scope_note()
    deployed: list[Deployed] = []
    candidates: list[dict[str, Any]] = []  # every swept point that meets the SLO
    for g in opts.common.gpus:
        spec = sized(catalog, opts, parse_gpus(g, catalog), input_len + output_len)
        results = sweep(opts, catalog, spec, input_len, output_len) if opts.layouts != "disagg" else []
        split = disagg_search(catalog, opts, spec, input_len, output_len) if opts.layouts != "agg" else []
        if opts.layouts != "agg" and not split:
            notes.append(f"{spec.label}: no disaggregated layout: {model.key} does not fit a part of the GPUs as a worker.")
        if not results and not split:
            notes.append(f"{spec.label}: {model.key} does not fit in any layout at {input_len + output_len} tokens per request.")
            continue
        every = [st for _, st in results] + [st for _, _, st in split]
        x = np.concatenate([st.tok_s_per_user for st in every])
        y = np.concatenate([st.output_tok_s_per_gpu for st in every])
        keep = serving.pareto_mask(x, y)
        offsets = np.cumsum([0] + [st.concurrency.size for st in every])
        device_rows: list[dict[str, Any]] = []
        makers = [lambda idx, d=d, st=st: [{"mode": "agg", **r} for r in point_rows(d, st, opts.price_split, idx, opts.modes.prices)]
                  for d, st in results] + [lambda idx, p=p, d=d, st=st: disagg_rows(p, d, st, idx, opts.modes) for p, d, st in split]
        for k, (make, st) in enumerate(zip(makers, every)):
            on = keep[offsets[k]:offsets[k + 1]]
            swept = list(range(st.concurrency.size)) if has_slo else [int(i) for i in np.flatnonzero(on)]
            for i, row in zip(swept, make(swept)):
                row["device"] = spec.label
                row["on_frontier"] = bool(on[i])
                if has_slo and row["fits"] and not slo.check(row):
                    candidates.append(row)
                if row["on_frontier"]:
                    device_rows.append(row)
        first = results[0][0] if results else split[0][1]
        deployed.append(first)
        device_rows.sort(key=lambda r: (r["tok_s_per_user"], -r["output_tok_s_per_gpu"]))
        rows += device_rows
        notes.append(f"{spec.label}: {len(results)} aggregated layouts" + (f" and {len(split)} disaggregated pool pairs" if split else "")
                     + f" x their concurrency grids swept, {len(device_rows)} points on the frontier.")
        if results and split:
            notes.append(winner_note(spec.label, [r for r in device_rows if r["on_frontier"]]))
        notes.append(efficiency_note(first.scenario))
        if sram.is_sram(spec.hardware):
            notes.extend(sram.explain(first.scenario, input_len + output_len))
        if uncertainty.measured(first.scenario) is False:
            notes.append(f"{spec.label}: never measured (no public measurement of its family): efficiency borrowed from "
                         "the measured families, widest 80% range.")
    if not deployed:
        raise DoesNotFitError(f"{model.key} does not fit on any of {', '.join(opts.common.gpus)} at "
                              f"{input_len + output_len} tokens per request")
    highlight: set[int] = set()
    if has_slo:
        for row in rows:
            row["slo"] = "; ".join(slo.check(row)) or "ok"
        answers: dict[str, dict[str, Any]] = {}  # per device, the cheapest point meeting the SLO
        for row in candidates:
            if row["device"] not in answers or _better(row, answers[row["device"]], rank_by):
                answers[row["device"]] = row
        for answer in answers.values():
            answer["device_best"] = True
            if not any(r is answer for r in rows):  # meets the SLO but lies off the frontier (its TTFT, say): show it too
                answer["slo"] = "ok"
                rows.append(answer)
        if answers:
            best = _best(list(answers.values()), rank_by)
            highlight.add(next(i for i, r in enumerate(rows) if r is best))
            notes.append(
                f"{_rank_words(rank_by)} meeting the SLO: {best['device']} {best['layout']} at concurrency {best['concurrency']}: "
                f"{best['tok_s_per_user']:.1f} tok/s per user, {best['output_tok_s_per_gpu']:.0f} output tok/s per GPU, "
                f"TTFT {best['ttft_s'] * 1e3:.0f} ms, {best['usd_per_mtok']:.3f} USD/Mtok blended "
                f"({best['usd_per_mtok_output']:.3f} out), {best['tok_s_per_mw']:,.0f} tok/s per MW."
            )
            notes.extend(interactivity_note(best["device"], best, slo))
        else:
            notes.append("No swept configuration meets the SLO.")
            for row in rows:
                row["violations"] = ["no configuration meets the SLO: " + row["slo"]]
    elif rank_by != "usd-per-mtok" and rows:
        key = RANK_BY[rank_by][0]
        top = _best(rows, rank_by)
        pick = next(i for i, r in enumerate(rows) if r is top)
        highlight.add(pick)
        notes.append(f"{_rank_words(rank_by)} on the frontier: {rows[pick]['device']} {rows[pick]['layout']} at concurrency "
                     f"{rows[pick]['concurrency']}: {rows[pick][key]:,.0f} tok/s per MW, {rows[pick]['tok_s_per_user']:.1f} tok/s per user.")
    notes.extend(premium(rows))
    notes.extend(slo.blended_note())
    notes.append(model_note(deployed[0].scenario, opts.chunked_prefill))
    notes.extend(mode_notes(deployed[0].scenario, opts.modes.prefix_hit, opts.modes.prices))
    notes.append(split_note(opts.price_split))
    notes.append(energy_note)
    if opts.explain_cost:
        notes.extend(cost_notes(deployed, opts))
    columns = COLUMNS + opts.modes.columns() + ([Column("slo", "SLO", "str")] if has_slo else [])
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": list(opts.common.gpus),
        "input_tokens": input_len,
        "output_tokens": output_len,
        "chunked_prefill_tokens": opts.chunked_prefill,
        "price_split": opts.price_split,
        "mode": opts.layouts,
        "slo": {k: v for k, v in slo.__dict__.items() if v is not None},
        "rank_by": rank_by,
        "cost": cost_inputs(deployed, opts),
        **opts.modes.inputs(deployed[0].scenario),
    }
    return Result("frontier", inputs, rows, columns, group_key="device", notes=notes, highlight=highlight,
                  sources=sources([d.scenario for d in deployed]))


def premium(rows: list[dict[str, Any]]) -> list[str]:
    """Set each row's speed premium over the cheapest point (tokecon.serving.sram.speed_premium) and say what
    the fastest point pays for its speed."""
    for row in rows:
        row["speed_premium_usd_per_mtok_per_tok_s"] = None
    priced = [r for r in rows if r.get("usd_per_mtok") is not None and r.get("tok_s_per_user") is not None]
    if not priced:
        return []
    base = min(priced, key=lambda r: r["usd_per_mtok"])
    values = sram.speed_premium(np.asarray([r["usd_per_mtok"] for r in priced]), np.asarray([r["tok_s_per_user"] for r in priced]),
                                base["usd_per_mtok"], base["tok_s_per_user"])
    for row, value in zip(priced, values):
        row["speed_premium_usd_per_mtok_per_tok_s"] = float(value) if np.isfinite(value) else None
    fast = max(priced, key=lambda r: r["tok_s_per_user"])
    if fast is base:
        return []
    return [f"Speed premium: the fastest point, {fast['device']} {fast['layout']}, serves {fast['tok_s_per_user']:,.0f} tok/s per "
            f"user at {fast['usd_per_mtok']:,.3f} USD/Mtok: {fast['tok_s_per_user'] / base['tok_s_per_user']:,.1f}x the speed of "
            f"the cheapest point ({base['device']} {base['layout']}, {base['tok_s_per_user']:,.1f} tok/s per user, "
            f"{base['usd_per_mtok']:,.3f} USD/Mtok) for {fast['usd_per_mtok'] / base['usd_per_mtok']:,.1f}x its price; each "
            f"extra tok/s per user costs {fast['speed_premium_usd_per_mtok_per_tok_s']:,.4f} USD/Mtok (premium column: "
            "(USD/Mtok - cheapest) / (tok/s per user - cheapest's))."]


ANSWER_COLUMNS = [
    Column("device", "devices", "str"),
    Column("layout", "layout", "str"),
    Column("concurrency", "concurrency", "int"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate"),
    Column("ttft_s", "TTFT [ms]", "time", hide=1),
    Column("usd_per_mtok_output", "USD/Mtok out", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
    Column("tok_s_per_mw", "tok/s per MW", "rate", hide=2),
]


def answers(result: Result) -> Result | None:
    """The answer before the long tables: per device, the best point meeting the SLO (cheapest, or by
    ``--rank-by``) and its price (None without an SLO)."""
    if not result.inputs["slo"]:
        return None
    best = next(iter(result.highlight), None)
    rows, highlight = [], set()
    for device in dict.fromkeys(r["device"] for r in result.rows):
        hit = next((i for i, r in enumerate(result.rows) if r["device"] == device and r.get("device_best")), None)
        if hit == best:
            highlight.add(len(rows))
        rows.append({**result.rows[hit], "violations": []} if hit is not None else
                    {"device": device, "layout": "no point meets the SLO"})
    slo = Thresholds(**result.inputs["slo"])
    notes = interactivity_note(result.rows[best]["device"], result.rows[best], slo) if best is not None else []
    _, title, reason = _RANK_WORDS[result.inputs.get("rank_by", "usd-per-mtok")]
    return Result(f"frontier: {title} meeting the SLO, per device", result.inputs, rows,
                  ANSWER_COLUMNS, group_key=None, notes=notes, highlight=highlight, highlight_reason=f"{reason} meeting the SLO")
