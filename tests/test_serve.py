"""``tokecon serve`` and the continuous-batching model (tokecon/serving/batching.py).

Pinned to a one-layer toy model whose every byte can be counted on paper, to properties (the KV
cache bounds the running batch; cost x throughput is constant at a fixed price) and to the CLI.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.economics import money as economics
from tokecon.physics import memory
from tokecon.serving import batching as serving
import tokecon
from tokecon.cli.main import app
from tokecon.values import concurrency_list
from tokecon.errors import TokeconError
from tokecon.physics.phases import decode_step, prefill_step

from helpers import json_rows
from tokecon.physics.specs import Deployment, Efficiency, Engine, Hardware, Model, Precision
from tokecon.physics.scenario import Scenario

runner = CliRunner()

SERVE_ROW_KEYS = {
    "concurrency", "input_tokens", "output_tokens", "ttft_s", "tpot_s", "e2e_latency_s", "output_tok_s",
    "output_tok_s_per_gpu", "total_tok_s", "total_tok_s_per_gpu", "usd_per_mtok_input", "usd_per_mtok_output",
    "hardware", "n_gpus", "tp", "fits", "bound", "usd_per_hour", "usd_per_mtok", "tok_s_per_user", "requests_s",
    "running", "queued", "max_concurrency",
}  # fmt: skip


def toy_scenario(memory_bytes: float = 4436.0, usd_per_gpu_hour: float = 3.6) -> Scenario:
    """One layer, D = 8, 2 query heads and 1 KV head of 4, gated FFN of 16, vocabulary 32, bf16.

    Parameters: attention 8*2*4 + 2*8*1*4 + 2*4*8 = 192, FFN 3*8*16 = 384, norms 2*8 + 8 = 24,
    embedding and head 2*32*8 = 512: 1112 parameters, 2224 B. KV: 2*1*4*2 = 16 B per token.
    FLOP/s is so high that every operation is memory-bound; ideal, so no overhead or latency.
    """
    model = Model(key="toy", name="toy", layers=1, hidden_size=8, heads=2, kv_heads=1, head_dim=4,
                  intermediate_size=16, vocab_size=32, max_context=4096)
    hw = Hardware(key="toy-gpu", name="Toy GPU", vendor="none", family="toy", memory_bytes=memory_bytes,
                  memory_bw_b_s=1000.0, flop_s={"bf16": 1e15}, scaleup_link="toy", scaleup_bw_b_s=1e9,
                  scaleup_domain=8, scaleout_bw_b_s=1e9, power_w=100.0, rental_usd_per_hour=usd_per_gpu_hour,
                  price_date="", efficiency=Efficiency(), purchase_usd=10_000.0)
    engine = Engine(key="toy-engine", name="toy engine", memory_reserve_fraction=0.0)
    return Scenario(model, Deployment(hw, 1, 1), Precision("bf16"), engine, ideal=True)


# Bytes per step, counted by hand (ab = wb = kvb = 2 B):
#   decode, B sequences over a cache of C tokens:
#     weights read once: qkv 2*128 + out 2*64 + FFN 2*384 + head 2*256 = 1664 B
#     per sequence: embed 16 + qkv act 2*(8+16) + out act 2*(8+8) + attention q/o and KV write 48
#                   + FFN act 2*(8+64) + norms 2*8*2*3 + head act 2*8 + 4*32 = 528 B
#     KV read: 16 B x C per sequence                  ->  T_d = (1664 + 528 B + 16 B C) / 1000 B/s
#   prefill of one S-token prompt (logits for the last token only):
#     1664 + 144 (head activations of one row) + 400 B per token  ->  t_p = (1808 + 400 S) / 1000 B/s
def t_decode(batch: float, context: float) -> float:
    return (1664 + 528 * batch + 16 * batch * context) / 1000.0


def t_prefill(tokens: float) -> float:
    return (1808 + 400 * tokens) / 1000.0


def t_mixed(batch: float, context: float, chunk: float, prompt: float) -> float:
    """One step of ``batch`` decode tokens and ``chunk`` prompt tokens: weights once, 336 B per token
    (embed 16, qkv 48, out 32, FFN 144, norms 96), head 144 B per logit row (batch + chunk / prompt),
    decode attention 16 B x context + 48 B per sequence, prompt attention 64 B per prompt token."""
    rows = batch + chunk / prompt
    return (1664 + 336 * (batch + chunk) + 144 * rows + 16 * batch * context + 48 * batch + 64 * chunk) / 1000.0


def test_toy_steps_match_the_hand_count():
    scn = toy_scenario()
    assert float(decode_step(scn, 2.0, 24.5).step_time_s) == pytest.approx(t_decode(2, 24.5))
    assert float(prefill_step(scn, 1.0, 16.0).step_time_s) == pytest.approx(t_prefill(16))


def test_whole_prefill_on_paper():
    """I = 16, O = 17 (16 decode steps), average context 16 + 17/2 = 24.5; whole prompts (the toy
    engine's default), batched with the decode tokens into mixed steps.

    KV per request 33 x 16 = 528 B; free memory 4436 - 2224 = 2212 B -> 4 requests fit.
    C = 2: one 16-token prompt in f = 2/16 of the steps; T_m = (1664 + 336 x 18 + 144 x 3 + 784 + 96
           + 1024) / 1000 = 10.048 s (weights read once: t_p + T_d - 1.664 s); TPOT = 10.048 / 8 +
           3.504 x 7/8 = 4.322 s. TTFT = T_m + the rest of the step under way, (f T_m^2 + (1 - f)
           T_d^2) / (2 TPOT) = 23.3636 / 8.644 = 2.7029 s -> 12.751 s; E2E = 12.751 + 16 x 4.322.
    C = 8: 4 run, 4 queue: f = 4/16, T_m = 11.888 s, TPOT = 11.888 / 4 + 5.344 x 3/4 = 6.980 s;
           X = 4 / (16 x 6.980); wait = 4 / X = 111.68 s; residual 56.7499 / 13.96 = 4.0652 s;
           TTFT = 4.0652 + 11.888 + 111.68 = 127.633 s.
    These TTFTs are those of requests spread over time (``closed_loop=False``); a closed loop of fixed
    lengths keeps its requests in phase (issue 18: tests/test_fidelity_terms.py has its numbers).
    """
    s = serving.serve(toy_scenario(), np.array([2.0, 8.0]), 16, 17, closed_loop=False)
    assert list(s.max_running) == [4, 4]
    assert list(s.running) == [2, 4] and list(s.queued) == [0, 4]
    assert s.chunk_tokens is None and list(s.preempted) == [0, 0]
    t_m = np.array([t_mixed(2, 24.5, 16, 16), t_mixed(4, 24.5, 16, 16)])
    assert t_m == pytest.approx([10.048, 11.888]) and s.prefill_s == pytest.approx(t_m)
    assert t_m[0] == pytest.approx(t_prefill(16) + t_decode(2, 24.5) - 1.664)
    tpot = np.array([t_m[0] / 8 + t_decode(2, 24.5) * 7 / 8, t_m[1] / 4 + t_decode(4, 24.5) * 3 / 4])
    assert s.tpot_s == pytest.approx(tpot) and tpot == pytest.approx([4.322, 6.980])
    x = np.array([2, 4]) / (16 * tpot)
    assert s.requests_s == pytest.approx(x)
    assert s.ttft_s == pytest.approx([12.751, 127.633], abs=1e-3)
    assert s.queue_wait_s[1] == pytest.approx(111.68)
    assert s.e2e_latency_s == pytest.approx(s.ttft_s + 16 * tpot)
    assert s.output_tok_s == pytest.approx(17 * x) and s.total_tok_s == pytest.approx(33 * x)
    assert s.tok_s_per_user == pytest.approx(1 / tpot)
    # prefill's share of GPU time: the prompt's extra 6.544 s in 2 of every 16 steps of 4.322 s
    assert s.prefill_time_fraction[0] == pytest.approx(2 / 16 * (10.048 - 3.504) / 4.322)


def test_chunked_prefill_on_paper():
    """Budget K = 6 tokens per step. C = 2: chunks of c = 6 - 2 = 4 prompt tokens; prompts need
    p = 2 x 16 / 16 = 2 tokens per step, so half the steps carry a chunk.

    Mixed step (6 tokens through the linear layers, logits for 2 + 4/16 rows):
      embed 16x6 + qkv 256+48x6 + out 128+32x6 + FFN 768+144x6 + norms 96x6 + head 512+144x2.25
      + decode attention 16x2x24.5 + 48x2 + a quarter of a 16-token prompt's attention 64x16/4 = 5140 B
    TPOT = (5.140 + 3.504) / 2 = 4.322 s; TTFT = ceil(16 / 4) x 5.140 = 20.56 s plus the rest of the
    step under way, (5.140^2 + 3.504^2) / 2 / (2 x 4.322) = 2.2384 s: 22.798 s.
    C = 8: the budget caps the running batch at K (O-1) / (I+O-1) = 6 x 16 / 32 = 3.
    In phase (a closed loop of fixed lengths) both prompts arrive together: chunks of the whole room,
    4 tokens, and no step under way: 4 x 5.140 = 20.56 s.
    """
    s = serving.serve(toy_scenario(), np.array([2.0, 8.0]), 16, 17, chunk_tokens=6, closed_loop=False)
    assert s.prefill_s[0] == pytest.approx(5.140)
    assert s.tpot_s[0] == pytest.approx(4.322)
    assert s.ttft_s[0] == pytest.approx(22.798, abs=1e-3)
    assert s.running[1] == pytest.approx(3.0) and s.chunk_tokens[1] == pytest.approx(3.0)
    assert s.prefill_time_fraction[0] == pytest.approx(0.5 * (5.140 - 3.504) / 4.322)
    assert float(serving.serve(toy_scenario(), 2.0, 16, 17, chunk_tokens=6).ttft_s) == pytest.approx(20.56, abs=1e-3)


def test_replicas_split_concurrency():
    """Two toy GPUs as two replicas carry twice the requests at the same per-request times."""
    one = toy_scenario()
    two = Scenario(one.model, Deployment(one.hardware, 2, 1), one.precision, one.engine, ideal=True)
    a, b = serving.serve(one, 2.0, 16, 17), serving.serve(two, 4.0, 16, 17)
    assert b.tpot_s == pytest.approx(a.tpot_s) and b.ttft_s == pytest.approx(a.ttft_s)
    assert b.output_tok_s == pytest.approx(2 * a.output_tok_s)
    assert b.output_tok_s_per_gpu == pytest.approx(a.output_tok_s_per_gpu)
    assert b.max_running == 8


def test_nothing_fits_gives_no_numbers():
    s = serving.serve(toy_scenario(memory_bytes=2500.0), np.array([1.0, 4.0]), 16, 17)
    assert not s.fits.any()
    assert np.isnan(s.tpot_s).all() and np.isnan(s.output_tok_s).all()


@settings(max_examples=60, deadline=None)
@given(conc=st.integers(1, 5000), inp=st.integers(1, 4000), out=st.integers(2, 4000),
       chunk=st.one_of(st.none(), st.integers(2, 16384)))
def test_running_batch_always_fits_in_memory(catalog, conc, inp, out, chunk):
    """Never a number for a batch that cannot exist: the running requests' admitted KV footprint
    (vLLM: the average, input + output/2) fits, the queue holds the rest, at most the share that
    admission at the average overcommits, 1 - (requests of input + output) / (requests of the average)
    (about output / (2 (input + output))), is preempted, and everything is finite and positive."""
    from helpers import scenario

    scn = scenario(catalog, "llama3-8b", "h100-sxm", 1)
    s = serving.serve(scn, float(conc), inp, out, chunk)
    assert s.running <= s.max_running + 1e-9
    assert s.running + s.queued == pytest.approx(conc)
    used = memory.memory_used_per_gpu(scn, s.running, serving.admission_context(scn, inp, out))
    assert used <= scn.hardware.memory_bytes * (1 + 1e-12)
    assert s.running <= scn.engine.max_running_requests
    over = 1 - memory.max_batch(scn, inp + out) / memory.max_batch(scn, serving.admission_context(scn, inp, out))
    assert 0 <= float(s.preempted) <= over + 1e-9
    for name in ("ttft_s", "tpot_s", "output_tok_s", "e2e_latency_s"):
        value = float(getattr(s, name))
        assert math.isfinite(value) and value > 0, name
    assert 0 <= float(s.prefill_time_fraction) <= 1


@settings(max_examples=40, deadline=None)
@given(price=st.floats(0.01, 100.0), conc=st.integers(1, 600), split=st.one_of(st.none(), st.floats(0.01, 10.0)))
def test_cost_times_throughput_is_constant_at_fixed_price(catalog, price, conc, split):
    """Blended USD/Mtok x total tok/s = USD/h / 3600 x 1e6 at every concurrency; and the input and
    output charges together pay exactly the hourly price, however they are split."""
    row = tokecon.serve(model="llama3-70b", gpus="4xH100", concurrency=[conc], input_len=1024, output_len=256,
                        usd_per_gpu_hour=price, price_split=split).rows[0]
    per_s = 4 * price / 3600 * 1e6
    assert row["usd_per_mtok"] * row["total_tok_s"] == pytest.approx(per_s, rel=1e-9)
    paid = row["usd_per_mtok_input"] * row["input_tok_s"] + row["usd_per_mtok_output"] * row["output_tok_s"]
    assert paid == pytest.approx(per_s, rel=1e-9)


def test_price_split_reproduces_tensor_economics():
    """Tensor Economics, 'LLM Inference Economics from First Principles': 4 GPUs at 2.5 USD/h,
    batch 16 of 2035 input + 300 output tokens in 8.96 s, gamma = 0.3 -> 'approximately $1.72 per
    million output tokens and $0.51 per million input tokens' (they round 0.002778 USD/s to 0.0028)."""
    elapsed = 8.96
    inp, out = economics.split_by_ratio(4 * 2.5, 16 * 2035 / elapsed, 16 * 300 / elapsed, 0.3)
    assert float(out) == pytest.approx(1.72, rel=0.01)
    assert float(inp) == pytest.approx(0.51, rel=0.01)


def test_llama70b_serve_is_made_of_the_phases(catalog):
    """Real catalog entries (vLLM: chunked prefill, 8192-token budget, average KV admission, at most
    256 running): a request's 1024-token prompt rides in one mixed step with the decode batch, in
    C / 1023 of the steps; TTFT is that step plus, once other requests are in flight, the rest of
    the step under way and the step vLLM (0.14 on) had prepared; interactivity falls and throughput
    rises with concurrency up to max."""
    from helpers import scenario

    scn = scenario(catalog, "llama3-70b", "h100-sxm", 4)
    conc = np.array([1.0, 8.0, 64.0, 256.0])
    s = serving.serve(scn, conc, 1024, 1024, closed_loop=False)  # requests spread over time (no phase)
    low = conc[:3]
    t_m = serving.mixed_step(scn, low, np.full(3, 1536.0), np.full(3, 1024.0), np.full(3, 1024.0)).step_time_s
    t_d = decode_step(scn, low, np.full(3, 1024 + 512.0)).step_time_s
    f = low / 1023
    tpot = f * t_m + (1 - f) * t_d
    assert s.tpot_s[:3] == pytest.approx(tpot)
    busy = np.array([0.0, 1.0, 1.0])  # alone at C = 1: no step under way, none prepared
    residual = (f * t_m**2 + (1 - f) * t_d**2) / (2 * tpot) * busy
    assert scn.engine.schedules_ahead
    assert s.ttft_s[:3] == pytest.approx(scn.ttft_overhead_s + t_m + residual + busy * tpot)  # + vLLM's first-token time
    assert np.all(np.diff(s.tok_s_per_user) < 0) and np.all(np.diff(s.output_tok_s_per_gpu) > 0)
    # the KV cache holds about 247 requests of 2048 tokens and 329 at the average 1536: vLLM V1's cap of
    # 1024 on an 80 GB device does not bind; at C = 256 the 9 the cache cannot carry to their last token
    # are preempted
    fit = int(memory.max_batch(scn, np.asarray(2048.0)))
    assert list(s.max_running) == [int(memory.max_batch(scn, np.asarray(1536.0)))] * 4 and list(s.running) == [1, 8, 64, 256]
    assert s.preempted == pytest.approx([0, 0, 0, 1 - fit / 256])


def test_concurrency_parsing():
    assert concurrency_list(["1,8", "max", "64"]) == [1, 8, "max", 64]
    with pytest.raises(TokeconError):
        concurrency_list(["1,x"])
    with pytest.raises(TokeconError):
        concurrency_list(["0"])


# --- command line ---------------------------------------------------------------------------------


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_serve_json_equals_core_and_has_the_documented_keys():
    args = ["serve", "-m", "llama3-70b", "-g", "4xH100", "-g", "8xH200", "--tp", "4", "--input-len", "1024",
            "--output-len", "1024", "--concurrency", "1,8,64,max,2000", "-f", "json"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    core = tokecon.serve(model="llama3-70b", gpus=["4xH100", "8xH200"], tp=4, concurrency=[1, 8, 64, "max", 2000])
    assert doc["rows"] == json_rows(core)
    assert all(row["mode"] == "agg" for row in doc["rows"])
    for row in doc["rows"]:
        assert SERVE_ROW_KEYS <= set(row)
    h200 = [row for row in doc["rows"] if row["hardware"] == "h200"]
    assert h200[0]["replicas"] == 2 and h200[0]["layout"] == "TP4, 2 replicas"
    assert h200[3]["concurrency"] == h200[3]["max_concurrency"] == h200[3]["running"]
    assert h200[4]["queued"] == 2000 - h200[4]["max_concurrency"] and h200[4]["ttft_s"] > 10 * h200[0]["ttft_s"]


def test_serve_table_headers_carry_units():
    r = invoke("serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "1,16")
    assert r.exit_code == 0, r.output
    for header in ("TTFT [ms]", "TPOT [ms]", "tok/s per user", "E2E [s]", "out tok/s per GPU", "USD/Mtok in", "USD/Mtok out"):
        assert header in r.stdout
    assert "FLOPS" not in r.stdout and "FLOPs" not in r.stdout


def test_min_tok_s_per_user_threshold_exits_1():
    r = invoke("serve", "-m", "llama3-70b", "-g", "4xH100", "-c", "1,256", "--min-tok-s-per-user", "40")
    assert r.exit_code == 1
    assert "1 of 2 rows" in r.stderr and "tok/s per user below 40" in r.stderr and "4xh100-sxm" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "llama3-70b", "-g", "4xH100", "-c", "1,two"], "--concurrency"),
        (["-m", "llama3-70b", "-g", "4xH100", "--attention-dp"], "dense"),
        (["-m", "deepseek-v3", "-g", "8xH200", "--ep", "8"], "--attention-dp"),
        (["-m", "deepseek-v3", "-g", "8xH200", "--attention-dp", "--ep", "3"], "must divide"),
        (["-m", "llama3-70b", "-g", "4xH100", "--output-len", "1"], "at least 2"),
        (["-m", "llama3-70b", "-g", "4xH100", "--price-split", "-1"], "--price-split"),
        (["-m", "llama3-70b", "-g", "1xH100"], "does not fit"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    r = invoke("serve", *args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_moe_default_layout_is_attention_dp_with_ep():
    r = invoke("serve", "-m", "deepseek-v3", "-g", "8xH200", "-c", "64", "-f", "json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["attention_dp"] is True and row["ep"] == 8 and row["tp"] == 1 and row["replicas"] == 8
    tp = json.loads(invoke("serve", "-m", "deepseek-v3", "-g", "8xH200", "-c", "64", "--tp", "8", "-f", "json").stdout)
    assert tp["rows"][0]["attention_dp"] is False and tp["rows"][0]["tp"] == 8


def test_core_modules_import_without_the_ui():
    code = ("import sys, tokecon.serving.batching, tokecon.economics.costs, tokecon.cli.plot, tokecon.commands.serve, "
            "tokecon.commands.frontier, tokecon.commands.capacity; "
            "bad = [m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_model_note_says_when_the_engine_schedules_ahead():
    """TensorRT-LLM 1.x prepares each step while the one before runs (its overlap scheduler); the 0.x
    TRT flow does not: the method notes say which TTFT the table holds."""
    base = ["serve", "-m", "llama3-70b", "-g", "8xH100", "-c", "32", "-f", "json"]
    notes = {engine: " ".join(json.loads(invoke(*base, "--engine", engine).stdout)["method_notes"])
             for engine in ("trtllm", "trtllm@0.9")}
    assert "step already prepared" in notes["trtllm"] and "step already prepared" not in notes["trtllm@0.9"]


def test_sync_scheduling_drops_the_prepared_step():
    """--sync-scheduling (TensorRT-LLM's disable_overlap_scheduler): every arrival's TTFT loses the one
    mean step it waited for; with one mixed-in prompt per step that step is the TPOT, which stays."""
    base = ["serve", "-m", "llama3-70b", "-g", "8xH100", "--engine", "trtllm", "-c", "32", "-f", "json"]
    ahead, sync = (json.loads(invoke(*base, *extra).stdout) for extra in ([], ["--sync-scheduling"]))
    assert ahead["schedules_ahead"] and not sync["schedules_ahead"]
    a, s = ahead["rows"][0], sync["rows"][0]
    assert s["tpot_s"] == pytest.approx(a["tpot_s"])
    assert a["ttft_s"] - s["ttft_s"] == pytest.approx(a["tpot_s"], rel=1e-6)
    assert "step already prepared" not in " ".join(sync["method_notes"])


def test_max_num_tokens_sets_the_step_budget():
    """--max-num-tokens 2600 on TensorRT-LLM (whole prompts, 8,192 tokens by default) at 32 requests
    of 2,048 tokens in phase: one prompt per step instead of four, so each prompt waits for its own
    step only; the work per request, and so TPOT, is unchanged. With --chunked-prefill it is refused."""
    base = ["serve", "-m", "llama3-70b", "-g", "8xH100", "--engine", "trtllm", "-c", "32", "-i", "2048", "-o", "256", "-f", "json"]
    default, budget = (json.loads(invoke(*base, *extra).stdout) for extra in ([], ["--max-num-tokens", "2600"]))
    assert budget["max_num_tokens"] == 2600 and default["max_num_tokens"] is None
    assert budget["rows"][0]["ttft_s"] < 0.7 * default["rows"][0]["ttft_s"]
    assert budget["rows"][0]["tpot_s"] == pytest.approx(default["rows"][0]["tpot_s"])
    both = invoke(*base, "--max-num-tokens", "2600", "--chunked-prefill", "512")
    assert both.exit_code == 2 and "give one" in both.output
