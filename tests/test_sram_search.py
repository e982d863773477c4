"""Issue #20 item 9: chips_to_hold finds the smallest SRAM chip count by bisection over the stages of
each TP degree, and refuses a model no layout can hold without searching: the same answers as a walk
over every chip count, with a few dozen memory checks instead of thousands."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokecon.physics import params
from tokecon.serving import sram
from tokecon.serving.deploy import GpuSpec, build_scenario


def walk(scn, context: float) -> int | None:
    """The definition: the first count from the memory bound up to 4x it + 64 with a layout that holds."""
    m, hw = scn.model, scn.hardware
    need = params.weight_bytes(m, scn.precision) + float(params.kv_bytes_per_sequence(m, scn.precision.kv_cache, context))
    start = max(1, math.ceil(need / (hw.memory_bytes * (1.0 - scn.engine.memory_reserve_fraction))))
    for n in range(start, min(sram.MAX_CHIPS, 4 * start + 64) + 1):
        if sram.layouts_that_hold(scn, n, context):
            return n
    return None


@pytest.fixture
def count_checks(monkeypatch):
    calls = []
    real = sram.holds
    monkeypatch.setattr(sram, "holds", lambda scn, context: calls.append(1) or real(scn, context))
    return calls


def test_too_large_for_any_layout_is_refused_without_a_search(catalog, count_checks):
    # kimi-k2: 61 layers x 64 heads allow at most 64 x 61 = 3,904 chips; the 230 MB chips need ~4,700
    scn = build_scenario(catalog, "kimi-k2", GpuSpec(1, catalog.hardware.get("groq-lpu")))
    assert sram.chips_to_hold(scn, 2048) is None and count_checks == []


def test_bisection_needs_few_checks(catalog, count_checks):
    scn = build_scenario(catalog, "llama3-405b", GpuSpec(1, catalog.hardware.get("groq-lpu")))
    assert sram.chips_to_hold(scn, 2048) == 4032
    assert len(count_checks) <= len(sram.divisors(scn.model.heads)) * (1 + math.ceil(math.log2(scn.model.layers)))


@pytest.mark.parametrize("device", ["groq-lpu", "cerebras-cs3"])
@pytest.mark.parametrize("model,dtype", [("llama2-70b", "int8"), ("llama3-8b", None), ("qwen3-30b-a3b", None), ("gpt-oss-120b", None)])
def test_same_answer_as_the_walk(catalog, device, model, dtype):
    scn = build_scenario(catalog, model, GpuSpec(1, catalog.hardware.get(device)), dtype=dtype)
    for context in (128, 8192):
        assert sram.chips_to_hold(scn, context) == walk(scn, context)


@settings(max_examples=40, deadline=None)
@given(mb=st.floats(20.0, 5000.0), reserve=st.sampled_from([0.0, 0.05, 0.3]), context=st.sampled_from([1, 4096, 100_000]),
       model=st.sampled_from(["llama3-8b", "qwen3-30b-a3b", "llama2-7b", "gemma3-27b"]))
def test_same_answer_as_the_walk_for_any_chip_size(catalog, mb, reserve, context, model):
    hw = replace(catalog.hardware.get("groq-lpu"), memory_bytes=mb * 1e6)
    scn = build_scenario(catalog, model, GpuSpec(1, hw))
    scn = replace(scn, engine=replace(scn.engine, memory_reserve_fraction=reserve))
    if params.weight_bytes(scn.model, scn.precision) / (mb * 1e6) > 3000:  # the walk would take seconds
        return
    assert sram.chips_to_hold(scn, context) == walk(scn, context)
