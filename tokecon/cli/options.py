"""Options shared by the subcommands, and the one way every command ends: render, then exit."""

from __future__ import annotations

import functools
import inspect
import re
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


def complete_names(kind: str):
    """Shell completion of catalog names and aliases of ``kind`` (built-in and user catalogs),
    matched case-insensitively; the typed prefix keeps its case so the shell accepts the match."""

    def complete(incomplete: str) -> list[str]:
        try:
            from tokecon.catalogs.catalog import load_catalog

            reg = load_catalog().registry(kind)
        except Exception:  # completion must never crash the shell
            return []
        names = sorted({*reg.entries, *(a for e in reg for a in e.aliases)})
        low = incomplete.lower()
        return list(dict.fromkeys(incomplete + n[len(incomplete):] for n in names if n.lower().startswith(low)))

    return complete


_complete = complete_names  # backward-compatible name
_COUNT_PREFIX = re.compile(r"^(\d+\s*[xX×*])(.*)$")


def _complete_gpus(incomplete: str) -> list[str]:
    """``4xh`` -> ``4xh100``, ``4xh200``, ...; a bare count ``8`` -> ``8x<device>``."""
    if incomplete.isdigit():
        return [f"{incomplete}x{n}" for n in complete_names("hardware")("")]
    match = _COUNT_PREFIX.match(incomplete)
    prefix, name = (match.group(1), match.group(2)) if match else ("", incomplete)
    return [prefix + n for n in complete_names("hardware")(name)]


Model = Annotated[str, typer.Option("--model", "-m", metavar="MODEL", help="Model name or alias (see `tokecon models list`), or a config.json.",
                                    autocompletion=complete_names("models"))]
Gpus = Annotated[list[str], typer.Option("--gpus", "-g", metavar="COUNTxDEVICE", help="e.g. 4xH100; repeat to compare. An SRAM machine without a count (-g groq) gets as many chips as hold the model.",
                                         autocompletion=_complete_gpus)]
Pp = Annotated[Optional[int], typer.Option("--pp", help="Pipeline-parallel stages (layers split across them; default 1).")]
Tp = Annotated[Optional[int], typer.Option("--tp", help="Tensor-parallel degree (default: all GPUs); the rest are replicas.")]
NUMERICS_PANEL = "Precision and engine"
Dtype = Annotated[Optional[str], typer.Option("--dtype", metavar="TYPE", rich_help_panel=NUMERICS_PANEL, help="Weight type: bf16, fp8, fp4, int8, int4, mxfp4, nvfp4, q4_k_m (default: the model's).")]
KvDtype = Annotated[Optional[str], typer.Option("--kv-dtype", metavar="TYPE", rich_help_panel=NUMERICS_PANEL, help="KV-cache type (default bf16).")]
Engine = Annotated[Optional[str], typer.Option("--engine", metavar="NAME[@VERSION]", rich_help_panel=NUMERICS_PANEL, help="Serving-engine generation whose efficiency is assumed (default vllm, the current one; `tokecon engines list`).",
                                               autocompletion=complete_names("engines"))]
Ideal = Annotated[bool, typer.Option("--ideal", rich_help_panel=NUMERICS_PANEL, help="Ideal roofline: 100% of every peak, no latency or overhead (an upper bound).")]
UsdPerGpuHour = Annotated[Optional[float], typer.Option("--usd-per-gpu-hour", help="Price per GPU-hour instead of the catalog's rental price.")]
Catalogs = Annotated[Optional[list[Path]], typer.Option("--catalog", metavar="FILE", help="Extra catalog TOML ([hardware.X], [models.X], [engines.X]); repeatable.")]
Format = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
Wide = Annotated[bool, typer.Option("--wide", help="Tables on a terminal: every column, however narrow the terminal "
                                    "(files and pipes always get every column).")]
Batch = Annotated[Optional[list[str]], typer.Option("--batch", "-b", metavar="N[,N...]", help="Batch sizes, comma-separated or repeated.")]
MaxUsd = Annotated[Optional[float], typer.Option("--max-usd-per-mtok", help="Fail (exit 1) when a row's USD/Mtok exceeds this: "
                                                  "output tokens in decode, input tokens in prefill and embed, the phase's "
                                                  "tokens in compare and moe, blended (input + output) in serve, frontier "
                                                  "and capacity.")]
