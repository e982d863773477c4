"""Load, validate and merge the hardware, model and engine catalogs.

Order of precedence (later wins, entry by entry): the built-in catalogs shipped with the
package, the user's ``$TOKECON_HOME/{hardware,models,engines}.toml`` (default
``~/.config/tokecon``), then files given with ``--catalog``. A ``--catalog`` file may hold
any of the three kinds, in top-level tables ``[hardware.X]``, ``[models.X]``, ``[engines.X]``.

Every error names the file, the entry and the field, in one line.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from dataclasses import field, replace
from pathlib import Path
from typing import Any, Callable

from tokecon.datafiles import data_file
from tokecon.economics import prices
from tokecon.errors import CatalogError, TokeconError
from tokecon.physics.specs import Efficiency, Engine, Hardware, MemoryTier, Model, PricePoint, Recipe, rack_scale
from tokecon.records import record
from tokecon.units import DTYPE_BYTES, GB, GIB, MS, TB, TFLOP, US
from tokecon.values import describe_number

KINDS = ("hardware", "models", "engines")


def _builtin_path(filename: str) -> Path:
    """The shipped catalog: package data in a wheel, the repository root in a checkout."""
    return data_file(filename)


@functools.lru_cache(maxsize=None)
def _builtin_paths() -> tuple[tuple[str, Path], ...]:
    return tuple((kind, _builtin_path(f"{kind}.toml")) for kind in KINDS)


def builtin_paths() -> dict[str, Path]:
    """The shipped catalogs by kind (found once per process: callers ask once per listed entry)."""
    return dict(_builtin_paths())


def user_home() -> Path:
    """``$TOKECON_HOME`` or the platform's user config folder (``~/.config/tokecon`` on Linux)."""
    env = os.environ.get("TOKECON_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tokecon"


# --- field schemas -----------------------------------------------------------------------
# key -> (python type(s), required, minimum (exclusive) for numbers or None)

_NUM = (int, float)


@record
class FieldSpec:
    types: tuple
    required: bool = False
    positive: bool = False  # > 0
    non_negative: bool = False
    upper: float | None = None  # absurd-value guard
    choices: tuple[str, ...] | None = None
    lower: float | None = None  # absurd-value guard below (e.g. an efficiency of 1e-300)


def _num(required=False, positive=True, upper=None, non_negative=False, lower=None):
    return FieldSpec(_NUM, required, positive and not non_negative, non_negative, upper, lower=lower)


def _int(required=False, positive=True, upper=None, non_negative=False):
    return FieldSpec((int,), required, positive and not non_negative, non_negative, upper)


_STR = FieldSpec((str,))
_BOOL = FieldSpec((bool,))
_ALIASES = FieldSpec((list,))

HARDWARE_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec((str,), True),
    "aliases": _ALIASES,
    "vendor": FieldSpec((str,), True),
    "family": FieldSpec((str,), True),
    "memory_gb": _num(True, upper=1e5),
    "memory_usable_gib": _num(upper=1e5),
    "memory_bw_tb_s": _num(True, upper=1e5),
    "memory_kind": FieldSpec((str,), choices=("dram", "sram")),
    "memory_tiers": FieldSpec((list,)),
    "engine": _STR,
    "gemm_tile_rows": _int(upper=1e4),
    "bf16_tflop_s": _num(True, upper=1e6),
    "fp8_tflop_s": _num(upper=1e6),
    "fp4_tflop_s": _num(upper=1e6),
    "int8_tops": _num(upper=1e6),
    "tf32_tflop_s": _num(upper=1e6),
    "scaleup_link": FieldSpec((str,), True),
    "scaleup_topology": FieldSpec((str,), choices=("switch", "mesh", "torus")),
    "scaleup_links": _int(upper=1e3),
    "scaleup_bw_gb_s": _num(True, upper=1e6),
    "scaleup_domain": _int(True, upper=1e6),
    "scaleout_bw_gb_s": _num(True, upper=1e6),
    "power_w": _num(True, upper=1e6),
    "all_in_power_w": _num(upper=1e7),
    "all_in_power_source": _STR,
    "purchase_usd": _num(upper=1e9),
    "rental_usd_per_hour": _num(upper=1e5),
    "price_date": _STR,
    "launched": _STR,
    "source": FieldSpec((str,), True),
    "notes": _STR,
    "efficiency": FieldSpec((dict,), True),
    "price_points": FieldSpec((list,)),
}

PRICE_POINT_FIELDS: dict[str, FieldSpec] = {
    "date": FieldSpec((str,), True),
    "kind": FieldSpec((str,), True, choices=prices.KINDS),
    "usd": _num(upper=1e9),
    "usd_per_hour": _num(upper=1e5),
    "scope": FieldSpec((str,), True, choices=prices.SCOPES),
    "source_class": FieldSpec((str,), True, choices=prices.SOURCE_CLASSES),
    "tier": FieldSpec((str,), True, choices=prices.TIERS),
    "rental_kind": FieldSpec((str,), choices=prices.RENTAL_KINDS),
    "unit": FieldSpec((str,), choices=prices.UNITS),
    "gpus_per_unit": _int(upper=1e6),
    "unit_usd": _num(upper=1e12),
    "unit_usd_per_hour": _num(upper=1e8),
    "provider": _STR,
    "derived_from": _ALIASES,
    "source": FieldSpec((str,), True),
    "notes": _STR,
}
_DATE = re.compile(r"^(19|20)\d\d(-(0[1-9]|1[0-2]))?$")

