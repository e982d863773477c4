"""``tokecon tenants``: many LoRA adapters on one base model against a deployment per tenant."""

from __future__ import annotations

from typing import Annotated

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app
from tokecon.cli.serve import InputLen, OutputLen

Adapters = Annotated[list[str], typer.Option("--adapters", "-n", metavar="N[,N...]", help="Tenants, one LoRA adapter each; comma-separated or repeated.")]
Rank = Annotated[int, typer.Option("--lora-rank", "-r", help="Rank r of every adapter.")]
Targets = Annotated[str, typer.Option("--lora-targets", metavar="qkvo|mlp|all|LIST",
                                      help="Adapted weights: qkvo, mlp (gate, up, down; experts too), all, or a comma list of q,k,v,o,gate,up,down.")]
Popularity = Annotated[str, typer.Option("--popularity", metavar="uniform|zipf[:ALPHA]", help="How requests spread over tenants (zipf = alpha 1).")]
Slots = Annotated[int, typer.Option("--adapter-slots", help="Swapped rows: adapters cached on each GPU; the rest load over the host link.")]
HostLink = Annotated[float, typer.Option("--host-link-gb-s", help="Host-to-GPU bandwidth per GPU per direction (PCIe Gen5 x16: 64).")]
Concurrency = Annotated[int, typer.Option("--concurrency", "-c", help="Requests in flight over all tenants (the load).")]


@app.command(short_help="Many tenants: N LoRA adapters on one deployment vs a deployment each.",
             epilog="Examples:\n\n\b\n  tokecon tenants -m llama3-8b -g 1xH100 --adapters 1,10,100,1000\n"
                    "  tokecon tenants -m llama3-8b -g 1xH100 -n 1000 --lora-rank 64 --lora-targets all --popularity zipf")
@o.with_groups(numerics=o.numerics, limits=o.common_thresholds)
def tenants(
    model: o.Model,
    gpus: o.Gpus,
    adapters: Adapters = ["1,10,100,1000"],  # noqa: B006 (typer reads the default)
    lora_rank: Rank = 16,
    lora_targets: Targets = "qkvo",
    popularity: Popularity = "uniform",
    adapter_slots: Slots = 32,
    host_link_gb_s: HostLink = 64.0,
    concurrency: Concurrency = 64,
    input_len: InputLen = 1024,
    output_len: OutputLen = 1024,
    tp: o.Tp = None,
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    *,
    numerics,
    limits,
) -> None:
    """Serve N tenants' LoRA adapters on one base model: TPOT, throughput, adapter memory (resident or
    swapped over the host link), adapter time per step and USD/Mtok per N, against a dedicated
    deployment per tenant."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.serve import ServeOptions
    from tokecon.commands.tenants import TenantOptions, run_tenants
    from tokecon.economics.costs import CostModel

    common = CommonOptions(model, tuple(gpus), tp, **numerics)
    serve = ServeOptions(common, cost=CostModel(usd_per_gpu_hour=usd_per_gpu_hour))
    counts = tuple(o.int_list(adapters, "--adapters") or ())
    opts = TenantOptions(serve, counts, lora_rank, lora_targets, popularity, adapter_slots, host_link_gb_s, concurrency,
                         input_len, output_len)
    o.emit(run_tenants(opts, limits), fmt, wide=wide)
