"""``tokecon embed``: physics pinned to hand-derived counts and to Tensor Economics,
"Why are embeddings so cheap?" (Piotr Mazurek, 2025-09-24,
https://www.tensoreconomics.com/p/why-are-embeddings-so-cheap), plus the CLI contract."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import numpy as np
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.economics import money as economics
from tokecon.physics import memory
from tokecon.physics import params
from tokecon.catalogs.catalog import builtin_paths
from tokecon.cli.main import app
import tokecon
from tokecon.commands.embed import embed_rows, embedding_scenario
from tokecon.physics.phases import prefill_step

from helpers import json_rows, scenario, with_hardware

runner = CliRunner()

S = 1024  # the article's sequence length


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def qwen_te_h100(catalog):
    """Qwen3-Embedding-8B on one H100 with the article's inputs: 750 TFLOP/s achieved in
    matmuls ("In our tests we achieved ~750 TFLOPS"), "3.3 TB/s", no other loss."""
    scn = embedding_scenario(scenario(catalog, "qwen3-embedding-8b", "h100-sxm", 1, ideal=True))
    return with_hardware(scn, flop_s={"bf16": 750e12}, memory_bw_b_s=3.3e12)


def test_flop_per_sequence_against_tensor_economics(qwen_te_h100):
    """Article: "36 x (10 x 1024 x 4096 + 25.5 x 1024 x 4096^2 + 4 x 1024^2 x 4096 + 5 x 1024^2 x 32)
    = 16.4 TFLOPs" -- Llama 3's 25.5 h^2 per layer and full S^2 attention. Qwen3-8B's layer holds
    11.5 h^2 weights (q, o: h^2; k, v: h^2/8 each; gated MLP 3 x 3h x h), i.e. 23 h^2 FLOP per token,
    and Qwen3-Embedding is causal (S(S+1)/2 pairs, 2 S(S+1) h per layer for QK^T and AV). tokecon
    therefore counts 14.54 TFLOP, 11.4% below the article; checked within 15%, and exactly equal to
    the article's formula with those two corrections (its 10 S h term equals our two 5-FLOP norms
    per layer; plus one final norm)."""
    h, L = 4096, 36
    article = L * (10 * S * h + 25.5 * S * h**2 + 4 * S**2 * h + 5 * S**2 * 32)
    assert article == pytest.approx(16.4e12, rel=0.005)
    row = embed_rows(qwen_te_h100, [1], S)[0]
    assert row["flop_per_seq"] == pytest.approx(16.4e12, rel=0.15)
    corrected = L * (10 * S * h + 23 * S * h**2 + 2 * S * (S + 1) * h) + 5 * S * h
    assert row["flop_per_seq"] == pytest.approx(corrected, rel=1e-9)
    assert row["flop_per_seq"] / 16.4e12 == pytest.approx(0.886, abs=0.005)


def test_compute_bound_against_weight_loading(qwen_te_h100):
    """Article: weights "7.57B parameters x 2 bytes per parameter = 15.14GB", read in
    "15.14 / 3.3 TB/s = 0.0046s"; compute "16.4 TFLOPs / 750 TFLOPS = 0.021 s"; so compute-bound,
    with an upper bound of "~47 embeddings per second". Our compute is 14.54 / 750 = 19.4 ms
    (the FLOP difference above), so our bound is 51.5 embeddings/s; checked within 15%."""
    scn = qwen_te_h100
    w = memory.weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment)
    assert w == pytest.approx(15.14e9, rel=0.005)
    assert w / 3.3e12 == pytest.approx(0.0046, rel=0.01)
    row = embed_rows(scn, [1], S)[0]
    assert row["bound"] == "compute"
    assert row["compute_time_s"] == pytest.approx(row["flop"] / 750e12, rel=1e-9)
    assert row["compute_time_s"] == pytest.approx(0.021, rel=0.15)
    assert row["compute_time_s"] > 4 * (w / 3.3e12)
    assert row["embeddings_s"] == pytest.approx(47, rel=0.15)


def _h100_at_750_catalog(tmp_path):
    """A user catalog overriding h100-sxm so that peak x efficiency = the article's 750 TFLOP/s."""
    builtin = tomllib.loads(builtin_paths()["hardware"].read_text())
    entry = builtin["h100-sxm"]
    entry["efficiency"]["compute"] = 750.0 / entry["bf16_tflop_s"]
    path = tmp_path / "te.toml"
    path.write_text(tomli_w.dumps({"hardware": {"h100-sxm": entry}}))
    return path


