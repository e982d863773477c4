"""Issue 18's terms, each against a hand-derived number: the phase of a closed loop (TTFT), the
slowest attention-DP rank, expert imbalance on token work, checkpoints' recipes and KV types, engine
memory reserves and caps, and the hygiene of the external measurements."""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers import scenario, validation_script
from tokecon.catalogs.catalog import load_catalog
from tokecon.errors import TokeconError
from tokecon.fidelity import validation
from tokecon.physics import efficiency, memory, params
from tokecon.physics.phases import decode_step
from tokecon.serving import batching as serving
from tokecon.serving import disagg, lengths
from tokecon.serving.resolve import parse_components, precision_for

CATALOG = load_catalog(use_user_home=False)
ROOT = Path(__file__).resolve().parents[1]


# --- the phase of a closed loop -------------------------------------------------------------

def _toy():
    from test_serve import toy_scenario

    return toy_scenario()


def test_fixed_lengths_keep_the_loop_in_phase():
    """Toy model (tests/test_serve.py: every byte counted by hand), I = 16, O = 17, whole prompts.
    C = 2 in phase: both prompts arrive together and ride in one mixed step of 2 x 16 = 32 prompt
    tokens beside the 2 decode sequences: 1664 + 336 x 34 + 144 x 4 + 16 x 2 x 24.5 + 48 x 2 + 64 x 32
    = 16,592 B at 1000 B/s = 16.592 s, against 12.751 s for requests spread over time (the step of one
    prompt plus the rest of the step under way). C = 8 (4 run, 4 queue for 111.68 s): 4 prompts, 64
    tokens, 31.520 s + 111.68 s = 143.200 s."""
    s = serving.serve(_toy(), np.array([2.0, 8.0]), 16, 17)
    assert s.ttft_s == pytest.approx([16.592, 143.200], abs=1e-3)
    assert list(s.in_phase) == [1.0, 1.0]
    spread = serving.serve(_toy(), np.array([2.0, 8.0]), 16, 17, closed_loop=False)
    assert spread.ttft_s == pytest.approx([12.751, 127.633], abs=1e-3)
    assert spread.tpot_s == pytest.approx(s.tpot_s)  # the phase moves prompts between steps, not their work


def test_first_wave_and_coherence_weigh_the_terms():
    """TTFT = T_0 + base + (1 - w) (chi TTFT_p + (1 - chi) TTFT_s) + w TTFT_w, chi = chi_0 x shape:
    T_0 0.1, base 1, TTFT_s 2, TTFT_p 4, TTFT_w 10, shape 0.5, w 0.2, chi_0 0.8 -> chi 0.4, steady
    0.4 x 4 + 0.6 x 2 = 2.8, TTFT = 0.1 + 1 + 0.8 x 2.8 + 0.2 x 10 = 5.34."""
    parts = serving.TtftParts(np.array(1.0), np.array(2.0), np.array(4.0), np.array(10.0), np.array(0.5))
    assert float(parts.ttft(0.1, 0.2, 0.8)) == pytest.approx(5.34)
    s = serving.serve(_toy(), 2.0, 16, 17, first_wave_share=0.5)
    # a burst of the 2 prompts clears in n_b = ceil(2 x 16 / 32) = 1 step: TTFT_w = T_f (1 + 1) / 2 = T_f
    assert float(s.ttft_s) == pytest.approx(16.592, abs=1e-3)
    with pytest.raises(TokeconError):
        serving.serve(_toy(), 2.0, 16, 17, first_wave_share=1.5)


