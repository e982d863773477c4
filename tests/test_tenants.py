"""Many tenants: LoRA adapters on one base model (tokecon/serving/lora.py) and ``tokecon tenants``.

Adapter sizes are counted by hand from the model's shapes (LoRA, Hu et al. 2021, arXiv:2106.09685:
r (d_in + d_out) per adapted matrix); the expected distinct adapters of a batch are checked against
an enumeration of every way a batch can draw them; and the issue's claim (issue 12, part 5: "adapters
cost little per tenant until their reads rival the base weights'") is stated as a property of the
decode step (S-LoRA, arXiv:2311.03285; Punica, arXiv:2310.18547: each step reads the batch's
distinct adapters once).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from helpers import scenario
from tokecon.physics import memory
from tokecon.cli.main import app
from tokecon.errors import TokeconError
from tokecon.serving import lora
from tokecon.physics.phases import decode_step
from tokecon.cli.render import render_table
from tokecon.serving.lora import LoraAdapters

runner = CliRunner()
QKVO = ("q", "k", "v", "o")


@pytest.fixture(scope="module")
def llama8b(catalog):
    return scenario(catalog, "llama3-8b", "h100-sxm")


# --- adapter size ---------------------------------------------------------------------------


def test_llama3_8b_rank16_qkvo_adapter_by_hand(llama8b):
    """Llama-3-8B: d_model 4096, 32 query heads and 8 KV heads of 128 (q/o 4096 wide, k/v 1024), 32 layers."""
    r, d, kv, layers = 16, 4096, 1024, 32
    per_layer = r * (d + d) + r * (d + kv) + r * (d + kv) + r * (d + d)  # q, k, v, o
    assert per_layer == 425_984
    by_hand = per_layer * layers  # 13,631,488 parameters, 27.3 MB in bf16
    adapter = LoraAdapters(1, r, QKVO)
    assert lora.adapter_params(llama8b.model, adapter) == by_hand
    assert lora.adapter_bytes_per_gpu(replace(llama8b, lora=adapter)) == by_hand * 2


def test_all_linear_adds_the_gated_mlp_and_tp_shards_as_vllm(llama8b):
    """gate and up: 4096 -> 14336, down: 14336 -> 4096. Under TP2 column-parallel modules keep A whole
    and halve B's d_out, row-parallel ones halve A's d_in (vLLM's LoRA layers)."""
    r, d, kv, f, layers = 16, 4096, 1024, 14336, 32
    attn = 2 * r * (d + d) + 2 * r * (d + kv)
    mlp = 3 * r * (d + f)
    assert lora.adapter_params(llama8b.model, LoraAdapters(1, r, lora.parse_targets("all"))) == (attn + mlp) * layers
    tp2 = r * (d + d / 2) + 2 * r * (d + kv / 2) + r * (d / 2 + d) + 2 * r * (d + f / 2) + r * (f / 2 + d)
    assert lora.adapter_params(llama8b.model, LoraAdapters(1, r, lora.parse_targets("all")), tp=2) == tp2 * layers
    plain = replace(llama8b.model, mlp="plain")  # no gate to adapt: up and down only
    assert lora.adapter_params(plain, LoraAdapters(1, r, lora.parse_targets("all"))) == (attn + 2 * r * (d + f)) * layers


def test_routed_experts_carry_one_adapter_each(catalog):
    """Mixtral 8x7B: 32 layers, 8 experts of width 14336 on d_model 4096; mlp targets adapt every expert."""
    m = scenario(catalog, "mixtral-8x7b", "h100-sxm", 2).model
    r = 8
    assert lora.adapter_params(m, LoraAdapters(1, r, ("gate", "up", "down"))) == 8 * 3 * r * (4096 + 14336) * 32


# --- expected distinct adapters -------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.7])
@pytest.mark.parametrize("tenants,draws", [(1, 3), (3, 4), (4, 5), (6, 2)])
def test_expected_distinct_against_every_batch(tenants, draws, alpha):
    """E[d] by enumerating all tenants^draws batches with their probabilities."""
    p = np.arange(1, tenants + 1, dtype=float) ** -alpha
    p /= p.sum()
    direct = sum(math.prod(p[i] for i in batch) * len(set(batch))
                 for batch in itertools.product(range(tenants), repeat=draws))
    assert lora.expected_distinct(tenants, alpha, np.asarray([draws]))[0] == pytest.approx(direct, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.floats(0.0, 3.0), st.integers(1, 500))
def test_distinct_adapters_lie_between_one_and_the_fewer_of_batch_and_tenants(tenants, alpha, draws):
    d = lora.expected_distinct(tenants, alpha, np.asarray([draws, draws + 1], dtype=float))
    assert 1.0 - 1e-9 <= d[0] <= min(tenants, draws) + 1e-9
    assert d[1] >= d[0] - 1e-9  # one more request never lowers it


def test_miss_rate_of_the_most_popular_cached():
    """Zipf alpha 1 over 3 tenants: shares 6/11, 3/11, 2/11; one slot keeps the first: miss 5/11.
    Uniform over 100 with 32 slots: 68%."""
    assert lora.miss_rate(LoraAdapters(3, 8, zipf_alpha=1.0, gpu_slots=1)) == pytest.approx(5 / 11)
    assert lora.miss_rate(LoraAdapters(100, 8, gpu_slots=32)) == pytest.approx(0.68)
    assert lora.miss_rate(LoraAdapters(100, 8)) == 0.0


# --- step operations and memory -------------------------------------------------------------


def test_adapter_kernels_flop_and_bytes_by_hand(llama8b):
    """8 decode sequences from 4 uniform tenants: E[d] = 4 (1 - (3/4)^8); FLOP = 2 x 8 x r x (d_in + d_out)
    summed over modules and layers; bytes = E[d] adapters + 8 tokens' inputs and outputs, bf16."""
    adapter = LoraAdapters(4, 16, QKVO)
    scn = replace(llama8b, lora=adapter)
    widths = ((4096 + 4096) * 2 + (4096 + 1024) * 2) * 32
    d = 4 * (1 - 0.75**8)
    (op,) = [o for o in decode_step(scn, np.asarray([8.0]), 1024.0).breakdown_flop if o.startswith("lora/")]
    step = decode_step(scn, np.asarray([8.0]), 1024.0)
    assert op == "lora/attn"
    assert step.breakdown_flop[op][0] == pytest.approx(2 * 8 * 16 * widths)
    assert step.breakdown_bytes[op][0] == pytest.approx(d * 16 * widths * 2 + 8 * widths * 2)


def test_resident_adapters_take_room_from_the_kv_cache(llama8b):
    """max batch = floor((usable - weights - N x adapter bytes) / KV per sequence); swapped: M slots
    held, and each running request may hold its cold adapter (miss x adapter bytes)."""
    ctx = np.asarray([2048.0])
    usable = memory.usable_bytes(llama8b)
    weights = memory.weight_bytes_per_gpu(llama8b.model, llama8b.precision, llama8b.deployment)
    kv = memory.kv_bytes_per_seq_per_gpu(llama8b.model, llama8b.precision, llama8b.deployment, ctx)[0]
    adapter = 13_631_488 * 2
    resident = replace(llama8b, lora=LoraAdapters(1000, 16, QKVO))
    assert memory.max_batch(resident, ctx)[0] == math.floor((usable - weights - 1000 * adapter) / kv)
    swapped = replace(llama8b, lora=LoraAdapters(1000, 16, QKVO, gpu_slots=32))
    assert memory.max_batch(swapped, ctx)[0] == math.floor((usable - weights - 32 * adapter) / (kv + 0.968 * adapter))
    assert memory.max_batch(resident, ctx)[0] < memory.max_batch(llama8b, ctx)[0]


# --- the article's claim --------------------------------------------------------------------


def _extra_and_weight_read(scn, adapter, batch):
    with_lora = replace(scn, lora=adapter)
    extra = decode_step(with_lora, batch, 2048.0).step_time_s - decode_step(scn, batch, 2048.0).step_time_s
    weights = memory.weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment)
    bw = scn.hardware.memory_bw_b_s * scn.memory_bw_efficiency
    return extra, weights / bw, lora.adapter_bytes_per_gpu(with_lora) / weights


