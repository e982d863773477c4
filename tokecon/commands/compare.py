"""``tokecon compare``: which hardware is cheapest for a workload, at an SLO.

Each device configuration is swept as ``frontier`` sweeps it (every TP, EP and attention-DP layout,
and disaggregated pool pairs within its GPUs, each at a grid of concurrencies); its answer is the
cheapest point (blended USD/Mtok) that meets the SLO, by default an interactive chat service: at least
20 tok/s per user and a time to first token of at most 2 s (tokecon.api.commands.COMPARE_SLO; every
threshold flag overrides). The answers are ranked, and the winner's lead is split into what decides
it: USD/Mtok = USD per GPU-hour / (tokens per GPU-hour), so the ratio of two prices is the ratio of
their GPU-hour prices over the ratio of their throughputs per GPU at the SLO.

Without ``--gpus`` every catalog device is compared on one node: min(8, its scale-up domain) GPUs
(SRAM machines on as many chips as hold the model). ``--baseline old.json`` (an earlier
``compare --format json``) adds the relative change of each configuration's price.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tokecon.catalogs.catalog import Catalog
from tokecon.commands.common import resolved_inputs, serving_request, sources, varied
from tokecon.commands.frontier import sweeps
from tokecon.commands.serving import check_workload, cost_inputs, serving_assumptions, serving_method
from tokecon.errors import TokeconError
from tokecon.results import METRICS, Column, Progress, Result, Thresholds
from tokecon.serving import sram

COLUMNS = [
    Column("rank", "rank", "int"),
    Column("device", "devices", "str"),
    Column("layout", "layout", "str", hide=1),
    Column("concurrency", "concurrency", "int", hide=2),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate"),
    Column("ttft_s", "TTFT [ms]", "time", hide=1),
    Column("usd_per_gpu_hour", "USD/GPU-h", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
    Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=2),
]
BASELINE_COLUMNS = [Column("usd_per_mtok_rel_change", "change", "signed_pct")]


def default_gpus(catalog: Catalog) -> list[str]:
    """Every catalog device on one node: min(8, scale-up domain) GPUs; an SRAM machine by name alone
    (as many chips as hold the model)."""
    return [hw.key if sram.is_sram(hw) else f"{min(8, hw.scaleup_domain)}x{hw.key}" for hw in catalog.hardware]


def why_winner(rows: list[dict[str, Any]]) -> str | None:
    """Why the first row wins over the runner-up: the ratio of prices split into GPU-hour price and
    throughput per GPU at the SLO (USD/Mtok = USD/GPU-h / tok per GPU-h)."""
    ranked = [r for r in rows if r.get("rank")]
    if not ranked:
        return None
    top = ranked[0]
    head = (f"* {top['device']} is the cheapest meeting the SLO: {top['usd_per_mtok']:.3g} USD/Mtok blended with "
            f"{top['layout']} at concurrency {top['concurrency']} ({top['tok_s_per_user']:.1f} tok/s per user, "
            f"TTFT {top['ttft_s'] * 1e3:,.0f} ms)")
    if len(ranked) == 1:
        return head + "."
    second = ranked[1]
    price = second["usd_per_gpu_hour"] / top["usd_per_gpu_hour"] if top["usd_per_gpu_hour"] else math.inf
    speed = top["total_tok_s_per_gpu"] / second["total_tok_s_per_gpu"] if second["total_tok_s_per_gpu"] else math.inf
    lead = second["usd_per_mtok"] / top["usd_per_mtok"]
    parts = []
    if speed >= 1.0:
        parts.append(f"{speed:.2f}x the tokens per GPU")
    if price >= 1.0:
        parts.append(f"{price:.2f}x cheaper GPU-hours")
    reason = " and ".join(parts) if parts else "its balance of price and speed"
    tradeoff = ("" if speed >= 1.0 and price >= 1.0 else
                f" (it pays {1 / price:.2f}x the GPU-hour price for them)" if speed > 1.0 else
                f" (for {1 / speed:.2f}x fewer tokens per GPU)")
    return (f"{head}; {lead:.2f}x cheaper than {second['device']} ({second['usd_per_mtok']:.3g}) from {reason}{tradeoff} "
            "at this SLO.")


def _load_baseline(path: Path) -> dict[str, Any]:
    from tokecon.catalogs.inputs import read_input_text

    try:
        doc = json.loads(read_input_text(path, "a --baseline"))
    except json.JSONDecodeError as exc:
        raise TokeconError(f"--baseline {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("command") != "compare" or not isinstance(doc.get("rows"), list):
        raise TokeconError(f"--baseline {path}: expected the output of `tokecon compare --format json`")
    return doc


def apply_baseline(rows: list[dict[str, Any]], doc: dict[str, Any], path: Path, inputs: dict[str, Any]) -> list[str]:
    """The baseline's USD/Mtok beside each configuration in both, its relative change, and a note."""
    if doc.get("model") != inputs["model"]:
        raise TokeconError(f"--baseline {path} compares {doc.get('model')}; this run compares {inputs['model']}")
    before = {r.get("device"): r for r in doc["rows"] if isinstance(r, dict)}
    for row in rows:
        old = before.get(row.get("device"), {}).get("usd_per_mtok")
        ok = isinstance(old, (int, float)) and not isinstance(old, bool) and old > 0 and row.get("usd_per_mtok") is not None
        row["baseline_usd_per_mtok"] = float(old) if ok else None
        row["usd_per_mtok_rel_change"] = row["usd_per_mtok"] / old - 1.0 if ok else None
    changed = [r for r in rows if r["usd_per_mtok_rel_change"] is not None]
    differ = [f"{key.replace('_', ' ')} {doc.get(key)} then, {inputs.get(key)} now" for key in ("input_tokens", "output_tokens", "slo", "mode")
              if key in doc and doc.get(key) != inputs.get(key)]
    workload = [f"The baseline ran another workload ({'; '.join(differ)}): the change includes that."] if differ else []
    if not changed:
        return [f"Against baseline {path}: no configuration in both."] + workload
    big = max(changed, key=lambda r: abs(r["usd_per_mtok_rel_change"]))
    cheaper = sum(r["usd_per_mtok_rel_change"] < -1e-9 for r in changed)
    return [f"Against baseline {path}: {cheaper} of {len(changed)} configurations cheaper; largest change {big['device']}: "
            f"{big['baseline_usd_per_mtok']:.4g} -> {big['usd_per_mtok']:.4g} USD/Mtok ({big['usd_per_mtok_rel_change']:+.1%})."] + workload