def test_an_engine_that_schedules_ahead_adds_the_prepared_step():
    """An engine that prepares step k + 1 while step k runs (TensorRT-LLM's overlap scheduler, vLLM's
    async scheduling) makes a request arriving in step k wait for step k + 1 too: one mean step more.
    Toy at C = 2 (tests/test_serve.py): the mean step is the TPOT, 10.048 / 8 + 3.504 x 7 / 8 =
    4.322 s, so the spread TTFT goes 12.751 -> 17.073 s and the in-phase one 16.592 -> 20.914 s; alone
    (C = 1) the engine is idle and prepared nothing; TPOT does not move."""
    toy = _toy()
    ahead = replace(toy, engine=replace(toy.engine, schedules_ahead=True))
    sync, early = (serving.serve(s, np.array([1.0, 2.0]), 16, 17, closed_loop=False) for s in (toy, ahead))
    assert early.ttft_s[1] == pytest.approx(12.751 + 4.322, abs=1e-3)
    assert early.ttft_s[0] == pytest.approx(sync.ttft_s[0])
    assert early.tpot_s == pytest.approx(sync.tpot_s)
    assert serving.serve(ahead, 2.0, 16, 17).ttft_s == pytest.approx(16.592 + 4.322, abs=1e-3)


def test_scheduling_ahead_follows_the_engine_version():
    """vLLM schedules ahead by default from 0.14.0 (its release notes), TensorRT-LLM from its 1.x
    PyTorch flow (overlap scheduler), SGLang from 0.4; a plain name is the current generation."""
    engines = CATALOG.engines
    assert [engines.get(n).schedules_ahead for n in ("vllm", "vllm@0.19.0", "vllm@0.14", "vllm@0.12.0", "vllm@0.6.3")] == [
        True, True, True, False, False]
    assert [engines.get(n).schedules_ahead for n in ("trtllm", "trtllm@1.0.0rc3", "trtllm@0.9")] == [True, True, False]
    assert [engines.get(n).schedules_ahead for n in ("sglang", "sglang@0.4.3", "sglang@0.3")] == [True, True, False]
    assert not engines.get("llamacpp").schedules_ahead


def test_a_stated_step_budget_splits_the_burst():
    """Toy model, C = 2, I = 16, O = 17, whole prompts, with the budget K = C + I = 18 tokens a source's
    configs may set (validation/benchmarks.toml): a step carries one prompt beside the 2 decode
    sequences, 1664 + 336 x 18 + 144 x 3 + 16 x 2 x 24.5 + 48 x 2 + 64 x 16 = 10,048 B = 10.048 s. The
    loop's burst takes n_b = 2 such steps: the first wave waits T_f (2 + 1) / 2 = 15.072 s, and in
    phase each prompt rides its own step, 10.048 s (against one step of both, 16.592 s, in the
    engine's default 8,192-token budget). The work per request, and so TPOT, is unchanged."""
    toy = _toy()
    split = serving.serve(toy, 2.0, 16, 17, step_tokens=np.array(18.0))
    assert float(split.ttft_parts.in_phase) == pytest.approx(10.048, abs=1e-3)
    assert float(split.ttft_parts.first_wave) == pytest.approx(15.072, abs=1e-3)
    whole = serving.serve(toy, 2.0, 16, 17)
    assert float(whole.ttft_s) == pytest.approx(16.592, abs=1e-3)
    assert float(split.tpot_s) == pytest.approx(float(whole.tpot_s))
    same = serving.serve(toy, 2.0, 16, 17, step_tokens=np.array(float(toy.engine.prefill_chunk_tokens)))
    assert float(same.ttft_s) == pytest.approx(float(whole.ttft_s))


def test_aiconfigurator_rows_run_on_the_budget_its_configs_set():
    """aiconfigurator's generator sets agg max_num_tokens = max_batch_size + isl + 500 for TensorRT-LLM
    and + 1500 for vLLM (its rule_plugin/*.rule, validation/benchmarks.toml): K = C + I + margin per
    engine family; an engine family the source states nothing for keeps its default (None)."""
    bench = next(b for b in validation.benchmarks().values() if b.key == "aiconfigurator")
    conc, isl = np.array([4.0, 64.0]), np.array([1024.0, 8192.0])
    assert list(bench.step_tokens("trtllm", conc, isl)) == [1528.0, 8756.0]
    assert list(bench.step_tokens("vllm", conc, isl)) == [2528.0, 9756.0]
    assert bench.step_tokens("llamacpp", conc, isl) is None
    assert validation.STEADY.step_tokens("vllm", conc, isl) is None


