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
    E * (1 - (1 - k/E)^N). Derivation: a token's k distinct experts miss a given one with probability
    1 - k/E; N independent tokens all miss it with probability (1 - k/E)^N; summing the probability
    that each expert is hit over the E experts (linearity of expectation) gives the formula.
    Assumes: balanced, independent routing."""
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
    come from, when not ``batch`` (a mixed step's prompt chunk); LoRA adapters are read per request.

    In order: the embedding lookup (one row of D per token), attention, the feed-forward layers,
    norms and LM head, the collectives, a mode's own kernels; under ``pp`` the busiest stage's share."""
    m, dep = scn.model, scn.deployment
    B = np.asarray(batch, dtype=float)
    T = np.asarray(new_tokens, dtype=float)
    P = np.asarray(past_tokens, dtype=float)
    N = B * T  # tokens through every weight matrix
    D, ab = m.hidden_size, dtype_bytes(scn.precision.activations)
    tp = 1 if dep.attention_dp else dep.tp
    ops = [Op("embed", np.zeros_like(N), N * D * dtype_bytes(embedding_dtype(scn.precision.weights)))]
    ops += _attention(scn, B, T, P, N, tp)
    ops += _feed_forward(scn, N, tp)
    ops += _norms_and_head(scn, B, N, tp, logits_per_seq)
    ops += _collectives(scn, N, tp)
    for extra in scn.contributions:  # a mode's own kernels (LoRA adapters): tokecon.physics.scenario
        ops.extend(extra.extra_operations(scn, N, B if sequences is None else sequences))
    if dep.pp > 1:
        ops = pipeline_stage(ops, m.stage_share(dep.pp), N * D * ab)
    return ops


def _matmul(scn: Scenario, N: np.ndarray, name: str, n_params: float, layers: float, out_width: float, dtype: str) -> Op:
    """N tokens through a weight matrix of P = ``n_params`` parameters (of ``dtype``) in each of ``layers``
    layers: 2 N P FLOP per layer; reads the P weights once and N (D + out_width) activations."""
    D, ab, byt = scn.model.hidden_size, dtype_bytes(scn.precision.activations), dtype_bytes(dtype)
    flop = 2.0 * N * n_params * layers
    traffic = layers * (n_params * byt + N * (D + out_width) * ab)
    return Op(name, flop, traffic, dtype, gemm_rows=N, weight_bytes=layers * n_params * byt)


def _attention_projections(
    scn: Scenario, N: np.ndarray, T: np.ndarray, tp: int
) -> tuple[list[Op], np.ndarray | float, float, float]:
    """attn/qkv and attn/out, and what the core then reads: (ops, KV-cache bytes per token per layer on
    one device, d_qk, d_v). H query heads split over ``tp``.

    GQA: D (H/tp + 2 ceil(K/tp)) hd QKV and (H/tp) hd D output weights per layer; the cache holds
    2 ceil(K/tp) hd values per token per layer, and d_qk = d_v = hd.
    MLA (DeepSeek-V2, arXiv:2405.04434): replicated down-projections D q_r + D (kv_r + rope), up-projections
    (q_r H (nope + rope) + kv_r H (nope + v)) / tp; the cache holds the latent kv_r + rope, replicated on
    every TP rank. Steps of up to ABSORBED_MAX_NEW_TOKENS new tokens attend in the absorbed form
    (d_qk = kv_r + rope, d_v = kv_r), prompts in the expanded one (d_qk = nope + rope, d_v = v). An engine
    without MLA kernels (``mla_cache = "expanded"``) caches 2 ceil(H/tp) (nope + rope) values per token
    per layer, the value padded to the key's width, and attends over them as multi-head attention."""
    m, prec = scn.model, scn.precision
    D, H, L = m.hidden_size, m.heads, m.layers
    at, kvb = prec.attention_weights, dtype_bytes(prec.kv_cache)
    h_dev = H / tp
    if m.is_mla:
        rope, nope, v, q_r, kv_r = m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim, m.q_lora_rank, m.kv_lora_rank
        down = D * q_r + D * (kv_r + rope)  # replicated low-rank down-projections
        up = (q_r * H * (nope + rope) + kv_r * H * (nope + v)) / tp
        ops = [_matmul(scn, N, "attn/qkv", down + up, L, h_dev * (nope + rope + v), at),
               _matmul(scn, N, "attn/out", H * v * D / tp, L, D, at)]
        if m.mla_cache == "expanded":  # no MLA kernels: multi-head attention over cached keys and (padded) values
            width = params.mla_expanded_head_dim(m)
            return ops, 2 * np.ceil(h_dev) * width * kvb, width, width
        decode_like = bool(np.all(T <= ABSORBED_MAX_NEW_TOKENS))
        d_qk, d_v = (kv_r + rope, kv_r) if decode_like else (nope + rope, v)  # weight absorption in decode
        return ops, (kv_r + rope) * kvb, d_qk, d_v
    hd = m.head_dim
    kv_dev = np.ceil(m.kv_heads / tp)
    ops = [_matmul(scn, N, "attn/qkv", D * (h_dev + 2 * kv_dev) * hd, L, (h_dev + 2 * kv_dev) * hd, at),
           _matmul(scn, N, "attn/out", h_dev * hd * D, L, D, at)]
    return ops, 2 * kv_dev * hd * kvb, hd, hd


