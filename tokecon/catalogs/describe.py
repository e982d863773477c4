"""What the catalogs hold, described for people: a device's figures (peaks, ridge points, figures of
merit per USD), a model's (parameters, bytes per storage type, KV bytes per token), an engine's.

    ridge point = peak FLOP/s / memory B/s  (FLOP per byte read; below it a kernel is memory-bound),
                  also at the fitted efficiencies
    KV per token: GQA L*2*K*hd*bytes, MLA L*(kv_lora_rank + rope)*bytes; windowed layers capped

Worked number: H100 SXM bf16 ridge = 989.4e12 FLOP/s / 3.35e12 B/s = 295 FLOP/B.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tokecon.catalogs.catalog import builtin_paths
from tokecon.physics import params
from tokecon.physics.specs import Hardware, Model, Precision
from tokecon.units import DTYPE_BYTES, GB, GIB


def origin_label(origin: str) -> str:
    """'built-in' for the shipped catalogs, else the file path."""
    return "built-in" if origin in {str(p) for p in builtin_paths().values()} else origin


def _figure(key: str, label: str, value: Any, unit: str, display: str) -> dict[str, Any]:
    return {"figure": key, "label": label, "value": value, "unit": unit, "display": display}


def _hardware_row(hw: Hardware) -> dict[str, Any]:
    return {
        "hardware": hw.key,
        "name": hw.name,
        "vendor": hw.vendor,
        "memory_bytes": hw.memory_bytes,
        "memory_bw_b_s": hw.memory_bw_b_s,
        "bf16_flop_s": hw.flop_s.get("bf16"),
        "fp8_flop_s": hw.flop_s.get("fp8"),
        "fp4_flop_s": hw.flop_s.get("fp4"),
        "rental_usd_per_hour": hw.rental_usd_per_hour,
        "aliases": list(hw.aliases),
        "origin": hw.origin,
        "catalog": origin_label(hw.origin),
    }


def ridge_points(hw: Hardware) -> dict[str, tuple[float, float]]:
    """Per compute type: (peak ridge, achievable ridge) in FLOP/B."""
    e = hw.efficiency
    return {
        dtype: (flop_s / hw.memory_bw_b_s, flop_s * e.compute / (hw.memory_bw_b_s * e.memory_bw))
        for dtype, flop_s in hw.flop_s.items()
    }


def hardware_figures(hw: Hardware) -> list[dict[str, Any]]:
    e = hw.efficiency
    f = [
        _figure("name", "name", hw.name, "", hw.name),
        _figure("vendor", "vendor / family", f"{hw.vendor} / {hw.family}", "", f"{hw.vendor} / {hw.family}"),
        _figure("memory_bytes", "usable memory", hw.memory_bytes, "B",
                f"{hw.memory_bytes / GB:,.1f} GB = {hw.memory_bytes / GIB:,.1f} GiB (decimal GB; datasheet labels "
                "such as '141GB' are often GiB-sized, what the driver reports)"),
        _figure("memory_bw_b_s", "memory bandwidth", hw.memory_bw_b_s, "B/s", f"{hw.memory_bw_b_s / 1e12:,.3g} TB/s"),
    ]
    if hw.memory_kind == "sram":
        f.append(_figure("memory_kind", "memory kind", hw.memory_kind, "", "on-chip SRAM: a model spreads over the chips "
                         f"that hold it, pipelined (`-g {hw.key}` without a count sizes that); serving stack {hw.engine or 'vllm'}"))
    for i, t in enumerate(hw.memory_tiers):
        f.append(_figure(f"memory_tier_{i + 1}", f"memory tier {i + 1}", {"name": t.name, "capacity_bytes": t.capacity_bytes,
                         "bw_b_s": t.bw_b_s}, "", f"{t.name}: {t.capacity_bytes / GB:,.0f} GB at {t.bw_b_s / GB:,.0f} GB/s"))
    for dtype, flop_s in hw.flop_s.items():
        unit = "TOPS (integer op/s)" if dtype == "int8" else "TFLOP/s"
        f.append(_figure(f"{dtype}_flop_s", f"{dtype} dense peak", flop_s, "op/s" if dtype == "int8" else "FLOP/s",
                         f"{flop_s / 1e12:,.1f} {unit}"))
    for dtype, (peak, real) in ridge_points(hw).items():
        per_b = "op/B" if dtype == "int8" else "FLOP/B"
        f.append(_figure(f"ridge_point_{dtype}_flop_per_b", f"ridge point {dtype}", peak, per_b,
                         f"{peak:,.0f} {per_b} peak, {real:,.0f} {per_b} at the efficiency factors"))
    f += [
        _figure("scaleup_bw_b_s", f"scale-up ({hw.scaleup_link})", hw.scaleup_bw_b_s, "B/s",
                f"{hw.scaleup_bw_b_s / GB:,.0f} GB/s per direction, domain of {hw.scaleup_domain}"),
        _figure("scaleout_bw_b_s", "scale-out", hw.scaleout_bw_b_s, "B/s", f"{hw.scaleout_bw_b_s / GB:,.0f} GB/s per direction"),
        _figure("power_w", "power", hw.power_w, "W", f"{hw.power_w:,.0f} W"),
        _figure("rental_usd_per_hour", "rental price", hw.rental_usd_per_hour, "USD/h",
                f"{hw.rental_usd_per_hour:,.2f} USD per GPU-hour" + (f" ({hw.price_date})" if hw.price_date else "")
                + f"; every dated price: tokecon prices show {hw.key}"),
    ]
    if hw.purchase_usd:
        f.append(_figure("purchase_usd", "capital (server share)", hw.purchase_usd, "USD",
                         f"{hw.purchase_usd:,.0f} USD per GPU with its share of host, NICs, chassis and scale-up switches"))
    bf16 = hw.flop_s["bf16"]
    f += [
        _figure("bf16_flop_s_per_usd_h", "bf16 peak FLOP/s per USD/h", bf16 / hw.rental_usd_per_hour, "FLOP/s/(USD/h)",
                f"{bf16 / hw.rental_usd_per_hour / 1e12:,.0f} TFLOP/s per USD/h"),
        _figure("memory_bw_b_s_per_usd_h", "peak bandwidth per USD/h", hw.memory_bw_b_s / hw.rental_usd_per_hour, "B/s/(USD/h)",
                f"{hw.memory_bw_b_s / hw.rental_usd_per_hour / GB:,.0f} GB/s per USD/h"),
        _figure("efficiency", "efficiency", dataclasses.asdict(e), "",
                f"compute {e.compute:.0%}, memory {e.memory_bw:.0%}, link {e.link:.0%}, "
                f"{e.collective_latency_s * 1e6:.0f} us per collective ({e.fitted_on})"),
        _figure("aliases", "aliases", list(hw.aliases), "", ", ".join(hw.aliases) or "—"),
        _figure("source", "source", hw.source, "", hw.source),
        _figure("price_points", "dated prices", [p.as_entry() for p in hw.price_points], "",
                f"{len(hw.price_points)} points with scope, class and source: tokecon prices show {hw.key}"),
        _figure("origin", "catalog file", hw.origin, "", origin_label(hw.origin)),
    ]
    return f


def _architecture(m: Model) -> str:
    parts = ["MLA" if m.is_mla else ("MHA" if m.kv_heads == m.heads else f"GQA {m.heads}/{m.kv_heads}")]
    if m.is_moe:
        parts.append(f"MoE {m.experts_per_token}/{m.experts}" + (f"+{m.shared_experts}" if m.shared_experts else ""))
    if m.sliding_layers:
        parts.append(f"window {m.sliding_window} on {m.sliding_layers}/{m.layers}")
    if not m.causal:
        parts.append("encoder")
    return ", ".join(parts)


def _model_row(m: Model) -> dict[str, Any]:
    total, active = params.total_params(m), params.active_params(m)
    return {
        "model": m.key,
        "name": m.name,
        "params": total,
        "active_params": active,
        "params_b": round(total / 1e9, 3),
        "active_params_b": round(active / 1e9, 3),
        "layers": m.layers,
        "architecture": _architecture(m),
        "weight_dtype": m.weight_dtype + (f"/{m.expert_dtype}" if m.expert_dtype else ""),
        "max_context": m.max_context,
        "aliases": list(m.aliases),
        "origin": m.origin,
        "catalog": origin_label(m.origin),
    }


def model_figures(m: Model) -> list[dict[str, Any]]:
    total, active = params.total_params(m), params.active_params(m)
    active_ex = params.active_params(m, exclude_embeddings=True)
    f = [
        _figure("name", "name", m.name, "", m.name),
        _figure("architecture", "architecture", _architecture(m), "", _architecture(m)),
        _figure("shape", "shape", {"layers": m.layers, "hidden_size": m.hidden_size, "heads": m.heads,
                                   "kv_heads": m.kv_heads, "head_dim": m.head_dim}, "",
                f"L={m.layers}, D={m.hidden_size}, H={m.heads}, K={m.kv_heads}, hd={m.head_dim}, "
                f"F={m.intermediate_size}, V={m.vocab_size}"),
        _figure("params", "parameters", total, "", f"{total:,} ({total / 1e9:,.3f} B)"),
        _figure("active_params", "active parameters", active, "",
                f"{active:,} ({active / 1e9:,.3f} B; {active_ex / 1e9:,.3f} B without the input embedding)"),
    ]
    if m.published_params_b:
        diff = total / (m.published_params_b * 1e9) - 1
        f.append(_figure("published_params", "published parameters", m.published_params_b * 1e9, "",
                         f"{m.published_params_b:g} B (formula {diff:+.2%})"))
    if m.published_active_params_b:
        ex = m.active_params_exclude_embeddings
        diff = params.active_params(m, ex) / (m.published_active_params_b * 1e9) - 1
        f.append(_figure("published_active_params", "published active parameters", m.published_active_params_b * 1e9, "",
                         f"{m.published_active_params_b:g} B ({'without' if ex else 'with'} the input embedding; formula {diff:+.2%})"))
    mm = 2.0 * params.matmul_params_per_token(m)
    f.append(_figure("flop_per_token", "FLOP per token (matmuls, before attention)", mm, "FLOP", f"{mm / 1e9:,.1f} GFLOP"))
    native = Precision(weights=m.weight_dtype, experts=m.expert_dtype)
    wb = params.weight_bytes(m, native)
    f.append(_figure("weight_bytes", f"weights ({m.weight_dtype}" + (f", experts {m.expert_dtype}" if m.expert_dtype else "") + ")",
                     wb, "B", f"{wb / GB:,.2f} GB (native)"))
    for dtype in DTYPE_BYTES:
        b = params.weight_bytes(m, Precision(weights=dtype))
        f.append(_figure(f"weight_bytes_{dtype}", f"weights at {dtype}", b, "B", f"{b / GB:,.2f} GB"))
    for kv in ("bf16", "fp8"):
        per_tok = params.kv_bytes_per_token(m, kv)
        f.append(_figure(f"kv_bytes_per_token_{kv}", f"KV cache per token ({kv})", per_tok, "B",
                         f"{per_tok:,.0f} B ({per_tok / 1e3:,.1f} kB)"))
    per_seq = params.kv_bytes_per_token(m, "bf16", float(m.max_context)) * m.max_context
    f.append(_figure("kv_bytes_per_seq_max_context_bf16", f"KV cache of one {m.max_context:,}-token sequence (bf16)",
                     per_seq, "B", f"{per_seq / GB:,.2f} GB" + (" (windowed layers capped)" if m.sliding_layers else "")))
    f += [
        _figure("max_context", "max context", m.max_context, "tok", f"{m.max_context:,} tokens"),
        _figure("aliases", "aliases", list(m.aliases), "", ", ".join(m.aliases) or "—"),
        _figure("source", "source", m.source, "", m.source),
        _figure("origin", "catalog file", m.origin, "", origin_label(m.origin)),
    ]
    return f


def engine_figures(e) -> list[dict[str, Any]]:
    """One engine profile's figures, each with its unit; source and origin as footnotes."""
    return [
        _figure("name", "name", e.name, "", e.name),
        _figure("family", "family", e.family, "", e.family or "—"),
        _figure("versions", "versions covered", e.version_range, "", e.version_range),
        _figure("compute_scale", "compute scale", e.compute_scale, "", f"{e.compute_scale:.3g} x the device's fitted compute fraction"),
        _figure("memory_bw_scale", "bandwidth scale", e.memory_bw_scale, "",
                f"{e.memory_bw_scale:.3g} x the device's fitted bandwidth fraction"),
        _figure("step_overhead_s", "overhead per step", e.step_overhead_s, "s", f"{e.step_overhead_s * 1e3:.2f} ms"),
        _figure("step_overhead_per_layer_s", "overhead per layer", e.step_overhead_per_layer_s, "s",
                f"{e.step_overhead_per_layer_s * 1e6:.0f} us (kernel launch floor; MoE layers count twice)"),
        _figure("step_overhead_per_seq_s", "overhead per sequence", e.step_overhead_per_seq_s, "s",
                f"{e.step_overhead_per_seq_s * 1e6:.0f} us per sequence per step"),
        _figure("max_running_requests", "max running requests", e.max_running_requests, "", f"{e.max_running_requests:,}"),
        _figure("prefill_chunk_tokens", "tokens per step", e.prefill_chunk_tokens, "tok",
                f"{e.prefill_chunk_tokens:,} ({'prompts chunked to fill it' if e.chunked_prefill else 'whole prompts batched up to it'})"),
        _figure("mixed_prefill", "prompts", e.mixed_prefill, "",
                "mixed into the decode steps" if e.mixed_prefill else "prefill-only steps first; decoding waits"),
        _figure("schedules_ahead", "scheduling", e.schedules_ahead, "",
                (f"next step prepared while one runs (from {e.schedules_ahead_from}): arrivals wait one step more"
                 if e.schedules_ahead else "synchronous: an arrival joins the next step")),
        _figure("mla_kernels", "MLA cache", e.mla_kernels, "",
                (f"latent (from {e.mla_kernels_from})" if e.mla_kernels_from else "latent") if e.mla_kernels
                else f"every head's key and value (latent from {e.mla_kernels_from})"),
        _figure("kv_admission", "KV admission", e.kv_admission, "",
                "input + output tokens reserved" if e.kv_admission == "full" else "input + output/2 reserved (average)"),
        _figure("memory_reserve_fraction", "memory reserve", e.memory_reserve_fraction, "", f"{e.memory_reserve_fraction:.0%} of device memory"),
        _figure("moe_tokens_half", "grouped-GEMM half point", e.moe_tokens_half, "tok", f"{e.moe_tokens_half:,.0f} tokens per expert"),
        _figure("fitted_on", "fitted on", e.fitted_on, "", e.fitted_on),
        _figure("source", "source", e.source, "", e.source or "—"),
        _figure("origin", "catalog", e.origin, "", origin_label(e.origin)),
    ]