def test_a_prefill_first_engine_locks_the_loop():
    """A prefill-first engine (engines.toml mixed_prefill = false: SGLang) prefills the waiting group
    before any decode step, so in the toy loop above (C = 2, I = 16, O = 17; both prompts in one burst
    step, n_b = 1) the group in phase starts decoding together: TTFT = T_f (n_b + 1) / 2 = 16.592 s,
    and no prompt stalls its decode steps: TPOT = T_d(2) = (1664 + 528 x 2 + 16 x 2 x 24.5) / 1000 =
    3.504 s, against 4.322 s when prompts mix into the steps. With chi_0 = 0.3 in phase the rest is
    staggered: TTFT 0.3 x 16.592 + 0.7 x 12.751, TPOT 0.3 x 3.504 + 0.7 x 4.322. Same work per cycle,
    so the same X; random arrivals are never in phase."""
    mixing = _toy()
    first = replace(mixing, engine=replace(mixing.engine, mixed_prefill=False))
    s = serving.serve(first, 2.0, 16, 17)
    assert float(s.ttft_s) == pytest.approx(16.592, abs=1e-3)
    assert float(s.tpot_s) == pytest.approx(3.504, abs=1e-3)
    part = serving.serve(first, 2.0, 16, 17, phase_coherence=0.3)
    assert float(part.ttft_s) == pytest.approx(0.3 * 16.592 + 0.7 * 12.751, abs=1e-3)
    assert float(part.tpot_s) == pytest.approx(0.3 * 3.504 + 0.7 * 4.322, abs=1e-3)
    mixed = serving.serve(mixing, 2.0, 16, 17)
    assert float(mixed.tpot_s) == pytest.approx(4.322, abs=1e-3)
    assert float(s.requests_s) == pytest.approx(float(mixed.requests_s))
    spread = [serving.serve(scn, 2.0, 16, 17, closed_loop=False) for scn in (first, mixing)]
    assert spread[0].ttft_s == pytest.approx(spread[1].ttft_s) and spread[0].tpot_s == pytest.approx(spread[1].tpot_s)


def test_sglang_moves_the_burst_from_tpot_to_ttft(catalog):
    """aiconfigurator's runs of Qwen3-32B BF16 on 4 H100 (validation/external.csv), 4,096 in / 128 out,
    128 in flight, the same campaign and client: SGLang 9,196 ms TTFT and 93.9 ms TPOT, vLLM 1,411 ms and
    159.3 ms; 21.1 s and 21.6 s per request. The prefill-first engine carries the burst in its TTFT and
    not in its TPOT; each request's time stays within a quarter of the measured one."""
    runs = {e: serving.serve(scenario(catalog, "qwen3-32b", "h100-sxm", 4, dtype="bf16", engine=e), 128.0, 4096, 128)
            for e in ("sglang", "vllm")}
    sgl, vll = runs["sglang"], runs["vllm"]
    assert float(sgl.ttft_s) > 3.0 * float(vll.ttft_s)
    assert float(sgl.tpot_s) < 0.8 * float(vll.tpot_s)
    assert float(sgl.e2e_latency_s) == pytest.approx(9.196 + 127 * 0.0939, rel=0.25)
    assert float(vll.e2e_latency_s) == pytest.approx(1.411 + 127 * 0.1593, rel=0.25)


def test_lengths_from_a_range_de_phase_the_loop(catalog):
    """Output lengths uniform in [0.8 x 1024, 1024]: sigma_O = 0.2 x 1024 / sqrt(12) = 59 steps, far
    more than the one-step burst of 8 prompts of 1024 tokens in an 8,192-token budget, so chi =
    1 / (1 + 59^2) ~ 0 and the TTFT is the staggered one."""
    scn = scenario(catalog, "llama3-70b", "h100-sxm", 4)
    mix = lengths.uniform(0.8)
    s = serving.serve(scn, 8.0, 1024, 1024, lengths=mix)
    assert float(s.in_phase) < 0.01
    fixed = serving.serve(scn, 8.0, 1024, 1024)
    assert float(fixed.in_phase) == 1.0 and float(fixed.ttft_s) > float(s.ttft_s)


