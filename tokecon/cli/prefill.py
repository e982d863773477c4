"""``tokecon prefill``."""

from __future__ import annotations

from typing import Annotated

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


@app.command(short_help="Time to first token, input tok/s and USD/Mtok of prompts.",
             epilog="Examples:\n\n\b\n  tokecon prefill -m llama3-70b -g 4xH100 --input-len 2048 -b 1,8\n  tokecon prefill -m llama3-70b -g 4xH100 --explain")
@o.with_groups(numerics=o.numerics)
def prefill(
    model: o.Model,
    gpus: o.Gpus,
    batch: o.Batch = None,
    input_len: Annotated[int, typer.Option("--input-len", "-i", help="Prompt tokens per sequence.")] = 2048,
    tp: o.Tp = None,
    pp: o.Pp = None,
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    explain: o.Explain = False,
    ignore_memory: o.IgnoreMemory = False,
    max_usd_per_mtok: o.MaxUsd = None,
    min_tok_s_per_gpu: o.MinTokGpu = None,
    max_ttft_ms: o.MaxTtft = None,
    *,
    numerics,
) -> None:
    """Prefill: time to first token, input tok/s and USD per million input tokens."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.prefill import run_prefill
    from tokecon.results import Thresholds

    opts = CommonOptions(model, tuple(gpus), tp, usd_per_gpu_hour=usd_per_gpu_hour, pp=pp, **numerics)
    limits = Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms)
    o.emit(run_prefill(opts, o.int_list(batch), input_len, limits, explain, ignore_memory), fmt, explain, wide)
