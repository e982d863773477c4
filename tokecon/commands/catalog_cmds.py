"""``tokecon hardware list|show|add`` and ``tokecon models list|show|import``: catalog views and edits.

Each function returns plain data (a :class:`Result`, or the entry and its TOML text); the CLI
renders it. ``show`` adds derived figures:

    hardware   ridge point = peak FLOP/s / memory B/s  (FLOP per byte read; below it a kernel is
               memory-bound), also at the fitted efficiencies; FLOP/s and B/s per USD/h
    models     parameters, active parameters, weight bytes per storage type, KV bytes per token
               (GQA: L*2*K*hd*bytes, MLA: L*(kv_lora_rank + rope)*bytes; windowed layers capped)

Worked number: H100 SXM bf16 ridge = 989.4e12 FLOP/s / 3.35e12 B/s = 295 FLOP/B.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from tokecon.physics import params
from tokecon.catalogs.catalog import (
    EFFICIENCY_FIELDS,
    HARDWARE_FIELDS,
    MODEL_FIELDS,
    Catalog,
    builtin_paths,
    load_catalog,
    model_from_entry,
    read_toml,
    user_home,
    validate_entry,
)
from tokecon.catalogs.write import SaveReport, added_comment, ordered, render_entry, save_entry
from tokecon.errors import CatalogError, TokeconError
from tokecon.results import Column, Result
from tokecon.physics.specs import Hardware, Model, Precision
from tokecon.units import DTYPE_BYTES, GB, GIB

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def origin_label(origin: str) -> str:
    """'built-in' for the shipped catalogs, else the file path."""
    return "built-in" if origin in {str(p) for p in builtin_paths().values()} else origin


def _load(catalogs: tuple[Path, ...] | list[Path]) -> Catalog:
    return load_catalog(tuple(catalogs))


def _figure(key: str, label: str, value: Any, unit: str, display: str) -> dict[str, Any]:
    return {"figure": key, "label": label, "value": value, "unit": unit, "display": display}


SHOW_COLUMNS = [Column("label", "figure", "str"), Column("display", "value", "str")]


_LONG = ("aliases", "source", "origin", "efficiency", "price_points")  # shown as footnotes, not table rows


def _show(command: str, inputs: dict[str, Any], figures: list[dict[str, Any]], sources: dict[str, str]) -> Result:
    rows = [f for f in figures if f["figure"] not in _LONG]
    notes = [f"{f['label']}: {f['display']}" for f in figures if f["figure"] in _LONG]
    return Result(command, {**inputs, **{f["figure"]: f["value"] for f in figures if f["figure"] in _LONG}}, rows,
                  SHOW_COLUMNS, group_key=None, notes=notes, sources=sources)


# --- hardware ------------------------------------------------------------------------------------

HARDWARE_COLUMNS = [
    Column("hardware", "device", "str"),
    Column("name", "name", "str", hide=1),
    Column("memory_bytes", "memory [GB]", "bytes"),
    Column("memory_bw_b_s", "bandwidth [GB/s]", "bytes"),
    Column("bf16_flop_s", "bf16 [TFLOP/s]", "flop"),
    Column("fp8_flop_s", "fp8 [TFLOP/s]", "flop", hide=2),
    Column("fp4_flop_s", "fp4 [TFLOP/s]", "flop", hide=2),
    Column("rental_usd_per_hour", "USD/h", "usd"),
    Column("catalog", "catalog", "str", hide=1),
]


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


def hardware_list(o: Any = None, limits: Any = None) -> Result:
    catalogs = tuple(getattr(o, "catalog", ()))
    cat = _load(catalogs)
    rows = [_hardware_row(hw) for hw in sorted(cat.hardware, key=lambda h: h.key)]
    return Result("hardware list", {"files": list(cat.files)}, rows, HARDWARE_COLUMNS, group_key=None,
                  notes=[f"{len(rows)} devices; catalogs read: {', '.join(dict.fromkeys(origin_label(f) for f in cat.files))}"],
                  sources={f"hardware:{r['hardware']}": r["origin"] for r in rows})


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
                f"{hw.rental_usd_per_hour:,.2f} USD/h" + (f" ({hw.price_date})" if hw.price_date else "")),
    ]
    if hw.purchase_usd:
        f.append(_figure("purchase_usd", "purchase price", hw.purchase_usd, "USD", f"{hw.purchase_usd:,.0f} USD"))
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
                "; ".join(f"{p.date} {p.kind} " + (f"{p.usd:,.0f} USD" if p.kind == "purchase" else f"{p.usd:.2f} USD/h")
                          for p in sorted(hw.price_points, key=lambda p: (p.date, p.kind))) + " (sources in -f json)"
                if hw.price_points else "—"),
        _figure("origin", "catalog file", hw.origin, "", origin_label(hw.origin)),
    ]
    return f


def hardware_show(o: Any, limits: Any = None) -> Result:
    name, catalogs = o.name, tuple(o.catalog)
    hw = _load(catalogs).hardware.get(name)
    spec = dataclasses.asdict(hw) | {"price_points": [p.as_entry() for p in hw.price_points]}
    return _show(f"hardware show {hw.key}", {"hardware": hw.key, "spec": spec}, hardware_figures(hw),
                 {f"hardware:{hw.key}": hw.origin})


# --- models --------------------------------------------------------------------------------------

MODEL_COLUMNS = [
    Column("model", "model", "str"),
    Column("name", "name", "str", hide=1),
    Column("params_b", "params [B]", "num"),
    Column("active_params_b", "active [B]", "num"),
    Column("layers", "layers", "int", hide=2),
    Column("architecture", "architecture", "str", hide=2),
    Column("weight_dtype", "weights", "str"),
    Column("max_context", "context [tok]", "int"),
    Column("catalog", "catalog", "str", hide=1),
]


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


def models_list(o: Any = None, limits: Any = None) -> Result:
    catalogs = tuple(getattr(o, "catalog", ()))
    cat = _load(catalogs)
    rows = [_model_row(m) for m in sorted(cat.models, key=lambda m: m.key)]
    return Result("models list", {"files": list(cat.files)}, rows, MODEL_COLUMNS, group_key=None,
                  notes=[f"{len(rows)} models; parameters from the architecture formula (tokecon.physics.params)"],
                  sources={f"model:{r['model']}": r["origin"] for r in rows})


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


def models_show(o: Any, limits: Any = None) -> Result:
    name, catalogs = o.name, tuple(o.catalog)
    from tokecon.serving.deploy import resolve_model

    m = resolve_model(_load(catalogs), name)
    spec = dataclasses.asdict(m)
    return _show(f"models show {m.key}", {"model": m.key, "spec": spec}, model_figures(m), {f"model:{m.key}": m.origin})


# --- writing entries -----------------------------------------------------------------------------


def user_catalog_path(kind: str) -> Path:
    return user_home() / f"{kind}.toml"


def raw_entry(catalog: Catalog, kind: str, name: str) -> tuple[str, dict[str, Any]]:
    """The catalog-unit fields of an entry as its file wrote them (for ``hardware add --like``)."""
    entry = catalog.registry(kind).get(name)
    data = read_toml(Path(entry.origin))
    table = data.get(kind, data) if entry.origin not in {str(p) for p in builtin_paths().values()} else data
    if entry.key not in table and kind in data:
        table = data[kind]
    return entry.key, dict(table[entry.key])


def _check_key(key: str, what: str) -> None:
    if not _KEY.match(key):
        raise TokeconError(
            f"{what} name '{key}' must be 1-64 characters of letters, digits, '.', '_', '+' or '-', starting with a letter or digit"
        )


def _flagify(message: str, flags: dict[str, str]) -> str:
    """Rewrite "field 'memory_gb'" as "--memory-gb" where the field came from the command line."""
    return re.sub(r"field '([a-z0-9_]+)'", lambda m: flags.get(m.group(1), m.group(0)), message)


def _merge_check(catalog: Catalog, kind: str, key: str, entry: dict[str, Any]) -> str | None:
    """Add the entry to a throwaway copy of the loaded catalog as if it came from the user file, so a
    clash (an alias that is another entry's name, a name used twice in that file) is refused before
    anything is written. Returns a note when ``key`` overrides an existing entry."""
    from tokecon.catalogs.catalog import _BUILDERS

    reg = catalog.registry(kind)
    origin = str(user_catalog_path(kind))
    note = next((f"overrides [{k}] from {origin_label(e.origin)}" for k, e in reg.entries.items()
                 if k.lower() == key.lower() and e.origin != origin), None)
    if note is None:
        note = next((f"'{key}' now names this entry instead of [{k}], whose alias it was" for k, e in reg.entries.items()
                     if key.lower() in (a.lower() for a in e.aliases) and e.origin != origin), None)
    reg.add(key, _BUILDERS[kind](key, entry, origin), tuple(entry.get("aliases", ())), origin)
    return note


HARDWARE_DEFAULTS: dict[str, Any] = {
    "vendor": "custom",
    "family": "custom",
    "scaleup_link": "PCIe Gen5 x16",
    "scaleup_bw_gb_s": 64.0,
    "scaleup_domain": 8,
    "scaleout_bw_gb_s": 50.0,
    "power_w": 700.0,
}
EFFICIENCY_DEFAULTS: dict[str, Any] = {"compute": 0.7, "memory_bw": 0.8, "link": 0.8, "collective_latency_us": 8.0}


@dataclasses.dataclass
class NewEntry:
    kind: str
    key: str
    entry: dict[str, Any]
    text: str
    note: str | None = None  # e.g. "overrides [h100-sxm] from built-in"
    saved: SaveReport | None = None
    summary: str = ""


def add_hardware(
    key: str,
    fields: dict[str, Any],
    efficiency: dict[str, Any] | None = None,
    like: str | None = None,
    aliases: list[str] | None = None,
    catalogs: tuple[Path, ...] = (),
    save: bool = False,
    force: bool = False,
) -> NewEntry:
    """A hardware entry from command-line figures (catalog units: memory_gb, memory_bw_tb_s, ...).

    ``like`` starts from an existing device's entry; otherwise the fields in
    :data:`HARDWARE_DEFAULTS` fill what was not given, and the entry's notes list them.
    """
    key = key.strip()
    _check_key(key, "device")
    given = {k: v for k, v in fields.items() if v is not None}
    cat = _load(catalogs)
    flags = {k: f"--{k.replace('_', '-')}" for k in fields}
    flags.update(name="--full-name", compute="--compute-efficiency", memory_bw="--memory-bw-efficiency")
    if like:
        base_key, base = raw_entry(cat, "hardware", like)
        base.pop("aliases", None)
        if "memory_gb" in given:
            base.pop("memory_usable_gib", None)
        entry = {**base, **given}
        entry.setdefault("name", key)
        if "name" not in given:
            entry["name"] = f"{base.get('name', base_key)} (modified: {key})"
        changed = ", ".join(sorted([*given, *(f"efficiency.{k}" for k, v in (efficiency or {}).items() if v is not None)])) or "nothing"
        entry["source"] = given.get("source") or f"tokecon hardware add --like {base_key}; changed: {changed}"
        entry["notes"] = f"copied from [{base_key}] ({origin_label(cat.hardware.get(base_key).origin)}); changed: {changed}"
        eff = {**base.get("efficiency", EFFICIENCY_DEFAULTS), **{k: v for k, v in (efficiency or {}).items() if v is not None}}
    else:
        missing = [f for f in ("memory_gb", "memory_bw_tb_s", "bf16_tflop_s", "rental_usd_per_hour") if f not in given]
        if missing:
            raise TokeconError(
                f"hardware add needs {', '.join(flags[f] for f in missing)} (or --like DEVICE to start from a catalog device)"
            )
        defaulted = [f for f in HARDWARE_DEFAULTS if f not in given]
        entry = {"name": key, **HARDWARE_DEFAULTS, **given}
        entry.setdefault("source", "user-supplied figures (tokecon hardware add)")
        if defaulted:
            entry["notes"] = "defaults, not measured: " + ", ".join(f"{f} = {HARDWARE_DEFAULTS[f]}" for f in defaulted)
        eff = {**EFFICIENCY_DEFAULTS, **{k: v for k, v in (efficiency or {}).items() if v is not None}}
    eff["fitted_on"] = "default (not fitted)" if not like else eff.get("fitted_on", "default (not fitted)")
    entry["efficiency"] = eff
    if aliases:
        entry["aliases"] = [a.strip() for a in aliases if a.strip()]
    entry = ordered(entry, HARDWARE_FIELDS)
    entry["efficiency"] = ordered(entry["efficiency"], EFFICIENCY_FIELDS)
    try:
        validate_entry("hardware", key, entry, "tokecon hardware add")
    except CatalogError as exc:
        raise TokeconError(_flagify(str(exc), flags)) from None
    note = _merge_check(cat, "hardware", key, entry)
    return _finish("hardware", key, entry, "hardware add", note, save, force)


def import_model(
    config: Path, name: str | None = None, catalogs: tuple[Path, ...] = (), save: bool = False, force: bool = False
) -> NewEntry:
    """``tokecon models import``: a models.toml entry from a Hugging Face config.json."""
    from tokecon.catalogs.hf_config import import_config_file

    if name is not None:
        _check_key(name.strip(), "model")
    key, entry = import_config_file(Path(config), name.strip() if name else None)
    entry = ordered(entry, MODEL_FIELDS)
    note = _merge_check(_load(catalogs), "models", key, entry)
    m = model_from_entry(key, entry, str(config))
    total, active = params.total_params(m), params.active_params(m)
    kv = params.kv_bytes_per_token(m, "bf16")
    summary = (f"{total / 1e9:,.3f} B parameters, {active / 1e9:,.3f} B active (with the input embedding); "
               f"KV cache {kv:,.0f} B per token at bf16; "
               f"weights {params.weight_bytes(m, Precision(m.weight_dtype, experts=m.expert_dtype)) / GB:,.1f} GB")
    return _finish("models", key, entry, "models import", note, save, force, summary)


def _finish(kind: str, key: str, entry: dict[str, Any], command: str, note: str | None, save: bool, force: bool,
            summary: str = "") -> NewEntry:
    comment = added_comment(command) + (f"\n{summary}" if summary else "")
    # printed in the form `--catalog FILE` reads ([hardware.NAME]); --save writes the bare [NAME]
    # table that $TOKECON_HOME/hardware.toml holds
    text = render_entry(key, entry, comment, kind)
    result = NewEntry(kind, key, entry, text, note, summary=summary)
    if save:
        result.saved = save_entry(user_catalog_path(kind), key, entry, force=force, comment=comment)
    return result


# --- engines -------------------------------------------------------------------------------------

ENGINE_COLUMNS = [
    Column("engine", "engine", "str"),
    Column("family", "family", "str", hide=2),
    Column("versions", "versions", "str"),
    Column("compute_scale", "compute x", "num"),
    Column("memory_bw_scale", "bandwidth x", "num"),
    Column("step_overhead_s", "step [ms]", "time"),
    Column("max_running_requests", "max running", "int", hide=1),
    Column("kv_admission", "KV admission", "str", hide=1),
]


def engines_list(o: Any = None, limits: Any = None) -> Result:
    catalogs = tuple(getattr(o, "catalog", ()))
    """Every engine generation: version range, fitted scales and overheads, scheduling defaults."""
    cat = _load(catalogs)
    rows = [{"engine": e.key, "name": e.name, "family": e.family, "versions": e.version_range,
             "version_from": e.version_from, "version_before": e.version_before,
             "compute_scale": e.compute_scale, "memory_bw_scale": e.memory_bw_scale,
             "step_overhead_s": e.step_overhead_s, "step_overhead_per_layer_s": e.step_overhead_per_layer_s,
             "step_overhead_per_seq_s": e.step_overhead_per_seq_s, "moe_tokens_half": e.moe_tokens_half,
             "max_running_requests": e.max_running_requests, "prefill_chunk_tokens": e.prefill_chunk_tokens,
             "chunked_prefill": e.chunked_prefill, "kv_admission": e.kv_admission, "fitted_on": e.fitted_on,
             "origin": e.origin, "catalog": origin_label(e.origin)}
            for e in sorted(cat.engines, key=lambda e: (e.family, e.version_from, e.key))]
    fitted = sorted({r["fitted_on"] for r in rows})
    notes = ["--engine NAME@VERSION picks the generation whose range covers VERSION (the nearest older one "
             "otherwise, with a note); a plain NAME is the profile of that key, the current generation.",
             "compute x / bandwidth x: scales on the device's fitted fractions of peak (TensorRT-LLM 0.x = 1).",
             *(f"fitted on: {f}" for f in fitted)]
    return Result("engines list", {"files": list(cat.files)}, rows, ENGINE_COLUMNS, group_key=None, notes=notes,
                  sources={f"engine:{r['engine']}": r["origin"] for r in rows})


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
        _figure("kv_admission", "KV admission", e.kv_admission, "",
                "input + output tokens reserved" if e.kv_admission == "full" else "input + output/2 reserved (average)"),
        _figure("memory_reserve_fraction", "memory reserve", e.memory_reserve_fraction, "", f"{e.memory_reserve_fraction:.0%} of device memory"),
        _figure("moe_tokens_half", "grouped-GEMM half point", e.moe_tokens_half, "tok", f"{e.moe_tokens_half:,.0f} tokens per expert"),
        _figure("fitted_on", "fitted on", e.fitted_on, "", e.fitted_on),
        _figure("source", "source", e.source, "", e.source or "—"),
        _figure("origin", "catalog", e.origin, "", origin_label(e.origin)),
    ]


def engines_show(o: Any, limits: Any = None) -> Result:
    name, catalogs = o.name, tuple(o.catalog)
    """One engine profile (``NAME`` or ``NAME@VERSION``, resolved as --engine resolves it)."""
    e = _load(catalogs).engines.get(name)
    figures = engine_figures(e)
    if e.version_note:
        figures.insert(3, _figure("version_note", "resolved", e.version_note, "", e.version_note))
    return _show(f"engines show {e.key}", {"engine": e.key, "spec": dataclasses.asdict(e)}, figures,
                 {f"engine:{e.key}": e.origin})


def hardware_add(o: Any, limits: Any = None) -> NewEntry:
    """``tokecon hardware add``: tokecon.api.commands.HardwareAddOptions."""
    fields = {k: getattr(o, k) for k in ("memory_gb", "memory_bw_tb_s", "bf16_tflop_s", "rental_usd_per_hour", "fp8_tflop_s",
                                          "fp4_tflop_s", "int8_tops", "scaleup_link", "scaleup_bw_gb_s", "scaleup_domain",
                                          "scaleout_bw_gb_s", "power_w", "purchase_usd", "vendor", "family", "source")}
    fields["name"] = o.full_name
    eff = {"compute": o.compute_efficiency, "memory_bw": o.memory_bw_efficiency}
    aliases = [a for a in (o.aliases or "").split(",") if a.strip()]
    return add_hardware(o.name, fields, eff, o.like, aliases, tuple(o.catalog), o.save, o.force)


def models_import(o: Any, limits: Any = None) -> NewEntry:
    """``tokecon models import``: tokecon.api.commands.ModelsImportOptions."""
    return import_model(o.config, o.name, tuple(o.catalog), o.save, o.force)