def test_engine_first_token_time_is_added_once(catalog):
    """vLLM's fitted first-token time (engines.toml ttft_overhead_ms) rides on every served TTFT; the
    ideal view has none."""
    scn = scenario(catalog, "llama3-8b", "h100-sxm", 1)
    assert scn.ttft_overhead_s == pytest.approx(scn.engine.ttft_overhead_s) and scn.ttft_overhead_s > 0
    with_t0 = serving.serve(scn, 1.0, 512, 64)
    without = serving.serve(replace(scn, engine=replace(scn.engine, ttft_overhead_s=0.0)), 1.0, 512, 64)
    assert float(with_t0.ttft_s - without.ttft_s) == pytest.approx(scn.ttft_overhead_s)
    assert replace(scn, ideal=True).ttft_overhead_s == 0.0


# --- attention-DP ranks in lockstep ----------------------------------------------------------

def test_slowest_rank_paces_the_step(catalog):
    """f = 0.14 of a rank's steps carry prompt tokens; 8 ranks in lockstep: some rank does in
    1 - 0.86^8 = 0.7008 of the steps; a scheduler removing 80% of the difference (TensorRT-LLM's ADP
    balance) leaves 0.14 + 0.2 x 0.5608 = 0.2522. A TP group is one unit: f itself."""
    adp = scenario(catalog, "deepseek-v3", "gb200", 8, tp=1, ep=8, attention_dp=True)
    assert float(serving.lockstep_share(adp, np.asarray(0.14))) == pytest.approx(0.70076, abs=1e-4)
    balanced = replace(adp, engine=replace(adp.engine, adp_prefill_balance=0.8))
    assert float(serving.lockstep_share(balanced, np.asarray(0.14))) == pytest.approx(0.25215, abs=1e-4)
    tp = scenario(catalog, "deepseek-v3", "gb200", 8)
    assert float(serving.lockstep_share(tp, np.asarray(0.14))) == pytest.approx(0.14)


def test_adp_throughput_reproduces_the_balance_blog_ratio_shape(catalog):
    """TensorRT-LLM blog 10: ranks that wait for each other lose throughput against the same work
    balanced (25.7k of 39.6k tok/s on 8 GB200); balancing the prefills recovers most of it. tokecon:
    the balanced engine is faster, and no faster than the perfectly balanced bound (beta = 1)."""
    scn = scenario(catalog, "deepseek-v3", "gb200", 8, tp=1, ep=8, attention_dp=True, dtype="fp4", engine="trtllm")
    rate = {}
    for beta in (0.0, 0.8, 1.0):
        s = replace(scn, engine=replace(scn.engine, adp_prefill_balance=beta))
        rate[beta] = float(serving.serve(s, 8 * 512.0, 803, 3653, closed_loop=False).output_tok_s)
    assert rate[0.0] < rate[0.8] <= rate[1.0]


# --- expert imbalance ------------------------------------------------------------------------

def test_expert_imbalance_grows_with_ep_size():
    """TensorRT-LLM, DeepSeek-R1 at EP32 on 32 GB200, 256 routed tokens x 8 per rank: busiest rank
    2.56x the mean without EPLB, 1.11x with it. tokecon: 1 + sqrt(2 ln 32) sqrt(1.67^2 / 8 + 1/2048)
    = 1 + 2.6328 x 0.5909 = 2.556; EPLB 1 + 2.6328 sqrt(0.042^2 + 1/2048) = 1.125."""
    assert float(efficiency.ep_imbalance(2048.0, 32, False, 256, 1.67)) == pytest.approx(2.556, abs=2e-3)
    assert float(efficiency.ep_imbalance(2048.0, 32, True, 256, 1.67)) == pytest.approx(1.125, abs=2e-3)
    by_ep = [float(efficiency.ep_imbalance(2048.0, ep, False, 256, 1.67)) for ep in (2, 8, 32, 64)]
    assert by_ep == sorted(by_ep) and float(efficiency.ep_imbalance(2048.0, 1, False)) == 1.0


