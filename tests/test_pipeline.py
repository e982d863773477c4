"""Pipeline parallelism (--pp): layers split over stages, micro-batches keep the stages busy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tokecon.physics import memory
from tokecon.cli.main import app
from tokecon.physics.phases import decode_step, prefill_step

from helpers import scenario


def test_stages_split_weights_and_kv(catalog):
    tp8 = scenario(catalog, "llama3-70b", "h100-sxm", 8)
    tp4pp2 = scenario(catalog, "llama3-70b", "h100-sxm", 8, tp=4, pp=2)
    w8 = memory.weight_bytes_per_gpu(tp8.model, tp8.precision, tp8.deployment)
    w42 = memory.weight_bytes_per_gpu(tp4pp2.model, tp4pp2.precision, tp4pp2.deployment)
    assert w42 == pytest.approx(w8)
    kv = memory.kv_bytes_per_seq_per_gpu(tp4pp2.model, tp4pp2.precision, tp4pp2.deployment, 2048)
    # 8 KV heads over TP4: 2 per GPU of 8; 40 of 80 layers per stage: 671 MB x 2/8 x 1/2
    assert float(kv) == pytest.approx(671_088_640 / 4 / 2)


def test_batch_one_crosses_every_stage(catalog):
    """At batch 1 a token crosses both stages in turn: TP4 x PP2 on 8 GPUs is as slow as TP4 on 4
    (each stage reads half of the TP4 weights), plus one activation send; ideal roofline."""
    tp4 = scenario(catalog, "llama3-70b", "h100-sxm", 4, ideal=True)
    tp4pp2 = scenario(catalog, "llama3-70b", "h100-sxm", 8, tp=4, pp=2, ideal=True)
    one, ctx = np.asarray(1.0), np.asarray(2048.0)
    t4 = float(decode_step(tp4, one, ctx).step_time_s)
    t42 = float(decode_step(tp4pp2, one, ctx).step_time_s)
    send = 8192 * 2 / 450e9  # one token's activations to the next stage
    assert t42 == pytest.approx(t4 + 2 * send, rel=0.02)


def test_micro_batches_fill_the_pipeline(catalog):
    """At a large batch the stages work in parallel: per-GPU throughput of TP4 x PP2 approaches
    TP8's (no all-reduce across 8, but the LM head on one stage), far above batch 1's."""
    tp8 = scenario(catalog, "llama3-70b", "h100-sxm", 8, ideal=True)
    tp4pp2 = scenario(catalog, "llama3-70b", "h100-sxm", 8, tp=4, pp=2, ideal=True)
    b, ctx = np.asarray(256.0), np.asarray(2048.0)
    thr8 = 256 / float(decode_step(tp8, b, ctx).step_time_s)
    thr42 = 256 / float(decode_step(tp4pp2, b, ctx).step_time_s)
    assert thr42 == pytest.approx(thr8, rel=0.25)


def test_prefill_crosses_stages_in_turn(catalog):
    """One prompt's TTFT crosses both stages (as slow as TP4 alone), while the GPU time it costs is
    one stage's: a stream of prompts keeps both stages busy."""
    tp4pp2 = scenario(catalog, "llama3-70b", "h100-sxm", 8, tp=4, pp=2, ideal=True)
    tp4 = scenario(catalog, "llama3-70b", "h100-sxm", 4, ideal=True)
    one, s = np.asarray(1.0), np.asarray(2048.0)
    t, ref = prefill_step(tp4pp2, one, s), prefill_step(tp4, one, s)
    assert float(t.latency) == pytest.approx(float(ref.step_time_s), rel=0.05)
    assert float(t.step_time_s) == pytest.approx(float(t.latency) / 2, rel=1e-9)


def test_tp_group_inside_a_domain_all_reduces_over_nvlink(catalog):
    """16x H100 as TP8 x PP2: each TP group sits in one 8-GPU NVLink domain, so its all-reduces do
    not ride the scale-out network (only the stage-to-stage send does)."""
    two_nodes = scenario(catalog, "llama3-405b", "h100-sxm", 16, tp=8, pp=2, ideal=True)
    one_node = scenario(catalog, "llama3-405b", "h100-sxm", 8, tp=8, ideal=True)
    b, s = np.asarray(1.0), np.asarray(8192.0)
    ar2 = float(prefill_step(two_nodes, b, s).breakdown_s["comm/allreduce"])
    ar1 = float(prefill_step(one_node, b, s).breakdown_s["comm/allreduce"])
    assert ar2 == pytest.approx(ar1 / 2, rel=1e-9)  # half the layers per stage, same NVLink


def test_pp_on_the_command_line():
    runner = CliRunner()
    r = runner.invoke(app, ["decode", "-m", "llama3-70b", "-g", "8xH100", "--tp", "4", "--pp", "2", "-b", "1", "-f", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["tp"] == 4 and row["pp"] == 2 and row["replicas"] == 1
    r = runner.invoke(app, ["serve", "-m", "llama3-70b", "-g", "8xH100", "--pp", "2", "-c", "8", "-f", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["layout"] == "TP4 PP2" and row["pp"] == 2
    r = runner.invoke(app, ["decode", "-m", "llama3-70b", "-g", "8xH100", "--pp", "3"])
    assert r.exit_code == 2 and "--pp 3 must divide" in r.stderr
    r = runner.invoke(app, ["decode", "-m", "llama3-8b", "-g", "64xH100", "--pp", "64"])
    assert r.exit_code == 2 and "exceeds" in r.stderr
