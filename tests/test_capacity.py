"""``tokecon capacity``: GPUs and nodes for a daily token volume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import tokecon
from tokecon.serving import batching as serving
from tokecon.cli.main import app
from tokecon.commands.capacity import capacity_row
from tokecon.serving.deploy import Deployed
from tokecon.serving.points import aggregated, point_rows
from tokecon.economics.costs import CostBreakdown
from tokecon.serving.layouts import Layout

from test_serve import toy_scenario

runner = CliRunner()


def test_capacity_arithmetic_on_the_toy_model():
    """Toy GPU at C = 2, I = 16, O = 17: X = 2 / (16 x 4.322) req/s (TPOT of tests/test_serve.py),
    33 tokens each -> 0.95442 tok/s = 82,462 tok/day. Asking 1e6 tok/day with headroom 2: 23.148 tok/s
    needed, ceil(23.148 / 0.95442) = 25 GPUs; 25 x 3.6 USD/h x 24 h = 2160 USD/day."""
    scn = toy_scenario()
    d = Deployed(scn, Layout(1), CostBreakdown("toy-gpu", "rental", 3.6, 1.0, rental_usd_per_hour=3.6))
    point = point_rows(aggregated(d, serving.serve(scn, np.array([2.0]), 16, 17)), None)[0]
    assert point["mode"] == "agg"
    tok_s = 33 * 2 / (16 * 4.322)
    assert point["total_tok_s"] == pytest.approx(tok_s)
    row = capacity_row(d, point, 1e6, 2.0)
    assert row["required_tok_s"] == pytest.approx(1e6 / 86_400 * 2)
    assert row["deployments_needed"] == math.ceil(1e6 / 86_400 * 2 / tok_s) == 25
    assert row["gpus_needed"] == 25 and row["nodes_needed"] == 25  # one GPU per toy deployment
    assert row["usd_per_day"] == pytest.approx(2160.0)
    assert row["capacity_multiple"] == pytest.approx(tok_s / (1e6 / 86_400 * 2))
    assert row["tokens_per_day_capacity"] == pytest.approx(tok_s * 86_400 / 1e6)


def test_openrouter_deepseek_volume_fits_many_times_on_one_node():
    """Tensor Economics' MoE post: OpenRouter's roughly one billion DeepSeek tokens a day fit many
    times over on a single large node. One 8x H200 node (attention-DP + EP8, fp8), at the concurrency
    its KV cache allows, serves that volume several times over for any prompt-heavy to balanced mix.
    At an interactive 20 tok/s per user the same node carries far less (grouped expert GEMMs at ~20
    tokens per expert and the busiest EP rank set the step): a few nodes, not a fraction of one.
    Prompt-heavy mixes carry a prompt on some rank in most steps, and the attention-DP ranks wait for
    the slowest (issue 18, TensorRT-LLM's ADP balance blog), so at 10 input tokens per output token the
    node serves the volume with less to spare."""
    for ratio in (1.0, 3.0, 10.0):
        row = tokecon.capacity(model="deepseek-v3", gpus="8xH200", tokens_per_day=1e9, output_len=512,
                               input_output_ratio=ratio, headroom=1.0).rows[0]
        assert row["attention_dp"] and row["ep"] == 8
        assert row["deployments_needed"] == 1 and row["nodes_needed"] == 1 and row["gpus_needed"] == 8
        # "many times over" for balanced and moderately prompt-heavy mixes, with the fitted efficiencies
        assert row["capacity_multiple"] > (2.5 if ratio <= 3.0 else 1.0), ratio
    slo = tokecon.capacity(model="deepseek-v3", gpus="8xH200", tokens_per_day=1e9, output_len=512, input_output_ratio=3.0,
                           headroom=1.0, min_tok_s_per_user=20).rows[0]
    assert slo["tok_s_per_user"] >= 20 and slo["nodes_needed"] <= 3
    assert slo["capacity_multiple"] < row["capacity_multiple"] / 2


def test_slo_picks_the_highest_throughput_point_that_meets_it():
    def capacity(**kw):
        return tokecon.capacity(model="llama3-70b", gpus="8xH100", tokens_per_day=1e10, input_len=1024, output_len=1024,
                                headroom=1.5, **kw).rows[0]

    free = capacity()
    slo = capacity(min_tok_s_per_user=50)
    assert free["concurrency"] == free["max_concurrency"]
    assert slo["tok_s_per_user"] >= 50 and slo["concurrency"] < free["concurrency"]
    assert slo["gpus_needed"] > free["gpus_needed"]
    # the next point of the sweep grid (4 per doubling) breaks the SLO
    above = round(slo["concurrency"] * 2**0.25)
    row = capacity(concurrency=[above], min_tok_s_per_user=50)
    assert row["tok_s_per_user"] < 50 and "tok/s per user below 50" in row["violations"][0]


def test_cli_capacity_table_json_and_errors():
    base = ["capacity", "--model", "deepseek-v3", "--gpus", "8xH200", "--tokens-per-day", "1e9"]
    r = runner.invoke(app, [*base, "--input-output-ratio", "3", "--output-len", "512"])
    assert r.exit_code == 0, r.output
    for header in ("tok/s per deployment", "Mtok/day per deployment", "GPUs", "nodes", "USD/day"):
        assert header in r.stdout
    doc = json.loads(runner.invoke(app, [*base, "--input-output-ratio", "3", "--output-len", "512", "-f", "json"]).stdout)
    assert doc["input_tokens"] == 1536 and doc["rows"][0]["deployments_needed"] == 1
    assert doc["rows"][0]["mode"] == "agg"  # serving rows say how they serve (disaggregated: tests/test_disagg.py)
    both = runner.invoke(app, [*base, "--input-len", "1000", "--input-output-ratio", "3"])
    assert both.exit_code == 2 and "not both" in both.stderr
    bad = runner.invoke(app, [*base, "--headroom", "0.5"])
    assert bad.exit_code == 2 and "--headroom" in bad.stderr
    never = runner.invoke(app, [*base, "--min-tok-s-per-user", "100000"])
    assert never.exit_code == 1 and "no concurrency meets the SLO" in never.stderr