RECIPE_FIELDS: dict[str, FieldSpec] = {
    "dtype": FieldSpec((str,), True, choices=tuple(DTYPE_BYTES)),
    "checkpoint": _STR,
    "attention": FieldSpec((str,), choices=tuple(DTYPE_BYTES)),
    "dense_mlp": FieldSpec((str,), choices=tuple(DTYPE_BYTES)),
    "shared_experts": FieldSpec((str,), choices=tuple(DTYPE_BYTES)),
    "routed_experts": FieldSpec((str,), choices=tuple(DTYPE_BYTES)),
    "mtp": FieldSpec((str,), choices=tuple(DTYPE_BYTES)),
    "dense_16bit_layers": _int(non_negative=True, upper=1e4),
    "kv_cache": FieldSpec((str,), choices=tuple(DTYPE_BYTES)),
    "engines": _ALIASES,
    "source": FieldSpec((str,), True),
    "status": _STR,
    "notes": _STR,
}

MEMORY_TIER_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec((str,), True),
    "capacity_gb": _num(True, upper=1e8),
    "bw_tb_s": _num(True, upper=1e5),
    "source": _STR,
    "notes": _STR,
}

MIN_EFFICIENCY = 0.01  # no device x engine reaches under 1% of a peak; 1e-300 would make every time inf
EFFICIENCY_FIELDS: dict[str, FieldSpec] = {
    "compute": _num(True, upper=1.0, lower=MIN_EFFICIENCY),
    "memory_bw": _num(True, upper=1.0, lower=MIN_EFFICIENCY),
    "kv_bw": _num(upper=1.0, lower=MIN_EFFICIENCY),
    "link": _num(True, upper=1.0, lower=MIN_EFFICIENCY),
    "collective_latency_us": _num(True, non_negative=True, upper=1e5),
    "fitted_on": _STR,
}

_DTYPES = tuple(DTYPE_BYTES)

MODEL_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec((str,), True),
    "aliases": _ALIASES,
    "hf_id": _STR,
    "layers": _int(True, upper=1e4),
    "hidden_size": _int(True, upper=1e6),
    "heads": _int(True, upper=1e5),
    "kv_heads": _int(True, upper=1e5),
    "head_dim": _int(True, upper=1e5),
    "intermediate_size": _int(True, upper=1e7),
    "vocab_size": _int(True, upper=1e8),
    "tied_embeddings": _BOOL,
    "max_context": _int(True, upper=1e9),
    "weight_dtype": FieldSpec((str,), True, choices=_DTYPES),
    "expert_dtype": FieldSpec((str,), choices=_DTYPES),
    "attention": FieldSpec((str,), choices=("gqa", "mla")),
    "causal": _BOOL,
    "lm_head": _BOOL,
    "mlp": FieldSpec((str,), choices=("gated", "plain")),
    "norm": FieldSpec((str,), choices=("rmsnorm", "layernorm")),
    "qk_norm": _BOOL,
    "attention_bias": _BOOL,
    "linear_bias": _BOOL,
    "position_embeddings": _int(non_negative=True, upper=1e8),
    "extra_norms_per_layer": _int(non_negative=True, upper=100),
    "q_lora_rank": _int(non_negative=True, upper=1e6),
    "kv_lora_rank": _int(non_negative=True, upper=1e6),
    "qk_rope_head_dim": _int(non_negative=True, upper=1e5),
    "qk_nope_head_dim": _int(non_negative=True, upper=1e5),
    "v_head_dim": _int(non_negative=True, upper=1e5),
    "experts": _int(non_negative=True, upper=1e6),
    "experts_per_token": _int(non_negative=True, upper=1e6),
    "shared_experts": _int(non_negative=True, upper=1e3),
    "expert_intermediate_size": _int(non_negative=True, upper=1e7),
    "shared_expert_intermediate_size": _int(non_negative=True, upper=1e7),
    "dense_layers": _int(non_negative=True, upper=1e4),
    "expert_groups": _int(non_negative=True, upper=1e6),
    "expert_groups_per_token": _int(non_negative=True, upper=1e6),
    "sliding_window": _int(non_negative=True, upper=1e9),
    "sliding_layers": _int(non_negative=True, upper=1e4),
    "attention_chunk_size": _int(non_negative=True, upper=1e9),
    "chunked_layers": _int(non_negative=True, upper=1e4),
    "mtp_modules": _int(non_negative=True, upper=16),
    "recipes": FieldSpec((dict,)),
    "expert_load_cv": _num(non_negative=True, upper=100.0),
    "published_params_b": _num(upper=1e6),
    "published_active_params_b": _num(upper=1e6),
    "active_params_exclude_embeddings": _BOOL,
    "params_tolerance_pct": _num(upper=10.0),
    "params_source": _STR,
    "source": FieldSpec((str,), True),
    "notes": _STR,
}

