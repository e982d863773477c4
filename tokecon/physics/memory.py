"""What a device holds: weights, KV cache and a stated framework reserve; the largest batch that fits.

    usable   = capacity * (1 - f) - R - R_r * ranks  f: engine's memory_reserve_fraction (vLLM's
                                                      1 - gpu_memory_utilization = 0.1, SGLang 0.4's
                                                      1 - mem_fraction_static); R: a fixed reserve
                                                      (activations at the token budget, CUDA graphs,
                                                      workspace); R_r per GPU of the TP x PP group
                                                      (SGLang 0.5: 9.5 + P/2 GB on H100)
    KV room  = (usable - weights) * k                k: kv_free_fraction, the share of what is left
                                                      that becomes KV cache (TensorRT-LLM's
                                                      free_gpu_memory_fraction = 0.9 of the memory
                                                      free after loading; 1 elsewhere)
    weights  = weight_bytes / tp * ceil(L/pp)/L       (tensor parallel; the busiest pipeline stage)
             = routed experts / ep + the rest         (expert parallel, attention data parallel)
    kv/seq   = context * KV bytes per token * share   GQA: ceil(K/tp)/K of it; MLA latent is replicated;
                                                      / pp (each stage holds its layers' cache)
    max batch per TP group (or per GPU under attention-DP) = floor(KV room / kv/seq)

Memory tiers (hardware.toml ``memory_tiers``: Cerebras MemoryX, SambaNova DDR): capacity adds up
over the tiers; weights are placed fastest tier first, and the KV cache in the first tier with room
left (:func:`tier_placement`).

Worked number: llama3-70b bf16 on 4x H100 (labelled 80 GB; the driver reports 79.6 GiB = 85.5 GB):
weights 141.1 GB / 4 = 35.3 GB per GPU; usable 85.5 x 0.9 = 76.9 GB; KV 671 MB / 4 per 2048-token
sequence -> (76.9 - 35.3) / 0.168 = 248 sequences.
"""

from __future__ import annotations

import math
import numpy as np

from tokecon.physics import params
from tokecon.physics.specs import Deployment, Model, Precision
from tokecon.physics.scenario import Scenario
from tokecon.units import dtype_bytes


def reserve_bytes(scn: Scenario) -> float:
    """What the engine keeps back on each GPU from weights and KV cache: capacity x f + R + R_r x ranks
    (module docstring), at most the capacity."""
    e, dep = scn.engine, scn.deployment
    ranks = dep.tp * dep.pp
    held = scn.hardware.memory_bytes * e.memory_reserve_fraction + e.memory_reserve_bytes + e.memory_reserve_bytes_per_rank * ranks
    return min(held, scn.hardware.memory_bytes)


def usable_bytes(scn: Scenario) -> float:
    """Capacity the engine lets weights and KV cache use: capacity less the engine's reserve, plus the
    slower memory tiers' capacity."""
    hw = scn.hardware
    return hw.memory_bytes - reserve_bytes(scn) + sum(t.capacity_bytes for t in hw.memory_tiers)


def _tiers(scn: Scenario) -> list[tuple[float, float]]:
    """(capacity, B/s) of each memory tier of one device, fastest first; the first after the reserve."""
    hw = scn.hardware
    return [(hw.memory_bytes - reserve_bytes(scn), hw.memory_bw_b_s)] + [
        (t.capacity_bytes, t.bw_b_s) for t in hw.memory_tiers]


def kv_read_bw_b_s(scn: Scenario, resident_kv_bytes: np.ndarray) -> np.ndarray:
    """B/s at which one device reads a KV cache of ``resident_kv_bytes`` (vectorised): the cache
    fills the room the weights leave, fastest tier first, and the tiers stream at once:
    K / max_i(K_i / bw_i). Without tiers, the device's bandwidth."""
    hw = scn.hardware
    kv = np.asarray(resident_kv_bytes, dtype=float)
    if not hw.memory_tiers:
        return np.full(kv.shape, hw.memory_bw_b_s)
    parts = tier_placement(scn)[2]
    left, read_s = kv, np.zeros_like(kv)
    for (cap, bw), w in zip(_tiers(scn), parts):
        part = np.minimum(left, max(cap - w, 0.0))
        read_s = np.maximum(read_s, part / bw)
        left = left - part
    read_s = np.maximum(read_s, left / _tiers(scn)[-1][1])  # beyond every tier (does not fit): the slowest
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(kv > 0, kv / np.maximum(read_s, 1e-30), hw.memory_bw_b_s)


