"""Held-out check of the Poisson-arrival model (``serve --request-rate``, ``capacity`` with p99 limits)
against MLPerf Inference v4.0 and v5.0 Server results (validation/mlperf_server.csv; never fitted on).

    python validation/poisson_check.py [--rows] [--write]

MLPerf's Server scenario offers Poisson arrivals; a submitter raises the rate until the run would
break its p99 limits (llama2-70b and mixtral-8x7b: TTFT 2 s, TPOT 200 ms; llama3.1-405b: 6 s, 175 ms)
and reports the completed samples/s with the TTFT and TPOT statistics of the run. Each run is asked
of tokecon four ways, through its Python API:

* ``offline``: the highest sustainable rate X_max (requests/s) against the same system's Offline
  samples/s: the capacity the queue saturates at;
* ``within limits``: the highest rate tokecon finds within the run's p99 limits (capacity's
  ``max_request_rate_within_limits``) against the Server samples/s: MLPerf's own result;
* ``same load``: TTFT and TPOT (mean, p99) at the run's load, lambda = Server / Offline x X_max (at
  most 0.99 X_max): the shape of the queue, apart from the error in X_max;
* ``same rate``: the same at the measured rate; past X_max tokecon calls the rate unstable (no
  finite latency): counted, not scored.

``--write`` stores the 80% ranges of latency under arrivals (validation/arrival_intervals.toml, read by
tokecon.fidelity.uncertainty.annotate_arrivals): for each latency figure, the 10th and 90th percentiles
of ln(predicted / measured) at the measured rate over the runs tokecon calls stable there, widened and
stretched to hold 0 as every tokecon range is (tokecon.fidelity.uncertainty.quantiles), and their
coverage with each run left out in turn (a run whose rate tokecon calls unstable counts as outside).
They apply from the lowest load (tokecon's utilisation at the measured rate) of those runs up.

Request lengths are the dataset means (input: the MLCommons datasets' token counts, as summarised in
github.com/openshift-psap/performance-dashboard mlperf-data/summaries; output: each log's completed
tokens / samples), fixed: the spread of lengths is not modelled here. Errors are prediction /
measured - 1; summaries are medians of |error| and of the signed error.
"""

from __future__ import annotations

import csv
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tokecon  # noqa: E402  (this checkout's tokecon)

DATA = Path(__file__).with_name("mlperf_server.csv")
MAX_LOAD = 0.99  # a Server run at or above its Offline rate (one does: 363.7 vs 362.4) is asked at 99% load
LATENCY = (("ttft_mean_ms", "ttft_s"), ("ttft_p99_ms", "ttft_p99_s"), ("tpot_mean_ms", "tpot_s"), ("tpot_p99_ms", "tpot_p99_s"))


def load(path: Path = DATA) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _options(run: dict[str, str]) -> dict[str, Any]:
    return {"model": run["model"], "gpus": [f"{run['n_gpus']}x{run['hardware']}"], "tp": int(run["tp"]), "pp": int(run["pp"]),
            "dtype": run["weight_dtype"], "kv_dtype": run["kv_dtype"], "engine": run["engine"],
            "input_len": int(run["input_len"]), "output_len": int(run["output_len"])}


def _serve_at(run: dict[str, str], rate: float) -> dict[str, Any]:
    return tokecon.serve(**_options(run), request_rate=[f"{rate:.6g}"]).rows[0]


def predict(run: dict[str, str]) -> dict[str, Any]:
    """tokecon's figures for one Server run (see the module docstring), with their errors."""
    server, offline = float(run["server_samples_s"]), float(run["offline_samples_s"])
    at_rate = _serve_at(run, server)
    x_max = float(at_rate["max_request_rate"])
    at_load = _serve_at(run, min(server / offline, MAX_LOAD) * x_max)
    limits = tokecon.capacity(**_options(run), tokens_per_day=1e9, max_ttft_p99_ms=float(run["ttft_p99_limit_ms"]),
                              max_tpot_p99_ms=float(run["tpot_p99_limit_ms"])).rows[0]
    out: dict[str, Any] = {"run": run["run"], "offline": x_max / offline - 1.0,
                           "within limits": float(limits["max_request_rate_within_limits"]) / server - 1.0,
                           "unstable at the measured rate": not at_rate["stable"]}
    for measured, key in LATENCY:
        out[f"same load {measured}"] = at_load[key] * 1e3 / float(run[measured]) - 1.0
        out[f"same rate {measured}"] = at_rate[key] * 1e3 / float(run[measured]) - 1.0 if at_rate["stable"] else None
    return out


#: The stored regime of each latency figure: (regime, the log's figure, serve's key).
RANGE_FIGURES = (("arrivals-ttft", "ttft_mean_ms", "ttft_s"), ("arrivals-ttft-p99", "ttft_p99_ms", "ttft_p99_s"),
                 ("arrivals-tpot", "tpot_mean_ms", "tpot_s"), ("arrivals-tpot-p99", "tpot_p99_ms", "tpot_p99_s"))