ENGINE_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec((str,), True),
    "aliases": _ALIASES,
    "compute_scale": _num(True, upper=2.0),
    "memory_bw_scale": _num(True, upper=2.0),
    "step_overhead_ms": _num(True, non_negative=True, upper=1e4),
    "memory_reserve_fraction": _num(non_negative=True, upper=0.9),
    "memory_reserve_gb": _num(non_negative=True, upper=1e4),
    "memory_reserve_gb_per_rank": _num(non_negative=True, upper=1e3),
    "kv_free_fraction": _num(upper=1.0),
    "max_running_requests": _int(upper=1e6),
    "small_max_running_requests": _int(upper=1e6),
    "small_memory_gib": _num(upper=1e5),
    "prefill_chunk_tokens": _int(upper=1e7),
    "chunked_prefill": _BOOL,
    "mixed_prefill": _BOOL,
    "schedules_ahead_from": _STR,
    "mla_kernels_from": _STR,
    "kv_admission": FieldSpec((str,), choices=("average", "full")),
    "moe_tokens_half": _num(upper=1e5),
    "step_overhead_per_seq_us": _num(non_negative=True, upper=1e4),
    "step_overhead_per_layer_us": _num(non_negative=True, upper=1e4),
    "ttft_overhead_ms": _num(non_negative=True, upper=1e5),
    "checkpoint_kv_cache": _BOOL,
    "adp_prefill_balance": _num(non_negative=True, upper=1.0),
    "moe_layer_overhead_us": _num(non_negative=True, upper=1e5),
    "family": _STR,
    "built_from": _STR,
    "version_from": _STR,
    "version_before": _STR,
    "speculative": FieldSpec((list,)),
    "speculative_source": _STR,
    "source": FieldSpec((str,), True),
    "fitted_on": _STR,
    "notes": _STR,
}

SPECULATIVE_METHODS = ("mtp", "eagle", "draft")  # what an engine's ``speculative`` may list (tokecon.serving.speculative)
SCHEMAS = {"hardware": HARDWARE_FIELDS, "models": MODEL_FIELDS, "engines": ENGINE_FIELDS}


def _type_name(types: tuple) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list of strings", dict: "a table"}[
        types[-1] if types != _NUM else float
    ]