@pytest.mark.parametrize("tenants", [1, 2, 5, 10])
def test_adapters_cost_little_while_all_of_them_are_small_beside_the_weights(llama8b, tenants):
    """N x adapter bytes <= 2% of the weights (rank 16 on q, k, v, o: 0.17% each): at every batch the
    adapter kernels add under 4% to the decode step."""
    batch = np.asarray([1.0, 8.0, 64.0, 256.0])
    extra, _, share = _extra_and_weight_read(llama8b, LoraAdapters(tenants, 16, QKVO), batch)
    assert tenants * share <= 0.02
    base = decode_step(llama8b, batch, 2048.0).step_time_s
    assert np.all(extra < 0.04 * base)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 100_000), st.sampled_from([8, 16, 64]), st.sampled_from([1.0, 16.0, 64.0, 256.0]))
def test_extra_step_time_grows_with_the_distinct_adapters_read(llama8b, tenants, rank, batch):
    """The extra time is at least the distinct adapters' read at the weights' bandwidth, so it rises
    toward (and past) the weight read as E[d] x adapter bytes nears the weight bytes."""
    adapter = LoraAdapters(tenants, rank, lora.parse_targets("all"))
    b = np.asarray([batch])
    extra, weight_read_s, share = _extra_and_weight_read(llama8b, adapter, b)
    reads = lora.expected_distinct(tenants, 0.0, b) * share
    assert extra[0] >= 0.999 * reads[0] * weight_read_s
    more = _extra_and_weight_read(llama8b, replace(adapter, adapters=tenants * 10), b)[0]
    assert more[0] >= extra[0] - 1e-12