def test_flop_s_per_usd_rtx4090_beats_h100(tmp_path):
    """Article: "the RTX 4090's theoretical 445" TFLOP/s per USD/h (165 TFLOP/s at 0.37 USD/h)
    against an H100 at 750 TFLOP/s achieved and 2 USD/h (375). Reproduced through the CLI with
    their inputs: --usd-per-gpu-hour, --ideal for the 4090's declared rate (catalog 165.2 TFLOP/s,
    bf16 with fp32 accumulate) and a user catalog setting the H100 to 750 TFLOP/s achievable."""
    r4090 = invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xRTX4090", "--usd-per-gpu-hour", "0.37", "--ideal",
                   "-f", "json")
    assert r4090.exit_code == 0, r4090.output
    fom_4090 = json.loads(r4090.stdout)["rows"][0]["flop_s_per_usd_per_hour"]
    assert fom_4090 == pytest.approx(445e12, rel=0.01)

    cat = _h100_at_750_catalog(tmp_path)
    # The reference engine profile (scales 1.0), so the device's 750 TFLOP/s is what the step gets.
    rh100 = invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "--usd-per-gpu-hour", "2", "--catalog", str(cat),
                   "--engine", "trtllm-2024", "-b", "1,32", "-f", "json")
    assert rh100.exit_code == 0, rh100.output
    rows = json.loads(rh100.stdout)["rows"]
    assert rows[0]["flop_s_per_usd_per_hour"] == pytest.approx(375e12, rel=1e-6)
    assert fom_4090 / rows[0]["flop_s_per_usd_per_hour"] == pytest.approx(445 / 375, rel=0.01)
    # What a batch actually gets approaches the device figure once the per-step overhead is amortised.
    assert rows[1]["flop_s_achieved_per_usd_per_hour"] == pytest.approx(375e12, rel=0.05)
    assert rows[1]["flop_s_achieved_per_usd_per_hour"] < 375e12


def test_tensor_economics_cost_arithmetic():
    """Article: "$2 / hr / (33,488 tokens/s x 3600 s/hr) x 10^6 = $0.0166" and, for the 4090,
    "$0.37 / hr / (9672 tokens/s x 3600) x 10^6 = $0.01062"."""
    assert float(economics.usd_per_mtok(2.0, 33488.0)) == pytest.approx(0.0166, rel=0.005)
    assert float(economics.usd_per_mtok(0.37, 9672.0)) == pytest.approx(0.01062, rel=0.005)


def test_no_lm_head_in_an_embedding_pass(catalog):
    """A decoder used for embeddings computes no logits and holds no output head."""
    scn = scenario(catalog, "llama3-8b", "h100-sxm", 1)
    emb = embedding_scenario(scn)
    t = prefill_step(emb, np.asarray([1.0]), np.asarray([512.0]))
    assert "lm_head" not in t.breakdown_flop
    m = scn.model
    saved = memory.weight_bytes_per_gpu(m, scn.precision, scn.deployment) - memory.weight_bytes_per_gpu(
        emb.model, emb.precision, emb.deployment)
    assert saved == pytest.approx(params.lm_head_params(m) * 2.0)


