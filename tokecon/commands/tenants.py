"""``tokecon tenants``: N LoRA adapters on one shared deployment against a deployment per tenant.

Per adapter count N: the shared deployment's TPOT, throughput and USD/Mtok with every adapter on
the GPU ("resident") and with a cache of ``--adapter-slots`` adapters fed over the host link
("swapped"), the adapters' memory and time per decode step, and what each tenant pays, beside one
dedicated deployment per tenant serving that tenant's share of the load. Physics in
:mod:`tokecon.serving.lora`; serving in :mod:`tokecon.serving.batching`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.physics import memory
from tokecon.commands.common import device_request, resolved_inputs, sources
from tokecon.commands.serving import check_workload, model_note, serving_assumptions
from tokecon.economics.costs import CostModel
from tokecon.serving.deploy import Deployed, deploy, deployment_fields
from tokecon.serving.request import ServingRequest
from tokecon.errors import TokeconError
from tokecon.serving import lora as lora_mode
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.resolve import parse_gpus, require_fit
from tokecon.values import positive_ints
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


def adapters_of(o: Any, adapters: int, slots: int | None) -> LoraAdapters:
    """``adapters`` LoRA adapters as the options ``o`` shape them, ``slots`` of them cached on each GPU (None: all)."""
    targets, alpha = lora_mode.parse_targets(o.lora_targets), lora_mode.parse_popularity(o.popularity)
    return LoraAdapters(adapters, o.lora_rank, targets, alpha, slots, host_link_b_s=o.host_link_gb_s * GB)


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


def method_for(d: Deployed, o: Any, rows: list[dict[str, Any]]) -> list[str]:
    """One line per modelled effect, with the figures of this run (for --explain)."""
    first = rows[0]
    lora = adapters_of(o, 1, None)
    alpha = lora.zipf_alpha
    pop = "uniform" if alpha == 0 else f"Zipf, alpha {alpha:g} (the i-th most popular adapter gets a share ~ i^-{alpha:g})"
    out = [
        f"Adapter size: r (d_in + d_out) per target module and layer (LoRA, Hu et al. 2021): rank {o.lora_rank} on "
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
        f"Swapped ('M + host', --adapter-slots {o.adapter_slots}): the M most requested adapters stay on the GPU (S-LoRA, Sheng "
        f"et al. 2023); any other loads over the host link ({o.host_link_gb_s:g} GB/s per GPU, --host-link-gb-s) at "
        "admission, adding miss rate x load time to TTFT; loads overlap compute, and cap throughput only when the link is "
        "busier than 100%. A loaded adapter stays beside its request while it runs: miss rate x adapter bytes more per "
        "running request (an upper bound; requests sharing a cold adapter hold it once).",
    ] if any(r["swapped"] for r in rows) else []
    out += swap + [
        f"Dedicated: each tenant on its own {d.label} with its fine-tune merged into the weights (no adapter kernels), "
        f"serving its share of the load: --concurrency {o.concurrency} x its request share in flight (a deployment idle "
        "most of the time when that is below 1); USD/Mtok dedicated = N deployments' USD/h over all their tokens. USD/h per "
        "tenant: shared = the deployment's USD/h / N; dedicated = the deployment's whole USD/h.",
        model_note(d.scenario, None),
    ]
    return out


def warnings_for(o: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Rows that queue or do not fit, and why."""
    out = []
    queued = [f"{r['adapters']:,} ({r['adapter_mode']})" for r in rows if r["fits"] and (r["running"] or 0) < r["concurrency"]]
    if queued:
        out.append(f"Tenants {', '.join(queued)}: fewer than --concurrency {o.concurrency} requests run at once (KV cache "
                   "beside the adapters, engine cap); the rest queue and TTFT includes the wait.")
    unfit = [f"{r['adapters']:,} tenants ({r['adapter_mode']})" for r in rows if not r["fits"]]
    if unfit:
        out.append(f"{', '.join(unfit)}: the adapters leave no room for one request's KV cache, so no figure is shown; "
                   "fewer --adapter-slots, a lower --lora-rank or more GPUs make room.")
    return out


def run(o: Any, limits: Thresholds) -> Result:
    """``tokecon tenants``: tokecon.api.commands.TenantsOptions."""
    positive_ints(list(o.adapters) + [o.lora_rank, o.adapter_slots, o.concurrency, o.input_len, o.output_len],
                  "--adapters/--lora-rank/--adapter-slots/--concurrency/--input-len/--output-len")
    if not (o.host_link_gb_s > 0 and np.isfinite(o.host_link_gb_s)):
        raise TokeconError(f"--host-link-gb-s must be a positive number, got {o.host_link_gb_s}")
    serve = ServingRequest(device_request(o), cost=CostModel(usd_per_gpu_hour=o.usd_per_gpu_hour))
    catalog = serve.common.load()
    check_workload(catalog.models.get(o.model), o.input_len, o.output_len)
    context = o.input_len + o.output_len
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    method: list[str] = []
    deployed: list[Deployed] = []
    for gpus in o.gpus:
        d = deploy(catalog, serve, parse_gpus(gpus, catalog), context)
        require_fit(d.scenario, context)
        deployed.append(d)
        these = []
        for n in o.adapters:
            for slots in (None, o.adapter_slots) if n > o.adapter_slots else (None,):
                lora = adapters_of(o, n, slots)
                t = lora_mode.serve_tenants(d.scenario, lora, np.asarray([float(o.concurrency)]), o.input_len, o.output_len)
                these.append(tenant_row(d, lora, t))
        rows.extend(these)
        notes += _answer(d, these) + warnings_for(o, these)
        method += method_for(d, o, these)
    notes += serving_assumptions(deployed)
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": [d.scenario.deployment.label for d in deployed],
        "adapters": list(o.adapters),
        "lora_rank": o.lora_rank,
        "lora_targets": ",".join(lora_mode.parse_targets(o.lora_targets)),
        "popularity": o.popularity,
        "zipf_alpha": lora_mode.parse_popularity(o.popularity),
        "adapter_slots": o.adapter_slots,
        "host_link_b_s": o.host_link_gb_s * GB,
        "concurrency": o.concurrency,
        "input_tokens": o.input_len,
        "output_tokens": o.output_len,
    }
    result = Result("tenants", inputs, rows, COLUMNS, notes=list(dict.fromkeys(notes)), method=list(dict.fromkeys(method)),
                    sources=sources([d.scenario for d in deployed]))
    return limits.apply(result)


def _answer(d: Deployed, rows: list[dict[str, Any]]) -> list[str]:
    """What sharing saves: at the most tenants that fit, the shared price against a deployment each."""
    fit = [r for r in rows if r["fits"] and r.get("dedicated_over_shared")]
    if not fit:
        return []
    r = max(fit, key=lambda r: r["adapters"])
    return [f"{d.label}: {r['adapters']:,} tenants sharing one deployment ({r['adapter_mode']}) pay {r['usd_per_mtok']:.3g} "
            f"USD/Mtok, {r['dedicated_over_shared']:,.1f}x less than a deployment each ({r['dedicated_usd_per_mtok']:.3g})."]
