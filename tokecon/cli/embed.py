"""``tokecon embed``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


@app.command(short_help="Embeddings: time per batch, embeddings/s, USD/Mtok.",
             epilog="Examples:\n\n\b\n  tokecon embed -m qwen3-embedding-8b -g 1xH100 -g 1xRTX4090 --seq-len 1024\n  tokecon embed -m qwen3-embedding-8b -g 1xL40S --utilization 0.5")
def embed(
    model: o.Model,
    gpus: o.Gpus,
    batch: o.Batch = None,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", "-s", help="Tokens per input sequence (default 1024, or the model's maximum if shorter).")] = None,
    utilization: Annotated[Optional[float], typer.Option("--utilization", help="Fraction of the hours the devices are busy, 0.01 to 1, for USD/Mtok (default 1.0 = 100%).")] = None,
    tp: o.Tp = None,
    dtype: o.Dtype = None,
    engine: o.Engine = None,
    ideal: o.Ideal = False,
    usd_per_gpu_hour: o.UsdPerGpuHour = None,
    catalog: o.Catalogs = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    max_usd_per_mtok: o.MaxUsd = None,
    min_tok_s_per_gpu: o.MinTokGpu = None,
    max_ttft_ms: Annotated[Optional[float], typer.Option("--max-ttft-ms", help="Fail (exit 1) when one batch (the time to its embeddings) takes longer than this.")] = None,
) -> None:
    """Embeddings: one forward pass without LM head; time per batch, embeddings/s, FLOP/s per USD/h, USD/Mtok."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.embed import run_embed
    from tokecon.results import Thresholds

    opts = CommonOptions(model, tuple(gpus), tp, dtype, None, engine, ideal, usd_per_gpu_hour, tuple(catalog or ()))
    limits = Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms)
    o.emit(run_embed(opts, o.int_list(batch), seq_len, limits, utilization), fmt, wide=wide)
