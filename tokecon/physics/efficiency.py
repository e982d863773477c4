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
* Expert-parallel load imbalance: the step waits for the busiest of ``ep`` ranks, on the work that
  grows with its tokens (expert FLOP, activations), not on reading its experts' weights, which every
  rank does once whatever its load. A rank holds m = E / ep experts; if expert loads vary with a
  coefficient of variation cv_e (a property of the model and its traffic), a rank's load varies with
  cv_r = cv_e / sqrt(m), plus routing noise 1 / sqrt(mu) on mu routed tokens, and the busiest of ep
  ranks (Gaussian maximum) carries

      max / mean = 1 + sqrt(2 ln ep) sqrt(cv_r^2 + 1 / mu)

  so the imbalance grows with EP size as each rank holds fewer experts. TensorRT-LLM measured
  DeepSeek-R1 at EP32 on 32 GB200 (blog "Scaling Expert Parallelism in TensorRT-LLM" part 1, table
  1, imbalance ratio (max - mean) / mean by rank): 1.564 without EPLB (max/mean 2.56: m = 8, so
  cv_e = 1.56 sqrt(8) / sqrt(2 ln 32) = 1.67, models.toml ``expert_load_cv``) and 0.109 with EPLB and
  288 slots (max/mean 1.11: a balancer places experts by load, leaving cv_r = 0.109 / 2.633 = 0.042
  whatever m). ``--no-eplb`` / ``--eplb``.
* Attention kernels are not GEMMs: FlashAttention-3 reaches ~740 of 989 TFLOP/s bf16 on H100
  (0.75; Shah et al. 2024, fig. 5, head dim 128, long sequences) and FlashMLA ~660 TFLOP/s
  compute-bound on H800 (0.67; deepseek-ai/FlashMLA README, 2025-02). The attention core runs at
  min(device GEMM fraction, ``ATTENTION_COMPUTE_FRACTION``).
* Tile quantisation of dense GEMMs: tensor cores work on tiles of 64 rows (Hopper's warpgroup
  MMA is m64nNk16, PTX ISA), so a GEMM of M tokens does ceil(M / 64) x 64 rows of work: compute
  time at M = 65 is that of M = 128 (memory time is unchanged).
