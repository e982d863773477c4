"""Invariants of the physics, checked with hypothesis over catalog models and devices."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tokecon.economics import money as economics
from tokecon.catalogs.catalog import load_catalog
from tokecon.physics.phases import decode_step, prefill_step

from helpers import scenario, with_hardware

CATALOG = load_catalog(use_user_home=False)
MODELS = ["llama3-8b", "llama3-70b", "qwen3-30b-a3b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-120b", "gemma3-27b", "bge-large"]
DEVICES = ["h100-sxm", "h200", "b200", "mi300x", "l40s", "rtx-4090", "tpu-v6e"]

settings.register_profile("tokecon", max_examples=60, deadline=None)
settings.load_profile("tokecon")

cases = st.tuples(st.sampled_from(MODELS), st.sampled_from(DEVICES), st.sampled_from([1, 2, 4, 8]), st.booleans())


def _scn(case):
    model, device, n, ideal = case
    return scenario(CATALOG, model, device, n, ideal=ideal)


@given(cases, st.integers(1, 4096), st.integers(1, 32768))
def test_decode_time_never_decreases_with_batch_or_context(case, batch, context):
    scn = _scn(case)
    b = np.array([batch, batch + 1, batch * 2, batch], dtype=float)
    c = np.array([context, context, context, context * 2], dtype=float)
    t = decode_step(scn, b, c).step_time_s
    assert t[1] >= t[0] * (1 - 1e-12)
    assert t[2] >= t[1] * (1 - 1e-12)
    assert t[3] >= t[0] * (1 - 1e-12)


@given(cases, st.integers(1, 1024), st.integers(1, 16384), st.floats(1.01, 4.0))
def test_more_bandwidth_never_slower(case, batch, context, factor):
    scn = _scn(case)
    faster = with_hardware(scn, memory_bw_b_s=scn.hardware.memory_bw_b_s * factor,
                           scaleup_bw_b_s=scn.hardware.scaleup_bw_b_s * factor)
    for step in (decode_step, prefill_step):
        slow = step(scn, np.asarray(float(batch)), np.asarray(float(context))).step_time_s
        fast = step(faster, np.asarray(float(batch)), np.asarray(float(context))).step_time_s
        assert fast <= slow * (1 + 1e-12)


@given(cases, st.integers(1, 1024), st.integers(1, 16384))
def test_more_compute_never_slower(case, batch, context):
    scn = _scn(case)
    faster = with_hardware(scn, flop_s={k: 2 * v for k, v in scn.hardware.flop_s.items()})
    slow = prefill_step(scn, np.asarray(float(batch)), np.asarray(float(context))).step_time_s
    fast = prefill_step(faster, np.asarray(float(batch)), np.asarray(float(context))).step_time_s
    assert fast <= slow * (1 + 1e-12)


@given(st.floats(0.01, 1000.0), st.lists(st.floats(1e-3, 1e7), min_size=1, max_size=20))
def test_cost_times_throughput_is_constant_at_fixed_price(usd_per_hour, rates):
    cost = np.asarray(economics.usd_per_mtok(usd_per_hour, np.asarray(rates)))
    product = cost * np.asarray(rates)
    assert np.allclose(product, usd_per_hour / 3600 * 1e6, rtol=1e-12)


@given(cases, st.integers(1, 512))
def test_parts_sum_to_total(case, batch):
    """Components first, then the total proven two ways (here: the parts sum to the total)."""
    scn = _scn(case)
    t = decode_step(scn, np.asarray(float(batch)), np.asarray(1024.0))
    assert float(sum(t.breakdown_flop.values())) == np.float64(t.flop)
    parts = sum(t.breakdown_s.values())
    assert np.isclose(parts + t.overhead_s, t.step_time_s, rtol=1e-12)


def test_decode_flop_matches_two_times_params(catalog):
    """nanoGPT-style second proof: decode FLOP per token = 2 x matmul parameters (all but the
    embedding table, a lookup, and the norm vectors) + attention over the cache + norms."""
    from tokecon.physics import params

    scn = scenario(catalog, "llama3-8b", "h100-sxm", 1)
    m = scn.model
    t = decode_step(scn, np.asarray(1.0), np.asarray(1.0))
    norm_params = m.layers * params.norm_params_per_layer(m) + m.hidden_size
    matmul_params = params.active_params(m) - m.vocab_size * m.hidden_size - norm_params
    attention = 2 * m.layers * m.heads * 1 * (2 * m.head_dim)  # one cached key: QK^T and AV
    expected = 2 * matmul_params + attention + float(t.breakdown_flop["norms"])
    assert float(t.flop) == np.float64(expected)


@given(cases, st.integers(1, 1024), st.integers(1, 16384))
def test_weight_read_is_part_of_the_memory_traffic(case, batch, context):
    """weight_bytes is the weights' share of a step's bytes: never more than the bytes, never more than
    the model's weights (one GPU reads its TP shard plus what TP replicates), read at the same
    bandwidth as the rest, so its time is within the step's memory time; it never grows with context."""
    from tokecon.physics import params

    scn = _scn(case)
    held = params.weight_bytes(scn.model, scn.precision)
    for step in (decode_step, prefill_step):
        t = step(scn, np.asarray(float(batch)), np.asarray(float(context)))
        assert 0 < float(t.weight_bytes) <= float(t.bytes) * (1 + 1e-12)
        assert float(t.weight_bytes) <= held * (1 + 1e-9)
        assert float(t.weight_read_s) <= float(t.memory_time_s) * (1 + 1e-12)
    longer = decode_step(scn, np.asarray(float(batch)), np.asarray(float(context) * 2))
    assert float(longer.weight_bytes) == float(decode_step(scn, np.asarray(float(batch)), np.asarray(float(context))).weight_bytes)