MaxUsdIn = Annotated[Optional[float], typer.Option("--max-usd-per-mtok-in", help="Fail (exit 1) when the input tokens' USD/Mtok exceeds this.")]
MaxUsdOut = Annotated[Optional[float], typer.Option("--max-usd-per-mtok-out", help="Fail (exit 1) when the output tokens' USD/Mtok exceeds this.")]
MaxUsdBlended = Annotated[Optional[float], typer.Option("--max-usd-per-mtok-blended", help="Fail (exit 1) when USD/Mtok over all "
                                                        "tokens (input + output) exceeds this; the same as --max-usd-per-mtok here.")]
MinTokGpu = Annotated[Optional[float], typer.Option("--min-tok-s-per-gpu", help="Fail (exit 1) when a row yields fewer tok/s per GPU.")]
MaxTtft = Annotated[Optional[float], typer.Option("--max-ttft-ms", help="Fail (exit 1) when time to first token exceeds this.")]
MinTokUser = Annotated[Optional[float], typer.Option("--min-tok-s-per-user", help="Fail (exit 1) below this interactivity (1/TPOT).")]
MaxTpot = Annotated[Optional[float], typer.Option("--max-tpot-ms", help="Fail (exit 1) when time per output token exceeds this.")]
MaxTtftP99 = Annotated[Optional[float], typer.Option("--max-ttft-p99-ms", help="Fail (exit 1) when the 99th percentile of TTFT under Poisson arrivals (serve --request-rate; capacity: the daily volume) exceeds this.")]
MaxTpotP99 = Annotated[Optional[float], typer.Option("--max-tpot-p99-ms", help="Fail (exit 1) when the 99th percentile of TPOT under Poisson arrivals (serve --request-rate; capacity: the daily volume) exceeds this.")]


Vary = Annotated[Optional[list[str]], typer.Option(
    "--vary", metavar="NAME=V1,V2,...", help="Sensitivity of USD/Mtok to one cost input, e.g. interest-rate=0.02,0.05,0.10 "
    "(interest-rate, depreciation-years, other-capital-ratio, purchase-usd, usd-per-kwh, pue: with --cost tco; "
    "usd-per-gpu-hour: rental; utilisation: both); prints the table of each value and its elasticity.")]


def varied(result, vary: list[str] | None, costs, common):
    """``result``, or with ``--vary`` its sensitivity table (tokecon.economics.sensitivity) under the cost model ``costs``."""
    if not vary:
        return result
    from tokecon.errors import TokeconError
    from tokecon.economics.sensitivity import vary as sensitivity

    if len(vary) > 1:
        raise TokeconError(f"give --vary once (one cost input per table), got {len(vary)}: {', '.join(vary)}")
    return sensitivity(result, vary[0], costs, common.load().hardware.get)

PrefillGpus = Annotated[Optional[str], typer.Option("--prefill-gpus", metavar="COUNTxDEVICE", rich_help_panel="Disaggregated",
                                                    help="Disaggregated serving: GPUs of one prefill worker, e.g. 4xH200 (with --decode-gpus).",
                                                    autocompletion=_complete_gpus)]
DecodeGpus = Annotated[Optional[str], typer.Option("--decode-gpus", metavar="COUNTxDEVICE", rich_help_panel="Disaggregated",
                                                   help="Disaggregated serving: GPUs of one decode worker, e.g. 8xH200.",
                                                   autocompletion=_complete_gpus)]
PrefillWorkers = Annotated[Optional[int], typer.Option("--prefill-workers", rich_help_panel="Disaggregated",
                                                       help="Prefill workers (x of xPyD; default: balanced against the decode pool).")]
DecodeWorkers = Annotated[Optional[int], typer.Option("--decode-workers", rich_help_panel="Disaggregated",
                                                      help="Decode workers (y of xPyD; default: balanced against the prefill pool).")]
