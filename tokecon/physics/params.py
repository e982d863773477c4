"""Parameter counts and weight bytes derived from a model's architecture.

Formulas (notation of :class:`tokecon.physics.specs.Model`):
  GQA attention per layer  D*H*hd + 2*D*K*hd + H*hd*D   (+ biases, + 2*hd for QK-norm)
  MLA attention per layer  D*q_r + q_r + q_r*H*(nope+rope) + D*(kv_r+rope) + kv_r + kv_r*H*(nope+v) + H*v*D
  FFN per layer            3*D*F gated, 2*D*F plain
  MoE layer                E*3*D*Fe + S*3*D*Fs + D*E (router); active uses k experts instead of E
  norms                    2*D per layer (+ extra), final D (x2 for LayerNorm, which has a bias)
  embeddings V*D (+ learned positions), LM head V*D unless tied or absent.
Weight bytes: quantised checkpoints keep the embeddings, LM head and router in 16-bit
(:func:`tokecon.units.embedding_dtype`).
Checked against every published total in ``models.toml`` within 1% (tests/test_params.py).
"""

from __future__ import annotations

from tokecon.physics.specs import Model, Precision
from tokecon.units import dtype_bytes, embedding_dtype


def attention_params_per_layer(m: Model) -> int:
    D, H = m.hidden_size, m.heads
    if m.is_mla:
        q_r, kv_r = m.q_lora_rank, m.kv_lora_rank
        rope, nope, v = m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim
        q = D * q_r + q_r + q_r * H * (nope + rope) if q_r else D * H * (nope + rope)
        kv = D * (kv_r + rope) + kv_r + kv_r * H * (nope + v)
        return q + kv + H * v * D
    hd, K = m.head_dim, m.kv_heads
    n = D * H * hd + 2 * D * K * hd + H * hd * D
    if m.attention_bias or m.linear_bias:
        n += H * hd + 2 * K * hd + D
    if m.qk_norm:
        n += 2 * hd
    return n


def mlp_params(m: Model, width: int) -> int:
    mats = 3 if m.mlp == "gated" else 2
    n = mats * m.hidden_size * width
    if m.linear_bias:
        n += (mats - 1) * width + m.hidden_size
    return n


def norm_params_per_layer(m: Model) -> int:
    per_norm = 2 * m.hidden_size if m.norm == "layernorm" else m.hidden_size
    return (2 + m.extra_norms_per_layer) * per_norm


def embedding_params(m: Model) -> int:
    return (m.vocab_size + m.position_embeddings) * m.hidden_size


def lm_head_params(m: Model) -> int:
    return m.vocab_size * m.hidden_size if (m.lm_head and not m.tied_embeddings) else 0


def expert_params(m: Model) -> int:
    """Parameters of ONE routed expert."""
    return mlp_params(m, m.expert_intermediate_size)


def shared_expert_params(m: Model) -> int:
    return m.shared_experts * mlp_params(m, m.shared_expert_intermediate_size)


def router_params(m: Model) -> int:
    return m.hidden_size * m.experts


def _common_params(m: Model) -> int:
    """Everything except routed experts."""
    final_norm = 2 * m.hidden_size if m.norm == "layernorm" else m.hidden_size
    per_layer = attention_params_per_layer(m) + norm_params_per_layer(m)
    n = m.layers * per_layer + m.ffn_dense_layers * mlp_params(m, m.intermediate_size)
    n += m.moe_layers * (shared_expert_params(m) + router_params(m))
    return n + final_norm + embedding_params(m) + lm_head_params(m)


def total_params(m: Model) -> int:
    """All parameters held in memory."""
    return _common_params(m) + m.moe_layers * m.experts * expert_params(m)


def active_params(m: Model, exclude_embeddings: bool = False) -> int:
    """Parameters one token touches (k routed experts per MoE layer)."""
    n = _common_params(m) + m.moe_layers * m.experts_per_token * expert_params(m)
    return n - (m.vocab_size * m.hidden_size if exclude_embeddings else 0)


def matmul_params_per_token(m: Model) -> int:
    """Parameters a token multiplies through (2 FLOP each): the active ones less the embedding
    lookup and the norm vectors, plus the tied embedding matrix when it doubles as the LM head."""
    norms = m.layers * norm_params_per_layer(m) + (2 if m.norm == "layernorm" else 1) * m.hidden_size
    n = active_params(m) - embedding_params(m) - norms
    return n + (m.vocab_size * m.hidden_size if m.tied_embeddings and m.lm_head else 0)


def routed_expert_params_total(m: Model) -> int:
    return m.moe_layers * m.experts * expert_params(m)


