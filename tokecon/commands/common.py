"""Pieces every command shares: requests built from declared options, scenario rows, notes."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.physics import memory
from tokecon.physics import params
from tokecon.catalogs.catalog import Catalog
from tokecon.results import Column, Result
from tokecon.physics.roofline import StepTimes
from tokecon.errors import DoesNotFitError
from tokecon.serving.deploy import Deployed
from tokecon.serving.resolve import require_fit
from tokecon.serving.request import DeviceRequest, ModeOptions, ServingRequest, list_prices
from tokecon.physics.scenario import Scenario
from tokecon.units import GB


def scenario_inputs(scn: Scenario) -> dict[str, Any]:
    """Row fields that identify the deployment."""
    dep = scn.deployment
    return {
        "deployment": f"{dep.n_gpus}x {scn.hardware.name}" + (f", tp={dep.tp}" if dep.tp * dep.pp != dep.n_gpus else "")
        + (f", pp={dep.pp}" if dep.pp > 1 else ""),
        "hardware": scn.hardware.key,
        "n_gpus": dep.n_gpus,
        "tp": dep.tp,
        "pp": dep.pp,
        "replicas": dep.replicas,
    }


def breakdown_fields(t: StepTimes, i: int) -> dict[str, Any]:
    """Per operation of the step (the parts, shown first, sum to the total): time, FLOP, bytes, what bound it."""
    bound = t.breakdown_bound or {}
    return {"breakdown": {
        name: {"time_s": float(np.broadcast_to(v, t.step_time_s.shape).flat[i]),
               "flop": float(np.broadcast_to(t.breakdown_flop[name], t.step_time_s.shape).flat[i]),
               "bytes": float(np.broadcast_to(t.breakdown_bytes[name], t.step_time_s.shape).flat[i]),
               "bound": str(np.broadcast_to(bound[name], t.step_time_s.shape).flat[i]) if name in bound else None}
        for name, v in t.breakdown_s.items()
    }}


BREAKDOWN_COLUMNS = [
    Column("operation", "operation", "str"),
    Column("time_s", "time [ms]", "time"),
    Column("share", "share of step [%]", "pct"),
    Column("flop", "GFLOP", "gflop"),
    Column("bytes", "MB", "mbytes"),
    Column("intensity", "FLOP/B", "num"),
    Column("bound", "bound", "str"),
]


def breakdown_result(result: Result) -> Result:
    """``--explain``: the operations of each highlighted (cheapest) row, a table per deployment."""
    rows = []
    for i in sorted(result.highlight):
        row = result.rows[i]
        step = row.get("step_time_s") or row.get("ttft_s") or 0.0
        for name, d in (row.get("breakdown") or {}).items():
            rows.append({"deployment": f"{row['deployment']}, batch {row['batch']}", "operation": name,
                         "time_s": d["time_s"], "share": d["time_s"] / step if step else None, "flop": d["flop"],
                         "bytes": d["bytes"], "intensity": d["flop"] / d["bytes"] if d["bytes"] else None,
                         "bound": d["bound"]})
        if row.get("breakdown"):
            rows.append({"deployment": f"{row['deployment']}, batch {row['batch']}", "operation": "engine overhead",
                         "time_s": row["overhead_s"], "share": row["overhead_s"] / step if step else None,
                         "flop": 0.0, "bytes": 0.0, "intensity": None, "bound": "overhead"})
    notes = ["Per GPU, one step; operations totalled over the layers that share them. "
             "The step is their sum plus the engine's fixed overhead (parts sum to the total)."]
    return Result(f"{result.command} --explain", {"model": result.inputs.get("model")}, rows, BREAKDOWN_COLUMNS, notes=notes)


def step_fields(t: StepTimes, i: int) -> dict[str, Any]:
    return {
        "bound": str(t.bound.flat[i]),
        "flop": float(t.flop.flat[i]),
        "bytes": float(t.bytes.flat[i]),
        "compute_time_s": float(t.compute_time_s.flat[i]),
        "memory_time_s": float(t.memory_time_s.flat[i]),
        "comm_time_s": float(t.comm_time_s.flat[i]),
        "overhead_s": float(np.broadcast_to(t.overhead_s, t.step_time_s.shape).flat[i]),
        "weight_bytes": float(np.broadcast_to(t.weight_bytes, t.step_time_s.shape).flat[i]),
        "weight_read_s": float(np.broadcast_to(t.weight_read_s, t.step_time_s.shape).flat[i]),
    }


def fit_or_what_if(scn: Scenario, context: int, ignore_memory: bool) -> str | None:
    """Refuse a model that does not hold one ``context``-token sequence, unless ``ignore_memory``
    asks for the what-if (Tensor Economics' Llama 3.3 70B prefill on one H100): then a loud note
    saying so, and the rows run anyway with ``fits: false`` and ``memory_ignored: true``."""
    try:
        require_fit(scn, context)
    except DoesNotFitError as exc:
        if not ignore_memory:
            raise
        return (f"WHAT-IF (--ignore-memory): {exc}. The numbers are computed as if it fitted; "
                "no such deployment can run.")
    return None


def ignored_rows_note(rows: list[dict[str, Any]]) -> str | None:
    """The what-if note for batches computed with ``--ignore-memory`` although they do not fit."""
    ignored = [r for r in rows if r.get("memory_ignored")]
    if not ignored:
        return None
    r = ignored[0]
    return (f"WHAT-IF (--ignore-memory): {r['n_gpus']}x{r['hardware']} cannot hold batch "
            f"{', '.join(str(x['batch']) for x in ignored)} (batch {r['batch']} needs "
            f"{r['memory_used_bytes_per_gpu'] / GB:.1f} GB per GPU); computed as if it could.")


def unfit_fields(keys: tuple[str, ...]) -> dict[str, Any]:
    """A row for a batch that cannot exist in memory: no number is predicted."""
    return {k: None for k in keys}


def resolved_inputs(scn: Scenario) -> dict[str, Any]:
    m = scn.model
    return {
        "model": m.key,
        "model_name": m.name,
        "weight_dtype": scn.precision.weights,
        "checkpoint": scn.precision.recipe,
        "weight_components": scn.precision.components(),
        "kv_dtype": scn.precision.kv_cache,
        "kv_dtype_reason": scn.precision.kv_source,
        "engine": scn.engine.key,
        "ideal": scn.ideal,
        "params": params.total_params(m),
        "active_params": params.active_params(m),
    }


def sources(scenarios: list[Scenario]) -> dict[str, str]:
    out: dict[str, str] = {}
    for scn in scenarios:
        out[f"model:{scn.model.key}"] = scn.model.origin
        out[f"hardware:{scn.hardware.key}"] = scn.hardware.origin
        out[f"engine:{scn.engine.key}"] = scn.engine.origin
    return out


BOUND_NOTE = ("bound: what limits the operations that take most of the step's time (each operation is compute- or "
              "memory-bound on its own), so it can differ from the larger of the total compute and memory times: in "
              "decode the matmuls may turn compute-bound while attention over the KV cache stays memory-bound.")


def efficiency_note(scn: Scenario) -> str:
    if scn.ideal:
        return "Ideal roofline (--ideal): 100% of peak FLOP/s, bandwidth and link, no latency or overhead: an upper bound, not an expected figure."
    e = scn.hardware.efficiency
    return (
        f"{scn.hardware.key}: {scn.compute_efficiency:.0%} of peak FLOP/s, "
        f"{scn.memory_bw_efficiency:.0%} of memory bandwidth ({scn.kv_bw_efficiency:.0%} reading the KV cache), "
        f"{e.link:.0%} of link bandwidth, "
        f"{e.collective_latency_s * 1e6:.0f} us per collective, {scn.engine.step_overhead_s * 1e3:.1f} ms per step "
        f"+ {scn.engine.step_overhead_per_layer_s * 1e6:.0f} us per layer + {scn.engine.step_overhead_per_seq_s * 1e6:.0f} us "
        "per sequence "
        f"({scn.engine.name}, {scn.engine.version_range}; device: {e.fitted_on}; engine: {scn.engine.fitted_on})."
        + (f" Engine: {scn.engine.version_note}." if scn.engine.version_note else "")
        + "".join(f" {n}." for n in dict.fromkeys(filter(None, (scn.hardware.rate_note(d) for d in
                                                                  (scn.precision.weights, scn.precision.expert_weights)))))
    )


def weights_per_gpu_gb(scn: Scenario) -> float:
    return memory.weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment) / GB


def cost_fields(scn: Scenario, tok_s: np.ndarray | float) -> dict[str, Any]:
    usd_h = scn.usd_per_hour
    return {"usd_per_hour": usd_h, "usd_per_mtok": float(economics.usd_per_mtok(usd_h, tok_s))}


def cheapest(rows: list[dict[str, Any]]) -> int | None:
    best = [(r["usd_per_mtok"], i) for i, r in enumerate(rows) if r.get("usd_per_mtok") is not None]
    return min(best)[1] if best else None


def figures_of_merit(scn: Scenario) -> dict[str, Any]:
    """What one USD/h of this device buys: achievable matmul FLOP/s (the compute-bound phases:
    prefill, embeddings) and achievable memory B/s (decode). Achievable = peak x efficiency
    (peak with ``--ideal``); FLOP/s at the rate of the model's weight type.

    Worked number: H100 SXM at 989.4e12 FLOP/s x an efficiency of 0.72 = 712e12 FLOP/s for 2.99 USD/h
    -> 238e12 FLOP/s per USD/h; Tensor Economics' 750e12 at 2 USD/h gives 375e12.
    """
    hw = scn.hardware
    usd_h = scn.usd_per_hour / scn.deployment.n_gpus
    flop_s = hw.peak_flop_s(scn.precision.weights) * scn.compute_efficiency
    bytes_s = hw.memory_bw_b_s * scn.memory_bw_efficiency
    return {
        "usd_per_gpu_hour": usd_h,
        "device_flop_s": flop_s,
        "device_bytes_s": bytes_s,
        "flop_s_per_usd_per_hour": flop_s / usd_h if usd_h > 0 else float("inf"),
        "bytes_s_per_usd_per_hour": bytes_s / usd_h if usd_h > 0 else float("inf"),
    }


# --- declared options -> requests -------------------------------------------------------------------


def device_request(o: Any, gpus: tuple[str, ...] | None = None) -> DeviceRequest:
    """The devices, numerics and price of a command's declared options (groups it lacks take defaults)."""
    return DeviceRequest(o.model, tuple(getattr(o, "gpus", ()) if gpus is None else gpus), getattr(o, "tp", None),
                         getattr(o, "dtype", None), getattr(o, "kv_dtype", None), getattr(o, "engine", None),
                         getattr(o, "ideal", False), getattr(o, "usd_per_gpu_hour", None), tuple(getattr(o, "catalog", ())),
                         getattr(o, "pp", None), getattr(o, "eplb", False), getattr(o, "as_of", None))


COST_KEYS = ("usd_per_gpu_hour", "purchase_usd", "other_capital_ratio", "depreciation_years", "interest_rate", "pue",
             "usd_per_kwh", "utilisation", "tco_source", "tier", "as_of")


def cost_model(o: Any, method: str | None = None):
    """The cost model of the declared cost options: flags over a ``--cost-file``'s ``[cost]`` table."""
    from tokecon.economics.costs import resolve_cost_model

    flags = {"method": method or getattr(o, "cost", None), **{k: getattr(o, k, None) for k in COST_KEYS}}
    return resolve_cost_model(getattr(o, "cost_file", None), flags)


def serving_request(o: Any, layouts: str = "agg") -> ServingRequest:
    """Everything a serving command runs under, from its declared options, validated."""
    from tokecon.serving.request import DisaggSpec

    modes = ModeOptions(o.speculative, o.draft_tokens, o.acceptance, o.prefix_hit,
                        list_prices(o.price_in, o.price_in_cached, o.price_out), o.range_ratio)
    pools = DisaggSpec.given(*(getattr(o, k, None) for k in ("prefill_gpus", "prefill_workers", "prefill_layout", "prefill_batch",
                                                           "decode_gpus", "decode_workers", "decode_layout")))
    common = DeviceRequest(o.model, tuple(o.gpus), o.tp, o.dtype, o.kv_dtype, o.engine, o.ideal, None, tuple(o.catalog), o.pp, o.eplb)
    opts = ServingRequest(common, o.ep, o.attention_dp, o.chunked_prefill, o.max_num_tokens, o.sync_scheduling, cost_model(o), o.explain_cost,
                          o.price_split, modes, disagg=pools, layouts=layouts)
    opts.validate()
    return opts


def varied(result: Result, o: Any, costs: Any, catalog: Catalog) -> Result:
    """``result``, or with ``--vary`` its sensitivity table (tokecon.economics.sensitivity)."""
    vary = getattr(o, "vary", None)
    if not vary:
        return result
    from tokecon.economics.sensitivity import vary as sensitivity
    from tokecon.errors import TokeconError

    if len(vary) > 1:
        raise TokeconError(f"give --vary once (one cost input per table), got {len(vary)}: {', '.join(vary)}")
    return sensitivity(result, vary[0], costs, catalog.hardware.get)


# --- notes --------------------------------------------------------------------------------------


def _fit_words(fitted_on: str) -> str:
    """``tokecon validate --fit: 5217 rows, held-out median |error| 14.8% ...`` -> ``fitted: held-out
    median error 14.8%`` (in-sample when the fit that stored them says so); a default says so."""
    rows = re.search(r"(\d+) rows", fitted_on)
    err = re.search(r"(held-out |in-sample |)median \|error\| ([\d.]+%)", fitted_on)
    if not rows:
        return "default factors, not fitted"
    return f"fitted: {err.group(1)}median error {err.group(2)}" if err else f"fitted to {int(rows.group(1)):,} measurements"


def dated_prices(o: Any, scenarios: list[Scenario]) -> dict[str, str] | None:
    """With ``--as-of`` (and no price given), how each device's rental at that date was found."""
    from tokecon.economics.costs import CostModel, gpu_hour_cost

    if getattr(o, "as_of", None) is None or getattr(o, "usd_per_gpu_hour", None) is not None:
        return None
    costs = {s.hardware.key: gpu_hour_cost(s.hardware, CostModel(as_of=o.as_of)) for s in scenarios}
    return {key: f"{c.usd_per_gpu_hour:.3g} rental {c.price_note}" for key, c in costs.items()}


def assumptions(scenarios: list[Scenario], prices: dict[str, str] | None = None) -> list[str]:
    """What the figures assume, one line per engine: where its efficiency comes from (each device's
    factors are in the method, --explain) and each device's price per GPU-hour (``prices``: device key
    -> how it was priced, after the number of USD/GPU-h; default the catalog rental or the given price)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for scn in dict((s.hardware.key, s) for s in scenarios).values():
        hw = scn.hardware
        if scn.ideal:
            groups[("Ideal roofline (--ideal): 100% of every peak, no latency or overhead: an upper bound, not an "
                    "expected figure", "")] = []
            continue
        price = (prices or {}).get(hw.key) or (
            f"{scn.usd_per_gpu_hour:g} (given)" if scn.usd_per_gpu_hour is not None
            else f"{hw.rental_usd_per_hour:g} rental {catalog_price_source(hw)}")
        key = (scn.engine.name, _fit_words(hw.efficiency.fitted_on))
        groups.setdefault(key, []).append(f"{hw.key} {price}")
    said = "each device's efficiency: --explain). GPU-hour prices (USD): "
    lines = [f"{engine}" + (f" ({fit}; {said}" + "; ".join(devices) if devices else "") + "."
             for (engine, fit), devices in groups.items()]
    return lines + list(dict.fromkeys(filter(None, (precision_note(s) for s in scenarios))))


def precision_note(scn: Scenario) -> str | None:
    """The checkpoint's types when they are not one type for every matmul (a published recipe, or
    components given apart), and why the KV cache has its type; None for a plain native checkpoint."""
    prec, m = scn.precision, scn.model
    present = {"attention": True, "dense_mlp": m.ffn_dense_layers > 0, "shared_experts": m.is_moe and m.shared_experts > 0,
               "routed_experts": m.is_moe, "mtp": True}
    kinds = {k: v for k, v in prec.components().items() if present.get(k)}
    if prec.recipe in ("", "native") and len(set(kinds.values())) == 1:
        return None
    parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in kinds.items())
    kept = f"; {prec.dense_16bit_layers} dense MLP layers in 16-bit" if prec.dense_16bit_layers else ""
    why = prec.kv_source.removeprefix(f"{prec.kv_cache}: ")
    return f"{m.key} weights: {prec.recipe} ({parts}{kept}); KV cache {prec.kv_cache} ({why})."


def method_notes(scenarios: list[Scenario], regime: str) -> list[str]:
    """The method behind the figures, for ``--explain``: each device's full efficiency factors and the
    source of its 80% range."""
    from tokecon.fidelity import uncertainty

    notes = list(dict.fromkeys(efficiency_note(scn) for scn in scenarios))
    notes += list(dict.fromkeys(filter(None, (uncertainty.interval_note(scn, regime) for scn in scenarios))))
    return notes


def cost_label(d: Deployed) -> str:
    """How a deployment's GPU-hour was priced, in a few words."""
    c = d.cost
    if c.method != "rental" or c.as_of is not None:
        what = {"tco": "TCO", "tco-published": f"{c.tco_source} {c.tier} TCO", "rental": "rental"}[c.method]
        return f"{c.usd_per_gpu_hour:.3g} {what}" + (f" {c.price_note}" if c.as_of else "")
    return f"{c.usd_per_gpu_hour:.3g} rental " + (catalog_price_source(d.scenario.hardware)
                                                 if d.costs.usd_per_gpu_hour is None else "(given)")


def catalog_price_source(hw: Any) -> str:
    """Where a catalog rental comes from and its kind: "(catalog: neocloud on-demand, 2026-06)"; an
    entry that states its rental without a price point says "(catalog, undated)" when it gives no date."""
    from tokecon.economics import prices

    kind = prices.rental_kind(hw)
    return f"(catalog{': ' + kind if kind else ''}, {hw.price_date or 'undated'})"
