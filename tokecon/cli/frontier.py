"""``tokecon frontier``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli import serve as s
from tokecon.cli.main import app

RankBy = Annotated[str, typer.Option("--rank-by", help="Each device's answer under the SLO: usd-per-mtok (cheapest, default) or tok-s-per-mw (most tokens per MW of facility power).")]
Plot = Annotated[Optional[Path], typer.Option("--plot", help="Also draw the frontier into this PNG, SVG or PDF file (needs the 'plot' extra).")]


@app.command(short_help="Tok/s per GPU vs tok/s per user; the cheapest point of an SLO.",
             epilog="Examples:\n\n\b\n  tokecon frontier -m llama3-70b -g 4xH100 -g 8xH200 --min-tok-s-per-user 30\n  tokecon frontier -m deepseek-v3 -g 8xB200 -o 8192 --max-ttft-ms 1000")
@o.with_groups(numerics=o.numerics, costs=s.costs, modes=s.modes, limits=o.thresholds)
def frontier(
    model: o.Model,
    gpus: o.Gpus,
    input_len: s.InputLen = 1024,
    output_len: s.OutputLen = 1024,
    tp: o.Tp = None,
    ep: s.Ep = None,
    attention_dp: s.AttentionDp = False,
    chunked_prefill: s.Chunked = None,
    mode: o.ServingMode = o.Mode.both,
    eplb: o.Eplb = False,
    explain_cost: s.ExplainCost = False,
    price_split: s.PriceSplit = None,
    rank_by: RankBy = "usd-per-mtok",
    plot: Plot = None,
    vary: o.Vary = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    *,
    numerics, costs, modes, limits,
) -> None:
    """Frontier of output tok/s per GPU against tok/s per user over layouts and concurrency, with
    USD per million tokens along it. Limits act as an SLO: the cheapest point meeting them is named,
    and the command fails (exit 1) only when no point meets them."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.frontier import answers, run_frontier
    from tokecon.commands.serve import ServeOptions
    from tokecon.cli.plot import check_plot_path, save_plot, text_chart
    from tokecon.cli.render import render

    if plot is not None:
        check_plot_path(plot)
    common = CommonOptions(model, tuple(gpus), tp, eplb=eplb, **numerics)
    opts = ServeOptions(common, ep, attention_dp, chunked_prefill, costs, explain_cost, price_split, modes, layouts=mode.value)
    result = run_frontier(opts, input_len, output_len, limits, rank_by)
    if plot is not None:
        save_plot(result, plot)
        typer.echo(f"tokecon: wrote {plot}", err=True)
    if vary:
        o.emit(o.varied(result, vary, costs, common), fmt, wide=wide)
        return
    answer = answers(result)
    if answer is not None and fmt in (o.OutputFormat.table, o.OutputFormat.markdown):
        render(answer, fmt.value, sys.stdout, wide=wide)
        typer.echo()
    if fmt == o.OutputFormat.table:
        typer.echo(text_chart(result) + "\n")
    o.emit(result, fmt, wide=wide)
