"""FLOP and bytes of every operation of one forward step, per device, vectorised with numpy.

A step processes ``batch`` sequences, each adding ``new_tokens`` to ``past_tokens`` already in
its KV cache (decode: new_tokens = 1; prefill: new_tokens = the prompt). All three broadcast,
so one call evaluates a whole grid of batch sizes and context lengths.

Counts follow the 2*m*n*k matmul rule (jax-ml scaling book, "roofline"): a token through a
weight matrix of P parameters costs 2*P FLOP and reads P weights once per step, whatever
the batch. Attention over C cached tokens costs 2*C*(d_qk + d_v) FLOP per head per new token
and reads the cache once per step. Each operation is keyed like ``attn/qkv``, ``mlp/ffn``,
``moe/experts``, ``lm_head``, summed over the layers that share its shape.

Parallel layouts: ``tp`` splits heads, FFN width and vocabulary (Megatron); ``pp`` splits the
layers into pipeline stages (the ops are those of the busiest stage); with
``attention_dp`` each GPU runs attention for its own sequences and routed experts are spread
over ``ep`` GPUs (DeepSeek-style); the experts then see the tokens of all ``ep`` GPUs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tokecon.physics import comms
from tokecon.physics import efficiency
from tokecon.physics import params
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.units import dtype_bytes, embedding_dtype


ABSORBED_MAX_NEW_TOKENS = 16  # MLA in its absorbed (latent) form for decode and speculative verification
# (FlashMLA serves up to a few query tokens per sequence; DeepSeek verifies MTP drafts so), not for prompts


@record
class Op:
    """One operation, totalled over the layers that share it, on one device, for one step.

    ``kind`` is "compute" (runs on the device: FLOP and HBM bytes) or "comm" (a collective:
    ``bytes`` is what one device moves over its link, ``calls`` how many collective calls).
    """

    name: str
    flop: np.ndarray
    bytes: np.ndarray
    dtype: str = "bf16"
    kind: str = "compute"
    calls: float = 0.0
    link: str = "scaleup"
    kv_cache: bool = False  # reads the KV cache (paged, scattered): its own bandwidth efficiency
    tokens_per_expert: np.ndarray | None = None  # grouped expert GEMM: its shape-dependent efficiency
    imbalance: np.ndarray | float = 1.0  # busiest expert-parallel rank's routed tokens / the mean (token work only)
    gemm_rows: np.ndarray | None = None  # tokens through a dense GEMM (its M): tile quantisation
    weight_bytes: np.ndarray | float = 0.0  # the part of ``bytes`` that reads weights (the rest: activations, KV)


def attended_pairs(past: np.ndarray, new: np.ndarray, window: float, causal: bool) -> np.ndarray:
    """(query, key) pairs per sequence when ``new`` tokens join ``past`` cached tokens.

    Causal: token i (1..new) sees min(past + i, window) keys, summed in closed form; the full
    causal prefill of S tokens gives S(S+1)/2 ~ S^2/2 pairs. Bidirectional: new * (past + new).
    """
    past = np.asarray(past, dtype=float)
    new = np.asarray(new, dtype=float)
    if not causal:
        return new * np.minimum(past + new, window)
    lo, hi = past + 1.0, past + new
    top = np.minimum(hi, window)
    inside = np.where(top >= lo, (lo + top) * (top - lo + 1.0) / 2.0, 0.0)
    if not np.isfinite(window):
        return inside
    beyond = np.maximum(hi - np.maximum(lo, window + 1.0) + 1.0, 0.0) * window
    return inside + beyond


def chunked_pairs(past: np.ndarray, new: np.ndarray, chunk: float) -> np.ndarray:
    """Causal (query, key) pairs per sequence under chunked attention (Llama 4,
    ``attention_chunk_size``): token p (1-based) sees the keys of its own chunk from the chunk
    start to itself, ((p-1) mod C) + 1 of them. With F(n) = q C(C+1)/2 + r(r+1)/2 (n = qC + r) the
    pairs of tokens past+1..past+new are F(past + new) - F(past); over a long context a token sees
    (C+1)/2 keys on average, not C as a sliding window would."""
    def f(n: np.ndarray) -> np.ndarray:
        q = np.floor(n / chunk)
        r = n - q * chunk
        return q * chunk * (chunk + 1.0) / 2.0 + r * (r + 1.0) / 2.0

    past = np.asarray(past, dtype=float)
    return f(past + np.asarray(new, dtype=float)) - f(past)


def expected_experts_touched(experts: int, per_token: int, tokens: np.ndarray) -> np.ndarray:
    """Expected distinct experts hit by ``tokens`` tokens routing top-k of E uniformly:
    E * (1 - (1 - k/E)^N). Assumes: balanced, independent routing (DESIGN.md section 1)."""
    tokens = np.asarray(tokens, dtype=float)
    return experts * (1.0 - (1.0 - per_token / experts) ** tokens)


def step_operations(
    scn: Scenario,
    batch: np.ndarray,
    new_tokens: np.ndarray,
    past_tokens: np.ndarray,
    logits_per_seq: np.ndarray | float = 1.0,
    sequences: np.ndarray | None = None,
) -> list[Op]:
    """Operations of one step on one device; ``batch`` counts the sequences of one TP group
    (or of one GPU under attention data parallelism). ``sequences``: the requests the step's tokens
    come from, when not ``batch`` (a mixed step's prompt chunk); LoRA adapters are read per request."""
    m, dep, prec = scn.model, scn.deployment, scn.precision
    B = np.asarray(batch, dtype=float)
    T = np.asarray(new_tokens, dtype=float)
    P = np.asarray(past_tokens, dtype=float)
    N = B * T  # tokens through every weight matrix
    D, H, V = m.hidden_size, m.heads, m.vocab_size
    eb = dtype_bytes(prec.expert_weights)
    at, dn, sh = prec.attention_weights, prec.dense_weights, prec.shared_weights  # the recipe's types
    ab_w, db_w, sb_w = dtype_bytes(at), dtype_bytes(dn), dtype_bytes(sh)
    kept = embedding_dtype(prec.weights)  # embeddings, LM head, router: 16-bit in quantised checkpoints
    kb = dtype_bytes(kept)
    kvb, ab = dtype_bytes(prec.kv_cache), dtype_bytes(prec.activations)
    tp = 1 if dep.attention_dp else dep.tp
    L = m.layers
    ops: list[Op] = []

    def matmul(name: str, n_params: float, layers: float, out_width: float, dtype: str, byt: float) -> Op:
        flop = 2.0 * N * n_params * layers
        traffic = layers * (n_params * byt + N * (D + out_width) * ab)
        return Op(name, flop, traffic, dtype, gemm_rows=N, weight_bytes=layers * n_params * byt)

    zero = np.zeros_like(N)
    ops.append(Op("embed", zero, N * D * kb))

    # --- attention projections ---------------------------------------------------------
    h_dev = H / tp
    if m.is_mla:
        rope, nope, v, q_r, kv_r = m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim, m.q_lora_rank, m.kv_lora_rank
        down = D * q_r + D * (kv_r + rope)  # replicated low-rank down-projections
        up = (q_r * H * (nope + rope) + kv_r * H * (nope + v)) / tp
        ops.append(matmul("attn/qkv", down + up, L, h_dev * (nope + rope + v), at, ab_w))
        ops.append(matmul("attn/out", H * v * D / tp, L, D, at, ab_w))
        kv_per_token_layer = (kv_r + rope) * kvb  # latent, replicated across TP ranks
        decode_like = bool(np.all(T <= ABSORBED_MAX_NEW_TOKENS))
        d_qk, d_v = (kv_r + rope, kv_r) if decode_like else (nope + rope, v)  # weight absorption in decode
    else:
        hd = m.head_dim
        kv_dev = np.ceil(m.kv_heads / tp)
        ops.append(matmul("attn/qkv", D * (h_dev + 2 * kv_dev) * hd, L, (h_dev + 2 * kv_dev) * hd, at, ab_w))
        ops.append(matmul("attn/out", h_dev * hd * D, L, D, at, ab_w))
        kv_per_token_layer = 2 * kv_dev * hd * kvb
        d_qk = d_v = hd

    # --- attention core: scores and values over the cache --------------------------------
    # (name, layers, keys attended per sequence, keys read per sequence); a chunked layer reads
    # the keys of the current chunk up to the last new token: past + new - C floor(past / C)
    groups = [("attn/core", m.full_attention_layers, attended_pairs(P, T, np.inf, m.causal), P + T)]
    if m.sliding_layers:
        w = float(m.sliding_window)
        groups.append(("attn/core_window", m.sliding_layers, attended_pairs(P, T, w, m.causal), np.minimum(P + T, w)))
    if m.chunked_layers:
        c = float(m.attention_chunk_size)
        groups.append(("attn/core_chunked", m.chunked_layers, chunked_pairs(P, T, c), P + T - c * np.floor(P / c)))
    for name, layers, pairs, keys_read in groups:
        if not layers:
            continue
        flop = 2.0 * B * h_dev * pairs * (d_qk + d_v) * layers
        kv_read = B * keys_read * kv_per_token_layer
        kv_write = N * kv_per_token_layer
        qo = N * h_dev * (d_qk + d_v) * ab
        ops.append(Op(name, flop, layers * (kv_read + kv_write + qo), "bf16", kv_cache=True))

    # --- feed-forward ------------------------------------------------------------------
    mats = 3 if m.mlp == "gated" else 2
    if m.ffn_dense_layers:
        F = m.intermediate_size / tp
        sixteen = min(prec.dense_16bit_layers, m.ffn_dense_layers)  # a recipe's 16-bit first and last MLPs
        if m.ffn_dense_layers > sixteen:
            ops.append(matmul("mlp/ffn", mats * D * F, m.ffn_dense_layers - sixteen, (mats + 1) * F, dn, db_w))
        if sixteen:
            kept16 = embedding_dtype(dn)
            ops.append(matmul("mlp/ffn_16bit", mats * D * F, sixteen, (mats + 1) * F, kept16, dtype_bytes(kept16)))
    if m.is_moe:
        E, k = m.experts, m.experts_per_token
        ops.append(matmul("moe/router", D * E, m.moe_layers, E, kept, kb))
        if m.shared_experts:
            Fs = m.shared_experts * m.shared_expert_intermediate_size / tp
            ops.append(matmul("moe/shared", mats * D * Fs, m.moe_layers, (mats + 1) * Fs, sh, sb_w))
        per_expert = params.expert_params(m)
        Fe = m.expert_intermediate_size
        if dep.ep > 1:
            # Experts spread over ep GPUs; each sees its share of all ep GPUs' tokens.
            touched = expected_experts_touched(E, k, N * dep.ep) / dep.ep
            flop = 2.0 * N * k * per_expert
            act = N * k * (D + (mats + 1) * Fe) * ab
        else:
            touched = expected_experts_touched(E, k, N) / tp
            flop = 2.0 * N * k * per_expert / tp
            act = N * k * (D + (mats + 1) * Fe / tp) * ab
        ep = max(dep.ep, 1)
        per_expert_tokens = N * ep * k / np.maximum(expected_experts_touched(E, k, N * ep), 1e-9)
        ops.append(Op("moe/experts", flop * m.moe_layers, m.moe_layers * (touched * per_expert * eb + act),
                      prec.expert_weights, tokens_per_expert=per_expert_tokens,
                      imbalance=efficiency.ep_imbalance(N * k, ep, scn.eplb, E, m.expert_load_cv or efficiency.EXPERT_LOAD_CV),
                      weight_bytes=m.moe_layers * touched * per_expert * eb))

    # --- norms, head ---------------------------------------------------------------------
    norms = L * (2 + m.extra_norms_per_layer) + 1
    ops.append(Op("norms", 5.0 * N * D * norms, 2.0 * N * D * ab * norms))
    if m.lm_head:
        rows = B * np.asarray(logits_per_seq, dtype=float)
        Vd = V / tp
        ops.append(Op("lm_head", 2.0 * rows * D * Vd, D * Vd * kb + rows * (D * ab + Vd * 4.0), kept, weight_bytes=D * Vd * kb))

    # --- communication -------------------------------------------------------------------
    if tp > 1:
        # Megatron TP: one all-reduce after attention and one after the FFN, per layer.
        ops.append(Op("comm/allreduce", zero, 2.0 * L * N * D * ab, kind="comm", calls=2.0 * L))
    if m.is_moe and dep.ep > 1:
        # All-to-all per MoE layer: each token goes once to every distinct GPU (across nodes: node)
        # holding one of its k experts and comes back (DeepSeek: FP8 dispatch, BF16 combine).
        # Bytes are what one GPU sends over both links (comms.alltoall_copies_per_token).
        copies = sum(comms.alltoall_copies_per_token(
            E, k, dep.ep, dep.hardware.scaleup_domain, m.expert_groups, m.expert_groups_per_token))
        for name, dtype in (("comm/dispatch", prec.dispatch), ("comm/combine", prec.combine)):
            sent = N * copies * D * dtype_bytes(dtype) * m.moe_layers
            ops.append(Op(name, zero, sent, kind="comm", calls=float(m.moe_layers), link="alltoall"))
    for extra in scn.contributions:  # a mode's own kernels (LoRA adapters): tokecon.physics.scenario
        ops.extend(extra.extra_operations(scn, N, B if sequences is None else sequences))
    if dep.pp > 1:
        ops = pipeline_stage(ops, m.stage_share(dep.pp), N * D * ab)
    return ops


def pipeline_stage(ops: list[Op], share: float, activation_bytes: np.ndarray) -> list[Op]:
    """The busiest pipeline stage: its ``share`` of every per-layer operation (ceil(L / pp) / L,
    :meth:`tokecon.physics.specs.Model.stage_share`: the slowest stage sets the pipeline's pace, 80 layers over
    72 stages put 2 on some), the LM head (last stage; the embedding lookup of the first is
    negligible), and the send of the step's activations (N x D) to the next stage."""

    def stage(op: Op) -> Op:
        return replace(op, flop=op.flop * share, bytes=op.bytes * share, calls=op.calls * share, weight_bytes=op.weight_bytes * share)

    staged = [op if op.name in ("embed", "lm_head") else stage(op) for op in ops]
    staged.append(Op("comm/pipeline", np.zeros_like(activation_bytes), activation_bytes, kind="comm", calls=1.0, link="p2p"))
    return staged
