"""SRAM machines (issue 12 part 4): Groq LPU and Cerebras CS-3, sized by the chips that hold the
model, pipelined across them, with weight streaming from a slower tier, against published speeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.physics import memory
from tokecon.physics import params
from tokecon.serving import sram
from tokecon.catalogs.catalog import load_catalog
from tokecon.cli.main import app
from tokecon.errors import CatalogError
from tokecon.physics.phases import decode_step, pipeline_rounds
from tokecon.physics.specs import MemoryTier
from tokecon.units import GB

from helpers import scenario, with_hardware

runner = CliRunner()


def serve_row(*args: str) -> dict:
    r = runner.invoke(app, ["serve", *args, "-c", "1", "-f", "json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["rows"][0]


# --- published speeds: one fitted per vendor stack, the others predicted -----------------------

def test_groq_llama2_70b_on_576_chips_is_the_fitted_point():
    """Groq, early 2024: Llama 2 70B (4,096-token context) at 300 tok/s per user on 576 LPUs
    (techpowerup.com/news-tags/Processor, Feb 2024; the 576-chip count: Groq in
    news.ycombinator.com item 39435411). The GroqCloud stack's per-layer floor (engines.toml
    [groq], 35.2 us) is fitted to this one figure, so the model reproduces it: error < 2%."""
    row = serve_row("-m", "llama2-70b", "-g", "576xgroq", "--dtype", "int8", "-i", "3072", "-o", "1024")
    assert row["n_gpus"] == 576
    assert row["tok_s_per_user"] == pytest.approx(300, rel=0.02)


def test_groq_llama2_7b_predicted_within_10_percent():
    """Same source and period: Llama 2 7B (2,048-token context) at 750 tok/s per user. Predicted
    with the floor fitted on 70B: 790 tok/s, +5% (run 2026-11-30)."""
    row = serve_row("-m", "llama2-7b", "-g", "groq", "--dtype", "int8", "-i", "1024", "-o", "1024")
    assert row["tok_s_per_user"] == pytest.approx(750, rel=0.10)


def test_groq_mixtral_predicted_within_25_percent():
    """Same source: Mixtral 8x7B at 480 tok/s per user. Predicted 391 tok/s, -19%: the floor is
    counted twice per MoE layer (router + experts, as on GPUs), which Groq's static schedule may
    not need."""
    row = serve_row("-m", "mixtral-8x7b", "-g", "groq", "--dtype", "int8", "-i", "1024", "-o", "1024")
    assert row["tok_s_per_user"] == pytest.approx(480, rel=0.25)
    assert row["tok_s_per_user"] < 480


def test_cerebras_llama31_70b_on_four_wafers_is_the_fitted_point():
    """Cerebras, 2024-08-27 (cerebras.ai/blog/introducing-cerebras-inference-ai-at-instant-speed):
    Llama 3.1 70B at 450 tok/s per user, 16-bit weights, "70B models fit on as few as four
    systems". A bare `-g cerebras` sizes the system to the four wafers that hold the model, and
    the launch stack's per-layer floor ([cerebras-2024-08], 27.4 us) is fitted to 450: error < 2%."""
    row = serve_row("-m", "llama3.1-70b", "-g", "cerebras", "--engine", "cerebras@2024.8", "-i", "1024", "-o", "1024")
    assert row["n_gpus"] == 4 and row["pp"] == 4
    assert row["tok_s_per_user"] == pytest.approx(450, rel=0.02)


def test_cerebras_llama31_8b_under_predicted():
    """Same announcement: Llama 3.1 8B at 1,800 tok/s per user on one wafer. Predicted 1,139 tok/s,
    -37% (run 2026-11-30): a floor per layer that does not depend on the layer's width is too slow
    for the narrower 8B layers (4,096 wide against 8,192)."""
    row = serve_row("-m", "llama3.1-8b", "-g", "cerebras", "--engine", "cerebras@2024.8", "-i", "1024", "-o", "1024")
    assert row["n_gpus"] == 1
    assert 0.55 * 1800 < row["tok_s_per_user"] < 1800