def test_bidirectional_encoder_counts_every_pair(catalog):
    """BGE (bidirectional) attends S^2 pairs, a causal model S(S+1)/2: ratio 2S/(S+1)."""
    scn = embedding_scenario(scenario(catalog, "bge-large", "l4", 1))
    causal = dataclasses.replace(scn, model=dataclasses.replace(scn.model, causal=True))
    s = 512.0
    a = prefill_step(scn, np.asarray([4.0]), np.asarray([s])).breakdown_flop["attn/core"]
    b = prefill_step(causal, np.asarray([4.0]), np.asarray([s])).breakdown_flop["attn/core"]
    assert float((a / b)[0]) == pytest.approx(2 * s / (s + 1), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(seq=st.integers(16, 8192), lo=st.integers(1, 64), data=st.data())
def test_bigger_batches_never_cost_more_per_sequence(catalog, seq, lo, data):
    """Weights are read once per batch and a multiplied batch pads no more tile rows per sequence, so
    time per sequence never rises when the batch is multiplied. (Between multiples tile padding can
    add a little: 45 sequences of 80 tokens pad 3,600 rows to 3,648, where 44 fill 3,520 exactly.)"""
    hi = lo * data.draw(st.integers(1, 64 // lo), label="times")
    scn = embedding_scenario(scenario(catalog, "qwen3-embedding-0.6b", "h100-sxm", 1))
    rows = embed_rows(scn, [lo, hi], seq)
    assert rows[1]["batch_time_s"] / hi <= rows[0]["batch_time_s"] / lo * (1 + 1e-12)


def test_utilization_divides_into_the_price():
    base = json.loads(invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "-f", "json").stdout)
    tenth = json.loads(invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "--utilization", "0.1", "-f", "json").stdout)
    assert tenth["rows"][0]["usd_per_mtok"] == pytest.approx(10 * base["rows"][0]["usd_per_mtok"], rel=1e-12)
    # the default is a method note (behind --explain); a given utilization is an assumption beside the answer
    assert base["utilization"] == 1.0 and any("100% utilization (the default)" in n for n in base["method_notes"])
    assert not any("utilization" in n for n in base["notes"])
    assert any("10% utilization" in n for n in tenth["notes"])


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan"])
def test_bad_utilization_is_one_line_exit_2(value):
    r = invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "--utilization", value)
    assert r.exit_code == 2
    assert "--utilization" in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_embed_table_and_json_match_the_core():
    args = ("embed", "--model", "qwen3-embedding-8b", "--gpus", "1xH100", "--seq-len", "1024", "--batch", "1,4,32")
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    for header in ("batch [seq]", "time/batch [ms]", "embeddings/s", "tok/s", "bound", "TFLOP/s per GPU",
                   "TFLOP/s per USD/h", "memory/GPU [GB]", "USD/Mtok"):
        assert header in table.stdout
    assert "FLOPs" not in table.stdout and "FLOPS" not in table.stdout
    text = " ".join(table.stdout.split())
    assert "compute-bound, so its price follows FLOP/s per USD/h" in text and "no LM head" not in text
    explained = invoke(*args, "--explain")  # why it is cheap, FLOP by FLOP, is the method
    assert explained.exit_code == 0 and "no LM head" in explained.stdout and "TFLOP per 1024-token sequence" in explained.stdout
    doc = json.loads(invoke(*args, "-f", "json").stdout)
    core = tokecon.embed(model="qwen3-embedding-8b", gpus="1xH100", batch=[1, 4, 32], seq_len=1024)
    assert doc["rows"] == json_rows(core)
    assert [r["batch"] for r in doc["rows"]] == [1, 4, 32]
    assert doc["attention"] == "causal" and doc["seq_len_tokens"] == 1024


def test_embed_default_seq_len_respects_short_models():
    doc = json.loads(invoke("embed", "-m", "bge-large", "-g", "1xL4", "-f", "json").stdout)
    assert doc["seq_len_tokens"] == 512 and doc["attention"] == "bidirectional"