def test_many_distinct_adapters_per_batch_rival_the_weight_read(llama8b):
    """256 requests from 100,000 tenants hold ~256 distinct adapters; at rank 16 on all linear layers
    (87 MB each) that is 1.3x the 16 GB of weights, and the adapter kernels take longer than reading them."""
    adapter = LoraAdapters(100_000, 16, lora.parse_targets("all"))
    extra, weight_read_s, share = _extra_and_weight_read(llama8b, adapter, np.asarray([256.0]))
    assert lora.expected_distinct(100_000, 0.0, np.asarray([256.0]))[0] * share > 1.0
    assert extra[0] > weight_read_s


def test_shared_price_barely_moves_while_dedicated_price_grows_with_tenants(llama8b):
    """At 64 requests in flight over N tenants: the shared deployment's USD/Mtok within 5% of one tenant's
    from N = 1 to 1000 (rank 16 q, k, v, o); each tenant's own deployment at 64 / N requests costs ever more
    per token (it idles), about N times the shared price once 64 / N < 1."""
    usd = {}
    for n in (1, 10, 100, 1000):
        t = lora.serve_tenants(llama8b, LoraAdapters(n, 16, QKVO), np.asarray([64.0]), 1024, 1024)
        usd[n] = (1 / t.total_tok_s[0], n / t.dedicated_total_tok_s[0])  # USD per token at 1 USD/h per deployment
    assert all(usd[n][0] <= 1.05 * usd[1][0] for n in usd)
    assert usd[10][1] > 3 * usd[10][0] and usd[1000][1] > 300 * usd[1000][0]


def test_dedicated_deployments_follow_each_tenants_share(llama8b):
    """Zipf alpha 1 over 3 tenants (shares 6/11, 3/11, 2/11) at 22 requests in flight: the dedicated
    deployments serve 12, 6 and 4 requests, and together the tokens of those three serve calls."""
    from tokecon.serving import batching as serving

    t = lora.serve_tenants(llama8b, LoraAdapters(3, 16, QKVO, zipf_alpha=1.0), np.asarray([22.0]), 1024, 1024)
    alone = serving.serve(llama8b, np.asarray([12.0, 6.0, 4.0]), 1024, 1024)
    assert t.dedicated.concurrency[:, 0] == pytest.approx([12.0, 6.0, 4.0])
    assert t.dedicated_total_tok_s[0] == pytest.approx(alone.total_tok_s.sum())