* The knee of a dense GEMM: near its ridge a GEMM neither streams its weights at full bandwidth nor
  keeps its tensor cores busy (the pipeline overlaps the two only in part), so its time is a rounded
  max, t = (t_c^p + t_m^p)^(1/p), 2^(1/p) of either alone at the ridge. p = ``GEMM_KNEE_P`` = 2.5 is
  the one value that fits measured GEMM latencies across devices and types: aiconfigurator's
  kernel database (ai-dynamo/aiconfigurator, commit 095f58a, systems/data/*/gemm/trtllm,
  TensorRT-LLM 1.3.0rc20 on H100, H200 and B200 and 1.0.0 on A100, Apache-2.0), every projection of
  N x K >= 16M, each shape's t_c and t_m at its own large-M and small-M fractions of peak, the tile
  rule above applied. Median log error of the rows whose t_m / t_c is within 0.25..4, sharp max /
  p = 2.5: A100 bf16 -6.4% / +0.5%, H100 bf16 -3.6% / +2.4%, H100 fp8 -6.2% / -1.0%, H200 bf16
  -1.4% / +2.4%, H200 fp8 -6.3% / -1.0%, B200 bf16 -4.9% / +1.1%, B200 fp8 -9.8% / -2.7% (p = 2
  reads 1-6% too slow, p = 3 up to 5% too fast; validation/gemm_knee.py). It applies to the layers'
  projections and the LM head (operations with ``gemm_rows``, the MoE router's small one too); the
  grouped expert GEMMs (their own curve above) keep the sharp max. Measured on NVIDIA GPUs and
  applied to every device (no other vendor's kernel table was found). The ideal roofline
  (``--ideal``) keeps the sharp max.
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
#: sweep: stas00/ml-engineering, "Maximum Achievable Matmul FLOPS comparison table",
#: github.com/stas00/ml-engineering/blob/master/compute/accelerator/README.md). No engine exceeds it, so
#: a device's fitted fraction times its engine's scale is capped here; families without a
#: measurement are not capped.
MAMF_FRACTION = {"ampere": 0.87, "hopper": 0.80, "blackwell": 0.776, "blackwell-ultra": 0.786, "cdna3": 0.514,
                 "cdna4": 0.62, "gaudi": 0.74}
GROUPED_GEMM_TOKENS_HALF = 100.0  # DeepGEMM H800 FP8 grouped GEMMs (module docstring)
EXPERT_LOAD_CV = 0.6  # ? cv_e of a model without a measurement (coarse experts are more even than DeepSeek's)
EPLB_RANK_CV = 0.042  # cv_r of ranks under EPLB with redundant experts (TensorRT-LLM EP32: max/mean 1.11)
GEMM_TILE_ROWS = 64  # M of one Hopper warpgroup MMA (wgmma m64nNk16; PTX ISA), the smallest tile
GEMM_KNEE_P = 2.5  # rounded max of a dense GEMM's compute and memory times (module docstring)
ATTENTION_COMPUTE_FRACTION = 0.67  # FlashMLA 660 / 989 TFLOP/s; FlashAttention-3 reaches 0.75
STEP_OVERHEAD_PER_SEQ_US = 10.0  # prior of the engine's per-sequence CPU time per step
STEP_OVERHEAD_PER_LAYER_US = 20.0  # prior: ~8 kernels per layer at ~2.5 us each under CUDA graphs
TTFT_OVERHEAD_MS = 20.0  # prior of a served request's first-token time outside the steps (HTTP, tokenise, admit)
MOE_LAYER_OVERHEAD_US = 0.0  # prior of an MoE layer's fixed cost beyond the launch floor (the fit decides)


def grouped_gemm_fraction(tokens_per_expert: np.ndarray, tokens_half: float = GROUPED_GEMM_TOKENS_HALF) -> np.ndarray:
    """Fraction of the dense-GEMM efficiency a grouped expert GEMM reaches: t / (t + t_half)."""
    t = np.asarray(tokens_per_expert, dtype=float)
    return t / (t + tokens_half)


def gemm_time_s(compute_s: np.ndarray, memory_s: np.ndarray, p: float = GEMM_KNEE_P) -> np.ndarray:
    """A dense GEMM's time from its compute and memory times: (t_c^p + t_m^p)^(1/p), the measured
    rounded knee (module docstring); within 2^(1/p) of max(t_c, t_m), equal far from the ridge."""
    top = np.maximum(compute_s, memory_s)
    low = np.minimum(compute_s, memory_s) + np.zeros_like(top)
    ratio = np.divide(low, top, out=np.zeros_like(low), where=np.isfinite(top) & (top > 0))
    return top * (1.0 + ratio**p) ** (1.0 / p)


def tile_fraction(rows: np.ndarray, tile: int = GEMM_TILE_ROWS) -> np.ndarray:
    """Useful share of the tensor-core work when a GEMM's M (tokens) is padded to whole tiles:
    M / (ceil(M / tile) x tile)."""
    m = np.maximum(np.asarray(rows, dtype=float), 1.0)
    return m / (np.ceil(m / tile) * tile)


def ep_imbalance(routed_per_rank: np.ndarray, ep: int, balancer: bool, experts: int = 256,
                 expert_cv: float = EXPERT_LOAD_CV) -> np.ndarray:
    """Busiest rank's routed tokens over the mean: 1 + sqrt(2 ln ep) sqrt(cv_r^2 + 1 / mu), with
    cv_r = ``expert_cv`` / sqrt(experts / ep) (EPLB_RANK_CV under a balancer) and mu = routed tokens
    per rank (>= 1); 1 without expert parallelism. Worked number: DeepSeek-R1 at EP32 without a
    balancer, 2,048 routed tokens per rank: 1 + 2.633 sqrt(1.67^2 / 8 + 1 / 2048) = 2.556 (measured
    2.56); with EPLB 1 + 2.633 sqrt(0.042^2 + 1 / 2048) = 1.124 (measured 1.11)."""
    if ep <= 1:
        return np.ones_like(np.asarray(routed_per_rank, dtype=float))
    mu = np.maximum(np.asarray(routed_per_rank, dtype=float), 1.0)
    cv = EPLB_RANK_CV if balancer else expert_cv / np.sqrt(max(experts / ep, 1.0))
    return 1.0 + np.sqrt(2.0 * np.log(ep)) * np.sqrt(cv * cv + 1.0 / mu)