def test_embed_batch_that_does_not_fit_has_no_numbers():
    doc = json.loads(invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xRTX4090", "-b", "1,4096", "-f", "json").stdout)
    big = doc["rows"][1]
    assert big["fits"] is False and big["usd_per_mtok"] is None and big["embeddings_s"] is None
    assert doc["rows"][0]["fits"] is True and doc["rows"][0]["max_batch"] < 4096


def test_embed_threshold_exit_1():
    r = invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "--max-usd-per-mtok", "0.001")
    assert r.exit_code == 1 and "cross a threshold" in r.stderr


def test_embed_seq_len_beyond_the_model_is_exit_2():
    r = invoke("embed", "-m", "bge-large", "-g", "1xL4", "--seq-len", "4096")
    assert r.exit_code == 2 and "512" in r.stderr


# --- device configurations compared on one phase (what `compare --phase embed` did) ----------------


def test_figures_of_merit_by_hand(catalog):
    """H100 SXM: 989.4e12 FLOP/s x achievable fraction / 2.45 USD/h (e.g. x 0.72 -> 291e12);
    3.35e12 B/s x achievable fraction / 2.45 USD/h. The fractions are the catalog's fitted device
    factor times the default engine's (vLLM) scale, at most the family's measured best matmul fraction
    (MAMF, tokecon.physics.efficiency: 0.80 on Hopper)."""
    from tokecon.physics.efficiency import MAMF_FRACTION

    hw, eng = catalog.hardware.get("h100-sxm"), catalog.engines.get("vllm")
    ce = min(MAMF_FRACTION[hw.family], hw.efficiency.compute * eng.compute_scale)
    me = min(1.0, hw.efficiency.memory_bw * eng.memory_bw_scale)
    row = json.loads(invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "-f", "json").stdout)["rows"][0]
    assert row["flop_s_per_usd_per_hour"] == pytest.approx(989.4e12 * ce / 2.45, rel=1e-9)
    assert row["bytes_s_per_usd_per_hour"] == pytest.approx(3.35e12 * me / 2.45, rel=1e-9)
    ideal = json.loads(invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "--ideal", "--usd-per-gpu-hour", "2",
                              "-f", "json").stdout)["rows"][0]
    assert ideal["flop_s_per_usd_per_hour"] == pytest.approx(989.4e12 / 2, rel=1e-9)


def test_several_devices_compute_bound_price_follows_flop_s_per_usd():
    """Several -g on one phase: compute-bound embeddings are priced by achieved FLOP/s per USD/h, so the
    rows' USD/Mtok rank exactly inversely to it; the cheapest is highlighted and named first."""
    r = invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "-g", "1xRTX4090", "-g", "1xL40S", "-g", "1xB200",
               "-b", "32", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    rows = doc["rows"]
    assert [row["hardware"] for row in rows] == ["h100-sxm", "rtx-4090", "l40s", "b200"]
    assert all(row["bound"] == "compute" for row in rows)
    by_price = sorted(rows, key=lambda row: row["usd_per_mtok"])
    by_merit = sorted(rows, key=lambda row: -row["flop_s_achieved_per_usd_per_hour"])
    assert [row["hardware"] for row in by_price] == [row["hardware"] for row in by_merit]
    answers = [n for n in doc["notes"] if n.startswith("* ")]  # each configuration's cheapest batch, in order
    assert len(answers) == len(rows)
    for note, row in zip(answers, rows):
        assert note.startswith(f"* 1x{row['hardware']} at batch 32: {row['usd_per_mtok']:.3g} USD/Mtok embedded, the cheapest")
        assert note.endswith("compute-bound, so its price follows FLOP/s per USD/h.")
    table = invoke("embed", "-m", "qwen3-embedding-8b", "-g", "1xH100", "-g", "1xRTX4090", "-b", "32")
    assert table.exit_code == 0 and "TFLOP/s per USD/h" in table.stdout and "USD/Mtok" in table.stdout
