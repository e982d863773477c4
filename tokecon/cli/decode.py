"""``tokecon decode``."""

from __future__ import annotations

from typing import Annotated

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


@app.command(short_help="Time per output token, tok/s and USD/Mtok at each batch size.",
             epilog="Examples:\n\n\b\n  tokecon decode -m llama3-70b -g 4xH100\n  tokecon decode -m llama3-70b -g 4xH100 -g 2xH200 -b 1,64 --max-usd-per-mtok 2")
@o.with_groups(numerics=o.numerics)
def decode(
    model: o.Model,
    gpus: o.Gpus,
    batch: o.Batch = None,
    context: Annotated[int, typer.Option("--context", "-c", help="Tokens in each sequence's KV cache.")] = 2048,
    tp: o.Tp = None,
    pp: o.Pp = None,
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    vary: o.Vary = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    explain: o.Explain = False,
    ignore_memory: o.IgnoreMemory = False,
    max_usd_per_mtok: o.MaxUsd = None,
    min_tok_s_per_gpu: o.MinTokGpu = None,
    max_tpot_ms: o.MaxTpot = None,
    min_tok_s_per_user: o.MinTokUser = None,
    *,
    numerics,
) -> None:
    """Decode: time per output token, tok/s and USD per million output tokens at each batch size."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.decode import run_decode
    from tokecon.results import Thresholds

    opts = CommonOptions(model, tuple(gpus), tp, usd_per_gpu_hour=usd_per_gpu_hour, pp=pp, **numerics)
    limits = Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_tpot_ms=max_tpot_ms, min_tok_s_per_user=min_tok_s_per_user)
    from tokecon.economics.costs import CostModel

    result = run_decode(opts, o.int_list(batch), context, limits, explain, ignore_memory)
    o.emit(o.varied(result, vary, CostModel(usd_per_gpu_hour=usd_per_gpu_hour), opts), fmt, explain and not vary, wide)