PrefillLayout = Annotated[Optional[str], typer.Option("--prefill-layout", metavar="tpN|depN", rich_help_panel="Disaggregated",
                                                      help="Layout of a prefill worker: tpN tensor-parallel groups, depN attention-DP "
                                                           "with experts over N GPUs (default: as aggregated).")]
DecodeLayout = Annotated[Optional[str], typer.Option("--decode-layout", metavar="tpN|depN", rich_help_panel="Disaggregated",
                                                     help="Layout of a decode worker (as --prefill-layout).")]
PrefillBatch = Annotated[Optional[int], typer.Option("--prefill-batch", rich_help_panel="Disaggregated",
                                                     help="Most prompts a prefill unit batches per step (default: the engine's token budget / input length).")]


class Mode(str, Enum):
    agg = "agg"
    disagg = "disagg"
    both = "both"


ServingMode = Annotated[Mode, typer.Option("--mode", help="Search aggregated layouts, disaggregated prefill/decode pools "
                                            "within the GPUs, or both (disaggregated where the model fits a part of them).")]


def disagg_spec(prefill_gpus: PrefillGpus = None, prefill_workers: PrefillWorkers = None, prefill_layout: PrefillLayout = None,
                prefill_batch: PrefillBatch = None, decode_gpus: DecodeGpus = None, decode_workers: DecodeWorkers = None,
                decode_layout: DecodeLayout = None):
    """The disaggregated layout the flags give, or None when neither pool is named."""
    from tokecon.commands.disagg import DisaggSpec

    return DisaggSpec.given(prefill_gpus, prefill_workers, prefill_layout, prefill_batch, decode_gpus, decode_workers, decode_layout)


Eplb = Annotated[bool, typer.Option("--eplb/--no-eplb", help="Expert-parallel load balancer with redundant experts (DeepSeek EPLB): "
                                     "busiest rank ~1.1x the mean instead of ~1.4x (default off, as engines ship).")]
IgnoreMemory = Annotated[bool, typer.Option("--ignore-memory", help="What-if: compute rows whose weights or KV cache do not fit "
                                            "(marked fits: false, memory_ignored: true, with a loud note), e.g. the article's "
                                            "70B prefill on one H100.")]
Explain = Annotated[bool, typer.Option("--explain", help="Show each operation of the cheapest row: time, FLOP, bytes, bound.")]


def with_groups(**groups: typing.Callable[..., typing.Any]) -> typing.Callable[[typing.Callable[..., None]], typing.Callable[..., None]]:
    """Give a command the options of shared groups. A group is a function whose parameters are Typer
    options and which builds one value from them (the cost model, the thresholds, ...); the command
    names the group as a parameter (``costs: CostModel``) and receives what the function built.

    Typer reads a command's options from its signature, so the wrapper's signature is the command's
    own parameters, then every group's (keyword-only), annotations resolved: each option is written
    once, in its group, however many commands take it."""

    def decorate(command: typing.Callable[..., None]) -> typing.Callable[..., None]:
        def resolved(fn: typing.Callable[..., typing.Any], skip: typing.Container[str] = ()) -> list[inspect.Parameter]:
            hints = typing.get_type_hints(fn, include_extras=True)
            return [p.replace(annotation=hints.get(p.name, p.annotation))
                    for p in inspect.signature(fn).parameters.values() if p.name not in skip]

        params = resolved(command, groups)
        members = {}
        for key, build in groups.items():
            members[key] = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in resolved(build)]
            params += members[key]

        @functools.wraps(command)
        def wrapper(**kwargs: typing.Any) -> None:
            for key, build in groups.items():
                kwargs[key] = build(**{p.name: kwargs.pop(p.name) for p in members[key]})
            return command(**kwargs)

        del wrapper.__wrapped__  # inspect and typing read the signature below, not the command's
        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


def numerics(dtype: Dtype = None, kv_dtype: KvDtype = None, engine: Engine = None, ideal: Ideal = False,
             catalog: Catalogs = None) -> dict[str, typing.Any]:
    """Weight and KV types, the engine, the ideal roofline and extra catalogs as one group: the
    :class:`tokecon.commands.common.CommonOptions` fields every roofline command takes alike."""
    return {"dtype": dtype, "kv_dtype": kv_dtype, "engine": engine, "ideal": ideal, "catalogs": tuple(catalog or ())}


