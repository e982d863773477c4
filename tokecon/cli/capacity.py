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
def capacity(
    ctx: typer.Context,
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
    prefill_gpus: o.PrefillGpus = None,
    prefill_workers: o.PrefillWorkers = None,
    prefill_layout: o.PrefillLayout = None,
    prefill_batch: o.PrefillBatch = None,
    decode_gpus: o.DecodeGpus = None,
    decode_workers: o.DecodeWorkers = None,
    decode_layout: o.DecodeLayout = None,
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
    max_ttft_p99_ms: o.MaxTtftP99 = None,
    max_tpot_p99_ms: o.MaxTpotP99 = None,
) -> None:
    """Capacity: GPUs and nodes needed for a daily token volume at an operating point (or SLO)."""
    from tokecon.commands.capacity import run_capacity
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.serve import ServeOptions, parse_concurrency
    from tokecon.results import Thresholds

    costs = s.cost_model(cost, cost_file, usd_per_gpu_hour, purchase_usd, other_capital_ratio, depreciation_years,
                         interest_rate, pue, usd_per_kwh, utilisation, s.cost_given(ctx))
    common = CommonOptions(model, tuple(gpus or ()), tp, dtype, kv_dtype, engine, ideal, None, tuple(catalog or ()), eplb=eplb)
    modes = s.mode_options(speculative, draft_tokens, acceptance, prefix_hit, price_in, price_in_cached, price_out, range_ratio)
    split = o.disagg_spec(prefill_gpus, decode_gpus, prefill_workers, decode_workers, prefill_layout, decode_layout, prefill_batch)
    opts = ServeOptions(common, ep, attention_dp, chunked_prefill, costs, explain_cost, price_split, modes, disagg=split,
                        layouts=mode.value)
    slo = Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms, max_tpot_ms, min_tok_s_per_user,
                     max_ttft_p99_ms=max_ttft_p99_ms, max_tpot_p99_ms=max_tpot_p99_ms,
                     max_usd_per_mtok_in=max_usd_per_mtok_in, max_usd_per_mtok_out=max_usd_per_mtok_out,
                     max_usd_per_mtok_blended=max_usd_per_mtok_blended)
    result = run_capacity(opts, tokens_per_day, input_len, output_len, input_output_ratio,
                          parse_concurrency(concurrency), headroom, slo)
    o.emit(o.varied(result, vary, costs, common), fmt, wide=wide)
