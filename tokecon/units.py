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
#: the FP4 rate where the device has one (otherwise :meth:`Hardware.peak_flop_s` falls back).
COMPUTE_DTYPE: dict[str, str] = {
    "fp32": "bf16",
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


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; raises KeyError for an unknown name (callers validate)."""
    return DTYPE_BYTES[dtype]
