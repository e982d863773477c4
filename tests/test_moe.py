"""``tokecon moe``: DeepSeek-style serving (attention data-parallel, experts expert-parallel).

Pinned to hand-derived numbers, the two claims of Tensor Economics' "MoE Inference Economics
from First Principles" (2025-09; the post itself could not be read, so the claims are checked as
the issue states them: per-node throughput rises with EP while the link keeps up; a slower
scale-out link raises the communication share and eats the gain of faster GPUs) as hypothesis
properties, and the CLI contract. Byte formats: DeepSeek-V3/R1 inference system overview
(2025-03-01): "dispatch transmissions adopt the FP8 format ... combine transmissions use the BF16 format".
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.physics import comms
from tokecon.physics import params
from tokecon.cli.main import app
import tokecon
from tokecon.serving.request import DeviceRequest
from tokecon.commands.moe import moe_rows, moe_scenario
from tokecon.physics.interconnects import resolve_interconnect, with_interconnect
from tokecon.units import GB

from helpers import json_rows

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def rows_for(model: str, gpus: str, nodes, interconnect=None, ideal=False, eplb=False, **kw):
    result = tokecon.moe(model=model, gpus=gpus, ideal=ideal, nodes=list(nodes), interconnect=interconnect, eplb=eplb, **kw)
    return result.rows


def test_deepseek_ep16_worked_numbers():
    """deepseek-v3 fp8, 2 nodes x 8 H100 (EP16), 64 sequences per GPU at 2048 tokens.
    Each GPU hosts 256/16 = 16 experts and touches all of them (256 (1 - (1 - 8/256)^1024) = 256).
    All-to-all per GPU and step (DeepEP: once per distinct remote node over InfiniBand, then over
    NVLink to each distinct GPU; comms.alltoall_copies_per_token): a token hits
    16 (1 - C(240,8)/C(256,8)) = 6.523 GPUs, 7/8 of them over NVLink (5.708 copies), and
    2 (1 - C(128,8)/C(256,8)) = 1.993 nodes, half of them remote (0.9965 copies). 64 tok x 7168 x
    (1 B fp8 + 2 B bf16) x 58 MoE layers = 79.8 MB per copy; 79.5 MB over InfiniBand / (50 GB/s x 0.8)
    = 1.99 ms, plus 116 calls x 8 us = 0.93 ms (the NVLink part, 1.27 ms, runs alongside)."""
    row = rows_for("deepseek-v3", "8xH100", [2])[0]
    assert row["ep"] == 16 and row["routed_experts_per_gpu"] == 16
    assert row["experts_touched_per_gpu"] == pytest.approx(16.0, rel=1e-6)
    copy = 64 * 7168 * 3 * 58
    up, out = 6.523279533536929 * 7 / 8, 1.9930201154318212 / 2
    assert row["alltoall_bytes_per_gpu"] == pytest.approx(copy * (up + out), rel=1e-12)
    assert row["comm_time_s"] == pytest.approx(116 * 8e-6 + copy * out / 40e9, rel=1e-9)
    per_expert = 3 * 7168 * 2048
    assert params.expert_params(_model("deepseek-v3")) == per_expert
    weights = 16 * per_expert * 58  # fp8: one byte each
    assert row["expert_bytes_per_gpu"] >= weights and row["expert_bytes_per_gpu"] == pytest.approx(weights, rel=0.05)


def _model(name):
    from tokecon.catalogs.catalog import load_catalog

    return load_catalog(use_user_home=False).models.get(name)


def test_expert_flop_per_gpu_does_not_depend_on_ep(catalog):
    """Each GPU computes its share of all G x B tokens' k experts: 2 B k P_expert L_moe FLOP."""
    hw = catalog.hardware.get("h200")
    m = _model("deepseek-v3")
    opts = DeviceRequest("deepseek-v3", ("8xH200",))
    from tokecon.physics.phases import decode_step

    flops = []
    for n in (8, 32, 128):
        scn = moe_scenario(opts, catalog, hw, n, "fp8", "bf16")
        t = decode_step(scn, np.asarray([32.0]), np.asarray([1024.0]))
        flops.append(float(t.breakdown_flop["moe/experts"][0]))
    assert flops == pytest.approx([2 * 32 * 8 * params.expert_params(m) * 58] * 3, rel=1e-12)


