"""Physics corrections from an independent audit, each pinned to a hand-derived number.

Sources: AMD's MI300X page, amd.com/en/products/accelerators/instinct/mi300/mi300x.html (xGMI: 7 links
of 128 GB/s peak, read as bidirectional: 64 GB/s per peer per direction, as stas00/ml-engineering
network/README.md reads it); Cloud TPU docs, docs.cloud.google.com/tpu/docs/v5e and /v5p (bidirectional
ICI per chip 400 GB/s over 4 ports, 1,200 GB/s over 6: per-port one-way 50 / 100 GB/s); DeepSeek-V3
technical report arXiv:2412.19437 (node-limited routing: at most 4 nodes per token; dispatch once per
node over IB, then NVLink); the HF config.json fixtures in tests/fixtures/hf_configs (n_group /
topk_group, attention_chunk_size).
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest

from tokecon.physics import comms
from tokecon.physics import params
from tokecon.catalogs.catalog import load_catalog
from tokecon.errors import TokeconError
from tokecon.catalogs.hf_config import import_config_file
from tokecon.physics.operations import chunked_pairs, step_operations
from tokecon.physics.phases import decode_step
from tokecon.physics.specs import Precision

from helpers import scenario

GB = 1e9
AR_MESSAGE_B = 2 * 80 * 8192 * 2.0  # llama3-70b, batch 1: 2 all-reduces x 80 layers x 8192 x 2 B


def _allreduce_s(catalog, device: str, tp: int) -> float:
    scn = scenario(catalog, "llama3-70b", device, tp, ideal=True)
    return float(decode_step(scn, np.asarray(1.0), np.asarray(2048.0)).comm_time_s)


# --- 1. scale-up topology ------------------------------------------------------------------------


@pytest.mark.parametrize("tp, link_gb_s", [(2, 64.0), (4, 192.0), (8, 448.0)])
def test_mi300x_mesh_allreduce_gets_the_links_of_its_group(catalog, tp, link_gb_s):
    """MI300X xGMI is a full mesh of 7 links x 64 GB/s per direction: a TP2 pair has 1 link, TP4
    3, TP8 7. TP2: 2(1/2) x 2.62 MB / 64 GB/s = 41.0 us; TP4: 1.5 x 2.62 MB / 192 GB/s = 20.5 us;
    TP8: 1.75 x 2.62 MB / 448 GB/s = 10.2 us (a switch would give 448 GB/s to every group)."""
    expected = 2 * (tp - 1) / tp * AR_MESSAGE_B / (link_gb_s * GB)
    assert _allreduce_s(catalog, "mi300x", tp) == pytest.approx(expected, rel=1e-12)
    assert {2: 40.96e-6, 4: 20.48e-6, 8: 10.24e-6}[tp] == pytest.approx(expected, rel=1e-12)


def test_switch_and_other_meshes(catalog):
    """H100 (NVSwitch) TP2 keeps 450 GB/s: 2.62 MB / 450 GB/s = 5.83 us. MI355X TP2: one
    76.5 GB/s link (535.5 / 7). All three AMD parts are parsed as 7-link meshes."""
    assert _allreduce_s(catalog, "h100-sxm", 2) == pytest.approx(AR_MESSAGE_B / 450e9, rel=1e-12)
    assert _allreduce_s(catalog, "mi355x", 2) == pytest.approx(AR_MESSAGE_B / 76.5e9, rel=1e-12)
    for key in ("mi300x", "mi325x", "mi355x"):
        hw = catalog.hardware.get(key)
        assert (hw.scaleup_topology, hw.scaleup_links) == ("mesh", 7)
    assert catalog.hardware.get("h100-sxm").scaleup_topology == "switch"


def test_torus_ring_rides_one_axis(catalog):
    """Assumption (stated in comms.scaleup_group_bw_b_s): a TP ring runs along one torus axis and
    uses its 2 ports. TPU v5e: 4 ports x 50 GB/s -> 100 GB/s; v5p: 6 x 100 -> 200 GB/s.
    llama3-70b TP4 on v5e: 1.5 x 2.62 MB / 100 GB/s = 39.3 us."""
    assert _allreduce_s(catalog, "tpu-v5e", 4) == pytest.approx(1.5 * AR_MESSAGE_B / 100e9, rel=1e-12)
    assert _allreduce_s(catalog, "tpu-v5p", 4) == pytest.approx(1.5 * AR_MESSAGE_B / 200e9, rel=1e-12)
    assert comms.scaleup_group_bw_b_s(200e9, 16, "torus", 4) == 100e9


def test_mesh_alltoall_has_one_link_per_peer():
    """An all-to-all over 4 MI300X sends a quarter of its payload to each of 3 peers, each over its
    own 64 GB/s link: 3 x 64 = 192 GB/s. A 192 MB payload: 144 MB leaves the GPU, 48 MB per peer
    link / 64 GB/s = 0.75 ms."""
    bw = comms.scaleup_group_bw_b_s(448e9, 4, "mesh", 7)
    assert bw == pytest.approx(192e9)
    t = comms.alltoall_time_s(np.asarray(144e6), 4, 8, bw, 50e9, 0.0, 1.0)
    assert float(t) == pytest.approx(0.75e-3, rel=1e-12)


def _toy_device(tmp_path, **fields) -> Path:
    """A --catalog file with one small device, [hardware.toy], plus ``fields``."""
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in fields.items())
    path = tmp_path / "hw.toml"
    path.write_text(
        '[hardware.toy]\nname = "toy"\nvendor = "x"\nfamily = "x"\nmemory_gb = 80.0\nmemory_bw_tb_s = 2.0\n'
        'bf16_tflop_s = 100.0\nscaleup_link = "x"\nscaleup_bw_gb_s = 300.0\nscaleup_domain = 4\n'
        'scaleout_bw_gb_s = 50.0\npower_w = 500\nrental_usd_per_hour = 1.0\nsource = "t"\n' + extra
        + "[hardware.toy.efficiency]\ncompute = 0.5\nmemory_bw = 0.8\nlink = 0.8\ncollective_latency_us = 8.0\n"
    )
    return path


def test_mesh_topology_is_parsed_with_default_links(tmp_path):
    """scaleup_topology = "mesh" without scaleup_links: one link per peer, domain - 1 = 3; a
    torus without scaleup_links is refused; the default is a switch."""
    hw = load_catalog([_toy_device(tmp_path, scaleup_topology="mesh")], use_user_home=False).hardware.get("toy")
    assert (hw.scaleup_topology, hw.scaleup_links) == ("mesh", 3)
    hw = load_catalog([_toy_device(tmp_path)], use_user_home=False).hardware.get("toy")
    assert (hw.scaleup_topology, hw.scaleup_links) == ("switch", 0)
    with pytest.raises(TokeconError, match="scaleup_links"):
        load_catalog([_toy_device(tmp_path, scaleup_topology="torus")], use_user_home=False)


# --- 2./3. compute rates of weight-only and fp32 matmuls --------------------------------------------


def test_fp4_and_int4_without_fp4_tensor_cores_run_at_the_16bit_rate(catalog):
    """Hopper/Ampere/Ada/CDNA3 have no FP4 tensor cores: MXFP4 (gpt-oss), NVFP4 and int4 (AWQ/GPTQ)
    run W4A16 kernels at the bf16 rate: H100 989.4 TFLOP/s (not 1,978.9 fp8), MI300X 1,307.4.
    B200 has FP4: 9,000. A100 has no FP8: fp8 weights run at 312."""
    h100, mi300x, b200, a100 = (catalog.hardware.get(k) for k in ("h100-sxm", "mi300x", "b200", "a100-80gb"))
    for dtype in ("fp4", "mxfp4", "nvfp4", "int4"):
        assert h100.peak_flop_s(dtype) == pytest.approx(989.4e12)
        assert mi300x.peak_flop_s(dtype) == pytest.approx(1307.4e12)
    assert b200.peak_flop_s("mxfp4") == pytest.approx(9000e12) and b200.peak_flop_s("int4") == pytest.approx(2250e12)
    assert a100.peak_flop_s("fp8") == pytest.approx(312e12)
    assert h100.peak_flop_s("fp8") == pytest.approx(1978.9e12)


def test_fp32_runs_at_the_tf32_rate(catalog, tmp_path):
    """fp32 weights (4 B) multiply at the TF32 tensor rate, half the bf16 dense rate on NVIDIA
    (H100 SXM datasheet: TF32 494.7 dense vs BF16 989.4), unless the catalog states tf32_tflop_s."""
    assert catalog.hardware.get("h100-sxm").peak_flop_s("fp32") == pytest.approx(494.7e12)
    assert catalog.hardware.get("a100-80gb").peak_flop_s("fp32") == pytest.approx(156e12)
    toy = load_catalog([_toy_device(tmp_path, tf32_tflop_s=80.0)], use_user_home=False).hardware.get("toy")
    assert toy.peak_flop_s("fp32") == pytest.approx(80e12) and toy.peak_flop_s("bf16") == pytest.approx(100e12)


# --- 4. 16-bit embeddings, LM head and router in quantised checkpoints -----------------------------


def test_deepseek_fp8_keeps_embeddings_head_and_router_in_bf16(catalog):
    """DeepSeek-V3 FP8 checkpoint: embed_tokens and lm_head (129,280 x 7,168 each) and the 58 MoE
    routers (256 x 7,168) are BF16 tensors. Versus counting them at 1 B: +2 x 0.9267 = +1.853 GB of
    embedding + head and +0.106 GB of routers. A decode step on one GPU reads the whole head:
    +0.927 GB."""
    m = catalog.models.get("deepseek-v3")
    extra = params.weight_bytes(m, Precision("fp8")) - params.total_params(m) * 1.0
    assert 2 * 129280 * 7168 == 1_853_358_080 and 58 * 256 * 7168 == 106_430_464
    assert extra == 1_853_358_080 + 106_430_464
    scn = scenario(catalog, "deepseek-v3", "h200", 8, ideal=True, tp=1, ep=8, attention_dp=True)
    ops = {op.name: op for op in step_operations(scn, np.asarray(1.0), np.asarray(1.0), np.asarray(100.0))}
    head_weights = float(ops["lm_head"].bytes) - (7168 * 2 + 129280 * 4.0)  # less the one row in, logits out
    assert head_weights - 129280 * 7168 * 1.0 == pytest.approx(0.9267e9, rel=1e-4)
    assert float(ops["embed"].bytes) == 7168 * 2.0 and ops["lm_head"].dtype == "bf16"
    router = 58 * (256 * 7168 * 2.0 + (7168 + 256) * 2.0)
    assert float(ops["moe/router"].bytes) == pytest.approx(router, rel=1e-12)


def test_awq_int4_8b_is_about_6_gb(catalog):
    """Qwen3-8B AWQ int4: 2 x 151,936 x 4,096 = 1.245e9 embedding + head parameters in BF16
    (2.489 GB) + the other 6.946e9 at 4.125 bit (3.582 GB) = 6.07 GB, not 8.19e9 x 4.125/8 = 4.22 GB.
    bf16 and q4_k_m (a whole-file average) are unchanged."""
    m = catalog.models.get("qwen3-8b")
    emb = 2 * 151936 * 4096
    expected = emb * 2.0 + (params.total_params(m) - emb) * 4.125 / 8
    assert params.weight_bytes(m, Precision("int4")) == pytest.approx(expected, rel=1e-12)
    assert expected / GB == pytest.approx(6.07, abs=0.01)
    assert params.weight_bytes(m, Precision("q4_k_m")) == pytest.approx(params.total_params(m) * 4.85 / 8)
    assert params.weight_bytes(m, Precision("bf16")) == params.total_params(m) * 2.0


# --- 5. all-to-all: distinct destination GPUs and nodes ----------------------------------------------


def test_dispatch_goes_once_per_distinct_gpu(catalog):
    """DeepSeek-V3 at EP8 (one node): 256 experts, 32 per GPU, top-8. A token lands on
    8 (1 - C(224,8)/C(256,8)) = 5.295 distinct GPUs, 7/8 of them peers: 4.633 copies, not 8 x 7/8 = 7.
    Dispatch bytes per GPU, batch 4: 4 x 4.633 x 7,168 x 1 B (fp8) x 58 layers."""
    gpus = 8 * (1 - comb(224, 8) / comb(256, 8))
    assert gpus == pytest.approx(5.2947, abs=1e-4)
    assert comms.distinct_bins_hit(8, 32, 8) == pytest.approx(gpus, rel=1e-12)
    assert comms.alltoall_copies_per_token(256, 8, 8, 8) == pytest.approx((gpus * 7 / 8, 0.0), rel=1e-12)
    scn = scenario(catalog, "deepseek-v3", "h200", 8, tp=1, ep=8, attention_dp=True)
    ops = {op.name: op for op in step_operations(scn, np.asarray(4.0), np.asarray(1.0), np.asarray(100.0))}
    assert float(ops["comm/dispatch"].bytes) == pytest.approx(4 * gpus * 7 / 8 * 7168 * 1.0 * 58, rel=1e-12)
    assert float(ops["comm/combine"].bytes) == pytest.approx(4 * gpus * 7 / 8 * 7168 * 2.0 * 58, rel=1e-12)


def test_node_limited_routing_caps_scaleout_copies(catalog):
    """DeepSeek-V3 config: n_group 8, topk_group 4 ("each token will be sent to at most 4 nodes").
    EP64 = 8 nodes x 8 GPUs, 32 experts per node: the token's 8 experts lie in 4 nodes, so it hits
    4 (1 - C(96,8)/C(128,8)) = 3.629 nodes, 7/8 remote: 3.175 InfiniBand copies, against
    8 (1 - C(224,8)/C(256,8)) x 7/8 = 4.633 without the limit (and 8 x 56/64 = 7 counting experts)."""
    m = catalog.models.get("deepseek-v3")
    assert (m.expert_groups, m.expert_groups_per_token) == (8, 4)
    limited = 4 * (1 - comb(96, 8) / comb(128, 8)) * 7 / 8
    free = 8 * (1 - comb(224, 8) / comb(256, 8)) * 7 / 8
    up, out = comms.alltoall_copies_per_token(256, 8, 64, 8, 8, 4)
    assert out == pytest.approx(limited, rel=1e-12) and limited == pytest.approx(3.175, abs=1e-3)
    assert comms.alltoall_copies_per_token(256, 8, 64, 8)[1] == pytest.approx(free, rel=1e-12)
    # scale-up: every GPU hit but its node's entry GPU, 4 nodes x 8 GPUs of 4 experts each
    assert up == pytest.approx(32 * (1 - comb(124, 8) / comb(128, 8)) * 7 / 8, rel=1e-12)
    kimi = catalog.models.get("kimi-k2")
    assert kimi.expert_groups_per_token == 0  # config n_group 1, topk_group 1: no limit


# --- 6. chunked attention (Llama 4) -----------------------------------------------------------------


def test_chunked_attention_pairs_and_kv(catalog):
    """Llama 4 attention_chunk_size 8192 on 36 of 48 layers: token p sees ((p-1) mod 8192) + 1 keys.
    A 32,768-token prefill: 4 x 8192 x 8193 / 2 = 134.2M pairs per chunked layer (average 4,096.5
    keys, not 8,192 as a window). Decode at position 32,769 (a chunk's first token): 1 key; at
    36,864: 4,096 keys read. KV held at 131,072 tokens: (12 x 131,072 + 36 x 8,192) x 4,096 B
    (2 x 8 KV heads x 128 x 2 B) = 7.650 GB."""
    assert float(chunked_pairs(0.0, 32768.0, 8192.0)) == 4 * 8192 * 8193 / 2
    assert float(chunked_pairs(32768.0, 1.0, 8192.0)) == 1.0
    assert float(chunked_pairs(36863.0, 1.0, 8192.0)) == 4096.0
    assert float(chunked_pairs(100.0, 8292.0, 8192.0)) == pytest.approx(
        sum(((p - 1) % 8192) + 1 for p in range(101, 8393)), rel=1e-12)
    m = catalog.models.get("llama4-scout")
    assert (m.attention_chunk_size, m.chunked_layers, m.sliding_layers, m.full_attention_layers) == (8192, 36, 0, 12)
    held = float(params.kv_bytes_per_sequence(m, "bf16", 131072.0))
    assert held == (12 * 131072 + 36 * 8192) * 4096 and held / GB == pytest.approx(7.650, abs=1e-3)
    scn = scenario(catalog, "llama4-scout", "h100-sxm", 1, ideal=True)
    ops = {op.name: op for op in step_operations(scn, np.asarray(1.0), np.asarray(1.0), np.asarray(36863.0))}
    kv_layer = 2 * 8 * 128 * 2.0
    qo = 40 * 256 * 2.0
    assert float(ops["attn/core_chunked"].bytes) == pytest.approx(36 * (4096 * kv_layer + kv_layer + qo), rel=1e-12)
    assert float(ops["attn/core_chunked"].flop) == pytest.approx(2 * 40 * 4096 * 256 * 36, rel=1e-12)


FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"  # copies of public configs: SOURCES.md there


def test_hf_import_reads_chunks_and_expert_groups():
    """deepseek-v3.json: n_group 8, topk_group 4 (DeepSeek ModelArgs: n_expert_groups / n_limited_groups);
    kimi-k2-instruct.json: n_group 1 (no limit, no field); Llama 4 Scout: attention_chunk_size 8192,
    no_rope_layer_interval 4 -> 36 chunked layers, no sliding window."""
    for stem in ("deepseek-v3", "deepseek-v3.inference-config_671B"):
        e = import_config_file(FIXTURES / f"{stem}.json")[1]
        assert (e["expert_groups"], e["expert_groups_per_token"]) == (8, 4), stem
    assert "expert_groups" not in import_config_file(FIXTURES / "kimi-k2-instruct.json")[1]
    scout = import_config_file(FIXTURES / "llama-4-scout-17b-16e-instruct.TRIMMED.json")[1]
    assert (scout["attention_chunk_size"], scout["chunked_layers"]) == (8192, 36) and "sliding_layers" not in scout