def test_imbalance_stretches_token_work_not_weight_reads(catalog):
    """At one token per rank the experts' step is their weight read, which every rank makes once: the
    imbalance adds almost nothing; at thousands of tokens the expert FLOP are stretched by it."""
    scn = scenario(catalog, "deepseek-v3", "h200", 8, tp=1, ep=8, attention_dp=True)
    balanced = replace(scn, model=replace(scn.model, expert_load_cv=1e-9))
    t = lambda s, b: float(decode_step(s, np.asarray(b), np.asarray(2048.0)).breakdown_s["moe/experts"])  # noqa: E731
    assert t(scn, 1.0) / t(balanced, 1.0) < 1.1
    assert t(scn, 512.0) / t(balanced, 512.0) > 1.3


# --- checkpoints quantise components ---------------------------------------------------------

def test_deepseek_fp4_is_nvidias_recipe(catalog):
    """nvidia/DeepSeek-R1-FP4: attention and the MTP module BF16, dense MLPs and experts NVFP4, FP8 KV
    scales that TensorRT-LLM reads (vLLM's auto KV type stays bf16). 396.7 GB of weights against 389.9
    were attention FP4 too (research REPORT 3.1: 394.9 vs 389.9 billion without norms)."""
    m = catalog.models.get("deepseek-v3")
    trt = precision_for(m, "fp4", None, catalog.engines.get("trtllm"))
    assert (trt.attention_weights, trt.dense_weights, trt.expert_weights, trt.mtp) == ("bf16", "nvfp4", "nvfp4", "bf16")
    assert trt.kv_cache == "fp8" and "trtllm" in trt.kv_source and "DeepSeek-R1-FP4" in trt.recipe
    vllm = precision_for(m, "fp4", None, catalog.engines.get("vllm"))
    assert vllm.kv_cache == "bf16" and vllm.recipe == trt.recipe
    assert params.weight_bytes(m, trt) / 1e9 == pytest.approx(396.7, abs=0.1)
    everything = precision_for(m, "nvfp4", None, None)  # the recipe's own type name picks it too
    assert everything.attention_weights == "bf16"
    assert params.weight_bytes(m, replace(trt, attention=None)) < params.weight_bytes(m, trt)


def test_llama405b_fp8_meta_and_nvidia(catalog):
    """Meta's FP8 checkpoint (vLLM's): all attention and the MLPs of layers 0 and 125 in BF16, 324.6e9
    FP8 + 81.3e9 BF16 parameters = 487.2 GB; TensorRT-LLM runs NVIDIA's, every linear FP8 (410.1 GB)."""
    m = catalog.models.get("llama3-405b")
    meta = precision_for(m, "fp8", None, catalog.engines.get("vllm"))
    assert meta.attention_weights == "bf16" and meta.dense_16bit_layers == 2 and meta.kv_cache == "bf16"
    assert params.weight_bytes(m, meta) / 1e9 == pytest.approx(487.2, abs=0.2)
    nv = precision_for(m, "fp8", None, catalog.engines.get("trtllm"))
    assert nv.attention_weights == "fp8" and params.weight_bytes(m, nv) / 1e9 == pytest.approx(410.1, abs=0.2)


def test_gpt_oss_fp4_is_the_released_checkpoint(catalog):
    """gpt-oss ships MXFP4 experts and BF16 elsewhere: --dtype fp4 (or a row's generic "nvfp4") means
    that checkpoint, so its bytes equal the native ones; a component can be overridden."""
    m = catalog.models.get("gpt-oss-120b")
    native = precision_for(m, None, None, None)
    fp4 = precision_for(m, "fp4", None, catalog.engines.get("trtllm"))
    assert fp4.attention_weights == "bf16" and fp4.expert_weights == "mxfp4"
    assert params.weight_bytes(m, fp4) == pytest.approx(params.weight_bytes(m, native), rel=1e-5)  # norms aside
    override = precision_for(m, "fp4", "fp8", None, parse_components("attention=fp8"))
    assert override.attention_weights == "fp8" and override.kv_cache == "fp8" and override.kv_source == "--kv-dtype"
    with pytest.raises(TokeconError):
        parse_components("heads=fp8")