def test_host_link_loads_add_to_ttft(llama8b):
    """Swapped, uniform 1000 tenants, 32 slots: 96.8% of requests load 27.3 MB over 64 GB/s (0.43 ms)."""
    t = lora.serve_tenants(llama8b, LoraAdapters(1000, 16, QKVO, gpu_slots=32), np.asarray([64.0]), 1024, 1024)
    assert t.load_s == pytest.approx(13_631_488 * 2 / 64e9)
    assert t.ttft_s[0] - t.shared.ttft_s[0] == pytest.approx(0.968 * t.load_s)
    assert 0 < t.host_link_utilisation[0] < 1 and t.throttle[0] == 1.0


def test_bad_settings_are_one_clear_error(catalog, llama8b):
    with pytest.raises(TokeconError, match="MLA"):
        lora.check(LoraAdapters(2, 16, QKVO), scenario(catalog, "deepseek-v3", "h200", 8).model)
    with pytest.raises(TokeconError, match="--lora-rank"):
        lora.check(LoraAdapters(2, 0), llama8b.model)
    with pytest.raises(TokeconError, match="--lora-targets"):
        lora.parse_targets("q,x")
    with pytest.raises(TokeconError, match="--popularity"):
        lora.parse_popularity("zipf:-1")


# --- CLI ------------------------------------------------------------------------------------

ARGS = ["tenants", "-m", "llama3-8b", "-g", "1xH100", "--adapters", "1,10,100,1000", "--lora-rank", "16",
        "--lora-targets", "qkvo"]


def test_cli_json_rows_per_tenant_count_and_mode():
    r = runner.invoke(app, [*ARGS, "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    modes = [(row["adapters"], row["swapped"]) for row in doc["rows"]]
    assert modes == [(1, False), (10, False), (100, False), (100, True), (1000, False), (1000, True)]
    row = doc["rows"][0]
    assert row["adapter_params"] == 13_631_488 and doc["lora_targets"] == "q,k,v,o"
    for key in ("tpot_s", "total_tok_s", "adapter_bytes_per_gpu", "adapter_step_s", "usd_per_mtok",
                "usd_per_hour_per_tenant", "dedicated_usd_per_mtok", "miss_rate", "host_link_utilisation"):
        assert all(key in x for x in doc["rows"]), key
    per_tenant = [x["usd_per_hour_per_tenant"] for x in doc["rows"] if not x["swapped"]]
    assert per_tenant == pytest.approx([doc["rows"][0]["usd_per_hour"] / n for n in (1, 10, 100, 1000)])
    # how dedicated and swapped are modelled is method (--explain); the notes say what sharing saves
    assert any("Dedicated" in n for n in doc["method_notes"]) and any("Swapped" in n for n in doc["method_notes"])
    assert not any(n.startswith(("Dedicated", "Swapped")) for n in doc["notes"])
    assert any("tenants sharing one deployment" in n and "less than a deployment each" in n for n in doc["notes"])


def test_cli_table_reads_at_80_columns(monkeypatch):
    seen = []
    import tokecon.cli.show as render_module  # the CLI shows a result through show.render

    monkeypatch.setattr(render_module, "render", lambda result, *a, **k: seen.append(result))
    assert runner.invoke(app, ARGS).exit_code == 0
    out = io.StringIO()
    render_table(seen[0], out, color=True, width=80)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    for header in ("tenants", "TPOT", "LoRA", "shared", "dedicated"):
        assert header in text


def test_cli_a_threshold_exits_1_and_bad_input_exits_2():
    costs = [row["usd_per_mtok"] for row in json.loads(runner.invoke(app, [*ARGS, "--format", "json"]).stdout)["rows"]]
    between = (min(costs) + max(costs)) / 2  # the shared rows' costs straddle it
    r = runner.invoke(app, [*ARGS, "--max-usd-per-mtok", f"{between:.6g}"])
    assert r.exit_code == 1 and "rows cross a threshold" in r.stderr
    assert runner.invoke(app, [*ARGS, "--max-usd-per-mtok", f"{max(costs) * 1.01:.6g}"]).exit_code == 0
    r = runner.invoke(app, ["tenants", "-m", "deepseek-v3", "-g", "8xH200"])
    assert r.exit_code == 2 and "--lora-targets mlp" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(app, [*ARGS, "--popularity", "pareto"])
    assert r.exit_code == 2 and "--popularity" in r.stderr