def tier_placement(scn: Scenario) -> tuple[float, float, list[float]]:
    """(B/s at which one device reads its weights, B/s of the first tier with room for the KV cache,
    weight bytes per tier) with the weights placed fastest tier first.

    Tier i holds W_i of the device's weights W; the tiers stream at once (Cerebras weight streaming
    overlaps the MemoryX stream with on-wafer compute), so one read of all weights takes
    max_i(W_i / bw_i), an effective W / max_i(W_i / bw_i). The KV cache fills the room left after
    the weights (:func:`kv_read_bw_b_s`). Without tiers both are the device's own bandwidth.
    Worked number: llama3-70b bf16 (141 GB) on one CS-3 (44 GB SRAM x 0.9 usable = 39.6 GB at
    21 PB/s, MemoryX at 0.15 TB/s): 101.5 GB / 150 GB/s = 0.68 s per read, 208 GB/s effective.
    """
    hw = scn.hardware
    w = weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment)
    tiers = _tiers(scn)
    left, read_s, parts, kv_bw = w, 0.0, [], None
    for cap, bw in tiers:
        part = min(left, cap)
        parts.append(part)
        read_s = max(read_s, part / bw)
        left -= part
        if kv_bw is None and part < cap:
            kv_bw = bw
    weights_bw = w / read_s if read_s > 0 else hw.memory_bw_b_s
    return weights_bw, kv_bw if kv_bw is not None else tiers[-1][1], parts


def weight_bytes_per_gpu(model: Model, precision: Precision, dep: Deployment) -> float:
    """Weights one GPU holds: all of them / (tp x pp); under expert parallelism the routed experts
    / ep and the rest (attention, shared experts, dense layers) replicated, / pp."""
    total = params.weight_bytes(model, precision)
    if dep.ep > 1 or dep.attention_dp:
        experts = params.routed_expert_params_total(model) * dtype_bytes(precision.expert_weights)
        return ((total - experts) + experts / max(dep.ep, 1)) * model.stage_share(dep.pp)
    return total / dep.tp * model.stage_share(dep.pp)


def kv_share(model: Model, dep: Deployment) -> float:
    """Fraction of a sequence's KV cache one GPU of its group holds: all of an MLA latent (replicated on every
    TP rank) or under attention-DP, else its share of the cached heads."""
    if (model.is_mla and model.mla_cache == "latent") or dep.attention_dp:
        return 1.0
    heads = model.heads if model.is_mla else model.kv_heads  # an expanded MLA cache holds every query head's key
    return math.ceil(heads / dep.tp) / heads


def kv_bytes_per_seq_per_gpu(model: Model, precision: Precision, dep: Deployment, context: np.ndarray) -> np.ndarray:
    """KV bytes one sequence of ``context`` tokens needs on each GPU of its group.

    Windowed layers hold at most ``sliding_window`` tokens.
    """
    return params.kv_bytes_per_sequence(model, precision.kv_cache, context) * kv_share(model, dep) * model.stage_share(dep.pp)


def extra_weight_bytes_per_gpu(scn: Scenario) -> float:
    """Bytes the serving modes hold on each GPU beside the model (a speculative draft's weights,
    resident LoRA adapters): :attr:`Scenario.contributions`."""
    return sum(c.extra_weight_bytes_per_gpu(scn) for c in scn.contributions)


def kv_bytes_per_seq_all(scn: Scenario, context: np.ndarray) -> np.ndarray:
    """Bytes per running sequence per GPU: the target's KV cache and what the modes add (a draft's
    KV cache, a swapped-in adapter)."""
    kv = kv_bytes_per_seq_per_gpu(scn.model, scn.precision, scn.deployment, context)
    for c in scn.contributions:
        kv = kv + c.extra_kv_bytes_per_seq(scn, context)
    return kv


def max_batch(scn: Scenario, context: np.ndarray) -> np.ndarray:
    """Largest number of sequences of ``context`` tokens whose KV cache fits (0 when none); a
    speculative draft's weights and KV cache count too; LoRA adapters held on the GPU take their
    room first, and a swapped-in adapter sits beside its request."""
    free = usable_bytes(scn) - weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment) - extra_weight_bytes_per_gpu(scn)
    kv = kv_bytes_per_seq_all(scn, context)
    return np.maximum(np.floor(free * scn.engine.kv_free_fraction / np.maximum(kv, 1e-9)), 0).astype(np.int64)


def memory_used_per_gpu(scn: Scenario, batch: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Weights (with a draft's and resident LoRA adapters) + KV of ``batch`` sequences + reserve, per GPU, in bytes."""
    w = weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment) + extra_weight_bytes_per_gpu(scn)
    kv = kv_bytes_per_seq_all(scn, context)
    return w + np.asarray(batch, dtype=float) * kv + reserve_bytes(scn)