def test_a_model_without_a_recipe_quantises_every_matmul(catalog):
    m = catalog.models.get("llama3-8b")
    p = precision_for(m, "fp8", None, catalog.engines.get("trtllm"))
    assert p.attention_weights == p.dense_weights == "fp8" and p.kv_cache == "bf16" and "publishes no fp8" in p.recipe


def test_validation_rows_run_the_recipe(catalog):
    """aiconfigurator labels gpt-oss 'nvfp4': the row runs OpenAI's checkpoint (BF16 attention), and its
    KV type, not stated, follows recipe and engine (no KV scales: bf16)."""
    row = {"id": "X-1", "model": "gpt-oss-120b", "hardware": "h200", "n_gpus": "1", "engine": "trtllm@1.2.0",
           "weight_precision": "nvfp4", "kv_precision": "fp8 (assumed: ...)", "scenario": "closed-loop serving (aggregated)",
           "metric": "tpot_ms", "value": "20", "concurrency_or_batch": "8", "input_len": "1024", "output_len": "1024",
           "parallelism": "TP1 PP1 attnDP1 moeTP1 moeEP1"}
    prec = validation.build_case(row, catalog).scenario.precision
    assert prec.attention_weights == "bf16" and prec.expert_weights == "mxfp4" and prec.kv_cache == "bf16"
    stated = validation.build_case({**row, "kv_precision": "fp8"}, catalog).scenario.precision
    assert stated.kv_cache == "fp8"


# --- engine memory and caps ------------------------------------------------------------------

def test_tensorrt_llm_keeps_a_share_of_the_free_memory(catalog):
    """TensorRT-LLM gives the KV cache 0.9 of the memory left after the weights (free_gpu_memory_fraction),
    not 0.9 of the device: DeepSeek-R1 FP8 on 4 GB200 with attention DP (182.55 GB of weights per GPU
    of 198.64) keeps (198.64 - 1.0 - 182.55) x 0.9 = 13.58 GB, 94 sequences of 2,048 tokens at 70,272 B
    of BF16 MLA cache per token; vLLM's 10% of the device leaves nothing."""
    trt = scenario(catalog, "deepseek-v3", "gb200", 4, tp=1, ep=4, attention_dp=True, engine="trtllm")
    w = memory.weight_bytes_per_gpu(trt.model, trt.precision, trt.deployment)
    assert w / 1e9 == pytest.approx(182.55, abs=0.01)
    room = (trt.hardware.memory_bytes - 1e9 - w) * 0.9
    assert int(memory.max_batch(trt, np.asarray([2048.0]))[0]) == math.floor(room / (2048 * 61 * 576 * 2))
    assert int(memory.max_batch(trt, np.asarray([2048.0]))[0]) == 94
    vllm = scenario(catalog, "deepseek-v3", "gb200", 4, tp=1, ep=4, attention_dp=True, engine="vllm")
    assert int(memory.max_batch(vllm, np.asarray([2048.0]))[0]) == 0


def test_vllm_v1_cap_depends_on_device_memory(catalog):
    """vLLM V1 (0.8 on): max_num_seqs 1024 on devices of 70 GiB or more, 256 below; V0: 256."""
    assert scenario(catalog, "llama3-8b", "h100-sxm", 1).max_running_requests == 1024
    assert scenario(catalog, "llama3-8b", "a100-40gb", 1).max_running_requests == 256
    assert scenario(catalog, "llama3-8b", "h100-sxm", 1, engine="vllm@0.6.3").max_running_requests == 256


# --- disaggregated pools take a length mix ----------------------------------------------------

def test_disagg_lengths_from_a_range(catalog):
    """Lengths uniform in [0.5 L, L] around 2,000 in and 200 out: the pools see the mean prompt, 1,500
    tokens, whose KV cache is 1,500 x 80 layers x 2 x 8 heads x 128 x 2 B = 491.52 MB; the rows
    report the longest lengths."""
    p = scenario(catalog, "llama3-70b", "h100-sxm", 4)
    d = scenario(catalog, "llama3-70b", "h100-sxm", 4)
    t = disagg.serve(p, d, 1, 1, 64, 2000, 200, lengths=lengths.uniform(0.5))
    assert float(t.kv_bytes_per_request) == pytest.approx(491.52e6, rel=1e-3)
    assert float(t.input_tokens) == 2000 and float(t.output_tokens) == 200
    fixed = disagg.serve(p, d, 1, 1, 64, 2000, 200)
    assert float(fixed.kv_bytes_per_request) == pytest.approx(655.36e6, rel=1e-3)
    assert float(t.in_phase) < float(fixed.in_phase)


