"""``tokecon frontier``: the Pareto frontier of output tok/s per GPU against tok/s per user.

For each device configuration every layout (TP degrees with the rest as replicas; for MoE models
attention-DP with each EP size; disaggregated pool pairs within the GPUs) is served at a geometric
grid of concurrencies up to the most that run at once (:mod:`tokecon.serving.search`). The points no
other point beats on both axes form the frontier, as SemiAnalysis' InferenceMAX plots it. With an
SLO (interactivity floor, TTFT or TPOT ceiling, price or throughput limit) the best point of the
whole sweep that meets it is each device's answer; ``compare`` ranks those answers.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.commands.common import resolved_inputs, serving_request, sources, varied
from tokecon.commands.serving import (
    ENERGY_COLUMNS,
    REVENUE_COLUMNS,
    check_workload,
    cost_inputs,
    crossovers,
    cost_notes,
    interactivity_note,
    serving_assumptions,
    serving_method,
)
from tokecon.errors import DoesNotFitError
from tokecon.fidelity import uncertainty
from tokecon.records import record
from tokecon.results import Column, Progress, Result, Thresholds
from tokecon.serving import batching, sram
from tokecon.serving.deploy import Deployed, sized
from tokecon.serving.points import COMMON, Points, aggregated, disaggregated, point_rows, priced_figures
from tokecon.serving.request import ServingRequest
from tokecon.serving.resolve import parse_gpus
from tokecon.serving.search import pool_pairs, sweep

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

# --rank-by: which point is each device's answer (row key, and whether smaller is better), and its words
RANK_BY = {"usd-per-mtok": ("usd_per_mtok", True), "tok-s-per-mw": ("tok_s_per_mw", False)}
_RANK_WORDS = {"usd-per-mtok": ("cheapest", "the cheapest point"), "tok-s-per-mw": ("most tok/s per MW", "the point with the most tok/s per MW")}


def best(rows: list[dict[str, Any]], rank_by: str = "usd-per-mtok") -> dict[str, Any]:
    """The first of ``rows`` that ranks best by ``rank_by``."""
    key, smaller = RANK_BY[rank_by]
    return (min if smaller else max)(rows, key=lambda r: r[key])


@record(frozen=False)
class DeviceSweep:
    """One device configuration swept: its frontier rows, its best point meeting the SLO, what it tried."""

    label: str
    deployed: Deployed | None
    frontier: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # by the sweep's rank; None without an SLO or when no point meets it
    aggregated_layouts: int = 0
    pool_pairs: int = 0


def sweep_device(catalog: Catalog, opts: ServingRequest, text: str, inp: int, out: int, slo: Thresholds | None,
                 rank_by: str = "usd-per-mtok") -> DeviceSweep:
    """Every layout of one ``COUNTxDEVICE`` at its concurrency grid (:mod:`tokecon.serving.search`):
    rows of the frontier points, and with an ``slo`` the row of the best point meeting it (by
    ``rank_by``; the first of equals, in layout and grid order). Points are screened and ranked on
    arrays (:meth:`Thresholds.may_pass` over every figure a limit reads, the same values the rows
    carry), so rows are built only for the points shown."""
    spec = sized(catalog, opts, parse_gpus(text, catalog), inp + out)
    agg = sweep(opts, catalog, spec, inp, out) if opts.layouts != "disagg" else []
    split = pool_pairs(catalog, opts, spec, inp, out) if opts.layouts != "agg" else []
    every = [aggregated(d, st) for d, st in agg] + [disaggregated(p, d, st, opts.modes.prefix_hit, opts.modes.length_mix)
                                                    for p, d, st in split]
    found = DeviceSweep(spec.label, agg[0][0] if agg else split[0][1] if split else None,
                        aggregated_layouts=len(agg), pool_pairs=len(split))
    if not every:
        return found
    x = np.concatenate([pts.times.tok_s_per_user for pts in every])
    y = np.concatenate([pts.times.output_tok_s_per_gpu for pts in every])
    keep = batching.pareto_mask(x, y)
    offsets = np.cumsum([0] + [pts.times.concurrency.size for pts in every])
    priced = [priced_figures(pts, opts.price_split if pts.mode == "agg" else None, opts.modes.prices) for pts in every]
    top = _best_meeting(every, priced, slo, rank_by) if slo is not None else None
    for k, pts in enumerate(every):
        on = keep[offsets[k]:offsets[k + 1]]
        chosen = sorted(set(np.flatnonzero(on).tolist()) | ({top[1]} if top is not None and top[0] == k else set()))
        split = opts.price_split if pts.mode == "agg" else None  # each pool prices its own GPU time
        for i, row in zip(chosen, point_rows(pts, split, chosen, opts.modes.prices, priced[k])):
            row["device"] = spec.label
            row["on_frontier"] = bool(on[i])
            if top is not None and (k, i) == top:
                found.best = row
            if row["on_frontier"]:
                found.frontier.append(row)
    found.frontier.sort(key=lambda r: (r["tok_s_per_user"], -r["output_tok_s_per_gpu"]))
    return found


def _best_meeting(every: list[Points], priced: list[tuple[dict, dict]], slo: Thresholds,
                  rank_by: str) -> tuple[int, int] | None:
    """(layout, point) of the best point that fits and meets ``slo`` by ``rank_by`` (the first of
    equals), from the arrays the rows would carry; None when none meets it."""
    key, smaller = RANK_BY[rank_by]
    top, top_value = None, math.nan
    for k, pts in enumerate(every):
        st = pts.times
        figures = {c: getattr(st, c) for c in COMMON} | {"tok_s_per_gpu": st.output_tok_s_per_gpu} | priced[k][0] | priced[k][1]
        n = st.concurrency.size
        values = np.broadcast_to(np.asarray(figures[key], dtype=float), (n,))
        ok = np.flatnonzero(np.asarray(st.fits, dtype=bool).ravel() & slo.may_pass(figures, n) & np.isfinite(values))
        if ok.size == 0:
            continue
        i = int(ok[np.argmin(values[ok]) if smaller else np.argmax(values[ok])])
        if top is None or (values[i] < top_value if smaller else values[i] > top_value):
            top, top_value = (k, i), float(values[i])
    return top


def winner_note(label: str, frontier: list[dict[str, Any]]) -> str | None:
    """Where along the frontier (tok/s per user, ascending) disaggregated points win."""
    flags = [r["mode"] == "disagg" for r in frontier]
    if not any(flags) or all(flags):
        return None
    speeds = [r["tok_s_per_user"] for r, f in zip(frontier, flags) if f]
    return (f"{label}: disaggregated prefill/decode wins at {sum(flags)} of {len(flags)} frontier points, between "
            f"{min(speeds):.1f} and {max(speeds):.1f} tok/s per user; aggregated elsewhere.")


def sweeps(catalog: Catalog, opts: ServingRequest, gpus: list[str], inp: int, out: int, slo: Thresholds | None,
           progress: Progress | None = None, rank_by: str = "usd-per-mtok") -> tuple[list[DeviceSweep], list[str], list[str]]:
    """Each device swept, with the notes (devices the model fits in no layout, devices never measured)
    and the method notes (what was swept, where disaggregation wins); refuses when the model fits none.
    ``progress("devices", done, total)`` is called after each device."""
    done, notes, method, skipped, unmeasured = [], [], [], [], []
    for k, text in enumerate(gpus):
        s = sweep_device(catalog, opts, text, inp, out, slo, rank_by)
        if progress:
            progress("devices", k + 1, len(gpus))
        if s.deployed is None:
            skipped.append(s.label)
            continue
        done.append(s)
        if opts.layouts != "agg" and not s.pool_pairs:
            notes.append(f"{s.label}: no disaggregated layout: {opts.common.model} does not fit a part of the GPUs as a worker.")
        method += filter(None, [winner_note(s.label, s.frontier)])
        method.append(f"{s.label}: {s.aggregated_layouts} aggregated layouts" + (f" and {s.pool_pairs} disaggregated pool pairs"
                      if s.pool_pairs else "") + f" x their concurrency grids swept, {len(s.frontier)} points on the frontier.")
        if sram.is_sram(s.deployed.scenario.hardware):
            method += sram.explain(s.deployed.scenario, inp + out)
        if uncertainty.measured(s.deployed.scenario) is False:
            unmeasured.append(s.label)
    if not done:
        raise DoesNotFitError(f"{opts.common.model} does not fit on any of {', '.join(gpus)} at {inp + out} tokens per request")
    if unmeasured:
        notes.append(f"Efficiency borrowed from the measured families (the family never measured, or measured only "
                     f"under other engine builds; the widest 80% range): {', '.join(unmeasured)}.")
    if skipped:
        notes.append(f"Skipped, {opts.common.model} fits no layout at {inp + out} tokens per request: {', '.join(skipped)}.")
    return done, notes, method


def premium(rows: list[dict[str, Any]]) -> list[str]:
    """Set each row's speed premium over the cheapest point (tokecon.serving.sram.speed_premium) and say
    what the fastest point pays for its speed."""
    for row in rows:
        row["speed_premium_usd_per_mtok_per_tok_s"] = None
    priced = [r for r in rows if r.get("usd_per_mtok") is not None and r.get("tok_s_per_user") is not None]
    if not priced:
        return []
    base = min(priced, key=lambda r: r["usd_per_mtok"])
    values = sram.speed_premium(np.asarray([r["usd_per_mtok"] for r in priced]), np.asarray([r["tok_s_per_user"] for r in priced]),
                                base["usd_per_mtok"], base["tok_s_per_user"])
    for row, v in zip(priced, values):
        row["speed_premium_usd_per_mtok_per_tok_s"] = float(v) if np.isfinite(v) else None
    fast = max(priced, key=lambda r: r["tok_s_per_user"])
    if fast is base:
        return []
    return [f"Speed premium: the fastest point, {fast['device']} {fast['layout']}, serves {fast['tok_s_per_user']:,.0f} tok/s per "
            f"user for {fast['usd_per_mtok'] / base['usd_per_mtok']:,.1f}x the cheapest point's price "
            f"({base['tok_s_per_user']:,.1f} tok/s per user); each extra tok/s per user costs "
            f"{fast['speed_premium_usd_per_mtok_per_tok_s']:,.4f} USD/Mtok."]


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


def answers(done: list[DeviceSweep], inputs: dict[str, Any], rank_by: str) -> tuple[Result, dict[str, Any] | None]:
    """Per device the best point meeting the SLO (cheapest, or by ``--rank-by``), as a table to show
    before the frontier, and the best of all."""
    picks = {s.label: s.best for s in done if s.best is not None}
    top = best(list(picks.values()), rank_by) if picks else None
    rows = [{**picks[s.label], "violations": []} if s.label in picks else {"device": s.label, "layout": "no point meets the SLO"}
            for s in done]
    highlight = {i for i, r in enumerate(rows) if top is not None and r.get("device") == top["device"] and s_is(r, top)}
    words, title = _RANK_WORDS[rank_by]
    table = Result(f"frontier: {title} meeting the SLO, per device", inputs, rows, ANSWER_COLUMNS, group_key=None,
                   highlight=highlight, highlight_reason=f"{words} meeting the SLO")
    return table, top


def s_is(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same operating point (answers copy rows)."""
    return all(a.get(k) == b.get(k) for k in ("device", "layout", "concurrency"))


