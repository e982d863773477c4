"""Work-dependent efficiency curves (tokecon.physics.efficiency) against the measurements they cite."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import scenario, validation_script
from tokecon.physics import efficiency
from tokecon.physics.operations import step_operations
from tokecon.physics.phases import decode_step


@pytest.mark.parametrize(
    "tokens, tflop_s",
    # deepseek-ai/DeepGEMM README (2025-02), H800 FP8, N=4096 K=7168, masked/contiguous grouped layouts
    [(256, 932.0), (512, 1040.0), (1024, 1233.0), (8192, 1297.0)],
)
def test_grouped_gemm_curve_tracks_deepgemm(tokens, tflop_s):
    dense = 1304.0  # the same library's dense GEMM at M=4096, N=4096, K=7168
    assert efficiency.grouped_gemm_fraction(tokens) == pytest.approx(tflop_s / dense, abs=0.06)


def test_grouped_gemm_half_point():
    assert efficiency.grouped_gemm_fraction(100.0, 100.0) == pytest.approx(0.5)


@given(st.floats(1.0, 1e5), st.floats(1.0, 1e5))
def test_more_tokens_per_expert_never_lowers_grouped_efficiency(a, b):
    lo, hi = sorted((a, b))
    assert efficiency.grouped_gemm_fraction(lo) <= efficiency.grouped_gemm_fraction(hi)


def test_ep_imbalance_hand_numbers():
    # EP8, 512 routed tokens per rank (issue 18: the skew of a rank's experts, cv_e / sqrt(E / ep), plus
    # routing noise 1 / sqrt(mu), under a Gaussian maximum of ep ranks, sqrt(2 ln 8) = 2.0393):
    # EPLB 1 + 2.0393 sqrt(0.042^2 + 1/512) = 1.1243; no balancer, cv_e 0.6 over 32 experts a rank:
    # 1 + 2.0393 sqrt((0.6 / 5.657)^2 + 1/512) = 1.2343
    assert efficiency.ep_imbalance(512.0, 8, True) == pytest.approx(1.1243, rel=1e-3)
    assert efficiency.ep_imbalance(512.0, 8, False) == pytest.approx(1.2343, rel=1e-3)
    assert efficiency.ep_imbalance(512.0, 1, False) == 1.0


@given(st.floats(1.0, 1e6), st.floats(1.0, 1e6), st.integers(2, 512))
def test_imbalance_shrinks_with_load_and_balancer_helps(mu_a, mu_b, ep):
    lo, hi = sorted((mu_a, mu_b))
    assert efficiency.ep_imbalance(hi, ep, False) <= efficiency.ep_imbalance(lo, ep, False)
    assert efficiency.ep_imbalance(lo, ep, True) < efficiency.ep_imbalance(lo, ep, False)


def test_expert_op_carries_shape_and_imbalance(catalog):
    """DeepSeek-V3 EP8 with attention DP, 64 sequences per GPU: 64 x 8 GPUs x 8 experts = 4096 routed
    tokens over the expected 256 x (1 - (1 - 8/256)^512) = 256.0 experts touched -> 16 per expert."""
    scn = scenario(catalog, "deepseek-v3", "h200", 8, tp=1, ep=8, attention_dp=True)
    ops = {op.name: op for op in step_operations(scn, np.asarray(64.0), np.asarray(1.0), np.asarray(2047.0))}
    experts = ops["moe/experts"]
    assert float(experts.tokens_per_expert) == pytest.approx(16.0, rel=1e-3)
    # DeepSeek's cv_e 1.67 (models.toml): 1 + sqrt(2 ln 8) sqrt((1.67 / sqrt(32))^2 + 1/512) = 1.6088
    assert float(experts.imbalance) == pytest.approx(1 + np.sqrt(2 * np.log(8)) * np.sqrt(1.67**2 / 32 + 1 / 512), rel=1e-6)
    assert float(experts.imbalance) == pytest.approx(1.6088, abs=1e-3)


def test_balancer_and_ideal(catalog):
    """EPLB makes the MoE decode step faster; the ideal roofline ignores imbalance and kernel shape."""
    scn = scenario(catalog, "deepseek-v3", "h200", 8, tp=1, ep=8, attention_dp=True)
    t = lambda s: float(decode_step(s, np.asarray(64.0), np.asarray(2048.0)).step_time_s)  # noqa: E731
    assert t(replace(scn, eplb=True)) < t(scn)
    ideal = replace(scn, ideal=True)
    assert t(replace(ideal, eplb=True)) == t(ideal)


def test_per_sequence_overhead_adds_up(catalog):
    """10 us per sequence: a decode step of 100 sequences carries 1 ms more than the fixed overhead."""
    scn = scenario(catalog, "llama3-8b", "h100", 1)
    scn = replace(scn, engine=replace(scn.engine, step_overhead_s=2e-3, step_overhead_per_seq_s=10e-6,
                                      step_overhead_per_layer_s=0.0))
    step = decode_step(scn, np.asarray(100.0), np.asarray(1024.0))
    assert float(step.overhead_s) == pytest.approx(3e-3)


@settings(max_examples=30)
@given(st.floats(1.0, 512.0))
def test_attention_core_never_beats_its_kernel_fraction(batch):
    """The attention core runs at most at the measured attention-kernel fraction of peak."""
    from tokecon.physics.roofline import op_compute_efficiency

    from tokecon.catalogs.catalog import load_catalog

    scn = scenario(load_catalog(use_user_home=False), "llama3-70b", "h100", 4)
    ops = step_operations(scn, np.asarray(batch), np.asarray(512.0), np.asarray(0.0))
    core = next(op for op in ops if op.name == "attn/core")
    assert op_compute_efficiency(core, scn) <= efficiency.ATTENTION_COMPUTE_FRACTION


def test_per_layer_launch_floor(catalog):
    """20 us per layer: llama3-70b's 80 layers add 1.6 ms to a step; with 2 pipeline stages each
    stage runs 40 layers (0.8 ms), and the ideal roofline has no floor."""
    scn = scenario(catalog, "llama3-70b", "h100", 4)
    eng = replace(scn.engine, step_overhead_s=1e-3, step_overhead_per_seq_s=0.0, step_overhead_per_layer_s=20e-6)
    scn = replace(scn, engine=eng)
    assert scn.layer_overhead_s == pytest.approx(1.6e-3)
    assert float(decode_step(scn, np.asarray(1.0), np.asarray(512.0)).overhead_s) == pytest.approx(2.6e-3)
    staged = replace(scn, deployment=replace(scn.deployment, tp=2, pp=2))
    assert staged.layer_overhead_s == pytest.approx(0.8e-3)
    assert replace(scn, ideal=True).layer_overhead_s == 0.0
    # DeepSeek-V3: 61 layers of which 58 MoE, each counting twice -> 119 x 20 us = 2.38 ms
    moe = scenario(catalog, "deepseek-v3", "h200", 8, tp=1, ep=8, attention_dp=True)
    moe = replace(moe, engine=replace(moe.engine, step_overhead_per_layer_s=20e-6))
    assert moe.layer_overhead_s == pytest.approx(119 * 20e-6)


def test_tile_quantisation_of_dense_gemms(catalog):
    """Tiles of 64 rows (wgmma m64): M = 65 does the work of 128 rows (65/128 useful), M = 64 and
    M = 4096 none wasted; the ideal roofline counts FLOP only."""
    from tokecon.physics.roofline import op_compute_efficiency

    assert efficiency.tile_fraction(65.0) == pytest.approx(65 / 128)
    assert efficiency.tile_fraction(64.0) == 1.0 and efficiency.tile_fraction(4096.0) == 1.0
    scn = scenario(catalog, "llama3-8b", "h100", 1)
    ops = {op.name: op for op in step_operations(scn, np.asarray(65.0), np.asarray(1.0), np.asarray(100.0))}
    assert op_compute_efficiency(ops["mlp/ffn"], scn) == pytest.approx(scn.compute_efficiency * 65 / 128)
    assert op_compute_efficiency(ops["mlp/ffn"], replace(scn, ideal=True)) == 1.0


def test_no_engine_beats_the_measured_matmul_maximum(catalog):
    """H100: MAMF 0.80 of dense peak (stas00/ml-engineering). An engine scale that would push the
    device's fraction above it is capped there; the ideal roofline is 1."""
    scn = scenario(catalog, "llama3-8b", "h100", 1)
    fast = replace(scn, engine=replace(scn.engine, compute_scale=5.0))
    assert fast.compute_efficiency == pytest.approx(efficiency.MAMF_FRACTION["hopper"])
    assert replace(fast, ideal=True).compute_efficiency == 1.0


