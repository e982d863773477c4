"""``tokecon hardware|models|engines list|show`` and ``hardware add``, ``models import``: the catalogs
as tables (the figures: tokecon.catalogs.describe; new entries: tokecon.catalogs.entries)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tokecon.catalogs.catalog import Catalog, load_catalog
from tokecon.catalogs.describe import _figure, _hardware_row, _model_row, engine_figures, hardware_figures, model_figures, origin_label
from tokecon.catalogs.entries import NewEntry, add_hardware, import_model
from tokecon.results import Column, Result



def _load(catalogs: tuple[Path, ...] | list[Path]) -> Catalog:
    return load_catalog(tuple(catalogs))


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
    Column("memory_bytes", "usable memory [GB]", "bytes"),
    Column("memory_bw_b_s", "bandwidth [GB/s]", "bytes"),
    Column("bf16_flop_s", "bf16 [TFLOP/s]", "flop"),
    Column("fp8_flop_s", "fp8 [TFLOP/s]", "flop", hide=2),
    Column("fp4_flop_s", "fp4 [TFLOP/s]", "flop", hide=2),
    Column("rental_usd_per_hour", "USD/h", "usd"),
    Column("catalog", "catalog", "str", hide=1),
]


def hardware_list(o: Any = None, limits: Any = None) -> Result:
    catalogs = tuple(getattr(o, "catalog", ()))
    cat = _load(catalogs)
    rows = [_hardware_row(hw) for hw in sorted(cat.hardware, key=lambda h: h.key)]
    files = cat.files_for("hardware")
    return Result("hardware list", {"files": files}, rows, HARDWARE_COLUMNS, group_key=None,
                  notes=[f"{len(rows)} devices; catalogs read: {', '.join(dict.fromkeys(origin_label(f) for f in files))}",
                         "Memory in decimal GB (1e9 B) here and in every table's memory/GPU column: what the "
                         "weights and KV cache fill. A datasheet's '80GB' is GiB-sized (80 GiB = 85.9 GB), so "
                         "the column can exceed the name's figure."],
                  sources={f"hardware:{r['hardware']}": r["origin"] for r in rows})


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


def models_list(o: Any = None, limits: Any = None) -> Result:
    catalogs = tuple(getattr(o, "catalog", ()))
    cat = _load(catalogs)
    rows = [_model_row(m) for m in sorted(cat.models, key=lambda m: m.key)]
    return Result("models list", {"files": cat.files_for("models")}, rows, MODEL_COLUMNS, group_key=None,
                  notes=[f"{len(rows)} models; parameters from the architecture formula (tokecon.physics.params)"],
                  sources={f"model:{r['model']}": r["origin"] for r in rows})


def models_show(o: Any, limits: Any = None) -> Result:
    name, catalogs = o.name, tuple(o.catalog)
    from tokecon.serving.resolve import resolve_model

    m = resolve_model(_load(catalogs), name)
    spec = dataclasses.asdict(m)
    return _show(f"models show {m.key}", {"model": m.key, "spec": spec}, model_figures(m), {f"model:{m.key}": m.origin})


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
             "chunked_prefill": e.chunked_prefill, "mixed_prefill": e.mixed_prefill, "schedules_ahead": e.schedules_ahead,
             "schedules_ahead_from": e.schedules_ahead_from, "kv_admission": e.kv_admission, "fitted_on": e.fitted_on,
             "origin": e.origin, "catalog": origin_label(e.origin)}
            for e in sorted(cat.engines, key=lambda e: (e.family, e.version_from, e.key))]
    fitted = sorted({r["fitted_on"] for r in rows})
    notes = ["--engine NAME@VERSION picks the generation whose range covers VERSION (the nearest older one "
             "otherwise, with a note); a plain NAME is the profile of that key, the current generation.",
             "compute x / bandwidth x: scales on the device's fitted fractions of peak (TensorRT-LLM 0.x = 1).",
             *(f"fitted on: {f}" for f in fitted)]
    return Result("engines list", {"files": cat.files_for("engines")}, rows, ENGINE_COLUMNS, group_key=None, notes=notes,
                  sources={f"engine:{r['engine']}": r["origin"] for r in rows})


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