def test_scaleout_latency_applies_only_across_domains():
    """comms.alltoall_time_s: the scale-out call latency counts only when peers sit outside the domain."""
    inside = comms.alltoall_time_s(np.asarray(0.0), 8, 8, 1e11, 1e10, 8e-6, 10, scaleout_latency_s=20e-6)
    across = comms.alltoall_time_s(np.asarray(0.0), 16, 8, 1e11, 1e10, 8e-6, 10, scaleout_latency_s=20e-6)
    legacy = comms.alltoall_time_s(np.asarray(0.0), 16, 8, 1e11, 1e10, 8e-6, 10)
    assert float(inside) == pytest.approx(80e-6) and float(across) == pytest.approx(200e-6)
    assert float(legacy) == pytest.approx(80e-6)


def test_per_node_throughput_rises_with_ep_on_deepseek_h100():
    """The table of the issue's first example: per-node output rises from EP16 to EP64 under an expert
    load balancer (as DeepSeek and SGLang run large EP): without one the busiest rank's share grows
    with EP (TensorRT-LLM: 2.56x the mean at EP32; tokecon.physics.efficiency.ep_imbalance)."""
    rows = rows_for("deepseek-v3", "8xH100", [1, 2, 4, 8], batch_per_gpu=(64,), eplb=True)
    assert rows[0]["fits"] is False and rows[0]["tok_s_per_node"] is None  # 98.9 GB of weights per GPU
    per_node = [r["tok_s_per_node"] for r in rows[1:]]
    assert per_node == sorted(per_node) and per_node[-1] > 1.5 * per_node[0]
    expert_gb = [r["expert_bytes_per_gpu"] / GB for r in rows[1:]]
    assert expert_gb == sorted(expert_gb, reverse=True)


MOE_MODELS = ["deepseek-v3", "kimi-k2", "qwen3-235b-a22b"]


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(MOE_MODELS),
    device=st.sampled_from(["h100", "h200", "b200", "mi355x"]),
    batch=st.integers(1, 256),
    context=st.integers(128, 8192),
    n1=st.integers(1, 16),
    n2=st.integers(1, 16),
)
def test_more_ep_more_per_node_throughput_while_the_link_keeps_up(catalog, model, device, batch, context, n1, n2):
    """Claim 1: with the scale-out link as fast as the scale-up one (the link keeps up), overlap on and
    an expert load balancer (without one the busiest rank's share grows with EP, issue 18), more
    nodes (larger EP) never lower output tok/s per node: each GPU reads E_touched(B G)/G experts per
    step, which falls with G, while its FLOP and KV traffic stay put."""
    lo, hi = sorted((n1, n2))
    assume(lo < hi)
    spec_hw = catalog.hardware.get(device)
    m = _model(model)
    assume(hi * 8 <= m.experts)
    fast = f"{spec_hw.scaleup_bw_b_s / GB:g}"
    rows = rows_for(model, f"8x{device}", [lo, hi], fast, batch_per_gpu=(batch,), context=min(context, m.max_context),
                    eplb=True)
    small, big = rows[0], rows[-1]
    assume(small["fits"] and big["fits"])
    for r in (small, big):
        assume(r["comm_time_s"] <= r["compute_bound_s"] + r["memory_bound_s"])  # the link keeps up
    assert big["tok_s_per_node"] >= small["tok_s_per_node"] * (1 - 1e-12)
    assert big["experts_touched_per_gpu"] <= small["experts_touched_per_gpu"] * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(MOE_MODELS),
    device=st.sampled_from(["h100", "h200", "b200", "gaudi3"]),
    batch=st.integers(1, 512),
    nodes=st.integers(2, 16),
    bw1=st.floats(1.0, 800.0),
    bw2=st.floats(1.0, 800.0),
    phase=st.sampled_from(["decode", "prefill"]),
)
def test_slower_scaleout_larger_communication_share(catalog, model, device, batch, nodes, bw1, bw2, phase):
    """Claim 2: a slower scale-out link never lowers the communication share of a step, and raises it
    strictly once the scale-out half of the all-to-all is the slower one."""
    slow, fast = sorted((bw1, bw2))
    m = _model(model)
    assume(nodes * 8 <= m.experts)
    hw = catalog.hardware.get(device)
    opts = DeviceRequest(model, (f"8x{device}",))
    shares = []
    for bw in (slow, fast):
        link = resolve_interconnect(f"{bw}", hw)
        scn = moe_scenario(opts, catalog, with_interconnect(hw, link), 8 * nodes, "fp8", "bf16")
        row = moe_rows(scn, 8, link, [batch], 1024, phase, True)[0]
        assume(row["fits"])
        shares.append(row["comm_share"])
    assert shares[0] >= shares[1] * (1 - 1e-12)
    up, out = comms.alltoall_copies_per_token(m.experts, m.experts_per_token, 8 * nodes, hw.scaleup_domain,
                                              m.expert_groups, m.expert_groups_per_token)
    scaleout_sets_time = fast * GB * up < hw.scaleup_bw_b_s * out  # inter/out > intra/up at both speeds
    if scaleout_sets_time and fast > slow * 1.01:
        assert shares[0] > shares[1]


