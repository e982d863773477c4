"""Efficiency that depends on the work, not only on the device: the curves the roofline applies
on top of the per-family fractions of peak (hardware.toml) and the engine's scales (engines.toml).

Each curve is a stated functional form with one interpretable parameter, its default taken from
the public measurement cited beside it; where an engine profile carries the parameter, the value
is fitted (``tokecon validate --fit``) with that default as its prior.

* Grouped (MoE expert) GEMM vs tokens per expert. A grouped GEMM over few tokens per expert
  reaches less of peak than one large GEMM: per-expert tiles are mostly padding, and each expert's
  weights are a separate small problem. Form: f(t) = t / (t + t_half), the fraction of the
  device's dense-GEMM efficiency at t tokens per expert. DeepGEMM's published H800 FP8 runs
  (deepseek-ai/DeepGEMM README, 2025-02; N=4096, K=7168) against its dense 1304 TFLOP/s at
  M=4096: masked layout 256 tokens/expert 932 TFLOP/s (0.71), 512 -> 1040 (0.80), 1024 -> 1233
  (0.95); contiguous 4096-8192 -> 1288-1297 (0.99). t_half = 100 tokens fits these within 0.06;
  engines whose MoE kernels are slower (Triton fused-MoE, early 2025) fit a larger t_half.
* Expert-parallel load imbalance: the step waits for the busiest of ``ep`` ranks. Two factors:
  routing noise, the expected maximum of ``ep`` ranks each receiving about mu routed tokens,
  mu + sqrt(2 ln(ep) mu) (Gaussian approximation of the multinomial maximum), and the skew of
  real expert popularity. DeepSeek's EPLB documentation (deepseek-ai/EPLB, 2025-02) and the
  SGLang large-scale EP blog (LMSYS, 2025-05-05) report the hottest rank far above the mean
  without a balancer and about 1.1x the mean with EPLB and redundant experts: skew 1.1 with the
  balancer, 1.4 without (the middle of the 1.2-1.8 max/mean routing skew of real workloads in
  the EPLB explainer at impala-blog.pages.dev/widgets/eplb). ``--no-eplb`` / ``--eplb``.
* Attention kernels are not GEMMs: FlashAttention-3 reaches ~740 of 989 TFLOP/s bf16 on H100
  (0.75; Shah et al. 2024, fig. 5, head dim 128, long sequences) and FlashMLA ~660 TFLOP/s
  compute-bound on H800 (0.67; deepseek-ai/FlashMLA README, 2025-02). The attention core runs at
  min(device GEMM fraction, ``ATTENTION_COMPUTE_FRACTION``).
* Tile quantisation of dense GEMMs: tensor cores work on tiles of 64 rows (Hopper's warpgroup
  MMA is m64nNk16, PTX ISA), so a GEMM of M tokens does ceil(M / 64) x 64 rows of work: compute
  time at M = 65 is that of M = 128 (memory time is unchanged).
* Per-step CPU work that grows with the sequences in the step (scheduling, sampling, detokenising,
  building the batch's metadata): overhead = step_overhead + per_seq x sequences, with the engine's
  fitted ``step_overhead_per_seq_us`` (prior 10 us per sequence).
* Kernel-launch floor: every kernel of a layer (norms, projections, attention, activation,
  collectives: about 8 per layer) takes a few microseconds however little it does, even replayed
  from a CUDA graph (an assumed ~2.5 us each, the prior; the fit decides), so a step
  costs at least ``step_overhead_per_layer_us`` x layers (prior 20 us per layer), fitted per engine;
  an MoE layer counts twice (router, top-k, permute or dispatch, two grouped GEMMs, combine).
"""

from __future__ import annotations

import numpy as np

#: Maximum achievable matmul FLOP/s as a fraction of dense peak (MAMF, the best shape found by a
#: sweep: stas00/ml-engineering, shared/reference/hardware.md section 6). No engine exceeds it, so
#: a device's fitted fraction times its engine's scale is capped here; families without a
#: measurement are not capped.
MAMF_FRACTION = {"ampere": 0.87, "hopper": 0.80, "blackwell": 0.776, "blackwell-ultra": 0.786, "cdna3": 0.514,
                 "cdna4": 0.62, "gaudi": 0.74}
GROUPED_GEMM_TOKENS_HALF = 100.0  # DeepGEMM H800 FP8 grouped GEMMs (module docstring)
EPLB_SKEW = 1.1  # hottest rank / mean with DeepSeek's EPLB and redundant experts
NO_BALANCER_SKEW = 1.4  # without a balancer: routed-token skew across ranks of production traffic
GEMM_TILE_ROWS = 64  # M of one Hopper warpgroup MMA (wgmma m64nNk16; PTX ISA), the smallest tile
ATTENTION_COMPUTE_FRACTION = 0.67  # FlashMLA 660 / 989 TFLOP/s; FlashAttention-3 reaches 0.75
STEP_OVERHEAD_PER_SEQ_US = 10.0  # prior of the engine's per-sequence CPU time per step
STEP_OVERHEAD_PER_LAYER_US = 20.0  # prior: ~8 kernels per layer at ~2.5 us each under CUDA graphs


def grouped_gemm_fraction(tokens_per_expert: np.ndarray, tokens_half: float = GROUPED_GEMM_TOKENS_HALF) -> np.ndarray:
    """Fraction of the dense-GEMM efficiency a grouped expert GEMM reaches: t / (t + t_half)."""
    t = np.asarray(tokens_per_expert, dtype=float)
    return t / (t + tokens_half)


def tile_fraction(rows: np.ndarray, tile: int = GEMM_TILE_ROWS) -> np.ndarray:
    """Useful share of the tensor-core work when a GEMM's M (tokens) is padded to whole tiles:
    M / (ceil(M / tile) x tile)."""
    m = np.maximum(np.asarray(rows, dtype=float), 1.0)
    return m / (np.ceil(m / tile) * tile)


def ep_imbalance(routed_per_rank: np.ndarray, ep: int, balancer: bool) -> np.ndarray:
    """Busiest rank's load over the mean: skew x (1 + sqrt(2 ln(ep) / mu)), mu = routed tokens
    per rank (>= 1); 1 without expert parallelism."""
    if ep <= 1:
        return np.ones_like(np.asarray(routed_per_rank, dtype=float))
    mu = np.maximum(np.asarray(routed_per_rank, dtype=float), 1.0)
    skew = EPLB_SKEW if balancer else NO_BALANCER_SKEW
    return skew * (1.0 + np.sqrt(2.0 * np.log(ep) / mu))