def test_cerebras_newer_stack_405b_fitted_70b_predicted():
    """Software moves SRAM machines as much as GPUs: Cerebras' Nov 2024 stack ran Llama 3.1 405B at
    969 tok/s per user (tomshardware.com, 2024-11-20), the current [cerebras] profile's fit
    (6.77 us per layer, 21 wafers hold 405B bf16 here): error < 2%. The same stack's Llama 3.1 70B,
    "up to 2,100 tok/s" (xyber.substack.com, Dec 2024; a weak source), is predicted at 1,743, -17%:
    4x the launch stack's 450."""
    big = serve_row("-m", "llama3.1-405b", "-g", "cerebras", "-i", "1024", "-o", "1024")
    assert big["tok_s_per_user"] == pytest.approx(969, rel=0.02)
    row = serve_row("-m", "llama3.1-70b", "-g", "cerebras", "-i", "1024", "-o", "1024")
    assert row["tok_s_per_user"] == pytest.approx(2100, rel=0.25)


def test_hundreds_of_groq_chips_hold_a_70b_model(catalog):
    """230 MB per chip: Llama 2 70B at 8 bits needs hundreds of chips (~300 for the weights alone,
    news.ycombinator.com item 42877410); the busiest pipeline stage must hold whole layers."""
    scn = scenario(catalog, "llama2-70b", "groq", 1, dtype="int8")
    n = sram.chips_to_hold(scn, 4096)
    assert 300 <= n <= 576
    assert sram.layouts_that_hold(scn, n, 4096)
    assert not any(sram.layouts_that_hold(scn, k, 4096) for k in range(n - 8, n))


# --- the physics -----------------------------------------------------------------------------

def test_weight_streaming_tier_bounds_one_wafer(catalog):
    """llama3-70b bf16 on ONE CS-3: 39.6 GB of SRAM after the 10% reserve holds part of the
    141 GB; the rest streams from MemoryX at 150 GB/s every step, so one read of the weights takes
    101.5 GB / 150 GB/s = 0.68 s (memory.tier_placement docstring): the external tier sets the pace."""
    scn = scenario(catalog, "llama3-70b", "cerebras", 1)
    w = params.weight_bytes(scn.model, scn.precision)
    weights_bw, kv_bw, parts = memory.tier_placement(scn)
    assert parts[0] == pytest.approx(44e9 * 0.9)
    assert parts[1] == pytest.approx(w - 39.6e9)
    assert weights_bw == pytest.approx(w / ((w - 39.6e9) / 150e9), rel=1e-9)
    assert kv_bw == 150e9  # the SRAM is full of weights: the KV cache sits in MemoryX too
    t = decode_step(scn, np.asarray(1.0), np.asarray(2048.0))
    assert float(t.step_time_s) > (w - 39.6e9) / 150e9
    assert any("stream from MemoryX" in line for line in sram.explain(scn, 2048))


def test_no_tier_no_change(catalog):
    """Devices without memory tiers read everything at their own bandwidth."""
    scn = scenario(catalog, "llama3-70b", "h100-sxm", 4)
    weights_bw, kv_bw, _ = memory.tier_placement(scn)
    assert weights_bw == kv_bw == scn.hardware.memory_bw_b_s


@settings(max_examples=40, deadline=None)
@given(sram_gb=st.floats(1.0, 200.0), tier_tb_s=st.floats(0.01, 5.0))
def test_tiered_bandwidth_lies_between_the_tiers(catalog, sram_gb, tier_tb_s):
    """The effective weight bandwidth is never above the SRAM's nor below the slower tier's, and
    more SRAM never lowers it."""
    base = scenario(catalog, "llama3-70b", "cerebras", 1)
    tier = (MemoryTier("ext", 10_000 * GB, tier_tb_s * 1e12),)
    small = with_hardware(base, memory_bytes=sram_gb * GB, memory_tiers=tier)
    large = with_hardware(base, memory_bytes=2 * sram_gb * GB, memory_tiers=tier)
    bw_small, bw_large = memory.tier_placement(small)[0], memory.tier_placement(large)[0]
    assert tier_tb_s * 1e12 * (1 - 1e-9) <= bw_small <= base.hardware.memory_bw_b_s * (1 + 1e-9)
    assert bw_large >= bw_small * (1 - 1e-9)


