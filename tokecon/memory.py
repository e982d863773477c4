"""What a device holds: weights, KV cache and a stated framework reserve; the largest batch that fits.

    usable   = capacity * (1 - reserve)              reserve: engine's memory_reserve_fraction
                                                      (activations, CUDA graphs, fragmentation;
                                                      vLLM's default gpu_memory_utilization = 0.9)
    weights  = weight_bytes / (tp * pp)               (tensor parallel, pipeline stages)
             = routed experts / ep + the rest         (expert parallel, attention data parallel)
    kv/seq   = context * KV bytes per token * share   GQA: ceil(K/tp)/K of it; MLA latent is replicated;
                                                      / pp (each stage holds its layers' cache)
    max batch per TP group (or per GPU under attention-DP) = floor((usable - weights) / kv/seq)

Worked number: llama3-70b bf16 on 4x H100 (labelled 80 GB; the driver reports 79.6 GiB = 85.5 GB):
weights 141.1 GB / 4 = 35.3 GB per GPU; usable 85.5 x 0.9 = 76.9 GB; KV 671 MB / 4 per 2048-token
sequence -> (76.9 - 35.3) / 0.168 = 248 sequences.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tokecon import params
from tokecon.modes import lora
from tokecon.specs import Deployment, Model, Precision, Scenario
from tokecon.units import dtype_bytes


def usable_bytes(scn: Scenario) -> float:
    """Capacity the engine lets weights and KV cache use: capacity x (1 - reserve)."""
    return scn.hardware.memory_bytes * (1.0 - scn.engine.memory_reserve_fraction)


def weight_bytes_per_gpu(model: Model, precision: Precision, dep: Deployment) -> float:
    """Weights one GPU holds: all of them / (tp x pp); under expert parallelism the routed experts
    / ep and the rest (attention, shared experts, dense layers) replicated, / pp."""
    total = params.weight_bytes(model, precision)
    if dep.ep > 1 or dep.attention_dp:
        experts = params.routed_expert_params_total(model) * dtype_bytes(precision.expert_weights)
        return ((total - experts) + experts / max(dep.ep, 1)) / dep.pp
    return total / (dep.tp * dep.pp)


def kv_share(model: Model, dep: Deployment) -> float:
    """Fraction of a sequence's KV cache one GPU of its group holds."""
    if model.is_mla or dep.attention_dp:
        return 1.0
    return math.ceil(model.kv_heads / dep.tp) / model.kv_heads


def kv_bytes_per_seq_per_gpu(model: Model, precision: Precision, dep: Deployment, context: np.ndarray) -> np.ndarray:
    """KV bytes one sequence of ``context`` tokens needs on each GPU of its group.

    Windowed layers hold at most ``sliding_window`` tokens.
    """
    return params.kv_bytes_per_sequence(model, precision.kv_cache, context) * kv_share(model, dep) / dep.pp


def draft_weight_bytes_per_gpu(scn: Scenario) -> float:
    """Weights a speculative draft adds per GPU (sharded like the target's): an MTP module or EAGLE
    head shares the target's embedding and LM head, so only its layers count; a draft model counts whole."""
    spec = scn.speculation
    if spec is None:
        return 0.0
    whole = weight_bytes_per_gpu(spec.draft, scn.precision, scn.deployment)
    if not spec.shares_embeddings:
        return whole
    return whole - weight_bytes_per_gpu(replace(spec.draft, layers=0), scn.precision, scn.deployment)


def kv_bytes_per_seq_all(scn: Scenario, context: np.ndarray) -> np.ndarray:
    """KV bytes per sequence per GPU of the target and, when speculating, of its draft."""
    kv = kv_bytes_per_seq_per_gpu(scn.model, scn.precision, scn.deployment, context)
    if scn.speculation is not None:
        kv = kv + kv_bytes_per_seq_per_gpu(scn.speculation.draft, scn.precision, scn.deployment, context)
    return kv


def max_batch(scn: Scenario, context: np.ndarray) -> np.ndarray:
    """Largest number of sequences of ``context`` tokens whose KV cache fits (0 when none); a
    speculative draft's weights and KV cache count too; LoRA adapters held on the GPU take their
    room first, and a swapped-in adapter sits beside its request."""
    free = (usable_bytes(scn) - weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment)
            - draft_weight_bytes_per_gpu(scn) - lora.resident_bytes_per_gpu(scn))
    kv = kv_bytes_per_seq_all(scn, context) + lora.swapped_bytes_per_seq(scn)
    return np.maximum(np.floor(free / np.maximum(kv, 1e-9)), 0).astype(np.int64)


def memory_used_per_gpu(scn: Scenario, batch: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Weights (with a draft's and resident LoRA adapters) + KV of ``batch`` sequences + reserve, per GPU, in bytes."""
    w = weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment) + draft_weight_bytes_per_gpu(scn) + lora.resident_bytes_per_gpu(scn)
    kv = kv_bytes_per_seq_all(scn, context) + lora.swapped_bytes_per_seq(scn)
    reserve = scn.hardware.memory_bytes * scn.engine.memory_reserve_fraction
    return w + np.asarray(batch, dtype=float) * kv + reserve
