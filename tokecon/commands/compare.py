"""``tokecon compare``: one workload across device configurations, ranked.

Each configuration runs the same phase (decode, prefill or embed) at the same batch and
context through the same row builders as ``tokecon decode`` / ``prefill`` / ``embed``, so a
compare row equals the corresponding row of those commands. With no ``--gpus`` every
catalog device is sized automatically: the smallest power-of-two count n <= its scale-up
domain, tensor-parallel over all n (n must divide the attention heads), whose memory holds
the weights and the batch's KV cache; devices where no such n exists are listed as skipped.
With ``--gpus`` and no ``--tp``, each configuration uses the smallest TP degree that holds the
batch (the rest of its GPUs are replicas).

Figures of merit per configuration (:func:`tokecon.commands.common.figures_of_merit`):
FLOP/s per USD/h decides the compute-bound phases, B/s per USD/h the memory-bound decode.

``--baseline old.json`` (an earlier ``compare --format json``) adds the relative change of
USD/Mtok and tok/s per GPU for each configuration present in both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tokecon.economics import energy
from tokecon.physics import memory
from tokecon.serving import sram
from tokecon.fidelity import uncertainty
from tokecon.catalogs.catalog import Catalog
from tokecon.commands.common import BOUND_NOTE, CommonOptions, efficiency_note, figures_of_merit, resolved_inputs, sources
from tokecon.commands.decode import decode_rows
from tokecon.commands.embed import default_seq_len, embed_rows, embedding_scenario
from tokecon.commands.prefill import prefill_rows
from tokecon.economics.costs import CostModel
from tokecon.errors import TokeconError
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import GpuSpec, build_scenario, check_context, parse_gpus, positive_ints, resolve_model
from tokecon.physics.specs import Hardware
from tokecon.physics.scenario import Scenario
from tokecon.units import GB

PHASES = ("decode", "prefill", "embed")
DEFAULT_BATCH = {"decode": 64, "prefill": 1, "embed": 32}
DEFAULT_CONTEXT = 2048

#: --sort names -> (row key, descending?). Row keys themselves are accepted too.
SORTS: dict[str, tuple[str, bool]] = {
    "usd-per-mtok": ("usd_per_mtok", False),
    "tok-s-per-gpu": ("tok_s_per_gpu", True),
    "latency": ("latency_s", False),
    "usd-per-hour": ("usd_per_hour", False),
    "flop-per-usd": ("flop_s_per_usd_per_hour", True),
    "bytes-per-usd": ("bytes_s_per_usd_per_hour", True),
    "memory": ("memory_used_bytes_per_gpu", False),
    "gpus": ("n_gpus", False),
    "change": ("usd_per_mtok_rel_change", False),
}
_SORT_LABEL = {
    "usd_per_mtok": "USD/Mtok", "tok_s_per_gpu": "tok/s per GPU", "latency_s": "latency",
    "usd_per_hour": "USD/h", "flop_s_per_usd_per_hour": "FLOP/s per USD/h", "bytes_s_per_usd_per_hour": "B/s per USD/h",
    "memory_used_bytes_per_gpu": "memory per GPU", "n_gpus": "GPU count", "usd_per_mtok_rel_change": "change of USD/Mtok",
}  # fmt: skip
_LATENCY = {"decode": ("tpot_s", "time/token [ms]"), "prefill": ("ttft_s", "TTFT [ms]"), "embed": ("batch_time_s", "time/batch [ms]")}
_WORD = {"decode": "out", "prefill": "in", "embed": "embedded"}


def resolve_sort(text: str | None, baseline: bool) -> tuple[str, bool]:
    if text is None:
        return SORTS["usd-per-mtok"]
    name = text.strip().lower().replace("_", "-")
    if name in SORTS and (name != "change" or baseline):
        return SORTS[name]
    for key, desc in SORTS.values():
        if text.strip() == key and (key != "usd_per_mtok_rel_change" or baseline):
            return key, desc
    known = [k for k in SORTS if k != "change" or baseline]
    raise TokeconError(f"unknown --sort '{text}' (known: {', '.join(known)})")


def _rows_for(scn: Scenario, phase: str, batch: int, context: int) -> dict[str, Any]:
    """The row ``tokecon decode/prefill/embed`` would print for this configuration and batch."""
    if phase == "decode":
        return decode_rows(scn, [batch], context)[0]
    if phase == "prefill":
        return prefill_rows(scn, [batch], context)[0]
    return embed_rows(scn, [batch], context)[0]


def _fits(scn: Scenario, batch: int, context: int) -> bool:
    return int(memory.max_batch(scn, np.asarray(float(context)))) >= batch


def _scenario(catalog: Catalog, opts: CommonOptions, hw: Hardware, n: int, tp: int, phase: str) -> Scenario:
    scn = build_scenario(catalog, opts.model, GpuSpec(n, hw), tp=tp, dtype=opts.dtype, kv_dtype=opts.kv_dtype,
                         engine=opts.engine, ideal=opts.ideal, usd_per_gpu_hour=opts.usd_per_gpu_hour)
    return embedding_scenario(scn) if phase == "embed" else scn


def auto_size(catalog: Catalog, opts: CommonOptions, hw: Hardware, phase: str, batch: int, context: int) -> Scenario | str:
    """The smallest power-of-two count within ``hw``'s scale-up domain that holds the batch,
    tensor-parallel over all of it; or why none does."""
    model = resolve_model(catalog, opts.model)
    n, last = 1, None
    while n <= hw.scaleup_domain:
        if model.heads % n == 0:
            last = _scenario(catalog, opts, hw, n, n, phase)
            if _fits(last, batch, context):
                return last
        n *= 2
    if last is None:
        return f"{hw.key} (no power-of-two count within its scale-up domain of {hw.scaleup_domain} divides {model.heads} heads)"
    dep = last.deployment
    w = memory.weight_bytes_per_gpu(last.model, last.precision, dep) * dep.n_gpus
    usable = memory.usable_bytes(last) * dep.n_gpus
    why = f"; the weights alone need {w / GB:.0f} GB" if w >= usable else ""
    return f"{hw.key} ({dep.n_gpus} hold {usable / GB:.0f} GB{why})"


def sized_for_gpus(catalog: Catalog, opts: CommonOptions, spec: GpuSpec, phase: str, batch: int, context: int) -> Scenario:
    """``--gpus`` as given; TP = ``--tp``, else the smallest degree dividing the count and the heads
    that holds the batch (else the largest valid one, and the row says it does not fit)."""
    if opts.tp is not None:
        return _scenario(catalog, opts, spec.hardware, spec.count, opts.tp, phase)
    model = resolve_model(catalog, opts.model)
    valid = [t for t in range(1, spec.count + 1) if spec.count % t == 0 and model.heads % t == 0]
    last = None
    for tp in valid:
        last = _scenario(catalog, opts, spec.hardware, spec.count, tp, phase)
        if _fits(last, batch, context):
            return last
    if last is None:  # pragma: no cover - tp = 1 is always valid
        raise TokeconError(f"no tensor-parallel degree fits {spec.label}")
    return last


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier ``tokecon compare --format json``; raises :class:`TokeconError` naming the problem."""
    from tokecon.catalogs.inputs import read_input_text

    try:
        text = read_input_text(path, "a --baseline")
    except TokeconError as exc:
        raise TokeconError(f"--baseline {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokeconError(f"--baseline {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise TokeconError(f"--baseline {path}: expected the output of `tokecon compare --format json`")
    if doc.get("command") != "compare":
        raise TokeconError(f"--baseline {path}: holds the output of `tokecon {doc.get('command')}`, not of `tokecon compare`")
    return doc


def _key(row: dict[str, Any]) -> tuple[str, int, int] | None:
    hw, n, tp = row.get("hardware"), row.get("n_gpus"), row.get("tp")
    if not isinstance(hw, str) or _num(n) is None or _num(tp) is None:
        return None
    return hw, int(n), int(tp)


def _change(now: float | None, before: float | None) -> float | None:
    if now is None or before is None or before == 0:
        return None
    return now / before - 1.0


def apply_baseline(rows: list[dict[str, Any]], doc: dict[str, Any], path: Path, inputs: dict[str, Any]) -> list[str]:
    """Add the baseline's USD/Mtok and tok/s per GPU and their relative change to each row; notes."""
    if doc.get("model") != inputs["model"] or doc.get("phase") != inputs["phase"]:
        raise TokeconError(
            f"--baseline {path} compares {doc.get('model')} ({doc.get('phase')}); this run compares "
            f"{inputs['model']} ({inputs['phase']})"
        )
    before = {k: r for r in doc["rows"] if isinstance(r, dict) and (k := _key(r)) is not None}
    now_keys = set()
    for row in rows:
        key = _key(row)
        now_keys.add(key)
        old = before.get(key)
        row["baseline_usd_per_mtok"] = _num(old.get("usd_per_mtok")) if old else None
        row["baseline_tok_s_per_gpu"] = _num(old.get("tok_s_per_gpu")) if old else None
        row["usd_per_mtok_rel_change"] = _change(row.get("usd_per_mtok"), row["baseline_usd_per_mtok"])
        row["tok_s_per_gpu_rel_change"] = _change(row.get("tok_s_per_gpu"), row["baseline_tok_s_per_gpu"])
    changed = [r for r in rows if r["usd_per_mtok_rel_change"] is not None]
    cheaper = sum(1 for r in changed if r["usd_per_mtok_rel_change"] < -1e-9)
    dearer = sum(1 for r in changed if r["usd_per_mtok_rel_change"] > 1e-9)
    notes = [f"Against baseline {path}: {cheaper} configuration(s) cheaper, {dearer} dearer, "
             f"{len(changed) - cheaper - dearer} unchanged per million tokens."]
    if changed:
        big = max(changed, key=lambda r: abs(r["usd_per_mtok_rel_change"]))
        notes[0] = notes[0][:-1] + (f"; largest change {big['deployment']}: {big['baseline_usd_per_mtok']:.4g} -> "
                                    f"{big['usd_per_mtok']:.4g} USD/Mtok ({big['usd_per_mtok_rel_change']:+.1%}).")
    new = [r["deployment"] for r in rows if _key(r) not in before]
    gone = [f"{n}x{h}" + (f" tp{t}" if t != n else "") for (h, n, t) in before if (h, n, t) not in now_keys]
    if new:
        notes.append(f"Not in the baseline: {', '.join(new)}.")
    if gone:
        notes.append(f"In the baseline only: {', '.join(gone)}.")
    for field, flag in (("batch", "batch"), ("context_tokens", "context")):
        if doc.get(field) is not None and doc.get(field) != inputs.get(field):
            notes.append(f"The baseline used {flag} {doc.get(field)}, this run {inputs.get(field)}: the change includes that.")
    return notes


def _columns(phase: str, baseline: bool) -> list[Column]:
    lat_key, lat_header = _LATENCY[phase]
    word = _WORD[phase]
    cols = [
        Column("deployment", "devices", "str"),
        Column("device_measured", "measured", "bool", hide=1),
        Column("memory_used_bytes_per_gpu", "memory/GPU [GB]", "bytes", hide=2),
        Column("fits", "fits", "bool", hide=2),
        Column("tok_s_per_gpu", f"tok/s {word} per GPU", "rate"),
        Column(lat_key, lat_header, "time", hide=1),
        Column("usd_per_hour", "USD/h", "usd", hide=1),
        Column("usd_per_mtok", f"USD/Mtok {word}", "usd"),
        Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
        Column("flop_s_per_usd_per_hour", "TFLOP/s per USD/h", "flop", hide=2),
        Column("bytes_s_per_usd_per_hour", "GB/s per USD/h", "bytes", hide=2),
        Column("bound", "bound", "str", hide=2),
        Column("joules_per_token", "J per tok", "num", hide=3),
        Column("tok_s_per_mw", "tok/s per MW", "rate", hide=3),
        Column("energy_share", "energy share", "pct", hide=3),
    ]
    if baseline:
        cols += [
            Column("baseline_usd_per_mtok", "baseline USD/Mtok", "usd"),
            Column("usd_per_mtok_rel_change", "USD/Mtok change [%]", "signed_pct"),
            Column("tok_s_per_gpu_rel_change", "tok/s per GPU change [%]", "signed_pct"),
        ]
    return cols + [Column("rank", "rank", "int")]


def _energy(scn: Scenario, tok_s: float | None, phase: str) -> dict[str, Any]:
    """Energy keys (tokecon.economics.energy) at the default PUE and electricity price; per output token in decode only."""
    if not tok_s:
        return {}
    default = CostModel()
    board_w = scn.board_power_w
    out = tok_s if phase == "decode" else 0.0
    fields = energy.energy_fields(board_w, default.pue, default.usd_per_kwh, tok_s, out, scn.usd_per_hour)
    keep = [k for k in fields if phase == "decode" or "output" not in k]
    return {k: float(fields[k]) for k in keep}


def _label(scn: Scenario) -> str:
    dep = scn.deployment
    return f"{dep.n_gpus}x{scn.hardware.key}" + (f" tp{dep.tp}" if dep.tp != dep.n_gpus else "")


def winner_note(rows: list[dict[str, Any]], sort_key: str) -> str | None:
    fit = [r for r in rows if r.get("rank")]
    if not fit:
        return None
    top = fit[0]
    merit, label = (("bytes_s_per_usd_per_hour", "B/s per USD/h") if top["bound"] == "memory"
                    else ("flop_s_per_usd_per_hour", "FLOP/s per USD/h"))
    order = sorted(fit, key=lambda r: -(r[merit] or 0.0))
    place = next(i for i, r in enumerate(order) if r is top) + 1
    value = f"{top[merit] / 1e9:,.1f} GB/s" if merit.startswith("bytes") else f"{top[merit] / 1e12:,.1f} TFLOP/s"
    return (
        f"Best by {_SORT_LABEL.get(sort_key, sort_key)}: {top['deployment']} at {top['usd_per_mtok']:.4g} USD/Mtok; "
        f"the step is {top['bound']}-bound, so {label} decides the price, and it buys {value} per USD/h "
        f"({place} of {len(order)} by that figure)."
    )


def run_compare(
    opts: CommonOptions,
    phase: str,
    batch: int | None,
    context: int | None,
    thresholds: Thresholds,
    sort: str | None = None,
    baseline: Path | None = None,
) -> Result:
    catalog = opts.load()
    phase = phase.strip().lower()
    if phase not in PHASES:
        raise TokeconError(f"--phase must be one of {', '.join(PHASES)}, got '{phase}'")
    model = resolve_model(catalog, opts.model)
    batch = positive_ints([batch], "--batch")[0] if batch is not None else DEFAULT_BATCH[phase]
    if context is None:
        context = default_seq_len(model) if phase == "embed" else min(DEFAULT_CONTEXT, model.max_context)
    context = positive_ints([context], "--context")[0]
    check_context(model, context)
    sort_key, descending = resolve_sort(sort, baseline is not None)
    doc = load_baseline(baseline) if baseline is not None else None
    if opts.tp is not None and not opts.gpus:
        raise TokeconError("--tp needs --gpus: without it every device is sized automatically (TP over all its GPUs)")

    scns: list[Scenario] = []
    skipped: list[str] = []
    if opts.gpus:
        scns = [sized_for_gpus(catalog, opts, parse_gpus(g, catalog), phase, batch, context) for g in opts.gpus]
    else:
        for hw in catalog.hardware:
            if sram.is_sram(hw):  # sized by the chips that hold the model and pipelined: frontier/serve do that
                skipped.append(f"{hw.key} (an SRAM machine: `tokecon frontier -g {hw.key}` pipelines it over the chips that hold the model)")
                continue
            found = auto_size(catalog, opts, hw, phase, batch, context)
            (scns.append if isinstance(found, Scenario) else skipped.append)(found)
        if not scns:
            raise TokeconError(f"no catalog device holds {model.key} with a batch of {batch} x {context} tokens within its scale-up domain")

    rows: list[dict[str, Any]] = []
    for scn in scns:
        row = _rows_for(scn, phase, batch, context)
        row.update(figures_of_merit(scn))
        row["usd_per_hour"] = scn.usd_per_hour
        row.update(_energy(scn, row.get("tok_s"), phase))
        row["deployment"] = _label(scn)
        row["device_name"] = scn.hardware.name
        row["phase"] = phase
        row["latency_s"] = row.get(_LATENCY[phase][0])
        rows.append(uncertainty.annotate(row, scn, "prefill" if phase == "prefill" else "decode"))

    inputs = {
        **resolved_inputs(scns[0]),
        "phase": phase,
        "batch": batch,
        "context_tokens": context,
        "sort": sort_key,
        "gpus": [s.deployment.label for s in scns],
        "auto_sized": not opts.gpus,
    }
    notes: list[str] = []
    if doc is not None:
        notes.extend(apply_baseline(rows, doc, baseline, inputs))

    fit = [r for r in rows if r["fits"] and r.get(sort_key) is not None]
    fit.sort(key=lambda r: (-r[sort_key] if descending else r[sort_key], r["usd_per_mtok"], r["deployment"]))
    rest = [r for r in rows if r not in fit]
    rest.sort(key=lambda r: (not r["fits"], r["deployment"]))
    for i, r in enumerate(fit):
        r["rank"] = i + 1
    for r in rest:
        r["rank"] = None
    ordered = fit + rest

    what = {"decode": f"decode at batch {batch}, {context}-token KV cache", "prefill": f"prefill of {batch} x {context}-token prompts",
            "embed": f"embedding {batch} x {context}-token sequences"}[phase]
    sizing = ("each device sized automatically: the smallest power-of-two count within its scale-up domain that holds the "
              "weights and the batch's KV cache, tensor-parallel over all of it") if not opts.gpus else (
              "TP " + (f"{opts.tp}" if opts.tp else "per configuration: the smallest degree that holds the batch, the other GPUs as replicas"))
    notes.insert(0, f"{model.key}, {what}; ranked by {_SORT_LABEL.get(sort_key, sort_key)}; {sizing}.")
    win = winner_note(ordered, sort_key)
    if win:
        notes.insert(1, win)
    notes.append("TFLOP/s and GB/s per USD/h: achievable peak (peak x the device's efficiency; peak with --ideal) per "
                 "GPU-hour price; compute-bound phases (prefill, embeddings) follow the first, memory-bound decode the second.")
    unmeasured = sorted({r["deployment"] for r in ordered if r.get("device_measured") is False})
    if unmeasured:
        notes.append(f"measured = no: no public measurement covers {', '.join(unmeasured)}; their efficiency is borrowed "
                     "from the measured families and their 80% range is the widest (tokecon validate).")
    if skipped:
        notes.append(f"Skipped {len(skipped)} (no power-of-two count within the scale-up domain holds the weights and the "
                     f"KV cache of {batch} x {context} tokens; largest such group and its usable memory): "
                     + ", ".join(skipped) + ".")
    if len(scns) <= 4:
        notes.extend(dict.fromkeys(efficiency_note(s) for s in scns))
    elif opts.ideal:
        notes.append(efficiency_note(scns[0]))
    else:
        notes.append(f"Each device at its catalog efficiency factors (defaults, not fitted, unless the catalog says so) "
                     f"under the {scns[0].engine.name} profile; `tokecon decode -g DEVICE` lists them.")
    highlight = {0} if fit else set()
    notes.append(energy.NOTE + f" Compare assumes PUE {CostModel().pue:g} and {CostModel().usd_per_kwh:g} USD/kWh.")
    notes.append(BOUND_NOTE)
    result = Result("compare", inputs, ordered, _columns(phase, doc is not None), group_key=None, notes=notes,
                    highlight=highlight, highlight_reason=f"best by {_SORT_LABEL.get(sort_key, sort_key)}",
                    sources=sources(scns))
    return thresholds.apply(result)
