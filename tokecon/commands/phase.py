"""``tokecon decode`` and ``tokecon prefill``: one phase of inference at each batch size, its time,
throughput, what bounds it and USD per million tokens (output tokens for decode, input for prefill).

The two are one view of a roofline step (:mod:`tokecon.physics.phases`) that differs only in what a
sequence adds per step (one token, or its whole prompt), which time a user sees (the step, or the
prompt's latency across pipeline stages) and its default batches.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tokecon.commands.common import (
    BOUND_NOTE,
    assumptions,
    breakdown_fields,
    breakdown_result,
    cheapest,
    cost_fields,
    dated_prices,
    device_request,
    fit_or_what_if,
    ignored_rows_note,
    method_notes,
    resolved_inputs,
    scenario_inputs,
    sources,
    step_fields,
    unfit_fields,
    varied,
    weights_per_gpu_gb,
)
from tokecon.economics.costs import CostModel
from tokecon.fidelity import uncertainty
from tokecon.physics import memory
from tokecon.physics.phases import decode_step, prefill_step
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.resolve import check_context
from tokecon.values import positive_ints, powers_of_two

_STEP = ("bound", "flop", "bytes", "compute_time_s", "memory_time_s", "comm_time_s", "overhead_s", "weight_bytes",
         "weight_read_s", "tok_s", "tok_s_per_gpu", "usd_per_mtok")


@record
class Phase:
    """What distinguishes decode from prefill in the tables (module docstring)."""

    name: str
    length_key: str  # the row key of the length: context_tokens | input_tokens
    length_flag: str
    columns: tuple[Column, ...]
    numeric: tuple[str, ...]  # keys that are None when a batch does not fit
    step: Callable[..., Any]
    default_batches: Callable[[int], list[int]]

    def tokens(self, length: int) -> int:
        """Tokens a sequence adds in one step."""
        return 1 if self.name == "decode" else length


DECODE = Phase("decode", "context_tokens", "--context", (
    Column("batch", "batch", "int"),
    Column("step_time_s", "time/token [ms]", "time"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("tok_s_per_gpu", "tok/s per GPU", "rate"),
    Column("tok_s", "total tok/s", "rate", hide=2),
    Column("bound", "bound", "str", hide=1),
    Column("memory_used_bytes_per_gpu", "memory/GPU [GB]", "bytes", hide=1),
    Column("usd_per_mtok", "USD/Mtok out", "usd"),
    Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
), _STEP + ("step_time_s", "tpot_s", "tok_s_per_user"), decode_step, lambda top: powers_of_two(max(top, 1)))

PREFILL = Phase("prefill", "input_tokens", "--input-len", (
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
), _STEP + ("ttft_s", "flop_s_achieved_per_gpu"), prefill_step, lambda top: [1])


def phase_rows(scn: Scenario, phase: Phase, batches: list[int], length: int, ignore_memory: bool = False,
               breakdown: bool = False) -> list[dict[str, Any]]:
    """One row per batch of one step of ``phase`` at ``length`` tokens (context or prompt); with
    ``ignore_memory`` also the batches that do not fit (a what-if); with ``breakdown`` each row
    carries its operations."""
    ctx = np.asarray(float(length))
    max_b = int(memory.max_batch(scn, ctx))
    B = np.asarray(batches, dtype=float)
    t = phase.step(scn, B, np.full_like(B, length))
    dep = scn.deployment
    rows = []
    for i, b in enumerate(batches):
        row: dict[str, Any] = {**scenario_inputs(scn), "batch": b, phase.length_key: length, "max_batch": max_b,
                               "fits": b <= max_b, "memory_used_bytes_per_gpu": float(memory.memory_used_per_gpu(scn, b, ctx))}
        if not row["fits"] and not ignore_memory:
            rows.append({**row, **unfit_fields(phase.numeric)})
            continue
        if not row["fits"]:
            row["memory_ignored"] = True
        busy = float(t.step_time_s[i])  # with pipeline stages a stream of prefills overlaps
        tok_s = dep.replicas * b * phase.tokens(length) / busy
        row.update(step_fields(t, i), tok_s=tok_s, tok_s_per_gpu=tok_s / dep.n_gpus, **cost_fields(scn, tok_s))
        if phase is DECODE:
            row.update(step_time_s=busy, tpot_s=busy, tok_s_per_user=1.0 / busy)
        else:
            row.update(ttft_s=float(t.latency[i]), flop_s_achieved_per_gpu=float(t.flop[i]) / busy)
        if breakdown:
            row.update(breakdown_fields(t, i))
        rows.append(uncertainty.annotate(row, scn, phase.name))
    return rows


def why(scn: Scenario, phase: Phase, rows: list[dict[str, Any]], best: int) -> str:
    """The answer: the cheapest row, and why it is cheapest."""
    row = rows[best]
    head = f"* {row['n_gpus']}x{row['hardware']} at batch {row['batch']}: {row['usd_per_mtok']:.3g} USD/Mtok"
    weights = weights_per_gpu_gb(scn)
    if phase is PREFILL:
        share = row["compute_time_s"] / max(row["compute_time_s"] + row["memory_time_s"], 1e-30)
        return (f"{head} in, the cheapest: {row['bound']}-bound ({share:.0%} of the roofline demand is compute); "
                f"{row['batch'] * row['input_tokens']:,} prompt tokens reuse each weight read.")
    same = [r for r in rows if (r["fits"] or r.get("memory_ignored")) and r["hardware"] == row["hardware"]
            and r["n_gpus"] == row["n_gpus"]]
    mem_bound = [r["batch"] for r in same if r["bound"] == "memory"]
    if row["bound"] == "memory":
        tail = (f"; the largest batch whose {row['context_tokens']:,}-token KV cache fits"
                if row["batch"] == row["max_batch"] else "")
        return f"{head} out, the cheapest: memory-bound, each step re-reads {weights:.1f} GB of weights per GPU{tail}."
    if row["bound"] == "compute":
        lead = f"memory-bound up to batch {max(mem_bound)}, " if mem_bound else ""
        return f"{head} out, the cheapest: {lead}compute-bound from there, where larger batches no longer cut the cost."
    return f"{head} out, the cheapest: communication-bound; the all-reduces between GPUs dominate each step."


def run_phase(o: Any, limits: Thresholds, phase: Phase) -> Result:
    """The table of ``phase`` for every device configuration of the options ``o``."""
    length = o.context if phase is DECODE else o.input_len
    positive_ints([length], phase.length_flag)
    request = device_request(o)
    catalog = request.load()
    scns = request.scenarios(catalog)
    rows, notes, highlight = [], [], set()
    for scn in scns:
        check_context(scn.model, length, phase.length_flag)
        what_if = fit_or_what_if(scn, length, o.ignore_memory)
        top = int(memory.max_batch(scn, np.asarray(float(length))))
        chosen = positive_ints(o.batch, "--batch") if o.batch else phase.default_batches(top)
        these = phase_rows(scn, phase, chosen, length, o.ignore_memory)
        notes += filter(None, [what_if or ignored_rows_note(these)])
        best = cheapest(these)
        if best is not None:
            these[best] = phase_rows(scn, phase, [chosen[best]], length, o.ignore_memory, breakdown=True)[0]
            highlight.add(len(rows) + best)
            notes.append(why(scn, phase, these, best))
        rows.extend(these)
    notes += assumptions(scns, dated_prices(o, scns))
    inputs = {**resolved_inputs(scns[0]), "gpus": [s.deployment.label for s in scns], phase.length_key: length,
              "ignore_memory": o.ignore_memory}
    result = Result(phase.name, inputs, rows, list(phase.columns), notes=notes, highlight=highlight, sources=sources(scns),
                    method=method_notes(scns, phase.name) + [BOUND_NOTE])
    result.details = [breakdown_result(result)] if highlight else []
    return varied(limits.apply(result), o, CostModel(usd_per_gpu_hour=o.usd_per_gpu_hour), catalog)


def decode(o: Any, limits: Thresholds) -> Result:
    """``tokecon decode``: tokecon.api.commands.DecodeOptions."""
    return run_phase(o, limits, DECODE)


def prefill(o: Any, limits: Thresholds) -> Result:
    """``tokecon prefill``: tokecon.api.commands.PrefillOptions."""
    return run_phase(o, limits, PREFILL)