def test_pipeline_round_worked_numbers():
    """80 layers on 72 stages: 8 stages hold 2 layers, so the slowest stage is 2 layers and a token
    crossing all of them takes 80 / 2 = 40 slowest-stage times; 72 micro-batches fill the ring and a
    round lasts 72 of them. Balanced stages (80 on 8) give 8 at any batch."""
    assert float(pipeline_rounds(80, 72, 1)) == pytest.approx(40.0)
    assert float(pipeline_rounds(80, 72, 72)) == 72.0
    assert float(pipeline_rounds(80, 72, 500)) == 72.0
    assert np.all(pipeline_rounds(80, 8, np.asarray([1, 4, 64])) == 8.0)


def test_busiest_stage_holds_whole_layers(catalog):
    """Memory per chip follows the busiest stage: TP8 x PP72 of Llama 2 70B puts 2 of 80 layers on
    some chips, twice TP8 x PP80's one."""
    a = scenario(catalog, "llama2-70b", "groq", 576, tp=8, pp=72, dtype="int8")
    b = scenario(catalog, "llama2-70b", "groq", 640, tp=8, pp=80, dtype="int8")
    wa = memory.weight_bytes_per_gpu(a.model, a.precision, a.deployment)
    wb = memory.weight_bytes_per_gpu(b.model, b.precision, b.deployment)
    assert wa == pytest.approx(2 * wb)


def test_speed_premium_worked_number():
    """100 tok/s at 2.00 USD/Mtok over a base of 20 tok/s at 0.40: 1.60 / 80 = 0.02; a point no
    faster than the base has no premium."""
    out = sram.speed_premium(np.asarray([2.0, 0.5]), np.asarray([100.0, 10.0]), 0.40, 20.0)
    assert out[0] == pytest.approx(0.02)
    assert np.isnan(out[1])


# --- the market the article predicts ---------------------------------------------------------

def test_sram_machines_are_fastest_and_dearest_for_a_70b_model(catalog):
    """"Providers of super-fast tokens like Groq and Cerebras command a much higher premium": for
    llama3-70b (bf16, 1,024 in / 1,024 out, one user) every catalog GPU/TPU at its scale-up domain
    (at most 8) is slower per user than the slowest SRAM machine, and cheaper per token than the
    dearest one."""
    gpus = []
    for hw in catalog.hardware:
        n = min(hw.scaleup_domain, 8)
        if sram.is_sram(hw) or n < 2 or n & (n - 1):
            continue
        if params.weight_bytes(catalog.models.get("llama3-70b"), scenario(catalog, "llama3-70b", hw.key, n).precision) \
                > 0.85 * n * hw.memory_bytes:
            continue
        gpus.append(f"{n}x{hw.key}")
    assert len(gpus) >= 10
    r = runner.invoke(app, ["serve", "-m", "llama3-70b", *sum((["-g", g] for g in gpus), []), "-g", "groq", "-g", "cerebras",
                            "-c", "1", "-i", "1024", "-o", "1024", "-f", "json"])
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    fast = [x for x in rows if sram.is_sram(catalog.hardware.get(x["hardware"]))]
    slow = [x for x in rows if not sram.is_sram(catalog.hardware.get(x["hardware"]))]
    assert len(fast) == 2 and len(slow) == len(gpus)
    assert min(x["tok_s_per_user"] for x in fast) > max(x["tok_s_per_user"] for x in slow)
    # the dearest SRAM machine costs more per token than any GPU (Cerebras, at an hourly price derived from a CS-2
    # system price, is no longer above the dearest GPU rentals)
    assert max(x["usd_per_mtok"] for x in fast) > max(x["usd_per_mtok"] for x in slow)


# --- the command line ------------------------------------------------------------------------

