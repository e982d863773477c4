"""``tokecon validate``: predict every public measurement, print the error; ``--fit`` refits the
efficiency factors and reports the held-out error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from tokecon.fidelity import calibrate
from tokecon.fidelity import uncertainty
from tokecon.fidelity import validation
from tokecon.catalogs.catalog import builtin_paths, load_catalog
from tokecon.errors import TokeconError
from tokecon.results import Column, Progress, Result
from tokecon.fidelity.validation import Case

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
    "output_tok_per_s_per_node": "out tok/s/node", "tpot_ms": "TPOT ms",
}

SUMMARY_COLUMNS = [
    Column("group", "group", "str"),
    Column("rows", "rows", "int"),
    Column("median_ape", "median |error| [%]", "pct"),
    Column("p90_ape", "p90 |error| [%]", "pct"),
    Column("median_error", "median error [%]", "signed_pct"),
    Column("ideal_over_measured", "ideal speed / measured", "num"),
    Column("worst", "worst rows", "str"),
]


_TIME_METRICS = ("tpot_ms", "batch_latency_s")


def _ideal_ratio(outcomes: list[validation.Outcome]) -> float | None:
    """Median ideal-roofline speed over measured speed (a time's ratio inverted); TTFT left out."""
    r = [(o.case.measured / o.ideal if o.case.metric in _TIME_METRICS else o.ideal / o.case.measured)
         for o in outcomes if o.ideal is not None and o.case is not None and not o.case.metric.startswith("ttft")]
    return float(np.median(r)) if r else None


def _is_disagg(o: validation.Outcome) -> bool:
    return o.case is not None and o.case.kind == "disagg"


def summary_rows(outcomes: list[validation.Outcome], group_by: str) -> list[dict[str, Any]]:
    """Median and p90 |error| per group, over all rows and the fitted ones; the disaggregated rows
    (never fitted on) apart, by metric (:func:`disagg_rows`)."""
    if group_by not in validation.GROUP_KEYS:
        raise TokeconError(f"--group-by must be one of {', '.join(validation.GROUP_KEYS)}, got '{group_by}'")
    key = validation.GROUP_KEYS[group_by]
    rows = []
    split = [o for o in outcomes if _is_disagg(o)]
    outcomes = [o for o in outcomes if not _is_disagg(o)]
    fitted = [o for o in outcomes if o.case is not None and not calibrate.not_fitted(o.case)]
    for summaries, label, pool in ((validation.summarise(outcomes, key), None, outcomes),
                                   (validation.summarise(outcomes), "all", outcomes),
                                   (validation.summarise(fitted), "all fitted", fitted)):
        for s in summaries:
            members = [o for o in pool if o.error is not None and (label or key(o) == s.group)]
            rows.append({
                "group": label or s.group, "rows": s.n, "median_ape": s.median_ape, "p90_ape": s.p90_ape,
                "median_error": s.median_error, "ideal_over_measured": _ideal_ratio(members), "worst": ", ".join(s.worst),
            })
    return rows + disagg_rows(split, key)


def _workers(o: validation.Outcome) -> str:
    return "workers stated" if validation.workers_stated(o.row) else "1P1D assumed"


def disagg_rows(outcomes: list[validation.Outcome], key: Callable[[validation.Outcome], str]) -> list[dict[str, Any]]:
    """The disaggregated rows (predicted with the fitted factors, never fitted on): median and p90
    |error| of TTFT and TPOT over all, by whether the run states its worker counts, and by ``key``
    (``--group-by engine`` or ``device``)."""
    rows = []
    for metric in ("ttft_ms", "tpot_ms"):
        done = [o for o in outcomes if o.case.metric == metric]
        for by in (None, _workers, key):
            for s in validation.summarise(done, by):
                rows.append({"group": f"disagg {_METRIC_SHORT[metric]} (not fitted): " + (s.group if by else "all"),
                             "rows": s.n, "median_ape": s.median_ape, "p90_ape": s.p90_ape, "median_error": s.median_error,
                             "ideal_over_measured": None, "worst": ", ".join(s.worst)})
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
        not_fitted = calibrate.not_fitted(o.case) if o.case is not None and not o.skipped else None
        r["status"] = "skipped" if o.skipped else "not fitted" if not_fitted else "ok"
        r["reason"] = o.skipped or not_fitted
        r["metric_label"] = _METRIC_SHORT.get(r["metric"], r["metric"])
        out_rows.append(r)
    done = [o for o in outcomes if o.error is not None]
    skipped = len(outcomes) - len(done)
    reasons: dict[str, int] = {}
    for r in out_rows:
        if r["reason"]:
            reasons[f"{r['status']}: {r['reason']}"] = reasons.get(f"{r['status']}: {r['reason']}", 0) + 1
    notes = [
        f"{len(done):,} of {len(outcomes):,} measurements predicted, {skipped:,} skipped.",
        *(f"{n} row{'s' if n > 1 else ''} {why}" for why, n in sorted(reasons.items())),
        (f"overall median |error| {validation.mape([o for o in outcomes if not _is_disagg(o)]):.1%} (disaggregated rows apart: "
         f"{validation.mape([o for o in outcomes if _is_disagg(o)]):.1%}, never fitted on)" if done else "no row predicted, so no error")
        + "; error = (predicted - measured) / measured; "
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
    Column("catalog", "prior", "num"),
]

#: How held-out error is broken down (issue 9): by source, device family, engine generation,
#: dense vs MoE and metric.
HELD_OUT_GROUPS: dict[str, Callable[[Case], str]] = {
    "source": calibrate.source_of,
    "family": lambda c: c.family,
    "engine": lambda c: c.engine,
    "model kind": lambda c: "moe" if c.scenario.model.is_moe else "dense",
    "metric": lambda c: c.metric,
}


def held_out_rows(held: list[tuple[Case, float]]) -> list[dict[str, Any]]:
    """Median and p90 |error| of the held-out predictions, overall and per group."""
    def row(label: str, errs: list[float]) -> dict[str, Any]:
        a = np.abs(errs)
        return {"group": label, "rows": len(a), "median_ape": float(np.median(a)), "p90_ape": float(np.percentile(a, 90)),
                "median_error": float(np.median(errs)), "ideal_over_measured": None, "worst": ""}

    out = [row("held out: all", [e for _, e in held])]
    for name, key in HELD_OUT_GROUPS.items():
        groups: dict[str, list[float]] = {}
        for c, e in held:
            groups.setdefault(key(c), []).append(e)
        out += [row(f"{name}: {g}", v) for g, v in sorted(groups.items())]
    return out


def run_fit(write: bool = False, csv_path: Path | None = None, held_out: bool = False,
            progress: Progress | None = None) -> tuple[Result, Result]:
    """Refit the factors on all rows (in-sample error); with ``held_out`` also the leave-one-source-out
    error and the 80% intervals built from it; optionally store them (catalogs, intervals.toml)."""
    if write and not (builtin_paths()["hardware"].parent / "pyproject.toml").is_file():
        raise TokeconError("--write stores the factors in the catalogs of a source checkout; these are inside the "
                           f"installed package ({builtin_paths()['hardware'].parent}), which tokecon never rewrites: "
                           "run it from a clone of the repository (pip install -e .)")
    catalog = load_catalog(use_user_home=False)
    outcomes = validation.evaluate(validation.load_measurements(csv_path), catalog, with_ideal=False)
    cases = calibrate.fit_cases(outcomes)
    factors = calibrate.fit(cases, progress=(lambda d, n: progress("fit", d, n)) if progress else None)
    prior = calibrate.initial_factors(cases)
    rows = []
    for kind, table, cur in (("family", factors.family, prior.family), ("engine", factors.engine, prior.engine)):
        for name, values in sorted(table.items()):
            for param, value in values.items():
                rows.append({"kind": kind, "name": name, "parameter": param, "value": value, "catalog": cur[name][param]})
    predicted = calibrate.Rows.of(cases).predict(factors)
    in_sample = [(c, p / c.measured - 1.0) for c, p in zip(cases, predicted) if np.isfinite(p)]
    summary = [{**r, "group": r["group"].replace("held out", "in sample")} for r in held_out_rows(in_sample)[:1]]
    notes = [f"fitted on {len(cases)} rows ({len(calibrate.fit_sample(cases))} after at most "
             f"{calibrate.MAX_FIT_ROWS_PER_SOURCE} per source), sources weighted 1/sqrt(rows)."]
    intervals = None
    if held_out:
        held = calibrate.leave_one_source_out(cases, progress=(lambda d, n: progress("held out", d, n)) if progress else None)
        summary += held_out_rows(held)
        intervals = calibrate.interval_table(held + calibrate.disagg_residuals(outcomes, factors))
        intervals["held_out"] = {r["group"]: {"rows": r["rows"], "median_ape": round(r["median_ape"], 4),
                                              "p90_ape": round(r["p90_ape"], 4)} for r in summary if r["group"] != "in sample: all"}
        notes.append(f"held-out error: each source predicted by factors fitted on the others; 80% intervals cover "
                     f"{intervals['coverage_unseen']:.0%} of unseen rows (target 70-90%).")
    if write:
        paths = builtin_paths()
        families: dict[str, list[str]] = {}
        for hw in catalog.hardware:
            families.setdefault(calibrate.fit_family(hw.family), []).append(hw.key)
        errs = np.abs([e for _, e in (held if held_out else in_sample)])
        note = (f"tokecon validate --fit: {len(cases)} rows, {'held-out' if held_out else 'in-sample'} "
                f"median |error| {np.median(errs):.1%}")
        calibrate.write_factors(factors, paths["hardware"], paths["engines"], families, note)
        notes.append(f"stored in {paths['hardware']} and {paths['engines']}")
        if intervals is not None:
            calibrate.write_intervals(intervals, uncertainty.intervals_path())
            notes.append(f"intervals stored in {uncertainty.intervals_path()}")
    fit_result = Result("validate-fit", {"rows": len(cases)}, rows, FIT_COLUMNS, group_key=None, notes=notes)
    return fit_result, Result("validate-fit-summary", {}, summary, SUMMARY_COLUMNS, group_key=None)


def run(o: Any, limits: Any, progress: Progress | None = None) -> Result:
    """``tokecon validate``: the summary per group, with every measurement's row behind it (in JSON and
    with ``--rows``); ``--fit`` refits the factors (``--held-out``: leave-one-source-out error)."""
    if o.write and not o.fit:
        raise TokeconError("--write only makes sense with --fit")
    if o.held_out and not o.fit:
        raise TokeconError("--held-out only makes sense with --fit")
    if o.fit:
        first, second = run_fit(o.write, o.measurements, o.held_out, progress)
    else:
        first, second = run_validate(o.group_by, o.measurements, tuple(o.catalog))
    first.inputs["summary"] = second.to_dict()["rows"]  # JSON: every row, and the summary beside them
    if o.rows:
        first.preface = [second]
    else:  # a person sees the summary; the thousands of rows are in JSON and behind --rows
        first.view = Result(f"validate: error by {o.group_by}" if not o.fit else "validate --fit", second.inputs, second.rows,
                            second.columns, group_key=None, notes=_summary_notes(first.notes))
    return first


def _summary_notes(notes: list[str]) -> list[str]:
    """The notes under the summary: the counts, the error, and the three commonest reasons rows were
    skipped or not fitted (the rest behind --rows)."""
    reasons = sorted((n for n in notes if " skipped: " in n or " not fitted: " in n),
                     key=lambda n: -int(n.split(" ", 1)[0].replace(",", "")))
    head = [n for n in notes if n not in reasons]
    more = len(reasons) - 3
    return head[:1] + reasons[:3] + head[1:] + ([f"{more} more reasons and every measurement with its prediction: --rows, "
                                                 "or --format json."] if more > 0 else
                                                ["Every measurement with its prediction: --rows, or --format json."])
