"""``tokecon serve``, and the serving and cost options that ``frontier`` and ``capacity`` share."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


class CostMethod(str, Enum):
    rental = "rental"
    tco = "tco"


InputLen = Annotated[int, typer.Option("--input-len", "-i", help="Prompt tokens per request.")]
OutputLen = Annotated[int, typer.Option("--output-len", "-o", help="Output tokens per request.")]
Concurrency = Annotated[Optional[list[str]], typer.Option(
    "--concurrency", "-c", metavar="N[,N...]|max", help="Requests in flight, comma-separated or repeated; 'max' = the most that run at once (KV cache, engine cap).")]
RequestRate = Annotated[Optional[list[str]], typer.Option(
    "--request-rate", metavar="R[,R...]", help="Poisson arrivals per second, comma-separated or repeated (instead of --concurrency): mean and p50/p90/p99 TTFT and TPOT.")]
Ep = Annotated[Optional[int], typer.Option("--ep", help="Expert-parallel size for MoE models (needs --attention-dp; default all GPUs).")]
AttentionDp = Annotated[bool, typer.Option("--attention-dp", help="MoE: data-parallel attention on every GPU, experts over --ep GPUs (DeepSeek-style).")]
Chunked = Annotated[Optional[int], typer.Option("--chunked-prefill", help="Token budget per step, prompts in chunks mixed with decode (default: the engine's budget, chunked or whole prompts).")]
PriceSplit = Annotated[Optional[float], typer.Option(
    "--price-split", help="Price input tokens at this fraction of output tokens (Tensor Economics' γ, e.g. 0.3) instead of by GPU time.")]
Cost = Annotated[Optional[CostMethod], typer.Option("--cost", help="Hourly price: catalog rental (default), or total cost of ownership.")]
CostFile = Annotated[Optional[Path], typer.Option("--cost-file", help="TOML file with a [cost] table holding any of the cost options (flags win).")]
PurchaseUsd = Annotated[Optional[float], typer.Option("--purchase-usd", help="TCO: purchase price per GPU (default: the catalog's).")]
OtherCapital = Annotated[Optional[float], typer.Option("--other-capital-ratio", help="TCO: other data-centre capital per USD of GPUs (default 1.0).")]
Years = Annotated[Optional[float], typer.Option("--depreciation-years", help="TCO: years over which capital is recovered (default 5).")]
Interest = Annotated[Optional[float], typer.Option("--interest-rate", help="TCO: cost of capital per year, e.g. 0.10 (default).")]
Pue = Annotated[Optional[float], typer.Option("--pue", help="TCO: facility power usage effectiveness (default 1.3).")]
UsdKwh = Annotated[Optional[float], typer.Option("--usd-per-kwh", help="TCO: electricity price (default 0.10).")]
Utilisation = Annotated[Optional[float], typer.Option("--utilisation", "--utilization", help="Share of hours doing paid work, 0.01 to 1; divides the hourly price (default 1).")]
Speculative = Annotated[Optional[str], typer.Option(
    "--speculative", metavar="mtp|eagle|draft:MODEL", help="Speculative decoding: the model's MTP module (DeepSeek), an EAGLE head, or a draft model.")]
DraftTokens = Annotated[Optional[int], typer.Option("--draft-tokens", help="Tokens drafted per step (default: mtp 1, eagle 3, draft 4).")]
Acceptance = Annotated[Optional[float], typer.Option("--acceptance", help="Probability each drafted token is accepted (default: mtp 0.85, eagle 0.75, draft 0.7).")]
PrefixHit = Annotated[float, typer.Option("--prefix-hit", help="Share of input tokens found in a prefix (KV) cache, not prefilled (e.g. 0.56).")]
RangeRatio = Annotated[float, typer.Option("--range-ratio", help="Lengths vary: each request's input and output drawn uniformly "
                                          "from [ratio x length, length] (InferenceMAX: 0.8; default 1 = fixed).")]
PriceIn = Annotated[Optional[float], typer.Option("--price-in", help="List price of input tokens that miss the cache, USD/Mtok (revenue and margin).")]
PriceInCached = Annotated[Optional[float], typer.Option("--price-in-cached", help="List price of cached input tokens, USD/Mtok (default: --price-in).")]
PriceOut = Annotated[Optional[float], typer.Option("--price-out", help="List price of output tokens, USD/Mtok (revenue and margin).")]
ExplainCost = Annotated[bool, typer.Option("--explain-cost", help="Show the breakdown of the price per GPU-hour.")]


def costs(usd_per_gpu_hour: o.UsdPerGpuHour = None, cost: Cost = None, cost_file: CostFile = None,
          purchase_usd: PurchaseUsd = None, other_capital_ratio: OtherCapital = None, depreciation_years: Years = None,
          interest_rate: Interest = None, pue: Pue = None, usd_per_kwh: UsdKwh = None, utilisation: Utilisation = None):
    """The cost options as one group: the cost model, flags over a [cost] file's values (a method not
    typed leaves the file's, else rental)."""
    from tokecon.economics.costs import resolve_cost_model

    flags = {"method": cost.value if cost is not None else None, "usd_per_gpu_hour": usd_per_gpu_hour, "purchase_usd": purchase_usd,
             "other_capital_ratio": other_capital_ratio, "depreciation_years": depreciation_years,
             "interest_rate": interest_rate, "pue": pue, "usd_per_kwh": usd_per_kwh, "utilisation": utilisation}
    return resolve_cost_model(cost_file, flags)