def test_communication_eats_the_gain_of_faster_gpus():
    """Over Ethernet at EP128 (16 nodes) the step is the all-to-all's: B200, which reads its memory
    about 2x faster than H100, gives no more tok/s per GPU. Over InfiniBand at EP64 the all-to-all
    is still about as long as B200's GPU work (hidden by the two micro-batches, not by a margin),
    while inside one NVL72 domain (EP72 over NVLink) it is a small share. Counting a token once
    per distinct destination node (DeepEP) and DeepSeek's 4-node routing limit keeps InfiniBand
    from drowning the step at EP64."""
    h100_eth = rows_for("deepseek-v3", "8xH100", [16], "ethernet")[0]
    b200_eth = rows_for("deepseek-v3", "8xB200", [16], "ethernet")[0]
    b200_fast = rows_for("deepseek-v3", "8xB200", [16], "400")[0]
    assert h100_eth["memory_time_s"] > 1.8 * b200_eth["memory_time_s"]
    assert b200_eth["tok_s_per_gpu"] < 1.05 * h100_eth["tok_s_per_gpu"]
    assert b200_eth["comm_share"] > 0.5 and b200_eth["comm_share"] > h100_eth["comm_share"]
    assert b200_fast["tok_s_per_gpu"] > 1.5 * b200_eth["tok_s_per_gpu"]

    h100_ib = rows_for("deepseek-v3", "8xH100", [8], "infiniband")[0]
    b200_ib = rows_for("deepseek-v3", "8xB200", [8], "infiniband")[0]
    assert b200_ib["comm_share"] > h100_ib["comm_share"]
    b200_ib72 = rows_for("deepseek-v3", "8xB200", [9], "infiniband")[0]
    gb200 = rows_for("deepseek-v3", "72xGB200", [1])[0]
    assert b200_ib72["ep"] == gb200["ep"] == 72
    assert gb200["scaleout_share_of_alltoall"] == 0
    assert gb200["comm_share"] < 0.5 * b200_ib72["comm_share"]
    assert gb200["tok_s_per_gpu"] >= b200_ib72["tok_s_per_gpu"]


def test_overlap_default_on_and_no_overlap_adds_comm():
    on = rows_for("deepseek-v3", "8xH100", [4])[0]
    off = rows_for("deepseek-v3", "8xH100", [4], overlap=False)[0]
    busy = on["compute_bound_s"] + on["memory_bound_s"]
    assert on["step_time_s"] == pytest.approx(max(busy, on["comm_time_s"]) + on["overhead_s"], rel=1e-12)
    assert off["step_time_s"] == pytest.approx(busy + on["comm_time_s"] + on["overhead_s"], rel=1e-12)