def validate_entry(kind: str, key: str, entry: Any, path: str, schema: dict[str, FieldSpec] | None = None) -> None:
    """Raise :class:`CatalogError` naming file, entry and field for the first problem found."""
    schema = schema or SCHEMAS[kind]
    where = f"{path}: [{key}]"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a table of fields, got {type(entry).__name__}")
    for name, value in entry.items():
        spec = schema.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(schema), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise CatalogError(f"{where}: unknown field '{name}'{hint}")
        ok = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
        if not ok:
            raise CatalogError(f"{where}: field '{name}' must be {_type_name(spec.types)}, got {describe_number(value)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # ints compare with the float limits exactly, whatever their size (1 and 400 zeros is
            # "implausibly large", not an OverflowError): no float(value) before these checks
            if isinstance(value, float) and not math.isfinite(value):
                raise CatalogError(f"{where}: field '{name}' must be finite, got {value!r}")
            if spec.positive and value <= 0:
                raise CatalogError(f"{where}: field '{name}' must be > 0, got {describe_number(value)}")
            if spec.non_negative and value < 0:
                raise CatalogError(f"{where}: field '{name}' must be >= 0, got {describe_number(value)}")
            if spec.upper is not None and value > spec.upper:
                raise CatalogError(f"{where}: field '{name}' = {describe_number(value)} is implausibly large (limit {spec.upper:g})")
            if spec.lower is not None and value < spec.lower:
                raise CatalogError(f"{where}: field '{name}' = {describe_number(value)} is implausibly small (at least {spec.lower:g})")
        if spec.choices and value not in spec.choices:
            raise CatalogError(f"{where}: field '{name}' must be one of {', '.join(spec.choices)}, got {value!r}")
        if name in ("aliases", "derived_from") and not all(isinstance(a, str) and a.strip() for a in value):
            raise CatalogError(f"{where}: field '{name}' must be a list of non-empty strings")
        if name == "speculative" and not all(a in SPECULATIVE_METHODS for a in value):
            raise CatalogError(f"{where}: field 'speculative' lists methods of {', '.join(SPECULATIVE_METHODS)}, got {value!r}")
        if name == "memory_tiers":
            for i, tier in enumerate(value):
                validate_entry("memory_tiers", f"{key}.memory_tiers[{i}]", tier, path, MEMORY_TIER_FIELDS)
    for name, spec in schema.items():
        if spec.required and name not in entry:
            raise CatalogError(f"{where}: missing required field '{name}'")
    if kind == "hardware":
        validate_entry("efficiency", f"{key}.efficiency", entry["efficiency"], path, EFFICIENCY_FIELDS)
        for n, point in enumerate(entry.get("price_points", [])):
            _validate_price_point(f"{key}.price_points[{n}]", point, path)
        if "rental_usd_per_hour" not in entry and not any(p["kind"] == "rental" for p in entry.get("price_points", [])):
            raise CatalogError(f"{where}: needs a rental price: field 'rental_usd_per_hour' or a rental in "
                               f"[[{key}.price_points]]")
        if ("all_in_power_w" in entry) != ("all_in_power_source" in entry):
            raise CatalogError(f"{where}: field 'all_in_power_w' needs 'all_in_power_source' (and the other way round)")
    if kind == "models":
        _validate_model_consistency(key, entry, where)
        for name, recipe in entry.get("recipes", {}).items():
            validate_entry("recipe", f"{key}.recipes.{name}", recipe, path, RECIPE_FIELDS)


def _validate_price_point(key: str, point: Any, path: str) -> None:
    """One ``[[NAME.price_points]]`` table: a past YYYY-MM date, ``usd`` for a purchase or ``usd_per_hour`` for a rental
    or TCO, a scope that fits the kind, a rental kind for a rental, a GPU count for an instance, inputs for a derived
    point, and a per-GPU value that is the quoted unit price over its GPUs."""
    validate_entry("price_point", key, point, path, PRICE_POINT_FIELDS)
    where = f"{path}: [{key}]"
    if not _DATE.match(point["date"]):
        raise CatalogError(f"{where}: field 'date' must be YYYY-MM or YYYY, got {point['date']!r}")
    if prices.year_of(point["date"]) > prices.year_of(prices.this_month()):
        raise CatalogError(f"{where}: field 'date' {point['date']!r} is in the future (a price is dated when observed)")
    kind, scope = point["kind"], point["scope"]
    want = "usd" if kind == "purchase" else "usd_per_hour"
    if want not in point or ("usd" in point and "usd_per_hour" in point):
        raise CatalogError(f"{where}: a {kind} price point needs field '{want}' (and not the other price field)")
    if (kind == "tco") != (scope == "all_in"):
        raise CatalogError(f"{where}: scope 'all_in' is for a published TCO per GPU-hour (kind 'tco') only, got "
                           f"kind '{kind}' with scope '{scope}'")
    if (kind == "rental") != ("rental_kind" in point):
        raise CatalogError(f"{where}: field 'rental_kind' ({', '.join(prices.RENTAL_KINDS)}) is "
                           + ("required for a rental" if kind == "rental" else f"for rentals only, not a {kind}"))
    instance = point.get("unit", "per_gpu") == "instance"
    if instance != ("gpus_per_unit" in point):
        raise CatalogError(f"{where}: field 'gpus_per_unit' goes with unit = 'instance' (a quote for several GPUs)")
    quoted = point.get("unit_usd" if kind == "purchase" else "unit_usd_per_hour")
    if quoted is not None and not math.isclose(quoted / point.get("gpus_per_unit", 1), point[want], rel_tol=0.01):
        raise CatalogError(f"{where}: field '{want}' = {point[want]!r} is not the quoted unit price {quoted!r} / "
                           f"{point.get('gpus_per_unit', 1)} GPUs")
    if (point["source_class"] == "derived") != bool(point.get("derived_from")):
        raise CatalogError(f"{where}: a derived point names its inputs in 'derived_from' (and only a derived point does)")


def _validate_model_consistency(key: str, e: dict, where: str) -> None:
    if e["heads"] % e["kv_heads"] and e.get("attention", "gqa") == "gqa":
        raise CatalogError(f"{where}: field 'kv_heads' ({e['kv_heads']}) must divide 'heads' ({e['heads']})")
    if e.get("attention") == "mla":
        for f in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
            if not e.get(f):
                raise CatalogError(f"{where}: attention = 'mla' needs field '{f}'")
    if e.get("experts"):
        for f in ("experts_per_token", "expert_intermediate_size"):
            if not e.get(f):
                raise CatalogError(f"{where}: a mixture-of-experts model needs field '{f}'")
        if e["experts_per_token"] > e["experts"]:
            raise CatalogError(f"{where}: field 'experts_per_token' exceeds 'experts'")
    if e.get("sliding_layers", 0) + e.get("chunked_layers", 0) > e["layers"]:
        raise CatalogError(f"{where}: fields 'sliding_layers' + 'chunked_layers' exceed 'layers'")
    if e.get("sliding_layers") and not e.get("sliding_window"):
        raise CatalogError(f"{where}: field 'sliding_layers' needs 'sliding_window'")
    if e.get("chunked_layers") and not e.get("attention_chunk_size"):
        raise CatalogError(f"{where}: field 'chunked_layers' needs 'attention_chunk_size'")
    if e.get("expert_groups_per_token", 0) > e.get("expert_groups", 0):
        raise CatalogError(f"{where}: field 'expert_groups_per_token' exceeds 'expert_groups'")
    if e.get("expert_groups_per_token") and e["expert_groups_per_token"] * e.get("experts", 0) < e.get(
        "experts_per_token", 0
    ) * e["expert_groups"]:
        raise CatalogError(f"{where}: 'expert_groups_per_token' groups hold fewer than 'experts_per_token' experts")
    if e.get("dense_layers", 0) > e["layers"]:
        raise CatalogError(f"{where}: field 'dense_layers' exceeds 'layers'")


# --- construction -------------------------------------------------------------------------


def hardware_from_entry(key: str, e: dict, origin: str) -> Hardware:
    eff = e["efficiency"]
    flop_s = {"bf16": e["bf16_tflop_s"] * TFLOP}
    for dtype, field_name in (("fp8", "fp8_tflop_s"), ("fp4", "fp4_tflop_s"), ("int8", "int8_tops"), ("tf32", "tf32_tflop_s")):
        if e.get(field_name):
            flop_s[dtype] = e[field_name] * TFLOP
    usable = e["memory_usable_gib"] * GIB if e.get("memory_usable_gib") else e["memory_gb"] * GB
    topology = e.get("scaleup_topology", "switch")
    links = e.get("scaleup_links", e["scaleup_domain"] - 1 if topology == "mesh" else 0)
    if topology != "switch" and not links:
        raise CatalogError(f"{origin}: [{key}]: scaleup_topology = '{topology}' needs field 'scaleup_links'")
    points = tuple(
        PricePoint(p["date"], p["kind"], float(p["usd"] if p["kind"] == "purchase" else p["usd_per_hour"]), p["source"],
                   p["scope"], p["source_class"], p["tier"], p.get("rental_kind", ""), p.get("unit", "per_gpu"),
                   p.get("gpus_per_unit", 1), p.get("provider", ""), tuple(p.get("derived_from", ())))
        for p in e.get("price_points", [])
    )
    rack = rack_scale(topology, e["scaleup_domain"])
    rent, capital = prices.pick(points, "rental", rack), prices.pick(points, "purchase", rack)  # module docstring's rule
    return Hardware(
        key=key,
        name=e["name"],
        vendor=e["vendor"],
        family=e["family"],
        memory_bytes=usable,
        memory_bw_b_s=e["memory_bw_tb_s"] * TB,
        flop_s=flop_s,
        scaleup_link=e["scaleup_link"],
        scaleup_bw_b_s=e["scaleup_bw_gb_s"] * GB,
        scaleup_domain=e["scaleup_domain"],
        scaleout_bw_b_s=e["scaleout_bw_gb_s"] * GB,
        power_w=float(e["power_w"]),
        rental_usd_per_hour=float(e["rental_usd_per_hour"]) if "rental_usd_per_hour" in e else rent.usd,
        price_date=e.get("price_date", "") if "rental_usd_per_hour" in e else rent.point.date,
        purchase_usd=e["purchase_usd"] if "purchase_usd" in e else (capital.usd if capital else None),
        efficiency=Efficiency(
            compute=eff["compute"],
            memory_bw=eff["memory_bw"],
            link=eff["link"],
            collective_latency_s=eff["collective_latency_us"] * US,
            fitted_on=eff.get("fitted_on", "default"),
            kv_bw=eff.get("kv_bw"),
        ),
        aliases=tuple(e.get("aliases", ())),
        source=e["source"],
        origin=origin,
        scaleup_topology=topology,
        scaleup_links=links if topology != "switch" else 0,
        price_points=points,
        memory_kind=e.get("memory_kind", "dram"),
        memory_tiers=tuple(MemoryTier(t["name"], t["capacity_gb"] * GB, t["bw_tb_s"] * TB) for t in e.get("memory_tiers", ())),
        engine=e.get("engine", ""),
        gemm_tile_rows=e.get("gemm_tile_rows", 64),
        all_in_power_w=e.get("all_in_power_w"),
        all_in_power_source=e.get("all_in_power_source", ""),
    )


_MODEL_PASSTHROUGH = [f for f in MODEL_FIELDS if f not in ("aliases", "params_source", "notes", "params_tolerance_pct", "recipes")]


def recipe_from_entry(name: str, r: dict) -> Recipe:
    return Recipe(name=name, dtype=r["dtype"], checkpoint=r.get("checkpoint", ""), attention=r.get("attention", ""),
                  dense_mlp=r.get("dense_mlp", ""), shared_experts=r.get("shared_experts", ""),
                  routed_experts=r.get("routed_experts", ""), mtp=r.get("mtp", ""),
                  dense_16bit_layers=r.get("dense_16bit_layers", 0), kv_cache=r.get("kv_cache", ""),
                  engines=tuple(r.get("engines", ())), source=r["source"], status=r.get("status", ""))


def model_from_entry(key: str, e: dict, origin: str) -> Model:
    kwargs = {f: e[f] for f in _MODEL_PASSTHROUGH if f in e}
    if e.get("experts") and not e.get("shared_expert_intermediate_size"):
        kwargs["shared_expert_intermediate_size"] = e["expert_intermediate_size"]
    recipes = tuple(recipe_from_entry(n, r) for n, r in e.get("recipes", {}).items())
    return Model(key=key, aliases=tuple(e.get("aliases", ())), origin=origin, recipes=recipes, **kwargs)


def engine_from_entry(key: str, e: dict, origin: str) -> Engine:
    return Engine(
        key=key,
        name=e["name"],
        compute_scale=e["compute_scale"],
        memory_bw_scale=e["memory_bw_scale"],
        step_overhead_s=e["step_overhead_ms"] * MS,
        memory_reserve_fraction=e.get("memory_reserve_fraction", 0.10),
        max_running_requests=e.get("max_running_requests", 1024),
        memory_reserve_bytes=e.get("memory_reserve_gb", 0.0) * GB,
        memory_reserve_bytes_per_rank=e.get("memory_reserve_gb_per_rank", 0.0) * GB,
        kv_free_fraction=e.get("kv_free_fraction", 1.0),
        small_max_running_requests=e.get("small_max_running_requests", 0),
        small_memory_bytes=e.get("small_memory_gib", 0.0) * GIB,
        prefill_chunk_tokens=e.get("prefill_chunk_tokens", 8192),
        chunked_prefill=e.get("chunked_prefill", False),
        mixed_prefill=e.get("mixed_prefill", True),
        schedules_ahead_from=e.get("schedules_ahead_from", ""),
        schedules_ahead=bool(e.get("schedules_ahead_from", "")),
        mla_kernels_from=e.get("mla_kernels_from", ""),
        kv_admission=e.get("kv_admission", "full"),
        source=e["source"],
        fitted_on=e.get("fitted_on", "default"),
        origin=origin,
        moe_tokens_half=e.get("moe_tokens_half", 100.0),
        step_overhead_per_seq_s=e.get("step_overhead_per_seq_us", 10.0) * US,
        step_overhead_per_layer_s=e.get("step_overhead_per_layer_us", 20.0) * US,
        ttft_overhead_s=e.get("ttft_overhead_ms", 0.0) * MS,
        checkpoint_kv_cache=e.get("checkpoint_kv_cache", False),
        adp_prefill_balance=e.get("adp_prefill_balance", 0.0),
        moe_layer_overhead_s=e.get("moe_layer_overhead_us", 0.0) * US,
        family=e.get("family", key),
        built_from=e.get("built_from", ""),
        version_from=e.get("version_from", ""),
        version_before=e.get("version_before", ""),
        speculative=tuple(e.get("speculative", ())),
    )


_BUILDERS: dict[str, Callable[[str, dict, str], Any]] = {
    "hardware": hardware_from_entry,
    "models": model_from_entry,
    "engines": engine_from_entry,
}

_NOUN = {"hardware": "device", "models": "model", "engines": "engine"}


def read_toml(path: Path, what: str = "catalog", check_numbers: bool = True) -> dict:
    """The TOML document in ``path`` (parsed once and kept while the file is unchanged:
    :mod:`tokecon.catalogs.parse_cache`); one-line :class:`CatalogError` for any problem. The catalog
    loader passes ``check_numbers=False``: :func:`validate_entry` checks every number of a catalog
    (an integer of any size included) and names its entry, so the document is not walked twice."""
    from tokecon.catalogs import parse_cache

    def parse() -> dict:
        from tokecon.catalogs.inputs import parse_toml, read_input_text  # tomllib: only on a cache miss

        try:
            text = read_input_text(path, what)
        except TokeconError as exc:
            raise CatalogError(str(exc)) from None
        return parse_toml(text, str(path), f"a {what}", CatalogError, check_numbers=check_numbers)

    return parse_cache.parsed(path, parse, f"{what}:{check_numbers}")


class Unbuilt:
    """A catalog table not yet validated and built: :class:`Registry` builds it when it is first
    looked up or listed, so a command pays for (and is stopped by) only the entries it uses."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], Any]):
        self.build = build


@record(frozen=False)
class Registry:
    """Entries of one kind, looked up by key or alias, case-insensitively; each built when first used."""

    kind: str
    entries: dict[str, Any] = field(default_factory=dict)  # key -> the built entry or its Unbuilt table
    _origins: dict[str, str] = field(default_factory=dict)  # key -> the file it came from
    _index: dict[str, str] = field(default_factory=dict)  # lower-case name or alias -> key
    _names: dict[str, set[str]] = field(default_factory=dict)  # key -> the lower-case names pointing at it

    def _point(self, low: str, key: str) -> None:
        old = self._index.get(low)
        if old is not None and old != key:
            self._names[old].discard(low)
        self._index[low] = key
        self._names.setdefault(key, set()).add(low)

    def add(self, key: str, entry: Any, aliases: tuple[str, ...], origin: str) -> None:
        """Index ``entry`` under its key and aliases. A name another entry of the same file already
        uses is an error; so is an alias that is another file's entry key (override an entry by
        naming its table). Overriding keeps the old entry's aliases pointing at the key.
        Constant time per name, so that a catalog of any size loads in linear time."""
        for name in (key, *aliases):
            low = name.lower()
            owner = self._index.get(low)
            if owner is None or owner == key:
                self._point(low, key)
                continue
            prev = self._origins.get(owner)
            if prev == origin:
                what = "name" if name == key else "alias"
                raise CatalogError(f"{origin}: [{key}]: {what} '{name}' is already used by [{owner}] in the same file")
            if low == owner.lower():
                if name != key:
                    raise CatalogError(
                        f"{origin}: [{key}]: alias '{name}' is the name of [{owner}] from {prev or '?'}; "
                        f"to override that entry, name this table [{owner}]"
                    )
                self.entries.pop(owner, None)  # same key in another case: an override
                self._origins.pop(owner, None)
                for alias in list(self._names.get(owner, ())):
                    self._point(alias, key)
                self._names.pop(owner, None)
            self._point(low, key)
        self.entries[key] = entry
        self._origins[key] = origin

    def _built(self, key: str) -> Any:
        entry = self.entries[key]
        if isinstance(entry, Unbuilt):
            entry = self.entries[key] = entry.build()
        return entry

    def get(self, name: str) -> Any:
        key = self._index.get(name.strip().lower())
        if key is None:
            raise TokeconError(f"unknown {_NOUN[self.kind]} '{name}'{self.suggest(name)}")
        return self._built(key)

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name.lower(), list(self._index), n=3, cutoff=0.5)
        keys = list(dict.fromkeys(self._index[c] for c in close))
        if not keys:
            return f"; known: {', '.join(sorted(self.entries)[:12])}, ..."
        return f"; closest: {', '.join(keys)}"

    def __iter__(self):
        return (self._built(key) for key in list(self.entries))

    def __len__(self) -> int:
        return len(self.entries)


def version_tuple(text: str) -> tuple[int, ...] | None:
    """``1.0.0rc3`` -> (1, 0, 0); ``0.5.8.post1`` -> (0, 5, 8); no leading number (``nightly``) -> None."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _covers(engine: Engine, v: tuple[int, ...]) -> bool:
    lo, hi = version_tuple(engine.version_from), version_tuple(engine.version_before)
    return (lo is None or v >= lo) and (hi is None or v < hi)