# --- hygiene of the external measurements -----------------------------------------------------

def _converter():
    return validation_script("import_external")


def test_duplicate_runs_are_left_out_by_rule():
    """Three records of one measured (TTFT, TPOT) pair under one deployment: a repeat, two left out;
    two records of another pair under different GPU counts: a conflict, both left out."""
    base = {"mode": "agg", "system": "h200_sxm", "backend": "vllm", "isl": "1024", "osl": "1024", "tp_size": "8",
            "pp_size": "1", "attention_dp_size": "1", "moe_tp_size": "1", "moe_ep_size": "8", "batch_size": "4",
            "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "silicon_data_source": "silicon_concurrency=4",
            "silicon_ttft_ms": "100.123456789", "silicon_tpot_ms": "10.987654321"}
    other = {**base, "silicon_ttft_ms": "200.5", "silicon_tpot_ms": "101.78"}
    rows = [base, dict(base), dict(base), other, {**other, "tp_size": "1", "attention_dp_size": "8"}]
    drop, counts = _converter().duplicates(rows)
    assert drop == {1, 2, 3, 4}
    assert sorted(counts.values()) == [2, 2]


def test_impossible_runs_are_skipped_with_the_reason(catalog):
    """llama3-8b on one H100, one request: the ideal decode step reads 15.03 GB of weights (8.03e9
    parameters less the 0.53e9 of the embedding table, which is looked up, not read, at 2 B) at
    3.35 TB/s: 4.49 ms; a TPOT of 3 ms is impossible as recorded and skipped (the run's TTFT row,
    possible on its own, stays)."""
    scn = scenario(catalog, "llama3-8b", "h100-sxm", 1)
    floor = float(validation.impossible_tpot_floor_ms(scn, np.asarray([1.0]), np.asarray([128.0]), np.asarray([128.0]))[0])
    assert floor == pytest.approx(4.49, abs=0.02)
    row = {"id": "X-1", "model": "llama3-8b", "hardware": "h100-sxm", "n_gpus": "1", "engine": "vllm@0.10.0",
           "weight_precision": "bf16", "kv_precision": "bf16", "scenario": "closed-loop serving (aggregated)",
           "metric": "tpot_ms", "value": "3", "concurrency_or_batch": "1", "input_len": "128", "output_len": "128",
           "parallelism": "TP1 PP1 attnDP1 moeTP1 moeEP1"}
    out = validation.evaluate([row, {**row, "id": "X-2", "metric": "ttft_ms", "value": "30"}], catalog, with_ideal=False)
    assert [o.skipped for o in out] == [validation.IMPOSSIBLE, None]


