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
def frontier(
    ctx: typer.Context,
    model: o.Model,
    gpus: o.Gpus,
    input_len: s.InputLen = 1024,
    output_len: s.OutputLen = 1024,
    tp: o.Tp = None,
    ep: s.Ep = None,
    attention_dp: s.AttentionDp = False,
    chunked_prefill: s.Chunked = None,
    mode: o.ServingMode = o.Mode.both,
    dtype: o.Dtype = None,
    kv_dtype: o.KvDtype = None,
    engine: o.Engine = None,
    ideal: o.Ideal = False,
    eplb: o.Eplb = False,
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    cost: s.Cost = s.CostMethod.rental,
    cost_file: s.CostFile = None,
    purchase_usd: s.PurchaseUsd = None,
    other_capital_ratio: s.OtherCapital = None,
    depreciation_years: s.Years = None,
    interest_rate: s.Interest = None,
    pue: s.Pue = None,
    usd_per_kwh: s.UsdKwh = None,
    utilisation: s.Utilisation = None,
    explain_cost: s.ExplainCost = False,
    price_split: s.PriceSplit = None,
    speculative: s.Speculative = None,
    draft_tokens: s.DraftTokens = None,
    acceptance: s.Acceptance = None,
    prefix_hit: s.PrefixHit = 0.0,
    range_ratio: s.RangeRatio = 1.0,
    price_in: s.PriceIn = None,
    price_in_cached: s.PriceInCached = None,
    price_out: s.PriceOut = None,
    rank_by: RankBy = "usd-per-mtok",
    plot: Plot = None,
    vary: o.Vary = None,
    catalog: o.Catalogs = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    max_usd_per_mtok: o.MaxUsd = None,
    max_usd_per_mtok_in: o.MaxUsdIn = None,
    max_usd_per_mtok_out: o.MaxUsdOut = None,
    max_usd_per_mtok_blended: o.MaxUsdBlended = None,
    min_tok_s_per_gpu: o.MinTokGpu = None,
    max_ttft_ms: o.MaxTtft = None,
    max_tpot_ms: o.MaxTpot = None,
    min_tok_s_per_user: o.MinTokUser = None,
) -> None:
    """Frontier of output tok/s per GPU against tok/s per user over layouts and concurrency, with
    USD per million tokens along it. Limits act as an SLO: the cheapest point meeting them is named,
    and the command fails (exit 1) only when no point meets them."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.frontier import answers, run_frontier
    from tokecon.commands.serve import ServeOptions
    from tokecon.plot import check_plot_path, save_plot, text_chart
    from tokecon.render import render
    from tokecon.results import Thresholds

    if plot is not None:
        check_plot_path(plot)
    costs = s.cost_model(cost, cost_file, usd_per_gpu_hour, purchase_usd, other_capital_ratio, depreciation_years,
                         interest_rate, pue, usd_per_kwh, utilisation, s.cost_given(ctx))
    common = CommonOptions(model, tuple(gpus), tp, dtype, kv_dtype, engine, ideal, None, tuple(catalog or ()), eplb=eplb)
    modes = s.mode_options(speculative, draft_tokens, acceptance, prefix_hit, price_in, price_in_cached, price_out, range_ratio)
    opts = ServeOptions(common, ep, attention_dp, chunked_prefill, costs, explain_cost, price_split, modes, layouts=mode.value)
    slo = Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms, max_tpot_ms, min_tok_s_per_user,
                     max_usd_per_mtok_in=max_usd_per_mtok_in, max_usd_per_mtok_out=max_usd_per_mtok_out,
                     max_usd_per_mtok_blended=max_usd_per_mtok_blended)
    result = run_frontier(opts, input_len, output_len, slo, rank_by)
    if plot is not None:
        save_plot(result, plot)
        typer.echo(f"tokecon: wrote {plot}", err=True)
    if vary is not None:
        o.emit(o.varied(result, vary, costs, common), fmt, wide=wide)
        return
    answer = answers(result)
    if answer is not None and fmt in (o.OutputFormat.table, o.OutputFormat.markdown):
        render(answer, fmt.value, sys.stdout, wide=wide)
        typer.echo()
    if fmt == o.OutputFormat.table:
        typer.echo(text_chart(result) + "\n")
    o.emit(result, fmt, wide=wide)