def _at_release(engine: Engine, v: tuple[int, ...]) -> Engine:
    """The profile at release ``v``: it schedules ahead from ``schedules_ahead_from`` on (vLLM 0.14) and
    caches MLA's latent from ``mla_kernels_from`` on (vLLM 0.7.1; every version when empty)."""
    start, mla = version_tuple(engine.schedules_ahead_from), version_tuple(engine.mla_kernels_from)
    return replace(engine, schedules_ahead=start is not None and v >= start, mla_kernels=mla is None or v >= mla)


@record(frozen=False)
class EngineRegistry(Registry):
    """Engine profiles, also looked up as ``NAME@VERSION``: the generation of NAME whose version
    range covers VERSION, else the nearest older one (or the oldest), with ``version_note`` saying
    so. A plain NAME is the profile of that key: by convention the current generation."""

    def get(self, name: str) -> Engine:
        base, _, version = name.partition("@")
        engine = super().get(base)
        if not version.strip():
            return engine
        v = version_tuple(version)
        family = [e for e in self if e.family == engine.family]
        if v is None:
            return replace(engine, version_note=f"version '{version.strip()}' is not a release number: "
                                                f"using {engine.key} ({engine.version_range})")
        for e in family:
            if _covers(e, v):
                return _at_release(e, v)
        older = [e for e in family if version_tuple(e.version_from) is not None and version_tuple(e.version_from) <= v]
        pick = max(older, key=lambda e: version_tuple(e.version_from)) if older else min(
            family, key=lambda e: version_tuple(e.version_from) or ())
        return replace(_at_release(pick, v), version_note=f"no {engine.family} profile covers {version.strip()}: using "
                                          f"{'the nearest older' if older else 'the oldest'} one, {pick.key} ({pick.version_range})")


