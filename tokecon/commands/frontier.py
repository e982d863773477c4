"""``tokecon frontier``: the Pareto frontier of output tok/s per GPU against tok/s per user.

For each device configuration every layout (TP degrees with the rest as replicas; for MoE models
attention-DP with each EP size) is served at a geometric grid of concurrencies up to the most
that run at once, by KV admission and the engine's cap (:func:`tokecon.serving.serve`, one
vectorised call per layout). The points
no other point beats on both axes form the frontier, as SemiAnalysis' InferenceMAX plots it.
With an SLO (interactivity floor, TTFT or TPOT ceiling, price or throughput limit) the cheapest
point of the whole sweep that meets it is named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon import serving, uncertainty
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
    requested_layout,
    split_note,
)
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.scenario import check_context, parse_gpus, positive_ints

COLUMNS = [
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
]


def sweep(opts: ServeOptions, catalog, spec, input_len: int, output_len: int) -> list[tuple[Deployed, serving.ServingTimes]]:
    """Every fitting layout of one device configuration, each at its concurrency grid."""
    model = catalog.models.get(opts.common.model)
    context = input_len + output_len
    asked = requested_layout(opts, spec, model.is_moe, model.key)
    layouts = [asked] if asked else serving.candidate_layouts(model, spec.count)
    out = []
    for layout in layouts:
        try:
            d = deploy(catalog, opts, spec, context, layout)
        except TokeconError:
            continue  # a layout the model cannot take (heads not divisible, ...)
        scn = d.scenario
        per_unit = int(serving.max_running(scn, input_len, output_len))
        if per_unit < 1:
            continue
        conc = serving.batch_grid(per_unit, 3) * scn.deployment.replicas
        out.append((d, serving.serve(scn, conc, input_len, output_len, opts.chunked_prefill)))
    return out


def run_frontier(opts: ServeOptions, input_len: int, output_len: int, slo: Thresholds) -> Result:
    opts.validate()
    catalog = opts.common.load()
    positive_ints([input_len, output_len], "--input-len/--output-len")
    if output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token)")
    model = catalog.models.get(opts.common.model)
    check_context(model, input_len + output_len, "--input-len + --output-len")
    has_slo = any(v is not None for v in slo.__dict__.values())
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    deployed: list[Deployed] = []
    candidates: list[dict[str, Any]] = []  # every swept point that meets the SLO
    for g in opts.common.gpus:
        spec = parse_gpus(g, catalog)
        results = sweep(opts, catalog, spec, input_len, output_len)
        if not results:
            notes.append(f"{spec.label}: {model.key} does not fit in any layout at {input_len + output_len} tokens per request.")
            continue
        x = np.concatenate([st.tok_s_per_user for _, st in results])
        y = np.concatenate([st.output_tok_s_per_gpu for _, st in results])
        keep = serving.pareto_mask(x, y)
        offsets = np.cumsum([0] + [st.concurrency.size for _, st in results])
        device_rows: list[dict[str, Any]] = []
        for k, (d, st) in enumerate(results):
            on = keep[offsets[k]:offsets[k + 1]]
            swept = list(range(st.concurrency.size)) if has_slo else [int(i) for i in np.flatnonzero(on)]
            for i, row in zip(swept, point_rows(d, st, opts.price_split, swept)):
                row["device"] = spec.label
                row["on_frontier"] = bool(on[i])
                if has_slo and row["fits"] and not slo.check(row):
                    candidates.append(row)
                if row["on_frontier"]:
                    device_rows.append(row)
        deployed.append(results[0][0])
        device_rows.sort(key=lambda r: (r["tok_s_per_user"], -r["output_tok_s_per_gpu"]))
        rows += device_rows
        notes.append(f"{spec.label}: {len(results)} layouts x their concurrency grids swept, "
                     f"{len(device_rows)} points on the frontier.")
        notes.append(efficiency_note(results[0][0].scenario))
        if uncertainty.measured(results[0][0].scenario) is False:
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
            if row["device"] not in answers or row["usd_per_mtok"] < answers[row["device"]]["usd_per_mtok"]:
                answers[row["device"]] = row
        for answer in answers.values():
            answer["device_best"] = True
            if not any(r is answer for r in rows):  # meets the SLO but lies off the frontier (its TTFT, say): show it too
                answer["slo"] = "ok"
                rows.append(answer)
        if answers:
            best = min(answers.values(), key=lambda r: r["usd_per_mtok"])
            highlight.add(next(i for i, r in enumerate(rows) if r is best))
            notes.append(
                f"Cheapest meeting the SLO: {best['device']} {best['layout']} at concurrency {best['concurrency']}: "
                f"{best['tok_s_per_user']:.1f} tok/s per user, {best['output_tok_s_per_gpu']:.0f} output tok/s per GPU, "
                f"TTFT {best['ttft_s'] * 1e3:.0f} ms, {best['usd_per_mtok']:.3f} USD/Mtok blended "
                f"({best['usd_per_mtok_output']:.3f} out)."
            )
            notes.extend(interactivity_note(best["device"], best, slo))
        else:
            notes.append("No swept configuration meets the SLO.")
            for row in rows:
                row["violations"] = ["no configuration meets the SLO: " + row["slo"]]
    notes.extend(slo.blended_note())
    notes.append(model_note(deployed[0].scenario, opts.chunked_prefill))
    notes.append(split_note(opts.price_split))
    if opts.explain_cost:
        notes.extend(cost_notes(deployed, opts))
    columns = COLUMNS + ([Column("slo", "SLO", "str")] if has_slo else [])
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": list(opts.common.gpus),
        "input_tokens": input_len,
        "output_tokens": output_len,
        "chunked_prefill_tokens": opts.chunked_prefill,
        "price_split": opts.price_split,
        "slo": {k: v for k, v in slo.__dict__.items() if v is not None},
        "cost": cost_inputs(deployed, opts),
    }
    return Result("frontier", inputs, rows, columns, group_key="device", notes=notes, highlight=highlight,
                  sources=sources([d.scenario for d in deployed]))


ANSWER_COLUMNS = [
    Column("device", "devices", "str"),
    Column("layout", "layout", "str"),
    Column("concurrency", "concurrency", "int"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate"),
    Column("ttft_s", "TTFT [ms]", "time", hide=1),
    Column("usd_per_mtok_output", "USD/Mtok out", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
]


def answers(result: Result) -> Result | None:
    """The answer before the long tables: per device, the cheapest point meeting the SLO and its price
    (None without an SLO)."""
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
    return Result("frontier: the cheapest point meeting the SLO, per device", result.inputs, rows, ANSWER_COLUMNS,
                  group_key=None, notes=notes, highlight=highlight, highlight_reason="cheapest meeting the SLO")
