"""``tokecon tenants``: N LoRA adapters on one shared deployment against a deployment per tenant.

Per adapter count N: the shared deployment's TPOT, throughput and USD/Mtok with every adapter on
the GPU ("resident") and with a cache of ``--adapter-slots`` adapters fed over the host link
("swapped"), the adapters' memory and time per decode step, and what each tenant pays, beside one
dedicated deployment per tenant serving that tenant's share of the load. Physics in
:mod:`tokecon.serving.lora`; serving in :mod:`tokecon.serving.batching`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.physics import memory
from tokecon.commands.common import efficiency_note, resolved_inputs, sources
from tokecon.commands.serve import Deployed, ServeOptions, deploy, deployment_fields, model_note
from tokecon.errors import TokeconError
from tokecon.serving import lora as lora_mode
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import check_context, parse_gpus, positive_ints, require_fit
from tokecon.serving.lora import LoraAdapters
from tokecon.units import GB

COLUMNS = [
    Column("adapters", "tenants", "int"),
    Column("adapter_mode", "adapters on GPU", "str"),
    Column("running", "running", "int", hide=2),
    Column("ttft_s", "TTFT [ms]", "time", hide=2),
    Column("tpot_s", "TPOT [ms]", "time"),
    Column("total_tok_s_per_gpu", "tok/s per GPU", "rate", hide=2),
    Column("adapter_bytes_per_gpu", "adapters [GB/GPU]", "bytes", hide=1),
    Column("adapter_step_s", "LoRA [ms/step]", "time"),
    Column("adapter_read_share", "LoRA bytes / weights [%]", "pct", hide=1),
    Column("host_link_utilisation", "host link [%]", "pct", hide=3),
    Column("usd_per_mtok", "USD/Mtok shared", "usd"),
    Column("usd_per_hour_per_tenant", "USD/h per tenant", "usd", hide=1),
    Column("dedicated_usd_per_mtok", "USD/Mtok dedicated", "usd"),
]


@dataclass(frozen=True)
class TenantOptions:
    """``tenants`` options on top of the serving ones (plain values from the command line)."""

    serve: ServeOptions
    adapters: tuple[int, ...]
    rank: int = 16
    targets: str = "qkvo"
    popularity: str = "uniform"
    slots: int = 32
    host_link_gb_s: float = 64.0
    concurrency: int = 64
    input_len: int = 1024
    output_len: int = 1024

    def lora(self, adapters: int, slots: int | None) -> LoraAdapters:
        targets, alpha = lora_mode.parse_targets(self.targets), lora_mode.parse_popularity(self.popularity)
        return LoraAdapters(adapters, self.rank, targets, alpha, slots, host_link_b_s=self.host_link_gb_s * GB)


def _f(a: np.ndarray | float) -> float | None:
    v = float(np.asarray(a).flat[0])
    return v if np.isfinite(v) else None


def tenant_row(d: Deployed, lora: LoraAdapters, t: lora_mode.TenantServing) -> dict[str, Any]:
    """One row: the shared deployment with ``lora`` and the dedicated one per tenant."""
    scn = replace(d.scenario, lora=lora)
    usd_h = scn.usd_per_hour
    fits = bool(np.asarray(t.shared.fits).flat[0]) and _f(t.total_tok_s) is not None
    per_adapter = lora_mode.adapter_bytes_per_gpu(scn)
    weights = memory.weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment)
    distinct = _f(t.distinct) if fits else None
    swapped = lora.resident < lora.adapters
    row: dict[str, Any] = {
        **deployment_fields(d),
        "adapters": lora.adapters,
        "adapter_mode": f"{lora.resident} + host" if swapped else f"all {lora.adapters}",
        "swapped": swapped,
        "adapter_slots": lora.resident,
        "lora_rank": lora.rank,
        "lora_targets": ",".join(dict.fromkeys(m.name for m in lora_mode.modules(scn.model, lora.targets))),
        "adapter_params": lora_mode.adapter_params(scn.model, lora),
        "adapter_bytes": per_adapter,
        "adapter_bytes_per_gpu": scn.lora.extra_weight_bytes_per_gpu(scn),
        "adapter_bytes_all": lora.adapters * per_adapter,
        "weight_bytes_per_gpu": weights,
        "concurrency": int(np.asarray(t.shared.concurrency).flat[0]),
        "max_concurrency": int(np.asarray(t.shared.max_running).flat[0]),
        "fits": fits,
        "running": _f(t.shared.running),
        "distinct_adapters_per_step": distinct,
        "adapter_step_bytes": _f(t.adapter_step_bytes) if fits else None,
        "adapter_read_share": _f(t.adapter_step_bytes / weights) if fits else None,
        "adapter_step_s": _f(t.adapter_step_s) if fits else None,
        "decode_step_s": _f(t.shared.decode_step_s),
        "miss_rate": t.miss,
        "adapter_load_s": t.load_s,
        "host_link_utilisation": _f(t.host_link_utilisation),
        "ttft_s": _f(t.ttft_s),
        "tpot_s": _f(t.shared.tpot_s),
        "tok_s_per_user": _f(1.0 / t.shared.tpot_s),
        "total_tok_s": _f(t.total_tok_s),
        "output_tok_s": _f(t.output_tok_s),
        "total_tok_s_per_gpu": _f(t.total_tok_s / scn.deployment.n_gpus),
        "usd_per_hour": usd_h,
        "usd_per_mtok": _f(economics.usd_per_mtok(usd_h, t.total_tok_s)) if fits else None,
        "usd_per_hour_per_tenant": usd_h / lora.adapters,
        "dedicated_busiest_concurrency": float(np.asarray(t.dedicated.concurrency).flat[0]),
        "dedicated_busiest_tpot_s": _f(t.dedicated.tpot_s.flat[0]),
        "dedicated_total_tok_s": _f(t.dedicated_total_tok_s),
        "dedicated_usd_per_hour_per_tenant": usd_h,
        "dedicated_usd_per_mtok": _f(economics.usd_per_mtok(usd_h * lora.adapters, t.dedicated_total_tok_s)),
    }
    row["tok_s_per_gpu"] = row["total_tok_s_per_gpu"]  # the common threshold key
    shared, alone = row["usd_per_mtok"], row["dedicated_usd_per_mtok"]
    row["dedicated_over_shared"] = alone / shared if shared and alone else None
    return row


def notes_for(d: Deployed, opts: TenantOptions, rows: list[dict[str, Any]]) -> list[str]:
    """One line per modelled effect, with the figures of this run."""
    first = rows[0]
    lora = opts.lora(1, None)
    alpha = lora.zipf_alpha
    pop = "uniform" if alpha == 0 else f"Zipf, alpha {alpha:g} (the i-th most popular adapter gets a share ~ i^-{alpha:g})"
    out = [
        f"Adapter size: r (d_in + d_out) per target module and layer (LoRA, Hu et al. 2021): rank {opts.rank} on "
        f"{first['lora_targets']} = {first['adapter_params'] / 1e6:,.2f}M parameters, {first['adapter_bytes'] / 1e6:,.1f} MB "
        f"per GPU in {lora.dtype} ({first['adapter_bytes'] / first['weight_bytes_per_gpu']:.2%} of the base weights on it).",
        "LoRA [ms/step]: the batched adapter kernels of a decode step at the running batch (Punica SGMV / S-LoRA): "
        "2 x tokens x r (d_in + d_out) FLOP per module, and every distinct adapter of the batch read once, priced by the "
        "same roofline as the base weights (routed experts: only the experts an adapter's tokens touch); LoRA bytes / "
        "weights = the bytes those kernels move per step / the base weight bytes per GPU.",
        f"Distinct adapters in a batch of s requests: sum_i 1 - (1 - p_i)^s over the N tenants' request shares p_i, here {pop}; "
        "each request uses one tenant's adapter, drawn independently.",
        "Resident ('all N'): every adapter on each GPU, taking room from the KV cache, so fewer requests may run at once.",
    ]
    swap = [
        f"Swapped ('M + host', --adapter-slots {opts.slots}): the M most requested adapters stay on the GPU (S-LoRA, Sheng "
        f"et al. 2023); any other loads over the host link ({opts.host_link_gb_s:g} GB/s per GPU, --host-link-gb-s) at "
        "admission, adding miss rate x load time to TTFT; loads overlap compute, and cap throughput only when the link is "
        "busier than 100%. A loaded adapter stays beside its request while it runs: miss rate x adapter bytes more per "
        "running request (an upper bound; requests sharing a cold adapter hold it once).",
    ] if any(r["swapped"] for r in rows) else []
    out += swap + [
        f"Dedicated: each tenant on its own {d.label} with its fine-tune merged into the weights (no adapter kernels), "
        f"serving its share of the load: --concurrency {opts.concurrency} x its request share in flight (a deployment idle "
        "most of the time when that is below 1); USD/Mtok dedicated = N deployments' USD/h over all their tokens. USD/h per "
        "tenant: shared = the deployment's USD/h / N; dedicated = the deployment's whole USD/h.",
        model_note(d.scenario, None),
        efficiency_note(d.scenario),
    ]
    queued = [f"{r['adapters']:,} ({r['adapter_mode']})" for r in rows if r["fits"] and (r["running"] or 0) < r["concurrency"]]
    if queued:
        out.append(f"Tenants {', '.join(queued)}: fewer than --concurrency {opts.concurrency} requests run at once (KV cache "
                   "beside the adapters, engine cap); the rest queue and TTFT includes the wait.")
    unfit = [f"{r['adapters']:,} tenants ({r['adapter_mode']})" for r in rows if not r["fits"]]
    if unfit:
        out.append(f"{', '.join(unfit)}: the adapters leave no room for one request's KV cache, so no figure is shown; "
                   "fewer --adapter-slots, a lower --lora-rank or more GPUs make room.")
    return out


def run_tenants(opts: TenantOptions, thresholds: Thresholds) -> Result:
    opts.serve.validate()
    positive_ints(list(opts.adapters) + [opts.rank, opts.slots, opts.concurrency, opts.input_len, opts.output_len],
                  "--adapters/--lora-rank/--adapter-slots/--concurrency/--input-len/--output-len")
    if opts.output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token)")
    if not (opts.host_link_gb_s > 0 and np.isfinite(opts.host_link_gb_s)):
        raise TokeconError(f"--host-link-gb-s must be a positive number, got {opts.host_link_gb_s}")
    catalog = opts.serve.common.load()
    model = catalog.models.get(opts.serve.common.model)
    context = opts.input_len + opts.output_len
    check_context(model, context, "--input-len + --output-len")
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    deployed: list[Deployed] = []
    for gpus in opts.serve.common.gpus:
        d = deploy(catalog, opts.serve, parse_gpus(gpus, catalog), context)
        require_fit(d.scenario, context)
        deployed.append(d)
        these = []
        for n in opts.adapters:
            for slots in (None, opts.slots) if n > opts.slots else (None,):
                lora = opts.lora(n, slots)
                load = np.asarray([float(opts.concurrency)])
                t = lora_mode.serve_tenants(d.scenario, lora, load, opts.input_len, opts.output_len)
                these.append(tenant_row(d, lora, t))
        rows.extend(these)
        notes.extend(notes_for(d, opts, these))
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": [d.scenario.deployment.label for d in deployed],
        "adapters": list(opts.adapters),
        "lora_rank": opts.rank,
        "lora_targets": ",".join(lora_mode.parse_targets(opts.targets)),
        "popularity": opts.popularity,
        "zipf_alpha": lora_mode.parse_popularity(opts.popularity),
        "adapter_slots": opts.slots,
        "host_link_b_s": opts.host_link_gb_s * GB,
        "concurrency": opts.concurrency,
        "input_tokens": opts.input_len,
        "output_tokens": opts.output_len,
    }
    result = Result("tenants", inputs, rows, COLUMNS, notes=list(dict.fromkeys(notes)),
                    sources=sources([d.scenario for d in deployed]))
    return thresholds.apply(result)
