"""``tokecon validate``: predict every public measurement, print the error; ``--fit`` refits the
efficiency factors and reports the held-out error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tokecon import calibrate, validation
from tokecon.catalog import builtin_paths, load_catalog
from tokecon.errors import TokeconError
from tokecon.results import Column, Result

ROW_COLUMNS = [
    Column("id", "id", "str"),
    Column("model", "model", "str"),
    Column("hardware", "device", "str"),
    Column("n_gpus", "GPUs", "int"),
    Column("engine", "engine", "str"),
    Column("metric_label", "metric", "str"),
    Column("measured", "measured", "num"),
    Column("predicted", "predicted", "num"),
    Column("error", "error [%]", "signed_pct"),
    Column("ideal", "ideal roofline", "num"),
    Column("status", "status", "str"),
]

_METRIC_SHORT = {
    "output_tok_per_s_per_gpu": "out tok/s/GPU", "output_tok_per_s_total": "out tok/s", "output_tok_per_s_per_user": "out tok/s/user",
    "prefill_tok_per_s": "in tok/s", "ttft_ms": "TTFT ms", "input_tok_per_s_per_node": "in tok/s/node",
    "output_tok_per_s_per_node": "out tok/s/node",
}

SUMMARY_COLUMNS = [
    Column("group", "group", "str"),
    Column("rows", "rows", "int"),
    Column("median_ape", "median |error| [%]", "pct"),
    Column("p90_ape", "p90 |error| [%]", "pct"),
    Column("median_error", "median error [%]", "signed_pct"),
    Column("ideal_over_measured", "ideal / measured", "num"),
    Column("worst", "worst rows", "str"),
]


def _ideal_ratio(outcomes: list[validation.Outcome]) -> float | None:
    r = [o.ideal / o.case.measured for o in outcomes if o.ideal is not None and o.case is not None
         and not o.case.metric.startswith("ttft")]
    return float(np.median(r)) if r else None


def summary_rows(outcomes: list[validation.Outcome], group_by: str) -> list[dict[str, Any]]:
    if group_by not in validation.GROUP_KEYS:
        raise TokeconError(f"--group-by must be one of {', '.join(validation.GROUP_KEYS)}, got '{group_by}'")
    key = validation.GROUP_KEYS[group_by]
    rows = []
    for summaries, label in ((validation.summarise(outcomes, key), None), (validation.summarise(outcomes), "all")):
        for s in summaries:
            members = [o for o in outcomes if o.error is not None and (label == "all" or key(o) == s.group)]
            rows.append({
                "group": label or s.group, "rows": s.n, "median_ape": s.median_ape, "p90_ape": s.p90_ape,
                "median_error": s.median_error, "ideal_over_measured": _ideal_ratio(members), "worst": ", ".join(s.worst),
            })
    return rows


def run_validate(group_by: str = "hardware", csv_path: Path | None = None, catalogs: tuple[Path, ...] = ()) -> tuple[Result, Result]:
    """Per-row predictions and per-group error summary (median and p90 absolute error)."""
    catalog = load_catalog(catalogs)
    try:
        rows = validation.load_measurements(csv_path)
    except (OSError, KeyError) as exc:
        raise TokeconError(f"cannot read measurements: {exc}") from None
    outcomes = validation.evaluate(rows, catalog)
    out_rows = []
    for o in outcomes:
        r = validation.outcome_fields(o)
        not_fitted = o.case is not None and o.case.metric in calibrate.NOT_FITTED and not o.skipped
        r["status"] = "skipped" if o.skipped else "not fitted" if not_fitted else "ok"
        r["reason"] = o.skipped or (calibrate.NOT_FITTED[o.case.metric] if not_fitted else None)
        r["metric_label"] = _METRIC_SHORT.get(r["metric"], r["metric"])
        out_rows.append(r)
    done = [o for o in outcomes if o.error is not None]
    skipped = len(outcomes) - len(done)
    reasons: dict[str, int] = {}
    for r in out_rows:
        if r["reason"]:
            reasons[f"{r['status']}: {r['reason']}"] = reasons.get(f"{r['status']}: {r['reason']}", 0) + 1
    notes = [
        f"{len(done)} of {len(outcomes)} measurements predicted, {skipped} skipped.",
        *(f"{n} row{'s' if n > 1 else ''} {why}" for why, n in sorted(reasons.items())),
        f"overall median |error| {validation.mape(outcomes):.1%}; error = (predicted - measured) / measured; "
        "'ideal roofline' is the same scenario at 100% of every peak with no overhead.",
    ]
    per_row = Result("validate", {"group_by": group_by, "measurements": str(csv_path or validation.measurements_path())},
                     out_rows, ROW_COLUMNS, group_key=None, notes=notes)
    summary = Result("validate-summary", {"group_by": group_by}, summary_rows(outcomes, group_by), SUMMARY_COLUMNS,
                     group_key=None)
    return per_row, summary


FIT_COLUMNS = [
    Column("kind", "kind", "str"),
    Column("name", "name", "str"),
    Column("parameter", "parameter", "str"),
    Column("value", "fitted", "num"),
    Column("catalog", "in catalog", "num"),
]


def run_fit(write: bool = False, csv_path: Path | None = None) -> tuple[Result, Result]:
    """Refit the factors on all rows; held-out error by leave-one-source-out; optionally store them."""
    catalog = load_catalog(use_user_home=False)
    outcomes = validation.evaluate(validation.load_measurements(csv_path), catalog, with_ideal=False)
    cases = calibrate.fit_cases(outcomes)
    factors = calibrate.fit(cases)
    held = calibrate.leave_one_source_out(cases)
    current = calibrate.initial_factors(cases)
    rows = []
    for kind, table, cur in (("family", factors.family, current.family), ("engine", factors.engine, current.engine)):
        for name, values in sorted(table.items()):
            for param, value in values.items():
                rows.append({"kind": kind, "name": name, "parameter": param, "value": value, "catalog": cur[name][param]})
    errors = np.abs([e for _, e in held])
    by_source: dict[str, list[float]] = {}
    for c, e in held:
        by_source.setdefault(calibrate.source_of(c), []).append(abs(e))
    summary = [{"group": f"held out: {s}", "rows": len(v), "median_ape": float(np.median(v)), "p90_ape": float(np.percentile(v, 90)),
                "median_error": None, "ideal_over_measured": None, "worst": ""} for s, v in sorted(by_source.items())]
    summary.append({"group": "held out: all", "rows": len(errors), "median_ape": float(np.median(errors)),
                    "p90_ape": float(np.percentile(errors, 90)), "median_error": None, "ideal_over_measured": None, "worst": ""})
    notes = [f"fitted on {len(cases)} rows; held-out error: each source predicted by factors fitted on the others."]
    if write:
        paths = builtin_paths()
        families: dict[str, list[str]] = {}
        for hw in catalog.hardware:
            families.setdefault(hw.family, []).append(hw.key)
        note = f"tokecon validate --fit: {len(cases)} rows, held-out median |error| {np.median(errors):.1%}"
        calibrate.write_factors(factors, paths["hardware"], paths["engines"], families, note)
        notes.append(f"stored in {paths['hardware']} and {paths['engines']}")
    fit_result = Result("validate-fit", {"rows": len(cases)}, rows, FIT_COLUMNS, group_key=None, notes=notes)
    return fit_result, Result("validate-fit-summary", {}, summary, SUMMARY_COLUMNS, group_key=None)