# --- the rounded knee of a dense GEMM ---------------------------------------------------------------

def test_gemm_knee_on_paper():
    """(t_c^p + t_m^p)^(1/p), p = 2.5: at the ridge 2^(1/2.5) = 1.3195 of either time; far from it
    the larger time (t_m = 0.01 t_c adds 0.4 x 0.01^2.5 = 4e-6); no work, no time."""
    assert efficiency.GEMM_KNEE_P == 2.5
    assert float(efficiency.gemm_time_s(np.array(1.0), np.array(1.0))) == pytest.approx(1.31951, abs=1e-5)
    assert float(efficiency.gemm_time_s(np.array(3.0), np.array(0.03))) == pytest.approx(3.0 * (1 + 4e-6), rel=1e-6)
    assert float(efficiency.gemm_time_s(np.array(0.0), np.array(0.0))) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e3), st.floats(0.0, 1e3))
def test_gemm_knee_lies_between_the_max_and_its_ridge_bound(t_c, t_m):
    t = float(efficiency.gemm_time_s(np.array(t_c), np.array(t_m)))
    top = max(t_c, t_m)
    assert top * (1 - 1e-12) <= t <= top * 2 ** (1 / efficiency.GEMM_KNEE_P) * (1 + 1e-12)


def test_the_knee_is_recovered_from_gemm_latencies():
    """validation/gemm_knee.py on a synthetic database whose latencies follow p = 2.5 at 70% of peak
    FLOP/s and 80% of bandwidth (H100 bf16, N = K = 8192): p = 2.5 reads 0 error near the ridge, the
    sharp max reads too fast (a negative log error)."""
    mod = validation_script("gemm_knee")
    m = np.array([1, 4, 8, 16, 64, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096, 8192], dtype=float)
    t_c = 2 * m * 8192 * 8192 / (989e12 * 0.7) / (m / (np.ceil(m / 64) * 64))
    t_m = (m * 8192 + 8192 * 8192 + m * 8192) * 2 / (3.35e12 * 0.8)
    latency = (t_c**2.5 + t_m**2.5) ** (1 / 2.5)
    errors = mod.knee_errors(m, 8192, 8192, latency, 989e12, 3.35e12, 2)
    assert errors[2.5].size >= 3
    assert np.median(np.abs(errors[2.5])) < 0.01
    assert np.median(errors[float("inf")]) < -0.05


