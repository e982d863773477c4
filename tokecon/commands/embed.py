"""``tokecon embed``: why embeddings are so cheap.

An embedding is one forward pass over the whole input with no LM head: a prefill whose
output is pooled hidden states instead of logits. Per sequence of S tokens

    FLOP  = 2 * P_nonembed * S + attention      P_nonembed: every matmul weight (no head)
    attention = 2 * L * H * (d_qk + d_v) * pairs  pairs = S(S+1)/2 causal (Qwen3-Embedding),
                                                  S^2 bidirectional (BERT/BGE encoders)

and the weights are read once per batch, so from batch 1 the pass is compute-bound and the
price is set by FLOP/s per USD/h (Tensor Economics, "Why are embeddings so cheap?", 2025-09-24).

Assumes: the engine keeps the batch's K/V in its cache pool while the pass runs (as SGLang
does), so a batch fits when weights + K/V do; the hourly price is paid at ``utilization``.

Worked number: qwen3-embedding-8b, S = 1024: 2 x 6.95e9 x 1024 = 14.2 TFLOP of matmuls
+ 0.31 TFLOP of causal attention = 14.5 TFLOP per sequence (Tensor Economics: 16.4 with
Llama's 25.5 h^2 per layer and full S^2 attention); at 750 TFLOP/s that is 19 ms of compute
against 15.1 GB / 3.3 TB/s = 4.6 ms of weight reading.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.physics import memory
from tokecon.physics import params
from tokecon.fidelity import uncertainty
from tokecon.commands.common import (BOUND_NOTE, assumptions, cheapest, dated_prices, device_request, figures_of_merit,
                                     method_notes, resolved_inputs, scenario_inputs, sources, step_fields, unfit_fields)
from tokecon.economics.costs import MIN_UTILISATION
from tokecon.errors import TokeconError
from tokecon.physics.phases import prefill_step
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.resolve import check_context, require_fit
from tokecon.values import positive_ints
from tokecon.physics.specs import Model
from tokecon.physics.scenario import Scenario
from tokecon.units import GB, TFLOP

DEFAULT_SEQ_LEN = 1024

COLUMNS = [
    Column("batch", "batch [seq]", "int"),
    Column("batch_time_s", "time/batch [ms]", "time"),
    Column("embeddings_s", "embeddings/s", "rate", hide=1),
    Column("tok_s", "tok/s", "rate"),
    Column("bound", "bound", "str", hide=1),
    Column("flop_s_achieved_per_gpu", "TFLOP/s per GPU", "flop", hide=2),
    Column("flop_s_achieved_per_usd_per_hour", "achieved TFLOP/s per USD/h", "flop", hide=1),
    Column("memory_used_bytes_per_gpu", "memory/GPU [GB]", "bytes", hide=2),
    Column("usd_per_mtok", "USD/Mtok", "usd"),
]

_NUMERIC = (
    "bound", "flop", "bytes", "compute_time_s", "memory_time_s", "comm_time_s", "overhead_s",
    "batch_time_s", "ttft_s", "embeddings_s", "tok_s", "tok_s_per_gpu", "flop_per_seq",
    "flop_s_achieved_per_gpu", "flop_s_achieved_per_usd_per_hour", "usd_per_hour", "usd_per_mtok",
)  # fmt: skip


def embedding_model(model: Model) -> Model:
    """The model as an embedding pass runs it: no LM head is computed or held in memory
    (pooling reads the last hidden states)."""
    return dataclasses.replace(model, lm_head=False) if model.lm_head else model


def embedding_scenario(scn: Scenario) -> Scenario:
    return dataclasses.replace(scn, model=embedding_model(scn.model))


def check_utilization(utilization: float) -> float:
    if not (isinstance(utilization, (int, float)) and math.isfinite(utilization) and MIN_UTILISATION <= utilization <= 1):
        raise TokeconError(f"--utilization must be a fraction from {MIN_UTILISATION:g} to 1, e.g. 0.1 for 10%, got {utilization!r}")
    return float(utilization)


def default_seq_len(model: Model) -> int:
    return min(DEFAULT_SEQ_LEN, model.max_context)


def embed_rows(scn: Scenario, batches: list[int], seq_len: int, utilization: float = 1.0) -> list[dict[str, Any]]:
    """Rows of one embedding pass over ``batch`` sequences of ``seq_len`` tokens, per batch size.

    ``scn`` must already be an embedding scenario (:func:`embedding_scenario`).
    """
    dep = scn.deployment
    ctx = np.asarray(float(seq_len))
    max_b = int(memory.max_batch(scn, ctx))
    B = np.asarray(batches, dtype=float)
    t = prefill_step(scn, B, np.full_like(B, float(seq_len)))
    step = t.step_time_s  # GPU time per batch (pipeline stages overlap batches); t.latency until it is done
    emb_s = dep.replicas * B / step
    tok_s = emb_s * seq_len
    usd_mtok = economics.usd_per_mtok(scn.usd_per_hour / utilization, tok_s)
    achieved = t.flop / step  # per GPU
    merit = figures_of_merit(scn)
    used = memory.memory_used_per_gpu(scn, B, ctx)
    rows = []
    for i, b in enumerate(batches):
        row: dict[str, Any] = {**scenario_inputs(scn), "batch": b, "seq_len_tokens": seq_len, "max_batch": max_b}
        row["fits"] = b <= max_b
        row["memory_used_bytes_per_gpu"] = float(used[i])
        row["utilization"] = utilization
        row.update(merit)
        if not row["fits"]:
            rows.append({**row, **unfit_fields(_NUMERIC)})
            continue
        row.update(step_fields(t, i))
        usd_gpu_h = merit["usd_per_gpu_hour"]
        row.update(
            batch_time_s=float(step[i]),
            ttft_s=float(step[i]),
            embeddings_s=float(emb_s[i]),
            tok_s=float(tok_s[i]),
            tok_s_per_gpu=float(tok_s[i]) / dep.n_gpus,
            flop_per_seq=float(t.flop[i]) * dep.tp / b,
            flop_s_achieved_per_gpu=float(achieved[i]),
            flop_s_achieved_per_usd_per_hour=float(achieved[i]) / usd_gpu_h if usd_gpu_h > 0 else math.inf,
            usd_per_hour=scn.usd_per_hour,
            usd_per_mtok=float(usd_mtok[i]),
        )
        rows.append(uncertainty.annotate(row, scn, "prefill"))
    return rows


def why_cheap(scn: Scenario, rows: list[dict[str, Any]], seq_len: int) -> str | None:
    """One sentence: FLOP per sequence, compute against weight reading at batch 1, the merit figure."""
    fitting = [r for r in rows if r["fits"]]
    if not fitting:
        return None
    first = fitting[0]
    m, dep = scn.model, scn.deployment
    matmul = 2.0 * params.matmul_params_per_token(m)
    weights = memory.weight_bytes_per_gpu(m, scn.precision, dep)
    read_s = weights / (scn.hardware.memory_bw_b_s * scn.memory_bw_efficiency)
    compute_s = first["compute_time_s"]
    attn = "causal" if m.causal else "bidirectional"
    return (
        f"{dep.n_gpus}x{scn.hardware.key}: {first['flop_per_seq'] / TFLOP:.2f} TFLOP per {seq_len}-token sequence "
        f"({matmul / 1e9:.2f} GFLOP per token through the weights + {attn} attention, no LM head); "
        f"at batch {first['batch']} that is {compute_s * 1e3:.2f} ms of compute against {read_s * 1e3:.2f} ms to read "
        f"{weights / GB:.1f} GB of weights per GPU, so the pass is {first['bound']}-bound"
        + (f" and the price follows FLOP/s per USD/h: this device offers {first['flop_s_per_usd_per_hour'] / TFLOP:.0f} "
           f"TFLOP/s per USD/h achievable ({first['device_flop_s'] / TFLOP:.0f} TFLOP/s at {first['usd_per_gpu_hour']:.2f} USD/h)."
           if first["bound"] == "compute" else
           f" and the price follows B/s per USD/h ({first['bytes_s_per_usd_per_hour'] / 1e9:,.0f} GB/s per USD/h achievable).")
    )


def utilization_note(utilization: float, given: bool) -> str:
    if not given:
        return ("USD/Mtok at 100% utilization (the default): every paid hour is spent embedding; pass --utilization 0.1 "
                "to price devices that sit idle 90% of the time.")
    return f"USD/Mtok at {utilization:.0%} utilization: the hourly price is spread over {utilization:.0%} of the tokens the devices could embed."


def run(o: Any, limits: Thresholds) -> Result:
    """``tokecon embed``: tokecon.api.commands.EmbedOptions."""
    request = device_request(o)
    catalog = request.load()
    util = check_utilization(1.0 if o.utilization is None else o.utilization)
    scns = [embedding_scenario(s) for s in request.scenarios(catalog)]
    length = default_seq_len(scns[0].model) if o.seq_len is None else positive_ints([o.seq_len], "--seq-len")[0]
    chosen = positive_ints(o.batch, "--batch") if o.batch else [1]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    method: list[str] = []
    highlight: set[int] = set()
    for scn in scns:
        check_context(scn.model, length, "--seq-len")
        require_fit(scn, length)
        these = embed_rows(scn, chosen, length, util)
        best = cheapest(these)
        if best is not None:
            highlight.add(len(rows) + best)
            r = these[best]
            notes.append(f"* {r['n_gpus']}x{r['hardware']} at batch {r['batch']}: {r['usd_per_mtok']:.3g} USD/Mtok embedded, "
                         f"the cheapest; {r['bound']}-bound, so its price follows "
                         + ("FLOP/s per USD/h." if r["bound"] == "compute" else "memory B/s per USD/h."))
        method += filter(None, [why_cheap(scn, these, length)])
        rows.extend(these)
    notes += assumptions(scns, dated_prices(o, scns))
    if o.utilization is not None:
        notes.append(utilization_note(util, True))
    inputs = {
        **resolved_inputs(scns[0]),
        "gpus": [s.deployment.label for s in scns],
        "seq_len_tokens": length,
        "utilization": util,
        "attention": "causal" if scns[0].model.causal else "bidirectional",
    }
    method += [utilization_note(util, o.utilization is not None)] + method_notes(scns, "prefill") + [BOUND_NOTE]
    result = Result("embed", inputs, rows, COLUMNS, notes=notes, highlight=highlight, sources=sources(scns), method=method)
    return limits.apply(result)
