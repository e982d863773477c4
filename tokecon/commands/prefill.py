"""``tokecon prefill``: time to first token, input tok/s and USD per million input tokens."""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.physics import memory
from tokecon.fidelity import uncertainty
from tokecon.commands.common import (
    BOUND_NOTE,
    CommonOptions,
    breakdown_fields,
    cheapest,
    cost_fields,
    efficiency_note,
    fit_or_what_if,
    ignored_rows_note,
    resolved_inputs,
    scenario_inputs,
    sources,
    step_fields,
    unfit_fields,
)
from tokecon.physics.phases import prefill_step
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import check_context, positive_ints
from tokecon.physics.scenario import Scenario

COLUMNS = [
    Column("batch", "batch", "int"),
    Column("ttft_s", "TTFT [ms]", "time"),
    Column("tok_s", "input tok/s", "rate", hide=2),
    Column("tok_s_per_gpu", "tok/s per GPU", "rate"),
    Column("compute_time_s", "compute [ms]", "time", hide=1),
    Column("memory_time_s", "memory [ms]", "time", hide=1),
    Column("weight_read_s", "of which weights [ms]", "time", hide=2),
    Column("comm_time_s", "comm [ms]", "time", hide=1),
    Column("bound", "bound", "str", hide=1),
    Column("memory_used_bytes_per_gpu", "memory/GPU [GB]", "bytes", hide=2),
    Column("usd_per_mtok", "USD/Mtok in", "usd"),
    Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
]

_NUMERIC = (
    "bound", "flop", "bytes", "compute_time_s", "memory_time_s", "comm_time_s", "overhead_s",
    "weight_bytes", "weight_read_s", "ttft_s", "tok_s", "tok_s_per_gpu", "usd_per_mtok", "flop_s_achieved_per_gpu",
)  # fmt: skip


def prefill_rows(scn: Scenario, batches: list[int], input_len: int, explain: bool = False,
                 ignore_memory: bool = False) -> list[dict[str, Any]]:
    """Rows of a prefill of ``batch`` prompts of ``input_len`` tokens, all in one step (with
    ``ignore_memory``, also the batches that do not fit: a what-if)."""
    ctx = np.asarray(float(input_len))
    max_b = int(memory.max_batch(scn, ctx))
    B = np.asarray(batches, dtype=float)
    t = prefill_step(scn, B, np.full_like(B, input_len))
    dep = scn.deployment
    rows = []
    for i, b in enumerate(batches):
        row: dict[str, Any] = {**scenario_inputs(scn), "batch": b, "input_tokens": input_len, "max_batch": max_b}
        row["fits"] = b <= max_b
        row["memory_used_bytes_per_gpu"] = float(memory.memory_used_per_gpu(scn, b, ctx))
        if not row["fits"] and not ignore_memory:
            rows.append({**row, **unfit_fields(_NUMERIC)})
            continue
        if not row["fits"]:
            row["memory_ignored"] = True
        ttft = float(t.latency[i])
        busy = float(t.step_time_s[i])  # with pipeline stages, a stream of batches overlaps
        tok_s = dep.replicas * b * input_len / busy
        row.update(step_fields(t, i))
        if explain:
            row.update(breakdown_fields(t, i))
        row.update(
            ttft_s=ttft,
            tok_s=tok_s,
            tok_s_per_gpu=tok_s / dep.n_gpus,
            flop_s_achieved_per_gpu=float(t.flop[i]) / busy,
            **cost_fields(scn, tok_s),
        )
        rows.append(uncertainty.annotate(row, scn, "prefill"))
    return rows


def run_prefill(opts: CommonOptions, batches: list[int] | None, input_len: int, thresholds: Thresholds,
               explain: bool = False, ignore_memory: bool = False) -> Result:
    catalog = opts.load()
    positive_ints([input_len], "--input-len")
    scns = opts.scenarios(catalog)
    batches = positive_ints(batches, "--batch") if batches else [1]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    highlight: set[int] = set()
    for scn in scns:
        check_context(scn.model, input_len, "--input-len")
        what_if = fit_or_what_if(scn, input_len, ignore_memory)
        these = prefill_rows(scn, batches, input_len, explain, ignore_memory)
        notes += filter(None, [what_if or ignored_rows_note(these)])
        best = cheapest(these)
        if best is not None:
            highlight.add(len(rows) + best)
            r = these[best]
            share = r["compute_time_s"] / max(r["compute_time_s"] + r["memory_time_s"], 1e-30)
            notes.append(
                f"{r['n_gpus']}x{r['hardware']}: prefill is {r['bound']}-bound at batch {r['batch']} "
                f"({share:.0%} of the roofline demand is compute): {r['batch'] * input_len} prompt tokens "
                f"reuse each weight read."
            )
        rows.extend(these)
        notes.append(efficiency_note(scn))
        notes += filter(None, [uncertainty.interval_note(scn, "prefill")])
    inputs = {**resolved_inputs(scns[0]), "gpus": [s.deployment.label for s in scns], "input_tokens": input_len,
              "ignore_memory": ignore_memory}
    notes.append(BOUND_NOTE)
    result = Result("prefill", inputs, rows, COLUMNS, notes=notes, highlight=highlight, sources=sources(scns))
    return thresholds.apply(result)