def test_committed_external_rows_hold_no_duplicate_measurement():
    """After the rules no two aggregated runs share a measured (TTFT, TPOT) pair on one system."""
    with open(ROOT / "validation" / "external.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["id"].startswith("AIC.")]
    notes = Counter((r["notes"].split(";")[0], r["hardware"], r["metric"], r["concurrency_or_batch"]) for r in rows)
    assert max(notes.values()) == 1


# --- ranges per regime ------------------------------------------------------------------------

def test_ranges_hold_their_estimate_and_keep_to_their_regime():
    """Residuals all above zero still give a range that holds the estimate (q10 clipped to 0); a TTFT
    range comes from TTFT residuals pooled over families before any throughput group; a regime with no
    group of its own falls back to the prefill or decode groups."""
    from tokecon.fidelity import uncertainty

    q = uncertainty.quantiles(np.linspace(0.1, 0.5, 16))
    assert q["q10"] == 0.0 and q["q90"] > 0.5
    rows = [("hopper", "vllm", False, "decode", x) for x in np.linspace(-0.1, 0.1, 20)]
    rows += [("blackwell", "vllm", False, "ttft", x) for x in np.linspace(-1.0, 0.2, 20)]
    table = uncertainty.build(rows)
    q10, q90, group = uncertainty.lookup(table, "hopper", "vllm", False, "ttft", {"hopper", "blackwell"})
    assert group == "vllm|dense|ttft" and q10 < -0.8
    _, _, group = uncertainty.lookup(table, "hopper", "vllm", False, "tpot", {"hopper"})
    assert group == "hopper|vllm|dense|decode"


def test_moe_layer_cost_is_paid_per_moe_layer(catalog):
    """A fixed 300 us per MoE layer and step: DeepSeek-V3's 58 MoE layers add 17.4 ms to every step
    (a dense model none); the launch floor counts as before."""
    scn = scenario(catalog, "deepseek-v3", "h200", 8)
    more = replace(scn, engine=replace(scn.engine, moe_layer_overhead_s=300e-6))
    assert more.layer_overhead_s - scn.layer_overhead_s == pytest.approx(58 * 300e-6)
    dense = scenario(catalog, "llama3-70b", "h200", 8)
    assert replace(dense, engine=replace(dense.engine, moe_layer_overhead_s=300e-6)).layer_overhead_s == dense.layer_overhead_s


# --- what the front end shows of them --------------------------------------------------------

def test_the_checkpoint_and_kv_reason_reach_the_output():
    """decode names the recipe it ran (NVIDIA's DeepSeek-R1 FP4: attention and MTP BF16) and why the
    KV cache has its type, in the JSON inputs and as one assumption line of the table."""
    import json

    from typer.testing import CliRunner

    from tokecon.cli.main import app

    r = CliRunner().invoke(app, ["decode", "-m", "deepseek-r1", "-g", "8xB200", "--dtype", "fp4", "-b", "64", "-f", "json"])
    assert r.exit_code == 0, r.output
    inputs = json.loads(r.stdout)  # the inputs sit at the top level beside "rows"
    assert "DeepSeek-R1-FP4" in inputs["checkpoint"] and inputs["weight_components"]["attention"] == "bf16"
    assert inputs["weight_components"]["routed_experts"] == "nvfp4" and "vllm" in inputs["kv_dtype_reason"]
    table = CliRunner().invoke(app, ["decode", "-m", "deepseek-r1", "-g", "8xB200", "--dtype", "fp4", "-b", "64"])
    assert "weights: nvidia/DeepSeek-R1-FP4" in table.stdout.replace("\n    ", " ")
    plain = CliRunner().invoke(app, ["decode", "-m", "llama3-70b", "-g", "4xH100", "-b", "64"])
    assert "weights:" not in plain.stdout  # a native checkpoint of one type says nothing


def test_disaggregated_pools_take_a_range_of_lengths():
    """--range-ratio 0.5 on 1024/1024: the pools see the mean request (768 + 768 tokens), so the KV
    hand-off is 768/1024 of the fixed-length one; once refused, now modelled."""
    import tokecon

    args = dict(model="llama3-70b", prefill_gpus="4xH100", decode_gpus="4xH100", concurrency=[8])
    fixed = tokecon.serve(**args).rows[0]
    varied = tokecon.serve(**args, range_ratio=0.5).rows[0]
    assert varied["kv_transfer_s"] < fixed["kv_transfer_s"]
    assert varied["ttft_s"] != fixed["ttft_s"]


def test_moe_command_honours_eplb():
    """tokecon moe --eplb balances the experts: the busiest rank's share of token work falls, so the
    step is no slower and, at EP32 on DeepSeek, faster (issue 18's report: moe ignored it)."""
    import tokecon

    args = dict(model="deepseek-v3", gpus="8xH100", nodes=[4], batch_per_gpu=[64])
    plain, balanced = tokecon.moe(**args).rows[0], tokecon.moe(**args, eplb=True).rows[0]
    assert balanced["step_time_s"] < plain["step_time_s"]