def test_dispatch_and_combine_types_are_configurable():
    """fp8 dispatch + bf16 combine = 3 B per token-expert-dim; all bf16 = 4 B."""
    fp8 = rows_for("deepseek-v3", "8xH200", [2])[0]
    bf16 = rows_for("deepseek-v3", "8xH200", [2], dispatch_dtype="bf16")[0]
    assert bf16["alltoall_bytes_per_gpu"] / fp8["alltoall_bytes_per_gpu"] == pytest.approx(4 / 3)


def test_moe_cli_table_shows_the_claims():
    # RoCE Ethernet (25 GB/s per GPU): slow enough that the all-to-all outlasts the GPU work at large EP.
    r = invoke("moe", "--model", "deepseek-v3", "--gpus", "8xH100", "--nodes", "1,2,4,8,16", "--batch-per-gpu", "64",
               "--interconnect", "ethernet")
    assert r.exit_code == 0, r.output
    for header in ("nodes", "EP [GPUs]", "tok/GPU/step", "experts/GPU", "compute [ms]", "memory [ms]", "comm [ms]",
                   "step [ms]", "comm share", "out tok/s/GPU", "out tok/s/node", "USD/Mtok out", "KV fits"):
        assert header in r.stdout
    text = " ".join(r.stdout.split())  # notes wrap at the console width
    assert "does not fit" in text
    assert "per-node output goes from" in text and "the link, not the GPU, sets the step time" in text
    # the layout and overlap model are method notes, shown with --explain
    assert "--overlap is on (the default)" not in text
    explained = invoke("moe", "--model", "deepseek-v3", "--gpus", "8xH100", "--nodes", "1,2,4,8,16", "--batch-per-gpu", "64",
                       "--interconnect", "ethernet", "--explain")
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.stdout.split())
    assert "--overlap is on (the default)" in text and "dispatch in fp8 and combine in bf16" in text


def test_moe_json_equals_core_and_prefill_phase():
    args = ("moe", "-m", "kimi-k2", "-g", "72xGB200", "--context", "4096", "--phase", "prefill", "-b", "1,2")
    r = invoke(*args, "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    core = tokecon.moe(model="kimi-k2", gpus="72xGB200", phase="prefill", nodes=[1], batch_per_gpu=[1, 2], context=4096)
    assert doc["rows"] == json_rows(core)
    assert [row["tokens_per_gpu_per_step"] for row in doc["rows"]] == [4096, 8192]
    assert all(row["ttft_s"] == row["step_time_s"] and row["tpot_s"] is None for row in doc["rows"])
    assert "in tok/s/node" in invoke(*args).stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (("-m", "llama3-70b", "-g", "8xH100"), "dense model"),
        (("-m", "deepseek-v3", "-g", "8xH100", "--nodes", "64"), "more GPUs than"),
        (("-m", "deepseek-v3", "-g", "8xH100", "--interconnect", "carrier-pigeon"), "unknown --interconnect"),
        (("-m", "deepseek-v3", "-g", "8xH100", "--interconnect", "-5"), "--interconnect"),
        (("-m", "deepseek-v3", "-g", "8xH100", "--dispatch-dtype", "fp7"), "--dispatch-dtype"),
        (("-m", "deepseek-v3", "-g", "8xH100", "--nodes", "0"), "--nodes"),
    ],
)
def test_moe_bad_input_is_one_line_exit_2(args, needle):
    r = invoke("moe", *args)
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_moe_threshold_exit_1():
    r = invoke("moe", "-m", "deepseek-v3", "-g", "8xH200", "--nodes", "1,2", "--min-tok-s-per-gpu", "1e6")
    assert r.exit_code == 1 and "cross a threshold" in r.stderr


def test_interconnect_presets_and_numbers(catalog):
    hw = catalog.hardware.get("b200")
    assert resolve_interconnect(None, hw).bw_b_s == hw.scaleout_bw_b_s
    assert resolve_interconnect("InfiniBand", hw).bw_b_s == 50e9
    assert resolve_interconnect("ib", hw).key == "infiniband"
    assert resolve_interconnect("100", hw).bw_b_s == 100e9
    assert resolve_interconnect("ethernet", hw).bw_b_s < resolve_interconnect("infiniband", hw).bw_b_s