def test_a_dense_gemm_near_its_ridge_takes_the_rounded_max(catalog):
    """Llama-3-70B on 4 H100 at a decode batch near the projections' ridge: each dense GEMM (the LM head
    too) takes (t_c^2.5 + t_m^2.5)^(1/2.5) of its own compute and memory times; the ideal roofline keeps
    the max."""
    from tokecon.physics.roofline import op_compute_efficiency, step_times

    scn = scenario(catalog, "llama3-70b", "h100", 4)
    ops = step_operations(scn, np.asarray(256.0), np.asarray(1.0), np.asarray(512.0))  # a decode step
    gemm = next(op for op in ops if op.name == "mlp/ffn")
    t_c = float(gemm.flop / (scn.hardware.peak_flop_s(gemm.dtype) * op_compute_efficiency(gemm, scn)))
    t_m = float(gemm.bytes / (scn.hardware.memory_bw_b_s * scn.memory_bw_efficiency))
    assert 0.25 < t_m / t_c < 4  # near the ridge, where the knee matters
    t = float(step_times([gemm], scn).breakdown_s[gemm.name])
    assert t == pytest.approx((t_c**2.5 + t_m**2.5) ** 0.4, rel=1e-9) and t > 1.1 * max(t_c, t_m)
    head = next(op for op in ops if op.name == "lm_head")  # 256 x 8,192 x 32,064 (bf16 weights): a dense GEMM too
    h_c = float(head.flop / (scn.hardware.peak_flop_s(head.dtype) * op_compute_efficiency(head, scn)))
    h_m = float(head.bytes / (scn.hardware.memory_bw_b_s * scn.memory_bw_efficiency))
    assert 0.25 < h_m / h_c < 4
    assert float(step_times([head], scn).breakdown_s[head.name]) == pytest.approx((h_c**2.5 + h_m**2.5) ** 0.4, rel=1e-9)
    core = next(op for op in ops if op.name == "attn/core")  # attention is no GEMM: the sharp max
    c_c = float(core.flop / (scn.hardware.peak_flop_s(core.dtype) * op_compute_efficiency(core, scn)))
    c_m = float(core.bytes / (scn.hardware.memory_bw_b_s * scn.kv_bw_efficiency))
    assert float(step_times([core], scn).breakdown_s[core.name]) == pytest.approx(max(c_c, c_m), rel=1e-9)
    ideal = replace(scn, ideal=True)
    t_ideal = float(step_times([gemm], ideal).breakdown_s[gemm.name])
    assert t_ideal == pytest.approx(max(float(gemm.flop / ideal.hardware.peak_flop_s(gemm.dtype)),
                                        float(gemm.bytes / ideal.hardware.memory_bw_b_s)), rel=1e-9)