class Catalog:
    """The merged catalogs, one :class:`Registry` per kind, each read and checked the first time the
    kind is used: a command that never looks at devices (``engines list``) is not stopped by a broken
    ``$TOKECON_HOME/hardware.toml``. The user's and ``--catalog`` entries are validated when their
    kind is read; the ``shipped`` files' entries (checked whole by the test suite) are validated and
    built when first looked up or listed, so a command pays only for the entries it uses. ``files``
    names every file that contributes (built-in, user, ``--catalog``), read or not yet."""

    def __init__(self, sources: dict[str, list[tuple[str, Callable[[], dict]]]], files: list[str],
                 shipped: frozenset[str] = frozenset()):
        self._sources = sources  # kind -> [(origin, a function returning that file's tables of the kind)]
        self._registries: dict[str, Registry] = {}
        self.files = files
        self._shipped = shipped

    def registry(self, kind: str) -> Registry:
        registry = self._registries.get(kind)
        if registry is None:
            registry = EngineRegistry(kind) if kind == "engines" else Registry(kind)
            for origin, tables in self._sources[kind]:
                _add_entries(registry, kind, tables(), origin, lazy=origin in self._shipped)
            self._registries[kind] = registry  # only once complete: a failed build fails again next time
        return registry

    def files_for(self, kind: str) -> list[str]:
        """The files that contribute entries of ``kind``, in order of precedence."""
        return [origin for origin, _ in self._sources[kind]]

    @property
    def hardware(self) -> Registry:
        return self.registry("hardware")

    @property
    def models(self) -> Registry:
        return self.registry("models")

    @property
    def engines(self) -> EngineRegistry:
        return self.registry("engines")


