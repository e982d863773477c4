"""New catalog entries from a user: a device from command-line figures (``hardware add``, with
defaults or ``--like`` a catalog device), a model from a Hugging Face config.json (``models
import``); each checked like a catalog entry and against the catalogs it joins, then printed as TOML
or saved to ``$TOKECON_HOME``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
from tokecon.catalogs.describe import origin_label
from tokecon.catalogs.write import SaveReport, added_comment, ordered, render_entry, save_entry
from tokecon.errors import CatalogError, TokeconError
from tokecon.physics import params
from tokecon.physics.specs import Precision
from tokecon.records import record
from tokecon.units import GB

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def _load(catalogs: tuple[Path, ...] | list[Path]) -> Catalog:
    return load_catalog(tuple(catalogs))


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
    note = next((f"overrides [{e.key}] from {origin_label(e.origin)}" for e in reg
                 if e.key.lower() == key.lower() and e.origin != origin), None)
    if note is None:
        note = next((f"'{key}' now names this entry instead of [{e.key}], whose alias it was" for e in reg
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


@record(frozen=False)
class NewEntry:
    kind: str
    key: str
    entry: dict[str, Any]
    text: str
    note: str | None = None  # e.g. "overrides [h100-sxm] from built-in"
    saved: SaveReport | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: the entry as its catalog holds it, and where it was saved (None: printed)."""
        return {"command": f"{self.kind} {'add' if self.kind == 'hardware' else 'import'}", "kind": self.kind, "key": self.key,
                "entry": self.entry, "note": self.note, "summary": self.summary or None,
                "saved": None if self.saved is None else str(self.saved.path),
                "replaced": None if self.saved is None else self.saved.replaced}


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