def run(o: Any, limits: Thresholds, progress: Progress | None = None) -> Result:
    """``tokecon frontier``: tokecon.api.commands.FrontierOptions."""
    opts = serving_request(o, o.mode)
    catalog = opts.common.load()
    inp, out = o.input_len, o.output_len
    check_workload(catalog.models.get(o.model), inp, out)
    has_slo = any(v is not None for v in limits.__dict__.values())
    done, notes, method = sweeps(catalog, opts, list(o.gpus), inp, out, limits if has_slo else None, progress, o.rank_by)
    rows = [r for s in done for r in s.frontier]
    deployed = [s.deployed for s in done]
    inputs = {
        **resolved_inputs(deployed[0].scenario), "gpus": list(o.gpus), "input_tokens": inp, "output_tokens": out,
        "chunked_prefill_tokens": opts.chunked_prefill, "max_num_tokens": opts.max_num_tokens,
        "schedules_ahead": deployed[0].scenario.engine.schedules_ahead, "price_split": opts.price_split,
        "mode": opts.layouts,
        "slo": {k: v for k, v in limits.__dict__.items() if v is not None}, "rank_by": o.rank_by,
        "cost": cost_inputs(deployed, opts), **opts.modes.inputs(deployed[0].scenario),
    }
    highlight: set[int] = set()
    preface: list[Result] = []
    lead: list[str] = []
    if has_slo:
        table, top = answers(done, inputs, o.rank_by)
        preface.append(table)
        for s in done:  # a device's answer may lie off the frontier (its TTFT, say): show it too
            pick = next((r for r in table.rows if r.get("device") == s.label and "usd_per_mtok" in r), None)
            if pick is not None and not any(s_is(pick, r) for r in rows):
                rows.append({**pick, "on_frontier": False})
        for row in rows:
            row["slo"] = "; ".join(limits.check(row)) or "ok"
            row["device_best"] = any(s_is(row, r) for r in table.rows if "usd_per_mtok" in r)
        if top is not None:
            highlight.add(next(i for i, r in enumerate(rows) if s_is(r, top)))
            lead.append(f"* {top['device']} {top['layout']} at concurrency {top['concurrency']}: {_RANK_WORDS[o.rank_by][0]} "
                        f"meeting the SLO, {top['usd_per_mtok']:.3g} USD/Mtok blended, {top['tok_s_per_user']:.1f} tok/s per "
                        f"user, {top['output_tok_s_per_gpu']:,.0f} output tok/s per GPU, TTFT {top['ttft_s'] * 1e3:,.0f} ms.")
            lead += interactivity_note(top["device"], top, limits)
        else:
            lead.append("No swept configuration meets the SLO.")
            for row in rows:
                row["violations"] = ["no configuration meets the SLO: " + row["slo"]]
    elif o.rank_by != "usd-per-mtok" and rows:
        top = best(rows, o.rank_by)
        highlight.add(rows.index(top))
        lead.append(f"* {top['device']} {top['layout']} at concurrency {top['concurrency']}: most tok/s per MW on the frontier, "
                    f"{top['tok_s_per_mw']:,.0f}, at {top['tok_s_per_user']:.1f} tok/s per user.")
    method = premium(rows) + method
    notes = lead + crossovers(done) + notes + serving_assumptions(deployed) + opts.scope_note() + limits.blended_note()
    if opts.explain_cost:
        notes += cost_notes(deployed, opts)
    columns = COLUMNS + (REVENUE_COLUMNS if opts.modes.prices is not None else []) + ([Column("slo", "SLO", "str")] if has_slo else [])
    result = Result("frontier", inputs, rows, columns, group_key="device", notes=notes, highlight=highlight, preface=preface,
                    method=method + serving_method(deployed, opts), sources=sources([d.scenario for d in deployed]))
    return varied(result, o, opts.cost, catalog)