def _add_entries(registry: Registry, kind: str, tables: dict, origin: str, lazy: bool = False) -> None:
    """Index every table of ``tables`` under its key and aliases, validated and built now, or
    (``lazy``) when first used; an entry whose aliases cannot be indexed is validated now, which
    names the field."""
    if not isinstance(tables, dict):
        raise CatalogError(f"{origin}: [{kind}] must be a table of entries")
    build = _BUILDERS[kind]

    def later(key: str, entry: dict) -> Unbuilt:
        def made() -> Any:
            validate_entry(kind, key, entry, origin)
            return build(key, entry, origin)

        return Unbuilt(made)

    for key, entry in tables.items():
        aliases = entry.get("aliases", ()) if isinstance(entry, dict) else None
        if not lazy or not (isinstance(aliases, (list, tuple)) and all(isinstance(a, str) and a.strip() for a in aliases)):
            validate_entry(kind, key, entry, origin)
            registry.add(key, build(key, entry, origin), tuple(entry.get("aliases", ())), origin)
        else:
            registry.add(key, later(key, entry), tuple(aliases), origin)


_BUILTIN_CACHE: dict[tuple[str, int, int], dict] = {}


def _read_builtin(path: Path) -> dict:
    """The parsed built-in catalog, parsed once per process (keyed by path, mtime and size).
    Callers only read the returned tables."""
    try:
        st = path.stat()
    except OSError:
        return read_toml(path, check_numbers=False)
    sig = (str(path), st.st_mtime_ns, st.st_size)
    if sig not in _BUILTIN_CACHE:
        _BUILTIN_CACHE[sig] = read_toml(path, check_numbers=False)
    return _BUILTIN_CACHE[sig]


