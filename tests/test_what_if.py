"""``--ignore-memory``: the article's thought experiment that does not fit, run anyway and said so.

Source: Tensor Economics, "LLM Inference Economics from First Principles" (Piotr Mazurek, 2025;
https://www.tensoreconomics.com/p/llm-inference-economics-from-first): Llama 3.3 70B, a 2048-token
prompt on one H100 (989 TFLOP/s bf16, 3.35 TB/s) takes "roughly 291/989 = 0.29s" of compute against
"141/3350 = 0.04s" to load the weights, although 141 GB of weights do not fit in 80 GB.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokecon.physics import params
from tokecon.cli.main import app

runner = CliRunner()
PREFILL = ["prefill", "-m", "llama3-70b", "-g", "1xH100", "--ideal", "-i", "2048"]


def _json(*extra: str) -> dict:
    r = runner.invoke(app, [*PREFILL, *extra, "-f", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_prefill_that_does_not_fit_is_refused_without_the_flag():
    r = runner.invoke(app, PREFILL)
    assert r.exit_code == 2
    assert "does not fit" in r.stderr


def test_article_prefill_on_one_h100(catalog):
    doc = _json("--ignore-memory")
    assert doc["ignore_memory"] is True
    row = doc["rows"][0]
    assert row["fits"] is False and row["memory_ignored"] is True
    # Compute: 2 x 70.55e9 params x 2048 tokens / 989.4e12 FLOP/s = 0.292 s (the article: 0.29 s;
    # tokecon counts causal attention and one LM-head row, 1.9% fewer FLOP: tests/test_published.py).
    assert 2 * 70.55e9 * 2048 / 989.4e12 == pytest.approx(0.292, abs=0.001)
    assert row["compute_time_s"] == pytest.approx(0.29, rel=0.03)
    # Weights read once: every matrix, not the embedding table (looked up row by row) nor the norm
    # vectors (counted with activations): 2 B x (70.55e9 - 128,256 x 8,192 - (2 x 80 + 1) x 8,192)
    # = 139.0e9 B / 3.35e12 B/s = 41.5 ms; the article streams all 141 GB: 42 ms, "0.04s".
    m = catalog.models.get("llama3-70b")
    streamed = 2.0 * (params.total_params(m) - m.vocab_size * m.hidden_size - (2 * m.layers + 1) * m.hidden_size)
    assert row["weight_bytes"] == pytest.approx(streamed, rel=1e-9)
    assert row["weight_read_s"] == pytest.approx(streamed / 3.35e12, rel=1e-9)
    assert row["weight_read_s"] == pytest.approx(141e9 / 3350e9, rel=0.03)
    # ... which the total memory time (weights + activations + KV writes) would hide.
    assert row["memory_time_s"] > 1.3 * row["weight_read_s"]
    assert row["bound"] == "compute"
    assert doc["notes"][0].startswith("WHAT-IF (--ignore-memory): llama3-70b does not fit on 1xh100-sxm")


def test_what_if_is_loud_in_the_table():
    r = runner.invoke(app, [*PREFILL, "--ignore-memory", "--wide"])
    assert r.exit_code == 0, r.output
    assert "WHAT-IF (--ignore-memory)" in r.stdout and "does not fit" in r.stdout
    assert "of which weights [ms]" in r.stdout


def test_decode_batches_beyond_memory_run_only_with_the_flag():
    args = ["decode", "-m", "llama3-70b", "-g", "2xH100", "-b", "1,300", "-f", "json"]
    plain = json.loads(runner.invoke(app, args).stdout)
    assert plain["rows"][1]["fits"] is False and plain["rows"][1]["usd_per_mtok"] is None
    assert not any("WHAT-IF" in n for n in plain["notes"])
    r = runner.invoke(app, [*args, "--ignore-memory"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    big = doc["rows"][1]
    assert big["memory_ignored"] is True and big["usd_per_mtok"] > 0
    assert "memory_ignored" not in doc["rows"][0]
    assert any(n.startswith("WHAT-IF (--ignore-memory): 2xh100-sxm cannot hold batch 300") for n in doc["notes"])
    # Decode re-reads every weight each step: at batch 1 that is almost all its memory time; at
    # batch 300 of 2048-token contexts the KV cache reads dominate.
    one = doc["rows"][0]
    assert 0.95 * one["memory_time_s"] < one["weight_read_s"] < one["memory_time_s"]
    assert big["weight_read_s"] == pytest.approx(one["weight_read_s"]) and big["weight_read_s"] < 0.5 * big["memory_time_s"]


def test_a_row_that_does_not_fit_still_fails_a_threshold():
    r = runner.invoke(app, [*PREFILL, "--ignore-memory", "--max-usd-per-mtok", "1000"])
    assert r.exit_code == 1
    assert "does not fit in memory" in r.stderr