def weight_bytes(m: Model, precision: Precision) -> float:
    """Bytes of all weights, each component in its own type (a checkpoint's recipe,
    :class:`tokecon.physics.specs.Recipe`): attention, dense MLPs (``dense_16bit_layers`` of them in
    16-bit), shared and routed experts; embeddings, LM head and routers in :func:`embedding_dtype`
    (16-bit beside a quantised type); norms in the weight type.

    Worked number: DeepSeek-V3 FP8 holds 2 x 129,280 x 7,168 = 1.853e9 embedding + head parameters
    and 58 x 256 x 7,168 = 0.106e9 router parameters in BF16 (HF checkpoint: ``embed_tokens``,
    ``lm_head``, ``mlp.gate`` are BF16 tensors): +1.96 GB over counting them at one byte. Meta's
    Llama-3.1-405B-FP8 keeps its attention (126 x 0.570e9 params: 16,384 wide, 128 query and 8 KV
    heads of 128) and the MLPs of layers 0 and 125 (2 x 2.617e9) in BF16: with the embeddings and
    head, 324.6e9 FP8 + 81.3e9 BF16 parameters, 487.2 GB against 410 GB were every block FP8.
    """
    experts = routed_expert_params_total(m)
    kept = embedding_params(m) + lm_head_params(m) + m.moe_layers * router_params(m)
    attention = m.layers * attention_params_per_layer(m)
    mlp = mlp_params(m, m.intermediate_size)
    sixteen = min(precision.dense_16bit_layers, m.ffn_dense_layers) * mlp
    dense = m.ffn_dense_layers * mlp - sixteen
    shared = m.moe_layers * shared_expert_params(m)
    rest = total_params(m) - experts - kept - attention - dense - sixteen - shared
    b = dtype_bytes
    return (rest * b(precision.weights) + kept * b(embedding_dtype(precision.weights)) + attention * b(precision.attention_weights)
            + dense * b(precision.dense_weights) + sixteen * b(embedding_dtype(precision.dense_weights))
            + shared * b(precision.shared_weights) + experts * b(precision.expert_weights))


def kv_bytes_per_token(m: Model, kv_dtype: str, context_tokens: float | None = None) -> float:
    """KV-cache bytes one sequence holds per token, over all layers (whole model, no TP split).

    GQA: L * 2 * K * hd * bytes; MLA: L * (kv_lora_rank + qk_rope_head_dim) * bytes, or, by an engine
    without MLA kernels (``mla_cache = "expanded"``), L * 2 * H * (nope + rope) * bytes. With
    ``context_tokens`` given, windowed layers hold min(context, window) tokens and chunked layers
    min(context, chunk), so the average per token is returned. Derivation: each layer caches a key and a
    value of K x hd elements per token (GQA, Ainslie et al. 2023, arXiv:2305.13245); MLA caches only the
    compressed latent and the shared RoPE key (DeepSeek-V2, arXiv:2405.04434, Table 1).
    """
    if context_tokens is None or not (m.sliding_layers or m.chunked_layers):
        return m.layers * _kv_bytes_per_token_layer(m, kv_dtype)
    return float(kv_bytes_per_sequence(m, kv_dtype, context_tokens)) / context_tokens


def _kv_bytes_per_token_layer(m: Model, kv_dtype: str) -> float:
    b = dtype_bytes(kv_dtype)
    if m.is_mla:
        return (m.kv_lora_rank + m.qk_rope_head_dim) * b if m.mla_cache == "latent" else 2 * m.heads * mla_expanded_head_dim(m) * b
    return 2 * m.kv_heads * m.head_dim * b


def mla_expanded_head_dim(m: Model) -> int:
    """The width of each cached key and value when an engine without MLA kernels runs MLA as multi-head
    attention: the key's nope + rope, the value padded to it (one head size for both, as vLLM's
    attention layer before 0.7.1 took; the vLLM/Neural Magic post on v0.7.1, 2025-02-04, measured the
    KV capacity of DeepSeek-R1 on 8x H200 rise from 54,560 to 512,000 tokens with MLA)."""
    return m.qk_nope_head_dim + m.qk_rope_head_dim


def kv_bytes_per_sequence(m: Model, kv_dtype: str, context_tokens):
    """KV bytes of one sequence of ``context_tokens`` (vectorised): full-attention layers hold
    every token, windowed layers at most ``sliding_window``, chunked layers at most
    ``attention_chunk_size`` (vLLM v1's ChunkedLocalAttentionManager frees the blocks before the
    current chunk; a sequence may need a whole chunk)."""
    import numpy as np  # here, so that the catalog commands (which use this module) need no numpy

    ctx = np.asarray(context_tokens, dtype=float)
    held = (m.full_attention_layers * ctx + m.sliding_layers * np.minimum(ctx, m.sliding_window or np.inf)
            + m.chunked_layers * np.minimum(ctx, m.attention_chunk_size or np.inf))
    return _kv_bytes_per_token_layer(m, kv_dtype) * held
