"""Speed tiers: SRAM machines (Groq LPU, Cerebras WSE-3) and the price of speed.

An SRAM machine keeps the weights in on-chip SRAM (hardware.toml ``memory_kind = "sram"``):
230 MB per Groq chip at 80 TB/s, 44 GB per Cerebras wafer at 21 PB/s. A model is spread over as
many chips as hold it and pipelined across them (Abts et al., "A Software-defined Tensor Streaming
Multiprocessor for Large-scale Machine Learning", ISCA 2022: weights in the "global memory" of
distributed SRAM; Cerebras: "70B models fit on as few as four systems").

    chips to hold   n >= (W + KV(ctx)) / (C (1 - reserve)), checked on the busiest stage:
                    each chip of a TP t x PP p layout holds W / t x ceil(L/p)/L  (Model.stage_share)
    layout          t divides the heads; p = n / t <= L stages (:func:`pipeline_layouts`)
    latency         one token crosses every stage: sum of the stage times + a hop per stage
                    (phases.pipeline_rounds: L / ceil(L/p) slowest-stage times at batch 1)
    throughput      set by the slowest stage once min(B, p) micro-batches fill the ring
    weight stream   weights beyond the SRAM stream from the next tier (memory.tier_placement):
                    Cerebras MemoryX at 150 GB/s bounds decode once the model exceeds the wafer
    premium         (p - p0) / (s - s0): USD/Mtok paid per extra tok/s per user over the cheapest
                    point (p0, s0) of the comparison (:func:`speed_premium`)

Assumes: every stage holds whole layers; the LM head and embeddings are not counted against a
stage's SRAM (about 1 GB bf16 for a 128k vocabulary, spread over the first and last stage's chips).
Worked number (tests/test_sram.py): llama2-70b int8 on Groq (230 MB, 218 MB after the 5% reserve),
69.5 GB with the bf16 embeddings and head: TP8 x PP80 holds one layer, 109 MB, per chip; TP8 x
PP72 puts 2 layers, 217 MB, on the busiest chips (no room left for KV); the 576-chip system Groq
ran in 2024 fits as TP64 x PP9 (9 layers, 122 MB per chip).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tokecon.physics import memory
from tokecon.physics import params
from tokecon.physics.phases import decode_step
from tokecon.serving.layouts import Layout, divisors
from tokecon.physics.specs import Deployment, Hardware, Model
from tokecon.physics.scenario import Scenario
from tokecon.units import GB

MAX_CHIPS = 100_000
NONE_HOLDS = "no chip count up to 4x the memory bound holds it in any pipeline x TP layout"


def is_sram(hw: Hardware) -> bool:
    return hw.memory_kind == "sram"


def sram_only(hw: Hardware) -> Hardware:
    """The device without its slower tiers: what its SRAM alone holds."""
    return replace(hw, memory_tiers=()) if hw.memory_tiers else hw


def pipeline_layouts(model: Model, n: int) -> list[Layout]:
    """TP t x PP n/t for every t dividing the heads and n, with at most one stage per layer."""
    return [Layout(t, pp=n // t) for t in divisors(n) if model.heads % t == 0 and n // t <= model.layers]


def holds(scn: Scenario, context: float) -> bool:
    """Whether the SRAM alone (no slower tier) holds the weights and one sequence of ``context``."""
    trial = replace(scn, deployment=replace(scn.deployment, hardware=sram_only(scn.hardware)))
    return bool(memory.max_batch(trial, np.asarray([float(context)]))[0] >= 1)


def layouts_that_hold(scn: Scenario, n: int, context: float) -> list[Layout]:
    """The pipeline layouts of ``n`` chips whose SRAM holds the model and one sequence."""
    out = []
    for lay in pipeline_layouts(scn.model, n):
        dep = Deployment(scn.hardware, n, lay.tp, pp=lay.pp)
        if holds(replace(scn, deployment=dep), context):
            out.append(lay)
    return out


def chips_to_hold(scn: Scenario, context: float) -> int | None:
    """Smallest chip count whose SRAM holds the weights and one sequence of ``context`` tokens in
    some pipeline layout, among the counts from the bound ceil((W + KV) / usable) up to 4x it + 64
    (past that the layers and heads, not the memory, are what no layout divides): None when none does.

    The counts with a layout are n = t x p for t dividing the heads and p <= L stages, and for a
    given t what a chip holds only shrinks as p grows (every per-chip term, weights, KV, a draft,
    adapters, scales with the busiest stage's share ceil(L/p)/L), so the fewest stages that hold
    it are found by bisection: a few dozen checks per TP degree instead of a walk over thousands
    of counts, and none at all when even t x L chips of every t are fewer than the bound (a model
    too large for the machine is refused at once)."""
    m, hw = scn.model, scn.hardware
    need = params.weight_bytes(m, scn.precision) + float(params.kv_bytes_per_sequence(m, scn.precision.kv_cache, context))
    per_chip = hw.memory_bytes * (1.0 - scn.engine.memory_reserve_fraction)
    start = max(1, math.ceil(need / per_chip))
    limit = min(MAX_CHIPS, 4 * start + 64)
    best: int | None = None
    for t in divisors(m.heads):
        lo, hi = max(1, -(-start // t)), min(m.layers, limit // t)  # stages p with start <= t x p <= limit
        if best is not None:
            hi = min(hi, (best - 1) // t)  # only a smaller count can improve on the best so far
        if lo > hi or not _holds_layout(scn, t, hi, context):
            continue
        while lo < hi:  # the fewest stages that hold it: holds(hi) is known, find the first p that does
            mid = (lo + hi) // 2
            if _holds_layout(scn, t, mid, context):
                hi = mid
            else:
                lo = mid + 1
        best = t * hi
    return best


def _holds_layout(scn: Scenario, tp: int, pp: int, context: float) -> bool:
    return holds(replace(scn, deployment=Deployment(scn.hardware, tp * pp, tp, pp=pp)), context)


def fastest_layout(scn: Scenario, n: int, context: float) -> Layout | None:
    """Of the layouts of ``n`` chips that hold the model, the one that serves one user fastest (what
    SRAM machines are bought for): least decode time per token at batch 1."""
    best, best_t = None, math.inf
    for lay in layouts_that_hold(scn, n, context):
        trial = replace(scn, deployment=Deployment(scn.hardware, n, lay.tp, pp=lay.pp))
        t = float(decode_step(trial, np.asarray(1.0), np.asarray(float(context))).step_time_s)
        if t < best_t:
            best, best_t = lay, t
    return best


def speed_premium(usd_per_mtok: np.ndarray, tok_s_per_user: np.ndarray, base_usd: float, base_speed: float) -> np.ndarray:
    """USD/Mtok paid per extra tok/s per user over a base point: (p - p0) / (s - s0); NaN where a
    point is not faster than the base. Worked number: 100 tok/s at 2.00 USD/Mtok over 20 tok/s at
    0.40 -> 1.60 / 80 = 0.02 USD/Mtok per tok/s per user."""
    p, s = np.asarray(usd_per_mtok, dtype=float), np.asarray(tok_s_per_user, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > base_speed, (p - base_usd) / (s - base_speed), np.nan)


def _size(b: float) -> str:
    return f"{b / GB:,.1f} GB" if b >= GB else f"{b / 1e6:,.0f} MB"


def explain(scn: Scenario, context: float) -> list[str]:
    """Note lines for an SRAM machine: what holds the model, the pipeline, and any weight streaming."""
    m, hw, dep = scn.model, scn.hardware, scn.deployment
    w = params.weight_bytes(m, scn.precision)
    per_chip = hw.memory_bytes * (1.0 - scn.engine.memory_reserve_fraction)
    need = chips_to_hold(scn, context)
    lines = [
        f"{dep.label}: SRAM machine: {w / GB:.1f} GB of {scn.precision.weights} weights + KV over chips of "
        f"{_size(hw.memory_bytes)} SRAM ({_size(per_chip)} after the {scn.engine.memory_reserve_fraction:.0%} "
        f"reserve): " + (f"at least {need} chips hold it" if need else NONE_HOLDS) + "."
    ]
    one = decode_step(scn, np.asarray(1.0), np.asarray(float(context)))
    floor = float(one.overhead_s)
    if floor > 0.5 * float(one.step_time_s):
        lines.append(
            f"{dep.label}: one user's token takes {float(one.step_time_s) * 1e3:.2f} ms, {floor * 1e3:.2f} ms of it the "
            f"{scn.engine.name}'s per-layer floor ({scn.engine.step_overhead_per_layer_s * 1e6:.1f} us x {m.layers} layers, "
            f"fitted to a published speed); reading the weights from SRAM takes {float(one.memory_time_s) * 1e3:.3f} ms: "
            "latency, not bandwidth, bounds one user.")
    if dep.pp > 1:
        busiest = math.ceil(m.layers / dep.pp)
        lines.append(
            f"{dep.label}: pipeline of {dep.pp} stages x TP{dep.tp}: a token crosses every stage (latency = sum of the stage "
            f"times + {dep.pp} hops of {scn.collective_latency_s * 1e6:.1f} us); throughput is set by the slowest stage "
            f"({busiest} of {m.layers} layers) once {dep.pp} micro-batches are in flight.")
    if hw.memory_tiers:
        parts = memory.tier_placement(scn)[2]
        spilled = [(t, b) for t, b in zip(hw.memory_tiers, parts[1:]) if b > 0]
        for tier, b in spilled:
            lines.append(
                f"{dep.label}: {b / GB:.1f} GB of weights per device exceed the SRAM and stream from {tier.name} at "
                f"{tier.bw_b_s / GB:,.0f} GB/s every step: the external tier bounds decode "
                f"({b / tier.bw_b_s * 1e3:,.0f} ms per read of the weights).")
    return lines