def _read_user_file(path: Path, kind: str) -> dict:
    """The entries of the user's ``KIND.toml``, bare ``[NAME]`` or ``[KIND.NAME]`` tables (a symlink
    must resolve; a folder or a FIFO there is an error too, not "no catalog")."""
    from tokecon.catalogs.write import user_tables

    if not os.path.exists(path):
        raise CatalogError(f"{path}: a symlink to {os.readlink(path)}, which does not resolve (missing or a "
                           "loop); fix or remove the link")
    return user_tables(read_toml(path, check_numbers=False), kind, path)


def load_catalog(extra_files: list[Path] | tuple[Path, ...] = (), use_user_home: bool = True) -> Catalog:
    """Built-in catalogs, then the user's, then ``extra_files``; later entries override earlier.

    The built-in and user catalogs of a kind are read when that kind is first used. An
    ``extra_files`` (``--catalog``) file is an input of this very command, so it is checked whole
    here: read, and every kind it holds built (a broken entry in it is an error whatever the
    command needs)."""
    sources: dict[str, list[tuple[str, Callable[[], dict]]]] = {kind: [] for kind in KINDS}
    files: list[str] = []
    for kind, path in builtin_paths().items():
        sources[kind].append((str(path), lambda path=path: _read_builtin(path)))
        files.append(str(path))
    if use_user_home:
        home = user_home()
        for kind in KINDS:
            path = home / f"{kind}.toml"
            if os.path.lexists(path):
                sources[kind].append((str(path), lambda path=path, kind=kind: _read_user_file(path, kind)))
                files.append(str(path))
    given: set[str] = set()
    for path in extra_files:
        data = read_toml(Path(path), check_numbers=False)
        unknown = [k for k in data if k not in KINDS]
        if unknown:
            raise CatalogError(
                f"{path}: top-level table '{unknown[0]}' is not one of [hardware.NAME], [models.NAME], [engines.NAME]"
            )
        for kind in KINDS:
            if kind in data:
                sources[kind].append((str(path), lambda tables=data[kind]: tables))
                given.add(kind)
        files.append(str(path))
    catalog = Catalog(sources, files, frozenset(str(p) for p in builtin_paths().values()))
    for kind in KINDS:
        if kind in given:
            catalog.registry(kind)
    return catalog
