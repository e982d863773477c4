"""Unit constants and data-type sizes. Internally everything is SI: B, B/s, FLOP, FLOP/s, s, USD.

Catalog keys carry their unit (``memory_bw_tb_s``) and are converted once, at load,
with these constants. Decimal prefixes unless a name says GiB.
"""

GB = 1e9
TB = 1e12
GIB = 2.0**30
TFLOP = 1e12
US = 1e-6
MS = 1e-3
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86_400.0
MTOK = 1e6

#: Bytes per element (parameter, cache entry or activation) for each storage type.
#: Block-scaled formats include their scales: MXFP4 is 4 bits + one 8-bit scale per 32
#: values (4.25 bit, OCP MX spec v1.0); NVFP4 one FP8 scale per 16 (4.5 bit);
#: int4 assumes group-128 FP16 scales (4.125 bit); q4_k_m is llama.cpp's
#: 4.85 bit/weight figure (ggml k-quants PR #1684).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "nvfp4": 4.5 / 8,
    "mxfp4": 4.25 / 8,
    "int4": 4.125 / 8,
    "q4_k_m": 4.85 / 8,
}

#: Which tensor-core rate a matmul with weights of this type runs at. Weight-only
#: formats (int4, q4_k_m) are dequantised and multiply in bf16; block-scaled FP4 runs at
#: the FP4 rate where the device has one (otherwise :meth:`Hardware.peak_flop_s` falls back
#: to the 16-bit rate). fp32 runs at the TF32 tensor rate.
COMPUTE_DTYPE: dict[str, str] = {
    "fp32": "tf32",
    "bf16": "bf16",
    "fp16": "bf16",
    "fp8": "fp8",
    "int8": "int8",
    "fp4": "fp4",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "int4": "bf16",
    "q4_k_m": "bf16",
}


#: Weight types whose checkpoints keep the embeddings, the LM head and the MoE router in 16-bit
#: (DeepSeek-V3 FP8: ``embed_tokens``, ``lm_head`` and ``mlp.gate`` are BF16 tensors; AWQ/GPTQ,
#: bitsandbytes and ModelOpt FP8/NVFP4 quantise only the Linear layers of the blocks). q4_k_m is
#: absent: its 4.85 bit/weight already averages the whole GGUF file, head included.
KEEPS_16BIT_EMBEDDINGS = frozenset({"fp8", "int8", "fp4", "nvfp4", "mxfp4", "int4"})


def embedding_dtype(weights: str) -> str:
    """Storage type of the embeddings, LM head and router beside ``weights``: bf16 when the
    checkpoint is quantised (:data:`KEEPS_16BIT_EMBEDDINGS`), else the weight type itself."""
    return "bf16" if weights in KEEPS_16BIT_EMBEDDINGS else weights


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; raises KeyError for an unknown name (callers validate)."""
    return DTYPE_BYTES[dtype]