def run(o: Any, limits: Thresholds, progress: Progress | None = None) -> Result:
    """``tokecon compare``: tokecon.api.commands.CompareOptions."""
    opts = serving_request(o, o.mode)
    catalog = opts.common.load()
    inp, out = o.input_len, o.output_len
    check_workload(catalog.models.get(o.model), inp, out)
    doc = _load_baseline(o.baseline) if o.baseline is not None else None
    gpus = list(o.gpus) or default_gpus(catalog)
    if o.tp is not None and not o.gpus:
        raise TokeconError("--tp needs --gpus: without it every catalog device is compared on one node")
    done, notes, method = sweeps(catalog, opts, gpus, inp, out, limits, progress)
    rows = []
    for s in done:
        pick = s.best  # the cheapest meeting the SLO: compare sweeps by USD/Mtok
        if pick is None:  # the fastest point it has, to show how far from the SLO it is
            near = max(s.frontier, key=lambda r: r["tok_s_per_user"] or 0.0)
            rows.append({**near, "violations": [], "slo": "no point meets the SLO: " + "; ".join(limits.check(near))})
        else:
            rows.append({**pick, "slo": "ok"})
    rows.sort(key=lambda r: (r["slo"] != "ok", r["usd_per_mtok"] if r["slo"] == "ok" else math.inf))
    for k, row in enumerate(r for r in rows if r["slo"] == "ok"):
        row["rank"] = k + 1
    missed = [r["device"] for r in rows if r["slo"] != "ok"]
    if not any(r["slo"] == "ok" for r in rows):
        for row in rows:
            row["violations"] = [row["slo"]]
    deployed = [s.deployed for s in done]
    inputs = {**resolved_inputs(deployed[0].scenario), "gpus": [s.label for s in done], "input_tokens": inp,
              "output_tokens": out, "mode": opts.layouts, "slo": {k: v for k, v in limits.__dict__.items() if v is not None},
              "cost": cost_inputs(deployed, opts), **opts.modes.inputs(deployed[0].scenario)}
    slo = ", ".join(f"{METRICS[k].label} {'<=' if METRICS[k].upper else '>='} {v:g}" for k, v in inputs["slo"].items())
    lead = [why_winner(rows)] if any(r.get("rank") for r in rows) else ["No configuration meets the SLO."]
    lead.append(f"SLO: {slo} (the limit flags override it); {inp} input and {out} output tokens per request."
                + (f" Missed by: {', '.join(missed)}." if missed else ""))
    leaders = [d for r in rows[:3] for d in deployed if d.scenario.hardware.key == r["hardware"]]
    notes = lead + notes + serving_assumptions(leaders or deployed)
    if len(leaders) < len(deployed):
        method = serving_assumptions(deployed) + method
    columns = COLUMNS + (BASELINE_COLUMNS if doc is not None else [])
    if doc is not None:
        notes += apply_baseline(rows, doc, o.baseline, inputs)
    highlight = {0} if rows and rows[0].get("rank") == 1 else set()
    result = Result("compare", inputs, rows, columns, group_key=None, notes=[n for n in notes if n], highlight=highlight,
                    highlight_reason="cheapest meeting the SLO", method=method + serving_method(deployed, opts),
                    sources=sources([d.scenario for d in deployed]))
    return varied(result, o, opts.cost, catalog)