def modes(speculative: Speculative = None, draft_tokens: DraftTokens = None, acceptance: Acceptance = None,
          prefix_hit: PrefixHit = 0.0, range_ratio: RangeRatio = 1.0, price_in: PriceIn = None,
          price_in_cached: PriceInCached = None, price_out: PriceOut = None):
    """The serving-mode options as one group: speculation, prefix cache, varied lengths, list prices."""
    from tokecon.commands.serve import ModeOptions, list_prices

    return ModeOptions(speculative, draft_tokens, acceptance, prefix_hit, list_prices(price_in, price_in_cached, price_out),
                       range_ratio)


@app.command(short_help="Continuous batching: TTFT, TPOT, tok/s, USD/Mtok in and out.",
             epilog="Examples:\n\n\b\n  tokecon serve -m llama3-70b -g 4xH100 -c 1,8,64,256\n  tokecon serve -m deepseek-v3 -g 8xH200 -i 4096 -o 512 --request-rate 2,8 --max-ttft-p99-ms 2000")
@o.with_groups(numerics=o.numerics, costs=costs, modes=modes, pools=o.disagg_spec, limits=o.thresholds)
def serve(
    model: o.Model,
    gpus: o.Gpus = None,
    concurrency: Concurrency = None,
    request_rate: RequestRate = None,
    input_len: InputLen = 1024,
    output_len: OutputLen = 1024,
    tp: o.Tp = None,
    pp: o.Pp = None,
    ep: Ep = None,
    attention_dp: AttentionDp = False,
    chunked_prefill: Chunked = None,
    eplb: o.Eplb = False,
    explain_cost: ExplainCost = False,
    price_split: PriceSplit = None,
    vary: o.Vary = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    *,
    numerics, costs, modes, pools, limits,
) -> None:
    """Serve a workload: TTFT, TPOT, tok/s per user and per GPU, and USD per million input and output
    tokens under continuous batching at each concurrency."""
    from tokecon.commands.arrivals import parse_rates
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.serve import ServeOptions, parse_concurrency, run_serve

    common = CommonOptions(model, tuple(gpus or ()), tp, pp=pp, eplb=eplb, **numerics)
    opts = ServeOptions(common, ep, attention_dp, chunked_prefill, costs, explain_cost, price_split, modes, disagg=pools)
    result = run_serve(opts, parse_concurrency(concurrency), input_len, output_len, limits, parse_rates(request_rate))
    o.emit(o.varied(result, vary, costs, common), fmt, wide=wide)
