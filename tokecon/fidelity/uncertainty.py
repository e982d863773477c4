"""80% intervals on predictions, from tokecon's own held-out error.

Every validation row is predicted by factors fitted without its source (leave-one-source-out,
tokecon.fidelity.calibrate); its residual is r = ln(measured speed / predicted speed), where a speed is a
throughput, or the inverse of a time (TPOT, TTFT). Residuals are pooled by group:

    device family | engine profile (the engine's generation) | dense or moe | regime

with the regime what was measured: ``decode`` or ``prefill`` throughput, ``tpot``, or ``ttft`` (a
served request's time to first token, whose spread is its own). A prediction x of a speed gets
[x e^q10, x e^q90] (a time or a price: [x e^-q90, x e^-q10]), q10 and q90 the group's 10th and 90th
percentiles, each widened by (1 + 1/sqrt(n)) for a group of n rows, and stretched to hold 0: a range
always contains its own point estimate. A group with fewer than ``MIN_ROWS`` rows falls back to a
coarser one of the same regime (pooling families, then engines, then dense and MoE), and only then to
the regime-free groups (dropping the engine, then dense/moe, then the family). Disaggregated pools
have regimes of their own, ``disagg-ttft`` and ``disagg-tpot`` (from the runs that state their worker
counts), which fall back to ``ttft`` and ``tpot`` only in a table without any. A device family with
no measurements at all takes the pooled residuals of every row widened by ``UNMEASURED_WIDENING``,
because its efficiencies are borrowed from the measured families; so does a family measured only under
its own platform's engine builds (its factors are extrapolated too, tokecon.fidelity.calibrate.platform_families)
under any other engine, whose error those builds' residuals do not describe. A served TTFT or TPOT falls back to
the prefill or decode groups where no row of its own regime was measured. The intervals are stored in
``validation/intervals.toml`` by ``tokecon validate --fit --write``; their coverage of unseen
rows (each source's rows against intervals built without it) is stated there.

Latency under Poisson arrivals is a regime of its own (:func:`annotate_arrivals`): near capacity a
queue's TTFT and TPOT hinge on how the step time grows with the batch there, which no closed-loop row
tests. Its ranges come from MLPerf Server runs predicted at their measured rates
(``validation/arrival_intervals.toml``, written by ``python validation/poisson_check.py --write``; never
fitted on, so each run is unseen) and apply from the lowest load those runs were predicted at.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from tokecon.physics.scenario import Scenario

MIN_ROWS = 8
UNMEASURED_WIDENING = 1.5
#: Keys whose value is a speed (higher is faster) and keys that are a time or a price.
SPEED_KEYS = ("tok_s", "tok_s_per_gpu", "tok_s_per_user", "output_tok_s", "output_tok_s_per_gpu", "input_tok_s",
              "total_tok_s", "total_tok_s_per_gpu", "requests_s", "tok_s_per_node", "max_request_rate")
TIME_KEYS = ("step_time_s", "tpot_s", "ttft_s", "e2e_latency_s", "usd_per_mtok", "usd_per_mtok_input",
             "usd_per_mtok_output", "latency_s")
PREFILL_KEYS = ("ttft_s", "input_tok_s", "usd_per_mtok_input")
#: Keys measured as their own regime, and the regime each falls back to where it has no group.
REGIME_OF_KEY = {"ttft_s": "ttft", "tpot_s": "tpot", "tok_s_per_user": "tpot"}
BASE_REGIME = {"ttft": "prefill", "tpot": "decode", "disagg-ttft": "ttft", "disagg-tpot": "tpot"}
#: Under Poisson arrivals, the latency keys and the regime of validation/arrival_intervals.toml each takes:
#: E2E latency follows TPOT, (O - 1) x TPOT being most of it.
ARRIVAL_REGIME_OF_KEY = {"ttft_s": "arrivals-ttft", "ttft_p99_s": "arrivals-ttft-p99", "tpot_s": "arrivals-tpot",
                         "tok_s_per_user": "arrivals-tpot", "e2e_latency_s": "arrivals-tpot", "tpot_p99_s": "arrivals-tpot-p99"}
#: Under Poisson arrivals, the keys the offered rate sets (throughputs, and the blended price of the tokens
#: offered): exact while the rate is sustained, so without a range (max_request_rate's says how far it is).
OFFERED_KEYS = ("requests_s", "input_tok_s", "output_tok_s", "output_tok_s_per_gpu", "total_tok_s", "total_tok_s_per_gpu",
                "tok_s_per_gpu", "usd_per_mtok")
#: The regimes of a disaggregated row: its TTFT and input-side keys, and every other key.
DISAGG_REGIMES = ("disagg-ttft", "disagg-tpot")


def group_keys(family: str, engine: str, moe: bool, regime: str) -> list[str]:
    """From the most specific group to the coarsest: the regime's own groups first (a TTFT range from
    TTFT residuals), then the regime-free ones."""
    kind = "moe" if moe else "dense"
    own = [f"{family}|{engine}|{kind}|{regime}", f"{engine}|{kind}|{regime}", f"{family}|{kind}|{regime}",
           f"{kind}|{regime}", regime]
    return own + [f"{family}|{engine}|{kind}", f"{family}|{kind}", family, "all"]


def group_regime(key: str) -> str:
    """The regime a group's key (:func:`group_keys`) ends with ("hopper|vllm|dense|tpot": tpot); a
    regime-free key gives its last part, which no regime is."""
    return key.split(" ")[0].rsplit("|", 1)[-1]


def quantiles(residuals: Iterable[float]) -> dict[str, float]:
    """10th and 90th percentiles, widened by 1 + 1/sqrt(n), and stretched to hold 0 (the estimate)."""
    r = np.asarray(list(residuals), dtype=float)
    widen = 1.0 + 1.0 / math.sqrt(len(r))
    return {"rows": len(r), "q10": min(float(np.percentile(r, 10)) * widen, 0.0),
            "q90": max(float(np.percentile(r, 90)) * widen, 0.0)}


def build(residuals: list[tuple[str, str, bool, str, float]]) -> dict[str, dict[str, float]]:
    """Interval table from (family, engine, moe, regime, residual) tuples: every group at every level
    with at least ``MIN_ROWS`` rows (and "all")."""
    pools: dict[str, list[float]] = {}
    for family, engine, moe, regime, r in residuals:
        for key in group_keys(family, engine, moe, regime):
            pools.setdefault(key, []).append(r)
    return {k: quantiles(v) for k, v in sorted(pools.items()) if len(v) >= MIN_ROWS or k == "all"}


def unmeasured_reason(family: str, engine: str, measured_families: set[str],
                      platform_engines: dict[str, list[str]] | None = None) -> str | None:
    """Why a prediction's efficiency is borrowed from the measured families (None: it is measured):
    the family was never measured, or it was measured only under its own platform's engine builds
    (``platform_engines``: MI300X's 2024 ROCm and HIP builds; its factors are then extrapolated,
    tokecon.fidelity.calibrate.platform_families) and ``engine`` is not one of them."""
    if family not in measured_families:
        return f"{family} never measured"
    builds = (platform_engines or {}).get(family)
    if builds is not None and engine not in builds:
        return f"{family} measured only under {', '.join(builds)}, its factors extrapolated"
    return None


def lookup(table: dict[str, dict[str, float]], family: str, engine: str, moe: bool, regime: str,
           measured_families: set[str], platform_engines: dict[str, list[str]] | None = None) -> tuple[float, float, str]:
    """(q10, q90, group used) for a prediction; a TTFT or TPOT regime with no group of its own falls
    back to the prefill or decode groups. A borrowed efficiency (:func:`unmeasured_reason`) takes the
    pooled range of every row, widened: a platform's builds' residuals do not describe another engine."""
    reason = unmeasured_reason(family, engine, measured_families, platform_engines)
    if reason:
        g = table["all"]
        return (min(g["q10"], 0.0) * UNMEASURED_WIDENING, max(g["q90"], 0.0) * UNMEASURED_WIDENING,
                f"{reason}: all rows x{UNMEASURED_WIDENING}")
    while regime in BASE_REGIME and regime not in table:
        regime = BASE_REGIME[regime]
    for key in group_keys(family, engine, moe, regime):
        if key in table:
            return min(table[key]["q10"], 0.0), max(table[key]["q90"], 0.0), key
    raise KeyError("interval table has no 'all' group")


def stored_bounds(family: str, engine: str, moe: bool, regime: str) -> tuple[float, float, str]:
    """(q10, q90, group) of a prediction from the stored table (:func:`lookup`)."""
    data = stored()
    return lookup(data["groups"], family, engine, moe, regime, set(data.get("measured_families", ())),
                  data.get("platform_engines"))


def intervals_path(name: str = "intervals.toml") -> Path:
    from tokecon.datafiles import data_file

    return data_file(name, "validation")


def _stored_toml(name: str) -> dict[str, Any]:
    from tokecon.catalogs.parse_cache import parsed

    def parse() -> dict[str, Any]:
        import tomllib

        return tomllib.loads(path.read_text(encoding="utf-8"))

    path = intervals_path(name)
    return parsed(path, parse, name.removesuffix(".toml")) if path.is_file() else {}


@lru_cache(maxsize=1)
def stored() -> dict[str, Any]:
    """The stored table: {"groups": {...}, "measured_families": [...], "coverage": ...}; empty when absent."""
    return _stored_toml("intervals.toml")


@lru_cache(maxsize=1)
def stored_arrivals() -> dict[str, Any]:
    """The ranges of latency under Poisson arrivals: {"regimes": {...}, "min_utilisation": ..., ...};
    empty when absent."""
    return _stored_toml("arrival_intervals.toml")


def _multipliers(key: str, q10: float, q90: float) -> tuple[float, float]:
    """A value's 80% range as multipliers: a speed's [e^q10, e^q90], a time's or price's [e^-q90, e^-q10]."""
    return (math.exp(q10), math.exp(q90)) if key in SPEED_KEYS else (math.exp(-q90), math.exp(-q10))


def measured(scn: Scenario) -> bool | None:
    """Whether public measurements of the device's family under this engine stand behind its
    efficiency, or it is borrowed (:func:`unmeasured_reason`; None: no stored table)."""
    data = stored()
    if not data:
        return None
    return unmeasured_reason(scn.hardware.family, scn.engine.key, set(data.get("measured_families", ())),
                             data.get("platform_engines")) is None


def key_regime(key: str, regime: str) -> str:
    """The regime whose range a row's ``key`` takes: a disaggregated row's (``regime`` one of
    :data:`DISAGG_REGIMES`) TTFT and input-side keys take ``disagg-ttft``, its others ``disagg-tpot``;
    otherwise TTFT, TPOT and tok/s per user their own, the other prefill keys ``prefill``, the rest
    ``regime``."""
    if regime in DISAGG_REGIMES:
        return DISAGG_REGIMES[0] if key in PREFILL_KEYS else DISAGG_REGIMES[1]
    return REGIME_OF_KEY.get(key) or ("prefill" if key in PREFILL_KEYS else regime)


def annotate(row: dict[str, Any], scn: Scenario, regime: str = "decode") -> dict[str, Any]:
    """Add ``<key>_p10`` / ``<key>_p90`` to every speed, time and price in ``row`` (none for an ideal
    roofline, which is a bound, or when no interval table is stored), each key in its
    :func:`key_regime`."""
    data = stored()
    if scn.ideal or not data:
        return row
    bounds = {}
    for reg in {regime, *(key_regime(k, regime) for k in (*SPEED_KEYS, *TIME_KEYS))}:
        bounds[reg] = stored_bounds(scn.hardware.family, scn.engine.key, scn.model.is_moe, reg)
    for key in (*SPEED_KEYS, *TIME_KEYS):
        value = row.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        q10, q90, _ = bounds[key_regime(key, regime)]
        lo, hi = _multipliers(key, q10, q90)
        row[f"{key}_p10"], row[f"{key}_p90"] = value * lo, value * hi
    row["interval_group"] = bounds[regime][2]
    row["device_measured"] = measured(scn)
    return row


def arrivals_apply(scn: Scenario, utilisation: float | None) -> bool:
    """Whether a row under Poisson arrivals at ``utilisation`` takes the arrival ranges: a real
    roofline, a stored table, and a load no lower than the lowest its runs were predicted at."""
    data = stored_arrivals()
    return bool(not scn.ideal and data and utilisation is not None and utilisation >= data["min_utilisation"])


def annotate_arrivals(row: dict[str, Any], scn: Scenario) -> dict[str, Any]:
    """A row of :func:`annotate` under Poisson arrivals: the keys the offered rate sets
    (:data:`OFFERED_KEYS`) lose their ranges, and where :func:`arrivals_apply` the latency keys
    (:data:`ARRIVAL_REGIME_OF_KEY`) take the arrival regime's, widened by ``UNMEASURED_WIDENING`` on a
    device whose efficiency is borrowed (below that load the closed-loop ranges stand: no run measures
    a light Poisson load); ``latency_interval_group`` says which."""
    for key in (f"{k}_{q}" for k in OFFERED_KEYS for q in ("p10", "p90")):
        row.pop(key, None)
    if not arrivals_apply(scn, row.get("utilisation")):
        return row
    regimes = stored_arrivals()["regimes"]
    widen = 1.0 if row.get("device_measured", True) else UNMEASURED_WIDENING  # borrowed efficiency: as annotate widens
    for key, regime in ARRIVAL_REGIME_OF_KEY.items():
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            lo, hi = _multipliers(key, widen * regimes[regime]["q10"], widen * regimes[regime]["q90"])
            row[f"{key}_p10"], row[f"{key}_p90"] = value * lo, value * hi
    row["latency_interval_group"] = "arrivals"
    return row


def arrivals_note() -> str | None:
    """One line saying where the ranges of latency under arrivals come from and how often they held."""
    data = stored_arrivals()
    if not data:
        return None
    reg = data["regimes"]

    def span(regime: str) -> str:
        lo, hi = _multipliers("ttft_s", reg[regime]["q10"], reg[regime]["q90"])
        return f"{lo:.1f}x..{hi:.1f}x"

    held = sorted(r["coverage"] for r in reg.values())
    return (f"From {data['min_utilisation']:.0%} load the latency ranges come from {data['runs']} MLPerf Server runs "
            f"({', '.join(data['engines'])}) at their measured rates: TTFT {span('arrivals-ttft')} tokecon's mean "
            f"(p99 {span('arrivals-ttft-p99')}), TPOT {span('arrivals-tpot')} (p99 {span('arrivals-tpot-p99')}); "
            f"they held {held[0]:.0%}-{held[-1]:.0%} of runs left out in turn.")


def interval_note(scn: Scenario, regime: str = "decode") -> str | None:
    """One line saying where the 80% range of this scenario comes from."""
    data = stored()
    if scn.ideal or not data:
        return None
    q10, q90, group = stored_bounds(scn.hardware.family, scn.engine.key, scn.model.is_moe, regime)
    rows = data["groups"].get(group, {}).get("rows")
    held = data.get("coverage_by_regime", {}).get(regime)
    basis = (f"group {group}, {rows} rows; such ranges held "
             + (f"{held:.0%} of unseen {regime} rows" if held is not None else f"{data.get('coverage_unseen', 0):.0%} of unseen rows")
             if rows
             else f"{group}; no held-out row of this kind tests it")
    return (f"80% range ({scn.hardware.key}, {regime}): measured speeds fell within {math.exp(q10):.2f}x..{math.exp(q90):.2f}x "
            f"of tokecon's held-out predictions ({basis}).")
