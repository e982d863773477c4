"""Error of tokecon's predictions per regime (a benchmark script, not a unit test).

    python bench/fidelity_regimes.py                  # stored factors (in sample), seconds
    python bench/fidelity_regimes.py --held-out       # each source predicted by factors fitted without it
    python bench/fidelity_regimes.py --held-out --save rows.json   # keep the per-row errors
    python bench/fidelity_regimes.py --compare before.json after.json   # two saved runs side by side

Regimes (issue 18): the engine generation, dense or MoE, how the load was offered (static batch,
offline maximum throughput, closed loop at a fixed concurrency, Poisson arrivals, disaggregated
pools), and the metric class (throughput, TPOT, TTFT apart). Held out means leave-one-source-out:
every row of a source (TTFT and disaggregated rows included, which the fit never sees) is predicted
by factors fitted on the other sources' rows, as ``tokecon validate --fit --held-out`` does for the
fitted rows. How often the 80% ranges hold unseen rows, per regime (decode, prefill, TPOT, TTFT and
the disaggregated pools' TTFT and TPOT), is computed by ``tokecon validate --fit --held-out`` and
stored in validation/intervals.toml (``coverage_by_regime``).
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict

import numpy as np

from tokecon.catalogs.catalog import load_catalog
from tokecon.fidelity import calibrate, validation

THROUGHPUT = ("output_tok_per_s_per_gpu", "output_tok_per_s_total", "output_tok_per_s_per_user", "prefill_tok_per_s",
              "input_tok_per_s_per_node", "output_tok_per_s_per_node", "batch_latency_s")


def metric_class(case: validation.Case) -> str:
    if case.metric == "ttft_ms":
        return "ttft"
    if case.metric == "tpot_ms":
        return "tpot"
    return "throughput"


def load_regime(case: validation.Case) -> str:
    return {"static": "static batch", "prefill": "static batch", "inflight": "offline max", "serving": "closed loop",
            "disagg": "disaggregated", "moe": "large-scale MoE", "arrivals": "Poisson arrivals"}.get(case.kind, case.kind)


def labels(case: validation.Case) -> dict[str, str]:
    scn = case.scenario
    dep = scn.deployment
    per_rank = case.batch / max(dep.replicas, 1)
    adp = "deepseek ADP high concurrency" if (scn.model.key == "deepseek-v3" and dep.attention_dp and per_rank >= 32) else ""
    return {"engine": case.engine, "kind": "moe" if scn.model.is_moe else "dense", "load": load_regime(case),
            "metric": metric_class(case), "source": calibrate.source_of(case), "family": case.family, "special": adp}


def in_sample() -> list[dict]:
    catalog = load_catalog(use_user_home=False)
    outcomes = validation.evaluate(validation.load_measurements(), catalog, with_ideal=False)
    return [{"id": o.id, **labels(o.case), "error": o.error} for o in outcomes if o.error is not None]


def held_out(progress: bool = True) -> list[dict]:
    """Every predicted row, predicted by factors fitted without its source."""
    catalog = load_catalog(use_user_home=False)
    outcomes = validation.evaluate(validation.load_measurements(), catalog, with_ideal=False)
    done = [o for o in outcomes if o.case is not None and o.predicted is not None]
    fit_cases = calibrate.fit_cases(outcomes)
    sources = sorted({calibrate.source_of(o.case) for o in done})
    out = []
    t0 = time.perf_counter()
    fitted_sources = {calibrate.source_of(c) for c in fit_cases}
    everything = None  # a source with no fitted rows (disaggregated runs) is predicted by the fit on all others
    for n, source in enumerate(sources):
        train = [c for c in fit_cases if calibrate.source_of(c) != source]
        test = [o.case for o in done if calibrate.source_of(o.case) == source]
        if source in fitted_sources:
            f = calibrate.fit(train, sweeps=2)
        else:
            everything = everything or calibrate.fit(train, sweeps=2)
            f = everything.copy()
        f.family.update(calibrate.extrapolate(f, sorted({calibrate.fit_family(c.family) for c in test})))
        predicted = calibrate.Rows.of(test).predict(f)
        out += [{"id": c.row["id"], **labels(c), "error": float(p / c.measured - 1.0)}
                for c, p in zip(test, predicted) if np.isfinite(p)]
        if progress:
            print(f"  held out {n + 1}/{len(sources)} {source} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def table(rows: list[dict], title: str) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        groups[f"metric {r['metric']}"].append(r)
        groups[f"load {r['load']}"].append(r)
        groups[f"load {r['load']} / {r['metric']}"].append(r)
        groups[f"engine {r['engine']} / {r['metric']}"].append(r)
        groups[f"{r['kind']} / {r['metric']}"].append(r)
        if r["special"]:
            groups[f"{r['special']} / {r['metric']}"].append(r)
    print(f"\n{title}\n{'group':<48} {'rows':>6} {'median |err|':>13} {'p90 |err|':>10} {'median err':>11}")
    for name in sorted(groups, key=lambda g: (g != "all", g)):
        e = np.array([r["error"] for r in groups[name]])
        print(f"{name:<48} {e.size:6d} {np.median(np.abs(e)):12.1%} {np.percentile(np.abs(e), 90):10.1%} {np.median(e):+10.1%}")


def main(argv: list[str]) -> int:
    if "--compare" in argv:
        a, b = argv[argv.index("--compare") + 1: argv.index("--compare") + 3]
        for path in (a, b):
            table(json.load(open(path)), path)
        return 0
    t0 = time.perf_counter()
    rows = held_out() if "--held-out" in argv else in_sample()
    table(rows, ("held out (leave one source out)" if "--held-out" in argv else "in sample (stored factors)")
          + f", {time.perf_counter() - t0:.0f} s")
    if "--save" in argv:
        with open(argv[argv.index("--save") + 1], "w") as fh:
            json.dump(rows, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
