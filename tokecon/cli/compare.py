"""``tokecon compare``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


class ComparePhase(str, Enum):
    decode = "decode"
    prefill = "prefill"
    embed = "embed"


@app.command(short_help="Rank device configurations on one workload.",
             epilog="Examples:\n\n\b\n  tokecon compare -m llama3-70b\n  tokecon compare -m llama3-70b -g 4xH100 -g 2xH200 --phase prefill -b 8")
@o.with_groups(numerics=o.numerics, limits=o.common_thresholds)
def compare(
    model: o.Model,
    gpus: Annotated[Optional[list[str]], typer.Option("--gpus", "-g", metavar="COUNTxDEVICE", help="COUNTxDEVICE to compare; repeat. Default: every catalog device, sized automatically.",
                                                      autocompletion=o._complete_gpus)] = None,
    phase: Annotated[ComparePhase, typer.Option("--phase", help="The workload: decode, prefill or embed.")] = ComparePhase.decode,
    batch: Annotated[Optional[int], typer.Option("--batch", "-b", help="Sequences per step (default 64 decode, 1 prefill, 32 embed).")] = None,
    context: Annotated[Optional[int], typer.Option("--context", "-c", help="KV-cache tokens (decode), prompt tokens (prefill) or sequence tokens (embed); default 2048, 1024 for embed.")] = None,
    sort: Annotated[Optional[str], typer.Option("--sort", help="Rank by: usd-per-mtok (default), tok-s-per-gpu, latency, usd-per-hour, flop-per-usd, bytes-per-usd, memory, gpus, change (with --baseline), or a JSON row key.")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="An earlier `tokecon compare --format json`: show the change against it.")] = None,
    tp: o.Tp = None,
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    vary: o.Vary = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    *,
    numerics,
    limits,
) -> None:
    """Compare device configurations on one workload, ranked; the winner highlighted."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.compare import run_compare

    opts = CommonOptions(model, tuple(gpus or ()), tp, usd_per_gpu_hour=usd_per_gpu_hour, **numerics)
    from tokecon.economics.costs import CostModel

    result = run_compare(opts, phase.value, batch, context, limits, sort, baseline)
    o.emit(o.varied(result, vary, CostModel(usd_per_gpu_hour=usd_per_gpu_hour), opts), fmt, wide=wide)
