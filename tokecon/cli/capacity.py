"""``tokecon capacity``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli import serve as s
from tokecon.cli.main import app

TokensPerDay = Annotated[float, typer.Option("--tokens-per-day", help="Daily volume to serve, input + output tokens (e.g. 1e9).")]
Ratio = Annotated[Optional[float], typer.Option("--input-output-ratio", help="Input tokens per output token; sets --input-len from --output-len.")]
Headroom = Annotated[float, typer.Option("--headroom", help="Peak over average load to provision for.")]
InputLen = Annotated[Optional[int], typer.Option("--input-len", "-i", help="Prompt tokens per request (default 1024).")]


@app.command(short_help="GPUs, nodes and USD/day for a daily token volume.",
             epilog="Examples:\n\n\b\n  tokecon capacity -m deepseek-v3 -g 8xH200 --tokens-per-day 1e9 --input-output-ratio 3 -o 512\n  tokecon capacity -m llama3-70b -g 4xH100 -g 8xH200 --tokens-per-day 5e9 --max-ttft-p99-ms 500 --max-tpot-p99-ms 50")
@o.with_groups(numerics=o.numerics, costs=s.costs, modes=s.modes, pools=o.disagg_spec, limits=o.thresholds)
def capacity(
    model: o.Model,
    tokens_per_day: TokensPerDay,
    gpus: o.Gpus = None,
    input_len: InputLen = None,
    output_len: s.OutputLen = 1024,
    input_output_ratio: Ratio = None,
    headroom: Headroom = 1.5,
    concurrency: s.Concurrency = None,
    tp: o.Tp = None,
    ep: s.Ep = None,
    attention_dp: s.AttentionDp = False,
    chunked_prefill: s.Chunked = None,
    mode: o.ServingMode = o.Mode.agg,
    eplb: o.Eplb = False,
    explain_cost: s.ExplainCost = False,
    price_split: s.PriceSplit = None,
    vary: o.Vary = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    *,
    numerics, costs, modes, pools, limits,
) -> None:
    """Capacity: GPUs and nodes needed for a daily token volume at an operating point (or SLO)."""
    from tokecon.commands.capacity import run_capacity
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.serve import ServeOptions, parse_concurrency

    common = CommonOptions(model, tuple(gpus or ()), tp, eplb=eplb, **numerics)
    opts = ServeOptions(common, ep, attention_dp, chunked_prefill, costs, explain_cost, price_split, modes, disagg=pools,
                        layouts=mode.value)
    result = run_capacity(opts, tokens_per_day, input_len, output_len, input_output_ratio,
                          parse_concurrency(concurrency), headroom, limits)
    o.emit(o.varied(result, vary, costs, common), fmt, wide=wide)