def test_frontier_shows_the_speed_premium():
    r = runner.invoke(app, ["frontier", "-m", "llama3-70b", "-g", "8xH100", "-g", "cerebras", "-o", "256", "-f", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    devices = {row["device"] for row in doc["rows"]}
    assert devices == {"8xh100-sxm", "4xcerebras-cs3"}
    cheapest = min(doc["rows"], key=lambda row: row["usd_per_mtok"])
    fastest = max(doc["rows"], key=lambda row: row["tok_s_per_user"])
    assert fastest["device"] == "4xcerebras-cs3" and cheapest["device"] == "8xh100-sxm"
    expected = (fastest["usd_per_mtok"] - cheapest["usd_per_mtok"]) / (fastest["tok_s_per_user"] - cheapest["tok_s_per_user"])
    assert fastest["speed_premium_usd_per_mtok_per_tok_s"] == pytest.approx(expected)
    assert cheapest["speed_premium_usd_per_mtok_per_tok_s"] is None
    method = " ".join(doc["method_notes"])  # what the speed costs and how SRAM is modelled: --explain
    assert "Speed premium" in method and "SRAM machine" in method and "pipeline of 4 stages" in method


def test_explicit_chip_count_and_bare_gpu_names():
    """`-g 576xGroq` takes the count as given; a bare GPU name still means one device."""
    row = serve_row("-m", "llama2-70b", "-g", "576xGroq", "--dtype", "int8")
    assert row["n_gpus"] == 576 and row["pp"] > 1
    assert serve_row("-m", "llama3-8b", "-g", "H100")["n_gpus"] == 1


def test_too_few_chips_says_so():
    r = runner.invoke(app, ["serve", "-m", "llama2-70b", "-g", "8xgroq", "-c", "1"])
    assert r.exit_code == 2 and "does not fit" in r.stderr


def test_memory_tier_fields_are_validated(tmp_path):
    bad = tmp_path / "cat.toml"
    bad.write_text(
        '[hardware.x]\nname = "X"\nvendor = "V"\nfamily = "f"\nmemory_gb = 1.0\nmemory_bw_tb_s = 1.0\nbf16_tflop_s = 1.0\n'
        'scaleup_link = "l"\nscaleup_bw_gb_s = 1.0\nscaleup_domain = 1\nscaleout_bw_gb_s = 1.0\npower_w = 1\n'
        'rental_usd_per_hour = 1.0\nsource = "s"\nmemory_tiers = [{ name = "ddr", capacity_gb = 10.0, bw_gb_s = 0.1 }]\n'
        '[hardware.x.efficiency]\ncompute = 0.5\nmemory_bw = 0.5\nlink = 0.5\ncollective_latency_us = 1.0\n')
    with pytest.raises(CatalogError, match=r"memory_tiers\[0\].*unknown field 'bw_gb_s'"):
        load_catalog([bad], use_user_home=False)


def test_new_entries_are_sourced_and_dated(catalog):
    for key in ("groq-lpu", "cerebras-cs3"):
        hw = catalog.hardware.get(key)
        assert hw.source and hw.price_date and hw.memory_kind == "sram"
        assert catalog.engines.get(hw.engine).fitted_on.startswith("per-layer floor fitted to one figure")


@pytest.mark.parametrize("device", ["groq", "cerebras"])
def test_sram_notes_print_their_numbers_not_their_code(device):
    r = CliRunner().invoke(app, ["serve", "-m", "llama3-8b", "-g", device, "-c", "1", "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    notes = doc["notes"] + doc["method_notes"]
    assert any("reading the weights from SRAM takes" in n for n in doc["method_notes"])
    assert not [n for n in notes if "{" in n or "}" in n]


def test_too_few_sram_chips_name_the_pipelined_count_that_holds_it():
    """576 Groq chips cannot hold llama3-70b in a layout; the hint is the count that runs (a pipeline), not 'none'."""
    r = CliRunner().invoke(app, ["serve", "-m", "llama3-70b", "-g", "576xGroq", "-c", "1"])
    assert r.exit_code == 2 and "smallest that fits: " in r.stderr, r.output
    n = int(r.stderr.split("smallest that fits: ")[1].split("x")[0])
    assert CliRunner().invoke(app, ["serve", "-m", "llama3-70b", "-g", f"{n}xGroq", "-c", "1"]).exit_code == 0
