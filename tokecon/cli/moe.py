"""``tokecon moe``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


class MoePhase(str, Enum):
    decode = "decode"
    prefill = "prefill"


@app.command(short_help="Large mixture-of-experts serving: expert parallel, interconnect.",
             epilog="Examples:\n\n\b\n  tokecon moe -m deepseek-v3 -g 16xH200 -g 32xH200\n  tokecon moe -m deepseek-v3 -g 72xGB200 --phase prefill")
@o.with_groups(numerics=o.numerics)
def moe(
    model: o.Model,
    gpus: Annotated[list[str], typer.Option("--gpus", "-g", metavar="COUNTxDEVICE", help="GPUs of ONE node, i.e. one scale-up domain, COUNTxDEVICE (8xH100, 72xGB200 for an NVL72 rack); repeat to compare.",
                                            autocompletion=o._complete_gpus)],
    nodes: Annotated[Optional[list[str]], typer.Option("--nodes", "-n", metavar="N[,N...]", help="Node counts, comma-separated or repeated (default 1); EP = nodes x GPUs per node.")] = None,
    batch_per_gpu: Annotated[Optional[list[str]], typer.Option("--batch-per-gpu", "-b", metavar="N[,N...]", help="Sequences per GPU per step (default 64 in decode, 1 in prefill).")] = None,
    context: Annotated[int, typer.Option("--context", "-c", help="Tokens in each sequence's KV cache (decode) or prompt length (prefill).")] = 2048,
    phase: Annotated[MoePhase, typer.Option("--phase", help="decode (output tok/s) or prefill (input tok/s).")] = MoePhase.decode,
    interconnect: Annotated[Optional[str], typer.Option("--interconnect", help="Scale-out link between nodes: catalog (default), infiniband, infiniband-xdr, ethernet, or GB/s per GPU.")] = None,
    overlap: Annotated[bool, typer.Option("--overlap/--no-overlap", help="Hide communication behind compute with two micro-batches (default on).")] = True,
    dispatch_dtype: Annotated[str, typer.Option("--dispatch-dtype", help="All-to-all dispatch payload type (DeepSeek: fp8).")] = "fp8",
    combine_dtype: Annotated[str, typer.Option("--combine-dtype", help="All-to-all combine payload type (DeepSeek: bf16).")] = "bf16",
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    eplb: o.Eplb = False,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    max_usd_per_mtok: o.MaxUsd = None,
    min_tok_s_per_gpu: o.MinTokGpu = None,
    max_ttft_ms: o.MaxTtft = None,
    max_tpot_ms: o.MaxTpot = None,
    *,
    numerics,
) -> None:
    """Mixture of experts at scale: attention data-parallel, experts expert-parallel over nodes; throughput per node vs EP size and interconnect."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.moe import MoeOptions, run_moe
    from tokecon.results import Thresholds

    opts = CommonOptions(model, tuple(gpus), None, usd_per_gpu_hour=usd_per_gpu_hour, eplb=eplb, **numerics)
    node_list = o.int_list(nodes, "--nodes") or [1]
    batches = o.int_list(batch_per_gpu, "--batch-per-gpu")
    moe_opts = MoeOptions(phase.value, tuple(node_list), tuple(batches) if batches else None, context, interconnect,
                          overlap, dispatch_dtype, combine_dtype)
    limits = Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms, max_tpot_ms)
    o.emit(run_moe(opts, moe_opts, limits), fmt, wide=wide)
