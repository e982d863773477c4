"""``tokecon decode``: time per output token, throughput and USD/Mtok at each batch size."""

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
    weights_per_gpu_gb,
)
from tokecon.physics.phases import decode_step
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import check_context, positive_ints
from tokecon.physics.scenario import Scenario

COLUMNS = [
    Column("batch", "batch", "int"),
    Column("step_time_s", "time/token [ms]", "time"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("tok_s_per_gpu", "tok/s per GPU", "rate"),
    Column("tok_s", "total tok/s", "rate", hide=2),
    Column("bound", "bound", "str", hide=1),
    Column("memory_used_bytes_per_gpu", "memory/GPU [GB]", "bytes", hide=1),
    Column("usd_per_mtok", "USD/Mtok out", "usd"),
    Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
]

_NUMERIC = (
    "bound", "flop", "bytes", "compute_time_s", "memory_time_s", "comm_time_s", "overhead_s",
    "weight_bytes", "weight_read_s", "step_time_s", "tpot_s", "tok_s", "tok_s_per_gpu", "tok_s_per_user", "usd_per_mtok",
)  # fmt: skip


def default_batches(max_b: int) -> list[int]:
    """Powers of two from 1 up to the largest batch that fits, plus that batch."""
    out = [1 << i for i in range(0, 31) if (1 << i) <= max_b]
    if max_b not in out:
        out.append(max_b)
    return out


def decode_rows(scn: Scenario, batches: list[int], context: int, explain: bool = False,
                ignore_memory: bool = False) -> list[dict[str, Any]]:
    """Rows of one decode step at each batch size (with ``ignore_memory``, also the batches that do
    not fit: a what-if)."""
    ctx = np.asarray(float(context))
    max_b = int(memory.max_batch(scn, ctx))
    B = np.asarray(batches, dtype=float)
    t = decode_step(scn, B, np.full_like(B, context))
    dep = scn.deployment
    rows = []
    for i, b in enumerate(batches):
        row: dict[str, Any] = {**scenario_inputs(scn), "batch": b, "context_tokens": context, "max_batch": max_b}
        row["fits"] = b <= max_b
        row["memory_used_bytes_per_gpu"] = float(memory.memory_used_per_gpu(scn, b, ctx))
        if not row["fits"] and not ignore_memory:
            rows.append({**row, **unfit_fields(_NUMERIC)})
            continue
        if not row["fits"]:
            row["memory_ignored"] = True
        step = float(t.step_time_s[i])
        tok_s = dep.replicas * b / step
        row.update(step_fields(t, i))
        if explain:
            row.update(breakdown_fields(t, i))
        row.update(
            step_time_s=step,
            tpot_s=step,
            tok_s=tok_s,
            tok_s_per_gpu=tok_s / dep.n_gpus,
            tok_s_per_user=1.0 / step,
            **cost_fields(scn, tok_s),
        )
        rows.append(uncertainty.annotate(row, scn, "decode"))
    return rows


def why_cheapest(scn: Scenario, rows: list[dict[str, Any]], best: int) -> str:
    """One sentence on why the cheapest row is cheapest."""
    row = rows[best]
    fitting = [r for r in rows if (r["fits"] or r.get("memory_ignored")) and r["hardware"] == row["hardware"] and r["n_gpus"] == row["n_gpus"]]
    mem_bound = [r["batch"] for r in fitting if r["bound"] == "memory"]
    weights = weights_per_gpu_gb(scn)
    head = f"{row['n_gpus']}x{row['hardware']} cheapest at batch {row['batch']}"
    if row["bound"] == "memory":
        reason = f"memory-bound up to batch {max(mem_bound)}: each step re-reads {weights:.1f} GB of weights per GPU"
        if row["batch"] == row["max_batch"]:
            reason += f", and batch {row['max_batch']} is the largest whose {row['context_tokens']}-token KV cache fits"
        return f"{head}: {reason}, so more sequences per step share that read."
    if row["bound"] == "compute":
        lead = (f"memory-bound up to batch {max(mem_bound)} (each step re-reads {weights:.1f} GB of weights per GPU, "
                "so batching cut the cost per token), " if mem_bound else "")
        return f"{head}: {lead}compute-bound from there on, where larger batches no longer cut it."
    return f"{head}: communication-bound; the all-reduces between GPUs dominate each step."


def run_decode(opts: CommonOptions, batches: list[int] | None, context: int, thresholds: Thresholds,
               explain: bool = False, ignore_memory: bool = False) -> Result:
    catalog = opts.load()
    positive_ints([context], "--context")
    scns = opts.scenarios(catalog)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    highlight: set[int] = set()
    for scn in scns:
        check_context(scn.model, context)
        what_if = fit_or_what_if(scn, context, ignore_memory)
        max_b = int(memory.max_batch(scn, np.asarray(float(context))))
        chosen = positive_ints(batches, "--batch") if batches else default_batches(max(max_b, 1))
        these = decode_rows(scn, chosen, context, explain, ignore_memory)
        notes += filter(None, [what_if or ignored_rows_note(these)])
        best = cheapest(these)
        if best is not None:
            highlight.add(len(rows) + best)
            notes.append(why_cheapest(scn, these, best))
        rows.extend(these)
        notes.append(efficiency_note(scn))
        notes += filter(None, [uncertainty.interval_note(scn, "decode")])
    inputs = {**resolved_inputs(scns[0]), "gpus": [s.deployment.label for s in scns], "context_tokens": context,
              "ignore_memory": ignore_memory}
    notes.append(BOUND_NOTE)
    result = Result("decode", inputs, rows, COLUMNS, notes=notes, highlight=highlight, sources=sources(scns))
    return thresholds.apply(result)