def _attention(scn: Scenario, B: np.ndarray, T: np.ndarray, P: np.ndarray, N: np.ndarray, tp: int) -> list[Op]:
    """The projections (:func:`_attention_projections`), then the core over the cache for each kind of
    layer: 2 B (H/tp) pairs (d_qk + d_v) FLOP, with pairs from :func:`attended_pairs` or
    :func:`chunked_pairs`; bytes: B x keys read from the cache, the N new tokens' KV written, and
    N (H/tp) (d_qk + d_v) query and output activations. Keys read per sequence: P + T on a full layer,
    min(P + T, W) on a sliding-window one, and on a chunked one the current chunk up to the last new
    token, P + T - C floor(P / C)."""
    m = scn.model
    ops, kv_per_token_layer, d_qk, d_v = _attention_projections(scn, N, T, tp)
    h_dev, ab = m.heads / tp, dtype_bytes(scn.precision.activations)
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
    return ops


def _feed_forward(scn: Scenario, N: np.ndarray, tp: int) -> list[Op]:
    """The dense layers' mlp/ffn: mats D F/tp weights per layer (gated: gate, up and down, mats = 3; plain:
    2), a recipe's 16-bit first and last MLPs (``dense_16bit_layers``) apart as mlp/ffn_16bit. The MoE
    layers' router (D E weights, 16-bit like the embeddings in a quantised checkpoint), shared experts
    (split over tp like a dense FFN) and routed experts (:func:`_routed_experts`)."""
    m, prec = scn.model, scn.precision
    D = m.hidden_size
    mats = 3 if m.mlp == "gated" else 2
    ops: list[Op] = []
    if m.ffn_dense_layers:
        F = m.intermediate_size / tp
        sixteen = min(prec.dense_16bit_layers, m.ffn_dense_layers)
        if m.ffn_dense_layers > sixteen:
            ops.append(_matmul(scn, N, "mlp/ffn", mats * D * F, m.ffn_dense_layers - sixteen, (mats + 1) * F, prec.dense_weights))
        if sixteen:
            kept16 = embedding_dtype(prec.dense_weights)
            ops.append(_matmul(scn, N, "mlp/ffn_16bit", mats * D * F, sixteen, (mats + 1) * F, kept16))
    if m.is_moe:
        E = m.experts
        ops.append(_matmul(scn, N, "moe/router", D * E, m.moe_layers, E, embedding_dtype(prec.weights)))
        if m.shared_experts:
            Fs = m.shared_experts * m.shared_expert_intermediate_size / tp
            ops.append(_matmul(scn, N, "moe/shared", mats * D * Fs, m.moe_layers, (mats + 1) * Fs, prec.shared_weights))
        ops.append(_routed_experts(scn, N, tp, mats))
    return ops