def common_thresholds(max_usd_per_mtok: MaxUsd = None, min_tok_s_per_gpu: MinTokGpu = None, max_ttft_ms: MaxTtft = None,
                      max_tpot_ms: MaxTpot = None, min_tok_s_per_user: MinTokUser = None):
    """The thresholds of commands that give both latencies but no tails or split prices (compare, tenants)."""
    from tokecon.results import Thresholds

    return Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms, max_tpot_ms, min_tok_s_per_user)


def thresholds(
    max_usd_per_mtok: MaxUsd = None,
    max_usd_per_mtok_in: MaxUsdIn = None,
    max_usd_per_mtok_out: MaxUsdOut = None,
    max_usd_per_mtok_blended: MaxUsdBlended = None,
    min_tok_s_per_gpu: MinTokGpu = None,
    max_ttft_ms: MaxTtft = None,
    max_tpot_ms: MaxTpot = None,
    min_tok_s_per_user: MinTokUser = None,
    max_ttft_p99_ms: MaxTtftP99 = None,
    max_tpot_p99_ms: MaxTpotP99 = None,
):
    """The serving commands' thresholds (serve, frontier, capacity) as one group."""
    from tokecon.results import Thresholds

    return Thresholds(max_usd_per_mtok, min_tok_s_per_gpu, max_ttft_ms, max_tpot_ms, min_tok_s_per_user,
                      max_ttft_p99_ms=max_ttft_p99_ms, max_tpot_p99_ms=max_tpot_p99_ms, max_usd_per_mtok_in=max_usd_per_mtok_in,
                      max_usd_per_mtok_out=max_usd_per_mtok_out, max_usd_per_mtok_blended=max_usd_per_mtok_blended)


def int_list(values: list[str] | None, flag: str = "--batch") -> list[int] | None:
    """A repeatable comma-list option: ``["1,8", "64"]`` -> [1, 8, 64] (None when not given)."""
    from tokecon.serving.deploy import parse_int_list

    if not values:
        return None
    return [n for v in values for n in parse_int_list(v, flag) or []]


def emit(result, fmt: OutputFormat, explain: bool = False, wide: bool = False) -> None:
    """Render ``result`` to stdout (with ``explain``, the per-operation breakdown of its cheapest
    rows after it; JSON rows carry it as ``breakdown``); if any row crossed a threshold or offers a
    rate past the sustainable one, say so on stderr and exit 1."""
    from tokecon.cli.render import render

    render(result, fmt.value, sys.stdout, wide=wide)
    if explain and fmt != OutputFormat.json:
        from tokecon.commands.common import breakdown_result

        render(breakdown_result(result), fmt.value, sys.stdout, wide=wide)
    failed = result.failed_rows
    if failed:
        first = failed[0]
        where = f"{first.get('n_gpus', '')}x{first.get('hardware', '')}" if first.get("hardware") else first.get("name", "")
        rate = first.get("request_rate")
        point = f"{rate:g} req/s" if rate is not None else f"batch {first.get('batch', first.get('concurrency', '?'))}"
        what = ("offer more requests per second than the deployment sustains" if all(r.get("stable") is False for r in failed)
                else "cross a threshold")
        typer.echo(
            f"tokecon: {len(failed)} of {len(result.rows)} rows {what} "
            f"(first: {where} {point}: {first['violations'][0]})",
            err=True,
        )
        raise typer.Exit(1)


def report_new_entry(new) -> None:
    """``hardware add`` / ``models import``: the TOML entry on stdout, or where it was saved."""
    if new.saved is None:
        typer.echo(new.text, nl=False)
        hint = f"not saved; add --save to write [{new.key}] to $TOKECON_HOME/{new.kind}.toml"
        typer.echo(f"tokecon: {hint}" + (f" ({new.note})" if new.note else ""), err=True)
        return
    verb = "replaced" if new.saved.replaced else "saved"
    typer.echo(f"{verb} [{new.key}] in {new.saved.path}" + (f" ({new.note})" if new.note else ""))
    if new.summary:
        typer.echo(new.summary)