RANGES = DATA.with_name("arrival_intervals.toml")


def rate_residuals(run: dict[str, str]) -> dict[str, float] | None:
    """ln(predicted / measured) of each latency figure at the run's measured rate (a time's speed
    residual, ln(measured speed / predicted speed)), and tokecon's utilisation there; None where
    tokecon calls that rate unstable."""
    row = _serve_at(run, float(run["server_samples_s"]))
    if not row["stable"]:
        return None
    out = {regime: math.log(row[key] * 1e3 / float(run[measured])) for regime, measured, key in RANGE_FIGURES}
    return {**out, "utilisation": float(row["utilisation"])}


def arrival_table(runs: list[dict[str, str]]) -> dict[str, Any]:
    """The stored 80% ranges of latency under arrivals (module docstring), with their leave-one-out coverage."""
    from tokecon.fidelity.uncertainty import quantiles

    res = [rate_residuals(r) for r in runs]
    stable = [r for r in res if r is not None]
    regimes = {}
    for regime, _, _ in RANGE_FIGURES:
        inside = 0
        for i, r in enumerate(res):
            others = quantiles(s[regime] for j, s in enumerate(res) if j != i and s is not None)
            inside += r is not None and others["q10"] <= r[regime] <= others["q90"]
        q = quantiles(r[regime] for r in stable)
        regimes[regime] = {"rows": q["rows"], "q10": round(q["q10"], 4), "q90": round(q["q90"], 4),
                           "coverage": round(inside / len(res), 3)}
    return {"runs": len(res), "stable_runs": len(stable), "min_utilisation": round(min(r["utilisation"] for r in stable), 3),
            "engines": sorted({r["engine"] for r in runs}), "models": sorted({r["model"] for r in runs}), "regimes": regimes}


def write_table(table: dict[str, Any], path: Path = RANGES) -> None:
    import tomli_w

    header = ("# 80% ranges of latency under Poisson arrivals, written by `python validation/poisson_check.py --write`\n"
              "# from MLPerf Inference v4.0/v5.0 Server runs (validation/mlperf_server.csv), predicted at their measured\n"
              "# rates. q10/q90: percentiles of ln(predicted / measured time), i.e. of ln(measured speed / predicted speed).\n")
    path.write_text(header + tomli_w.dumps(table), encoding="utf-8")


def regime(run: dict[str, str]) -> str:
    """Engine era and dense/MoE: the groups the summary reports apart."""
    moe = "MoE" if run["model"].startswith("mixtral") else "dense"
    return f"MLPerf {run['mlperf_version']} {moe}"


def summary(results: list[dict[str, Any]], runs: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Median |error| and median signed error of each figure, over all runs and per regime."""
    groups: dict[str, list[dict[str, Any]]] = {"all": results}
    for res, run in zip(results, runs):
        groups.setdefault(regime(run), []).append(res)
    rows = []
    for name, members in groups.items():
        for figure in [k for k in results[0] if k not in ("run", "unstable at the measured rate")]:
            errors = [m[figure] for m in members if m[figure] is not None]
            if errors:
                rows.append({"group": name, "figure": figure, "runs": len(errors),
                             "median_abs_error": statistics.median(abs(e) for e in errors),
                             "median_error": statistics.median(errors)})
        unstable = sum(m["unstable at the measured rate"] for m in members)
        rows.append({"group": name, "figure": "unstable at the measured rate", "runs": len(members),
                     "median_abs_error": None, "median_error": None, "count": unstable})
    return rows


def main(argv: list[str]) -> int:
    runs = [r for r in load() if not r["skip"]]
    skipped = [r for r in load() if r["skip"]]
    results = [predict(r) for r in runs]
    if "--write" in argv:
        table = arrival_table(runs)
        write_table(table)
        print(f"80% ranges under arrivals stored in {RANGES} (leave-one-out coverage: "
              + ", ".join(f"{k} {v['coverage']:.0%}" for k, v in table["regimes"].items()) + ")")
    if "--rows" in argv:
        for res in results:
            print(res["run"])
            print("   " + ", ".join(f"{k} {v:+.0%}" for k, v in res.items() if isinstance(v, float)))
    print(f"{len(runs)} MLPerf Server runs predicted, {len(skipped)} skipped "
          f"({'; '.join(sorted({r['skip'] for r in skipped}))})")
    print(f"{'group':<22} {'figure':<28} {'runs':>4}  median |error|  median error")
    for row in summary(results, runs):
        if row["median_abs_error"] is None:
            print(f"{row['group']:<22} {row['figure']:<28} {row['count']:>4}  of {row['runs']}")
        else:
            print(f"{row['group']:<22} {row['figure']:<28} {row['runs']:>4}  {row['median_abs_error']:>13.1%}  {row['median_error']:>+12.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