def _routed_experts(scn: Scenario, N: np.ndarray, tp: int, mats: int) -> Op:
    """moe/experts: each of N tokens through k of E experts of P_e parameters, 2 N k P_e FLOP, reading the
    weights of the experts the step touches (:func:`expected_experts_touched`). With ``ep`` > 1 each GPU
    holds E/ep whole experts and serves its share of the tokens of all ep GPUs (N ep); otherwise every
    expert is split over tp. The grouped GEMM's M is N ep k / experts touched; the busiest rank's load
    over the mean is :func:`tokecon.physics.efficiency.ep_imbalance`."""
    m, dep, prec = scn.model, scn.deployment, scn.precision
    E, k, D, Fe = m.experts, m.experts_per_token, m.hidden_size, m.expert_intermediate_size
    ab, eb = dtype_bytes(prec.activations), dtype_bytes(prec.expert_weights)
    per_expert = params.expert_params(m)
    ep = max(dep.ep, 1)
    routed = N * ep  # the tokens the experts see: those of all ep GPUs
    touched_all = expected_experts_touched(E, k, routed)
    if dep.ep > 1:
        touched = touched_all / dep.ep
        flop = 2.0 * N * k * per_expert
        act = N * k * (D + (mats + 1) * Fe) * ab
    else:
        touched = touched_all / tp
        flop = 2.0 * N * k * per_expert / tp
        act = N * k * (D + (mats + 1) * Fe / tp) * ab
    per_expert_tokens = routed * k / np.maximum(touched_all, 1e-9)
    return Op("moe/experts", flop * m.moe_layers, m.moe_layers * (touched * per_expert * eb + act),
              prec.expert_weights, tokens_per_expert=per_expert_tokens,
              imbalance=efficiency.ep_imbalance(N * k, ep, scn.eplb, E, m.expert_load_cv or efficiency.EXPERT_LOAD_CV),
              weight_bytes=m.moe_layers * touched * per_expert * eb)


def _norms_and_head(scn: Scenario, B: np.ndarray, N: np.ndarray, tp: int, logits_per_seq: np.ndarray | float) -> list[Op]:
    """norms: L (2 + extra) + 1 of them (two per layer, Gemma's two more, the final one), 5 FLOP and a
    read and a write per element of N x D. lm_head: ``logits_per_seq`` rows per sequence, 2 rows D V/tp
    FLOP; reads the D x V/tp weights (16-bit in a quantised checkpoint) once and writes fp32 logits."""
    m = scn.model
    D, ab = m.hidden_size, dtype_bytes(scn.precision.activations)
    norms = m.layers * (2 + m.extra_norms_per_layer) + 1
    ops = [Op("norms", 5.0 * N * D * norms, 2.0 * N * D * ab * norms)]
    if m.lm_head:
        kept = embedding_dtype(scn.precision.weights)
        kb = dtype_bytes(kept)
        rows = B * np.asarray(logits_per_seq, dtype=float)
        Vd = m.vocab_size / tp
        ops.append(Op("lm_head", 2.0 * rows * D * Vd, D * Vd * kb + rows * (D * ab + Vd * 4.0), kept, gemm_rows=rows,
                      weight_bytes=D * Vd * kb))
    return ops


def _collectives(scn: Scenario, N: np.ndarray, tp: int) -> list[Op]:
    """comm/allreduce: Megatron TP, one all-reduce of N x D activations after attention and one after the
    FFN, per layer. comm/dispatch and comm/combine: one all-to-all each per MoE layer under expert
    parallelism."""
    m, dep, prec = scn.model, scn.deployment, scn.precision
    D, ab, L = m.hidden_size, dtype_bytes(prec.activations), m.layers
    zero = np.zeros_like(N)
    ops: list[Op] = []
    if tp > 1:
        ops.append(Op("comm/allreduce", zero, 2.0 * L * N * D * ab, kind="comm", calls=2.0 * L))
    if m.is_moe and dep.ep > 1:
        # Each token goes once to every distinct GPU (across nodes: node) holding one of its k experts
        # and comes back (DeepSeek: FP8 dispatch, BF16 combine). Bytes are what one GPU sends over both
        # links (comms.alltoall_copies_per_token).
        copies = sum(comms.alltoall_copies_per_token(
            m.experts, m.experts_per_token, dep.ep, dep.hardware.scaleup_domain, m.expert_groups, m.expert_groups_per_token))
        for name, dtype in (("comm/dispatch", prec.dispatch), ("comm/combine", prec.combine)):
            sent = N * copies * D * dtype_bytes(dtype) * m.moe_layers
            ops.append(Op(name, zero, sent, kind="comm", calls=float(m.moe_layers), link="alltoall"))
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
