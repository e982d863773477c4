"""Serving corrections from the audit: the engine's cap on running requests, KV admission per engine,
preemption and recompute under KV pressure, the engine's default prefill, the step under way in TTFT,
and validate's in-flight rows through the same model.

Hand numbers use the one-layer toy of tests/test_serve.py: I = 16, O = 17 (16 decode steps), average
context 24.5; 2212 B of free memory, 16 B of KV per token.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tokecon.physics import memory
from tokecon.serving import batching as serving
import tokecon
from tokecon.physics.specs import Efficiency
from tokecon.fidelity.validation import build_case, load_measurements, measurements_path, predict_inflight

from test_serve import t_decode, t_mixed, toy_scenario


def toy(**engine) -> serving.Scenario:
    scn = toy_scenario()
    return replace(scn, engine=replace(scn.engine, **engine))


def real_toy(**engine) -> serving.Scenario:
    """The toy outside the ideal view (so the engine's software cap applies), with perfect
    efficiency and no overheads, so the hand counts still hold."""
    scn = toy(step_overhead_per_seq_s=0.0, **engine)
    hw = replace(scn.hardware, efficiency=Efficiency(compute=1.0, memory_bw=1.0, link=1.0, collective_latency_s=0.0))
    return replace(scn, ideal=False, deployment=replace(scn.deployment, hardware=hw))


def test_engine_cap_bounds_the_running_batch():
    """llama.cpp-like cap of 1: at C = 8 one request runs and 7 queue. f = 1/16 of the steps carry a
    whole 16-token prompt: T_m = (1664 + 336 x 17 + 144 x 2 + 392 + 48 + 1024) / 1000 = 9.128 s,
    T_d(1) = 2.584 s, TPOT = 9.128 / 16 + 2.584 x 15/16 = 2.993 s; X = 1 / (16 x 2.993) req/s, so
    17 X = 0.35500 out tok/s, where the uncapped 4 (KV-bound) give 4 x 17 / (16 x 6.980) = 0.60888;
    wait = 7 / X = 7 x 16 x 2.993 = 335.216 s."""
    s = serving.serve(real_toy(max_running_requests=1), np.array([1.0, 8.0]), 16, 17)
    assert list(s.running) == [1, 1] and list(s.queued) == [0, 7] and list(s.max_running) == [1, 1]
    tpot = t_mixed(1, 24.5, 16, 16) / 16 + t_decode(1, 24.5) * 15 / 16
    assert t_mixed(1, 24.5, 16, 16) == pytest.approx(9.128) and tpot == pytest.approx(2.993)
    assert s.tpot_s == pytest.approx([tpot, tpot])
    assert s.output_tok_s == pytest.approx([0.35500, 0.35500], abs=1e-5)
    assert s.queue_wait_s[1] == pytest.approx(335.216)
    free = serving.serve(real_toy(), 8.0, 16, 17)
    assert float(free.output_tok_s) == pytest.approx(0.60888, abs=1e-5)
    # the ideal view drops the software cap, as validate does
    ideal = serving.serve(replace(real_toy(max_running_requests=1), ideal=True), 8.0, 16, 17)
    assert float(ideal.running) == 4


def test_llamacpp_at_concurrency_8_runs_one_request(catalog):
    """llama.cpp's one slot: concurrency 8 is no faster than 1, and TTFT carries 7 requests' service."""
    opts = dict(model="llama3-8b", gpus="1xH100", engine="llamacpp", input_len=1024, output_len=256)
    one, eight = tokecon.serve(**opts, concurrency=[1, 8]).rows
    assert eight["running"] == 1 and eight["queued"] == 7 and eight["max_concurrency"] == 1
    assert eight["output_tok_s"] == pytest.approx(one["output_tok_s"])
    assert eight["queue_wait_s"] == pytest.approx(7 * 255 * eight["tpot_s"])
    ideal = tokecon.serve(**opts, concurrency=[8], ideal=True).rows[0]
    assert ideal["running"] == 8


def test_kv_admission_follows_the_engine():
    """Toy: 'full' reserves 33 tokens (528 B) per request: floor(2212 / 528) = 4 run; 'average'
    reckons 24.5 tokens (392 B): floor(2212 / 392) = 5 run."""
    full = serving.serve(toy(kv_admission="full"), 8.0, 16, 17)
    avg = serving.serve(toy(kv_admission="average"), 8.0, 16, 17)
    assert float(full.running) == 4 and float(avg.running) == 5
    assert float(full.preempted) == 0


def test_average_admission_runs_up_to_1_8x_more_on_long_outputs(catalog):
    """I = 128, O = 4096: the average footprint is 2176 tokens against 4224 reserved, 1.94x as many
    requests (the engine cap lifted so that only the KV cache binds)."""
    from helpers import scenario

    scn = scenario(catalog, "llama3-70b", "h100-sxm", 4, engine="vllm")
    avg = replace(scn, engine=replace(scn.engine, max_running_requests=10**6))
    full = replace(avg, engine=replace(avg.engine, kv_admission="full"))
    ratio = float(serving.max_running(avg, 128, 4096) / serving.max_running(full, 128, 4096))
    assert ratio == pytest.approx(4224 / 2176, rel=0.01)


def test_preemption_and_recompute_on_paper():
    """'average' admission, C = 5: 5 run but the cache holds m = 4 at 33 tokens (F = 132 tokens), so
    phi = 1 - 4/5 = 0.2 are preempted at mean context L = 132 ln(5/4) / (5 - 4) = 29.455 tokens and
    re-prefilled: P = 16 + 0.2 x 29.455 = 21.891 prefill tokens per request in 1.2 prefills of
    18.2425 tokens; 5 x 1.2 / 16 = 0.375 of the steps carry one.
    T_m = (1664 + 336 x 23.2425 + 144 x (5 + 18.2425 / 19.6208) + 16 x 5 x 24.5 + 240 + 64 x 18.2425)
    / 1000 = 13.695 s (19.6208 = (16^2 + 0.2 x 29.455^2) / 21.891, the attention-weighted length);
    T_d(5) = 6.264 s; TPOT = 0.375 x 13.695 + 0.625 x 6.264 = 9.0506 s."""
    s = serving.serve(toy(kv_admission="average"), 5.0, 16, 17)
    phi, mean = serving.preemption(5.0, 4.0, 33.0)
    assert float(phi) == pytest.approx(0.2) and float(mean) == pytest.approx(132 * math.log(1.25))
    assert float(s.preempted) == pytest.approx(0.2) and float(s.running) == 5
    segment = (16 + 0.2 * float(mean)) / 1.2
    assert segment == pytest.approx(18.2425, abs=1e-4)
    attn = (16**2 + 0.2 * float(mean) ** 2) / (16 + 0.2 * float(mean))
    t_m = t_mixed(5, 24.5, segment, attn)
    assert t_m == pytest.approx(13.695, abs=1e-3) and float(s.prefill_s) == pytest.approx(t_m)
    assert float(s.tpot_s) == pytest.approx(0.375 * t_m + 0.625 * t_decode(5, 24.5))
    assert float(s.tpot_s) == pytest.approx(9.0506, abs=1e-4)
    # below the full-length fit nothing overflows
    assert serving.preemption(4.0, 4.0, 33.0)[0] == 0


def test_kv_pressure_costs_throughput_on_a_large_dense_model(catalog):
    """Llama-3.1-405B FP8 on 8x H100, vLLM, 1024/1024: Meta's FP8 checkpoint keeps attention and two
    MLPs in BF16 (487 GB, 60.9 GB a GPU), so the cache admits M requests at the average footprint and
    holds m of them at 2048 tokens; the other 1 - m/M are preempted and re-prefilled, so going past m
    buys little throughput (the recompute eats most of the larger batch's gain)."""
    opts = dict(model="llama3-405b", gpus="8xH100", dtype="fp8", engine="vllm", input_len=1024, output_len=1024)
    rows = tokecon.serve(**opts, concurrency=[64, 256]).rows
    from helpers import scenario

    scn = scenario(catalog, "llama3-405b", "h100-sxm", 8, dtype="fp8", engine="vllm")
    m = int(memory.max_batch(scn, np.asarray(2048.0)))
    admitted = int(memory.max_batch(scn, np.asarray(1536.0)))
    assert m < admitted < 256 and rows[0]["preempted_fraction"] == 0
    assert rows[1]["running"] == admitted and rows[1]["preempted_fraction"] == pytest.approx(1 - m / admitted)
    at_m = tokecon.serve(**opts, concurrency=[m]).rows[0]
    assert rows[1]["output_tok_s"] < 1.05 * at_m["output_tok_s"]


def test_engine_default_prefill_and_override():
    """A chunked engine with a 6-token budget is what --chunked-prefill 6 gives a whole-prompt engine
    (tests/test_serve.py: TPOT 4.322 s, TTFT 20.56 s + 2.2384 s of the step under way); at C = 1
    no other request runs, so TTFT has no residual: 4 steps of T_m(1, 5 tokens) = 4 x 4.629 s."""
    default = serving.serve(toy(chunked_prefill=True, prefill_chunk_tokens=6), np.array([1.0, 2.0]), 16, 17, closed_loop=False)
    override = serving.serve(toy(), np.array([1.0, 2.0]), 16, 17, chunk_tokens=6, closed_loop=False)
    assert default.tpot_s == pytest.approx(override.tpot_s) and default.ttft_s == pytest.approx(override.ttft_s)
    assert default.ttft_s[1] == pytest.approx(22.798, abs=1e-3)
    assert t_mixed(1, 24.5, 5, 16) == pytest.approx(4.629)
    assert default.ttft_s[0] == pytest.approx(4 * 4.629)
    whole = serving.serve(toy(), 2.0, 16, 17)
    assert whole.chunk_tokens is None and default.chunk_tokens is not None


def test_a_step_budget_is_the_engine_profile_with_that_budget():
    """``step_tokens`` (--max-num-tokens) is the engine's own budget replaced, prompts kept whole on a
    whole-prompt engine: the same TTFT and TPOT as a profile whose prefill_chunk_tokens is 40."""
    given = serving.serve(toy(), np.array([1.0, 4.0]), 16, 3, step_tokens=40.0)
    profile = serving.serve(toy(prefill_chunk_tokens=40), np.array([1.0, 4.0]), 16, 3)
    assert given.ttft_s == pytest.approx(profile.ttft_s) and given.tpot_s == pytest.approx(profile.tpot_s)
    assert given.chunk_tokens is None


def test_whole_prompts_are_batched_up_to_the_budget():
    """Whole prompts, budget 40 tokens, C = 4 with O = 3 (2 decode steps): 2 prompts arrive per step;
    room 40 - 4 = 36 takes floor(36 / 16) = 2 whole prompts, so every step carries 32 prompt tokens."""
    s = serving.serve(replace(toy_scenario(memory_bytes=1e6), engine=replace(toy().engine, prefill_chunk_tokens=40)), 4.0, 16, 3)
    assert float(s.running) == 4
    assert float(s.prefill_s) == pytest.approx(t_mixed(4, 17.5, 32, 16))
    assert float(s.tpot_s) == pytest.approx(float(s.prefill_s))  # every step is mixed


def test_validate_inflight_is_serve_at_the_most_that_run(catalog):
    """Offline throughput rows: serve at max_running x replicas with the engine's default prefill."""
    rows = {r["id"]: r for r in load_measurements(measurements_path())}
    for rid in ("TRT14-007", "OCI-005"):
        case = build_case(rows[rid], catalog)
        scn = case.scenario
        most = float(serving.max_running(scn, case.input_len, case.output_len)) * scn.deployment.replicas
        expected = serving.serve(scn, most, case.input_len, case.output_len)
        metric = {"output_tok_per_s_total": expected.output_tok_s, "output_tok_per_s_per_gpu": expected.output_tok_s_per_gpu}
        assert predict_inflight(case) == pytest.approx(float(metric[case.metric]))
    vllm = build_case(rows["OCI-005"], catalog)
    assert float(serving.max_running(vllm.scenario, 128, 128)) == 256  # vLLM max_num_seqs
    ideal = replace(vllm.scenario, ideal=True)
    assert float(serving.max_running(ideal, 128, 128)) > 256  # the ideal drops the cap
