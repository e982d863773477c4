"""Disaggregated prefill / decode serving (tokecon.serving.disagg): the KV hand-off and the pool balance
against hand-derived numbers, invariants with hypothesis, the CLI, and the error on the measured
aiconfigurator disaggregated runs (validation/external_disagg.csv, never fitted on)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.fidelity import validation
from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.serving import disagg

from helpers import scenario, with_hardware

runner = CliRunner()
CATALOG = load_catalog(use_user_home=False)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_kv_transfer_hand_derived():
    """llama3-70b bf16 KV: 80 layers x 2 x 8 KV heads x 128 x 2 B = 327,680 B per token; a 1,000-token
    prompt is 327.68 MB. Ideal links, TP4 to TP4 (4 links at once): over H100 scale-out (50 GB/s per
    GPU) 327.68e6 / (4 x 50e9) = 1.6384 ms; inside one 8-GPU NVLink domain (450 GB/s) 0.18204 ms."""
    p = scenario(CATALOG, "llama3-70b", "h100-sxm", 4, tp=4, ideal=True)
    inp = np.asarray(1000.0)
    assert float(disagg.kv_bytes_per_request(p, inp)) == pytest.approx(327.68e6)
    out = disagg.transfer_s(p, p, 1.0, inp, 4, np.asarray(False))
    up = disagg.transfer_s(p, p, 1.0, inp, 4, np.asarray(True))
    assert float(out) == pytest.approx(1.6384e-3)
    assert float(up) == pytest.approx(327.68e6 / (4 * 450e9))
    assert bool(disagg.same_domain(p, p, 8)) and not bool(disagg.same_domain(p, p, 16))
    # layer by layer over 80 layers: a 100 ms prefill hides all but the last layer's 1/80;
    # a 1 ms prefill hides 79/80 of it: 1.6384 - 0.9875 = 0.6509 ms exposed
    assert float(disagg.exposed_transfer_s(out, np.asarray(0.1), 80)) == pytest.approx(1.6384e-3 / 80)
    assert float(disagg.exposed_transfer_s(out, np.asarray(1e-3), 80)) == pytest.approx(1.6384e-3 - 1e-3 * 79 / 80)


def test_pool_balance_hand_derived():
    """One prefill worker takes 3 requests/s, one decode worker 1: balanced 1P3D. With GPUs (4 per
    prefill worker, 8 per decode worker, at most 24) and rates 2 and 1 requests/s: 1P1D serves
    min(2, 1) / 12 = 0.083, 1P2D min(2, 2) / 20 = 0.1, 2P2D min(4, 2) / 24 = 0.083 per GPU: 1P2D."""
    x, y = disagg.balance(np.asarray(3.0), np.asarray(1.0), 1, 1, None)
    assert (float(x), float(y)) == (1.0, 3.0)
    x, y = disagg.balance(np.asarray(1.0), np.asarray(2.5), 1, 1, None)
    assert (float(x), float(y)) == (2.0, 1.0)
    x, y = disagg.balance(np.asarray([2.0]), np.asarray([1.0]), 4, 8, 24)
    assert (float(x[0]), float(y[0])) == (1.0, 2.0)


def _pools():
    p = scenario(CATALOG, "llama3-8b", "h100-sxm", 1)
    d = scenario(CATALOG, "llama3-8b", "h100-sxm", 2, tp=1)
    return p, d


def test_unloaded_ttft_is_prefill_transfer_and_one_decode_step():
    """At one request in flight nothing queues: TTFT = T_0 + T_p + exposed T_x + T_d (T_0 the engine's
    first-token time, issue 18) and E2E = TTFT + (O - 1) TPOT, as aggregated serving and benchmarks
    define TPOT ((E2E - TTFT) / (O - 1))."""
    p, d = _pools()
    t = disagg.serve(p, d, 1, 1, 1, 2000, 200)
    assert float(t.queue_wait_s) == pytest.approx(0.0, abs=1e-12)
    assert float(t.ttft_s) == pytest.approx(p.ttft_overhead_s + float(t.prefill_s + t.kv_transfer_s + t.tpot_s))
    assert float(t.e2e_latency_s) == pytest.approx(float(t.ttft_s + 199 * t.tpot_s))
    assert str(t.limited_by) == "load"


def test_a_decode_worker_that_schedules_ahead_adds_its_prepared_step():
    """vLLM 0.19 prepares each step while the one before runs: a request reaching a busy decode worker
    waits for that step too, one TPOT more of TTFT; alone (one request) nothing was prepared; vLLM
    0.12 (synchronous) adds nothing; TPOT is the same."""
    p, _ = _pools()
    d = scenario(CATALOG, "llama3-8b", "h100-sxm", 2, tp=1)
    sync = replace(d, engine=replace(d.engine, schedules_ahead=False))
    ahead = replace(d, engine=replace(d.engine, schedules_ahead=True))
    t_sync, t_ahead = (disagg.serve(p, dd, 1, 1, np.asarray([1.0, 64.0]), 2000, 200) for dd in (sync, ahead))
    assert t_ahead.tpot_s == pytest.approx(t_sync.tpot_s)
    assert float(t_ahead.ttft_s[0]) == pytest.approx(float(t_sync.ttft_s[0]))
    assert float(t_ahead.ttft_s[1] - t_sync.ttft_s[1]) == pytest.approx(float(t_sync.tpot_s[1]))


def test_the_disaggregated_method_note_names_the_decode_workers_prepared_step():
    """serve and capacity on given pools say how TTFT is built; the decode worker's prepared step is
    named for TensorRT-LLM 1.x and dropped with --sync-scheduling."""
    pools = ("-m", "llama3-70b", "--prefill-gpus", "2xH100", "--decode-gpus", "4xH100", "--engine", "trtllm", "-f", "json")
    ahead, sync = (json.loads(invoke("serve", *pools, "-c", "32", *extra).stdout)["method_notes"][0]
                   for extra in ([], ["--sync-scheduling"]))
    assert ahead.startswith("Disaggregated: TTFT = queue wait") and "the decode worker's engine prepares" in ahead
    assert sync.startswith("Disaggregated: TTFT = queue wait") and "prepares" not in sync
    sized = json.loads(invoke("capacity", *pools, "--tokens-per-day", "5e9").stdout)["method_notes"]
    assert any(n.startswith("Disaggregated: TTFT = queue wait") for n in sized)


def test_disaggregated_rows_take_the_disaggregated_ranges():
    """A disaggregated row's 80% ranges come from the disaggregated runs (validation/intervals.toml,
    groups of regime disagg-ttft and disagg-tpot), not from aggregated serving: TTFT in one, TPOT and
    the rest in the other; each range holds its estimate."""
    out = json.loads(invoke("serve", "-m", "deepseek-v3", "--prefill-gpus", "4xGB200", "--decode-gpus", "8xGB200",
                            "--engine", "trtllm", "-c", "64", "-f", "json").stdout)
    row, notes = out["rows"][0], " ".join(out["method_notes"])
    assert row["interval_group"].endswith("disagg-tpot")
    from tokecon.fidelity import uncertainty
    q10, q90, group = uncertainty.stored_bounds("blackwell", "trtllm", True, "disagg-ttft")
    assert group.endswith("disagg-ttft")
    assert row["ttft_s_p10"] == pytest.approx(row["ttft_s"] * np.exp(-q90))
    assert row["ttft_s_p10"] <= row["ttft_s"] <= row["ttft_s_p90"] and row["tpot_s_p10"] <= row["tpot_s"] <= row["tpot_s_p90"]
    assert "disagg-tpot rows" in notes


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 7), st.integers(64, 4096), st.integers(2, 2048))
def test_more_decode_workers_never_raise_tpot(concurrency, workers, inp, out):
    p, d = _pools()
    t = disagg.serve(p, d, 2, np.asarray([workers, workers + 1]), concurrency, inp, out)
    assert t.tpot_s[1] <= t.tpot_s[0] * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2000), st.integers(64, 8192), st.floats(1.5, 20.0))
def test_more_link_bandwidth_never_raises_ttft(concurrency, inp, factor):
    p, d = _pools()
    hw = p.hardware
    fast = lambda s: with_hardware(s, scaleout_bw_b_s=hw.scaleout_bw_b_s * factor, scaleup_bw_b_s=hw.scaleup_bw_b_s * factor)
    slow = disagg.serve(p, d, 1, 1, concurrency, inp, 256)
    quick = disagg.serve(fast(p), fast(d), 1, 1, concurrency, inp, 256)
    assert float(quick.ttft_s) <= float(slow.ttft_s) * (1 + 1e-9)
    assert float(quick.kv_transfer_total_s) < float(slow.kv_transfer_total_s)


def test_serve_disaggregated_json():
    r = invoke("serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--prefill-workers", "2",
               "--decode-workers", "1", "--decode-layout", "tp4", "-c", "1,64", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    row = doc["rows"][1]
    assert row["xpyd"] == "2P1D" and row["n_gpus"] == 12 and row["prefill_gpus"] == 8 and row["decode_gpus"] == 4
    assert row["decode_layout"] == "4xh100-sxm (TP4)" and row["kv_link"] == "scale-out"  # 12 GPUs: more than one HGX box
    for key in ("ttft_s", "tpot_s", "kv_transfer_s", "output_tok_s_per_gpu", "usd_per_mtok", "usd_per_mtok_input", "usd_per_mtok_output"):
        assert row[key] > 0
    # input priced by the 8 prefill GPUs, output by the 4 decode GPUs, blended by all 12
    usd = row["usd_per_gpu_hour"]
    assert row["usd_per_mtok_input"] == pytest.approx(8 * usd / (row["input_tok_s"] * 3600 / 1e6))
    assert row["usd_per_mtok"] == pytest.approx(12 * usd / (row["total_tok_s"] * 3600 / 1e6))
    assert doc["disaggregated"]["xpyd"] == "2P1D"


def test_serve_balances_the_missing_worker_count():
    """Given one side, the other is the count whose rate matches it: x R_p1 = y R_d1, rounded."""
    base = ["serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "-c", "8", "-f", "json"]
    row = json.loads(invoke(*base, "--prefill-workers", "3").stdout)["rows"][0]
    rp, rd = row["prefill_capacity_requests_s"] / 3, row["decode_capacity_requests_s"] / row["decode_workers"]
    assert row["decode_workers"] == max(1, round(3 * rp / rd))
    row = json.loads(invoke(*base, "--decode-workers", "4").stdout)["rows"][0]
    assert row["prefill_workers"] == max(1, round(4 * rd / rp))


def test_serve_disaggregated_bad_input():
    r = invoke("serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100")
    assert r.exit_code == 2 and "--decode-gpus" in r.stderr
    r = invoke("serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--decode-layout", "dep4")
    assert r.exit_code == 2 and "mixture-of-experts" in r.stderr
    r = invoke("serve", "-m", "llama3-70b")
    assert r.exit_code == 2 and "--gpus" in r.stderr


def test_serve_aggregated_rows_say_their_mode_and_carry_no_pool_keys():
    """Aggregated and disaggregated rows share one row builder: both say their mode."""
    doc = json.loads(invoke("serve", "-m", "llama3-8b", "-g", "1xH100", "-c", "8", "-f", "json").stdout)
    assert doc["rows"][0]["mode"] == "agg" and "xpyd" not in doc["rows"][0] and "disaggregated" not in doc
    assert "kv_transfer_s" not in doc["rows"][0] and "prefill_workers" not in doc["rows"][0]
    pd = json.loads(invoke("serve", "-m", "llama3-8b", "--prefill-gpus", "1xH100", "--decode-gpus", "1xH100", "-c", "8",
                           "-f", "json").stdout)
    assert pd["rows"][0]["mode"] == "disagg" and pd["rows"][0]["xpyd"].endswith("D") and "disaggregated" in pd
    # the keys every serving row has are the same on both
    shared = {"concurrency", "ttft_s", "tpot_s", "tok_s_per_user", "output_tok_s_per_gpu", "usd_per_mtok",
              "usd_per_mtok_input", "usd_per_mtok_output", "tok_s_per_mw", "joules_per_output_token", "fits", "mode"}
    assert shared <= set(doc["rows"][0]) and shared <= set(pd["rows"][0])


def test_frontier_modes_and_winner_note():
    both = json.loads(invoke("frontier", "-m", "deepseek-v3", "-g", "72xGB200", "-f", "json").stdout)
    assert {r["mode"] for r in both["rows"]} == {"agg", "disagg"}
    # where along the frontier disaggregation wins is a method note (--explain)
    assert any("disaggregated prefill/decode wins" in n for n in both["method_notes"])
    assert any("72xgb200: " in n and "disaggregated pool pairs" in n for n in both["method_notes"])
    agg = json.loads(invoke("frontier", "-m", "deepseek-v3", "-g", "72xGB200", "--mode", "agg", "-f", "json").stdout)
    assert {r["mode"] for r in agg["rows"]} == {"agg"}
    # 8x H200 cannot split DeepSeek-V3 (fp8, 671 GB) into two pools: aggregated only
    h200 = json.loads(invoke("frontier", "-m", "deepseek-v3", "-g", "8xH200", "-f", "json").stdout)
    assert {r["mode"] for r in h200["rows"]} == {"agg"}


def test_frontier_says_when_a_device_has_no_disaggregated_layout():
    h200 = json.loads(invoke("frontier", "-m", "deepseek-v3", "-g", "8xH200", "-f", "json").stdout)
    assert {r["mode"] for r in h200["rows"]} == {"agg"}
    assert any("no disaggregated layout" in n for n in h200["notes"] + h200["method_notes"])


def test_capacity_disaggregated():
    r = invoke("capacity", "-m", "deepseek-v3", "-g", "72xGB200", "--tokens-per-day", "1e10", "--mode", "disagg", "-f", "json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["mode"] == "disagg" and row["xpyd"].endswith("D")
    assert row["gpus_needed"] == row["deployments_needed"] * row["n_gpus"]


def test_disagg_validation_error():
    """Measured disaggregated runs (aiconfigurator, workers stated): TPOT within a median 20% and p90
    60% (measured 2026-12-07: 11.6% and 35% over the 64 runs left once duplicate records are out).
    TTFT, once underpredicted by a median 88% (the benchmark's closed loop sends its requests in
    bursts, which queue at the prefill pool), carries the loop's phase since issue 18: median error
    -24%, stated here so that a change that moves it shows."""
    rows = validation.load_measurements(validation.measurements_path("external_disagg.csv"))
    outs = validation.evaluate([r for r in rows if "?x" not in r["parallelism"]], CATALOG, with_ideal=False)
    tpot = np.array([o.error for o in outs if o.error is not None and o.row["metric"] == "tpot_ms"])
    ttft = np.array([o.error for o in outs if o.error is not None and o.row["metric"] == "ttft_ms"])
    assert len(tpot) > 50 and len(ttft) > 50
    assert np.median(np.abs(tpot)) < 0.20 and np.percentile(np.abs(tpot), 90) < 0.60
    assert -0.45 < np.median(ttft) < 0.0
    assert all(o.case.kind == "disagg" for o in outs if o.case is not None)


def test_disagg_rows_are_never_fitted():
    from tokecon.fidelity import calibrate

    rows = validation.load_measurements(validation.measurements_path("external_disagg.csv"))[:4]
    outs = validation.evaluate(rows, CATALOG, with_ideal=False)
    assert all(o.predicted is not None for o in outs)
    assert calibrate.fit_cases(outs) == []


@pytest.mark.parametrize("args, message", [
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--chunked-prefill", "512"], "--chunked-prefill (a prefill worker runs whole prompts); drop them or serve aggregated"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--price-split", "0.3"], "--price-split (each pool prices its own GPU time)"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--max-num-tokens", "4096"],
     "--max-num-tokens (a prefill worker batches --prefill-batch prompts)"),
    (["frontier", "-g", "8xH100", "--mode", "disagg", "--tp", "4"], "--tp (the search picks each pool's layout); drop them or use --mode agg"),
    (["capacity", "-g", "8xH100", "--mode", "disagg", "--tokens-per-day", "1e9", "--chunked-prefill", "512"], "--chunked-prefill"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--decode-layout", ""],
     "--decode-layout must be a non-empty string"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--decode-layout", "pp4"], "--decode-layout takes"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--prefill-layout", "tp4", "--decode-layout", "tp2",
      "--tp", "1"], "--tp (both pools have a --prefill-layout/--decode-layout)"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--decode-workers", "200000000"],
     "--decode-workers value 200000000 is implausibly large"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--decode-workers", "200000"], "at most 100,000"),
    (["serve", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--prefill-workers", "100000000"], "at most 100,000"),
])
def test_options_disaggregated_serving_does_not_take_are_refused(args, message):
    r = invoke(args[0], "-m", "llama3-70b", *args[1:])
    assert r.exit_code == 2 and message in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_both_modes_say_which_options_shape_only_the_aggregated_layouts():
    r = invoke("frontier", "-m", "llama3-70b", "-g", "8xH100", "--mode", "both", "--tp", "4", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert any(note.startswith("--tp: for the aggregated layouts only") for note in doc["notes"])
    assert {row["tp"] for row in doc["rows"] if row["mode"] == "agg"} == {4}


@settings(max_examples=15, deadline=None)
@given(hit=st.floats(0.0, 0.9), out=st.integers(2, 2000))
def test_littles_law_holds_with_prefix_cache_loads(hit, out):
    """One request in flight, never capacity-bound: X x E2E = 1, the cache load inside E2E."""
    p, d = _pools()
    t = disagg.serve(p, d, 1, 1, 1, 4000, out, prefix_hit=hit)
    assert float(t.requests_s * t.e2e_latency_s) == pytest.approx(1.0, rel=1e-9)
    assert float(t.e2e_latency_s) == pytest.approx(float(t.ttft_s + (out - 1) * t.tpot_s))


def test_capacity_rows_say_which_kind_of_layout_answers():
    r = invoke("capacity", "-m", "llama3-70b", "-g", "8xH100", "--tokens-per-day", "1e9", "--mode", "both", "-f", "json")
    assert r.exit_code == 0, r.output
    assert [row["mode"] for row in json.loads(r.stdout)["rows"]] == ["disagg", "agg"]


def test_layout_flags_lay_out_the_pool_without_its_own_layout():
    r = invoke("serve", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "4xH100", "--decode-layout", "tp4",
               "--tp", "2", "-c", "8", "-f", "json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["prefill_layout"] == "4xh100-sxm (TP2, 2 replicas)" and row["decode_layout"] == "4xh100-sxm (TP4)"


def test_mixed_pools_draw_each_device_power_and_carry_prefix_cache_keys():
    """1 H100 prefills, 1 B200 decodes: each at its own all-in power (SemiAnalysis' published figures in
    hardware.toml, 1,370 W for H100) x PUE 1.3 of facility power; their boards, 700 + 1,000 W."""
    r = invoke("serve", "-m", "llama3-8b", "--prefill-gpus", "1xH100", "--decode-gpus", "1xB200", "--prefill-workers", "1",
               "--decode-workers", "1", "-c", "8", "--cost", "tco", "--prefix-hit", "0.5", "-f", "json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    catalog = load_catalog(use_user_home=False)
    all_in = catalog.hardware.get("h100").all_in_power_w + catalog.hardware.get("b200").all_in_power_w
    assert row["facility_power_w"] == pytest.approx(all_in * 1.3)
    assert row["facility_power_w_board"] == pytest.approx((700 + 1000) * 1.3)
    assert row["usd_per_mtok_input_miss"] == pytest.approx(row["usd_per_mtok_input"] / 0.5)
    kv_per_token = 32 * 2 * 8 * 128 * 2  # llama3-8b bf16: layers x (K, V) x KV heads x head dim x bytes
    assert row["prefix_cache_tb_per_day"] == pytest.approx(row["input_tok_s"] * 0.5 * kv_per_token * 86_400 / 1e12)
    assert row["mean_input_tokens"] == 1024 and row["range_ratio"] == 1.0


@pytest.mark.parametrize("command", [["frontier"], ["frontier", "--mode", "disagg"], ["capacity", "--mode", "disagg", "--tokens-per-day", "1e9"]])
def test_a_wrong_option_is_named_not_taken_for_a_model_that_does_not_fit(command):
    r = invoke(command[0], "-m", "llama3-8b", "-g", "2xH100", *command[1:], "--engine", "bogus")
    assert r.exit_code == 2 and "unknown engine 'bogus'" in r.stderr, r.output


def test_capacity_facility_power_counts_each_pool_at_its_device_power():
    """4 H100 prefill + 8 B200 decode per worker: facility MW = deployments x each pool's GPUs x their
    all-in power (hardware.toml's published figures) x PUE 1.3, not every GPU at the decode device's power."""
    r = invoke("capacity", "-m", "llama3-70b", "--prefill-gpus", "4xH100", "--decode-gpus", "8xB200", "--tokens-per-day", "1e10", "-f", "json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    catalog = load_catalog(use_user_home=False)
    all_in = (row["prefill_gpus"] * catalog.hardware.get("h100").all_in_power_w
              + row["decode_gpus"] * catalog.hardware.get("b200").all_in_power_w)
    assert row["facility_power_w"] == pytest.approx(all_in * 1.3)
    assert row["facility_mw_needed"] == pytest.approx(row["deployments_needed"] * all_in * 1.3 / 1e6)


def test_speculation_with_pipeline_stages_is_refused_in_pools_too():
    """A speculative decode step is modelled without pipeline stages: the pools refuse the pair as
    aggregated serving does, never a TPOT faster than the acceptance allows."""
    r = invoke("serve", "-m", "llama3-70b", "--prefill-gpus", "8xH100", "--decode-gpus", "8xH100", "--pp", "2",
               "-c", "8", "--speculative", "eagle")
    assert r.exit_code == 2 and "pipeline stages" in r.stderr, r.output
