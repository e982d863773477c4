"""Fit the efficiency factors to the public measurements, with held-out error.

Free parameters, and nothing else (no factor of a row's own):

* per device family (hopper, ampere, ada, blackwell, cdna3, ...): the achievable fraction of
  dense peak FLOP/s (``compute``), of memory bandwidth when streaming weights (``memory_bw``)
  and when reading the paged KV cache (``kv_bw``), and of a PCIe scale-up link (``link``);
* per engine generation (engines.toml: vllm-v0, vllm, sglang-2025, sglang, trtllm-2024, trtllm,
  llamacpp; the AMD builds vllm-rocm-2024 and llamacpp-hip fit only their kernel scales and share
  their engine's other factors, engines.toml ``built_from``; a family measured only on such builds is
  extrapolated, not fitted, :func:`platform_families`): a fixed per-step overhead (``step_overhead_ms``), a per-layer kernel-launch floor
  (``step_overhead_per_layer_us``), a per-sequence one (``step_overhead_per_seq_us``), scales on compute and bandwidth relative to TensorRT-LLM 0.x,
  the reference (scales fixed at 1: the device factors are what it reaches), for engines
  with MoE rows the tokens per expert at which their grouped GEMMs reach half efficiency
  (``moe_tokens_half``, tokecon.physics.efficiency) and a fixed cost per MoE layer and step
  (``moe_layer_overhead_us``, tokecon.physics.scenario.Scenario.layer_overhead_s), for engines with attention-DP serving rows
  the share of the ranks' prefill imbalance their scheduler removes (``adp_prefill_balance``,
  tokecon.serving.batching.lockstep_share), and for engines with closed-loop TTFT rows a served
  request's first-token time outside the steps (``ttft_overhead_ms``);
* per closed-loop benchmark client (validation/benchmarks.toml): the share of requests in the
  start-up burst and the share of a fixed-length loop that stays in phase, fitted on its TTFT
  rows alone (tokecon.serving.batching, "The phase of a closed loop").

Loss: a robust (soft-L1) sum over rows of the log ratio predicted / measured, so a row off by
2x counts the same whether it over- or under-predicts and one outlier cannot dominate. Rows are
weighted 1/sqrt(rows of their source), so a source of 400 rows counts 20 rows' worth and none
dominates; a source contributes at most ``MAX_FIT_ROWS_PER_SOURCE`` rows to the fit (an even,
deterministic stride over its rows), which keeps the fit under a minute.
A weak prior keeps each factor near its physically measured value (MAMF for compute, 0.8 of
HBM for weights, ...) unless the rows say otherwise, so a family with few rows cannot drift to
an unphysical value. Optimiser: deterministic coordinate descent from the priors on a shrinking
grid; each step re-predicts only the rows the parameter touches, a scenario at a time.

Held-out error: leave-one-source-out (each source's rows predicted by factors fitted on all the
others). Its residuals also give the 80% intervals (tokecon.fidelity.uncertainty).

Run ``tokecon validate --fit`` (prints the factors and the in-sample error), ``--held-out`` for
the leave-one-source-out error and intervals; add ``--write`` to store them.
"""

from __future__ import annotations

import math
import re
from dataclasses import field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from tokecon.fidelity import uncertainty
from tokecon.fidelity.validation import GROUP_PREDICTORS, PREDICTORS, Case, Outcome, Skip, _group_key, workers_stated
from tokecon.physics import efficiency
from tokecon.records import record

FAMILY_PARAMS = {"compute": (0.1, 0.95), "memory_bw": (0.1, 0.95), "kv_bw": (0.1, 0.95), "link": (0.05, 0.95)}
ENGINE_PARAMS = {"compute_scale": (0.2, 1.6), "memory_bw_scale": (0.3, 1.6), "step_overhead_ms": (0.0, 40.0),
                 "step_overhead_per_seq_us": (0.0, 300.0), "step_overhead_per_layer_us": (0.0, 200.0),
                 "moe_tokens_half": (10.0, 5000.0), "ttft_overhead_ms": (0.0, 2000.0), "adp_prefill_balance": (0.0, 1.0),
                 "moe_layer_overhead_us": (0.0, 2000.0)}
#: Parameters of a closed-loop benchmark client (validation/benchmarks.toml), fitted on its TTFT rows.
BENCHMARK_PARAMS = {"first_wave_share": (0.0, 1.0), "phase_coherence": (0.0, 1.0)}
#: Parameters that only the TTFT of served requests sees, fitted on those rows alone (and those rows
#: on them alone: a closed loop's TTFT is too noisy a witness of the step's efficiency).
TTFT_PARAMS = ("ttft_overhead_ms", *BENCHMARK_PARAMS)
REFERENCE_ENGINE = "trtllm-2024"  # TensorRT-LLM 0.x: the device factors are what it reaches
MIN_ROWS = 3  # a family or engine with fewer rows keeps its defaults
MAX_FIT_ROWS_PER_SOURCE = 60
_DELTA = 0.25  # soft-L1 scale on the log ratio (~25%)


#: Families that share one set of efficiency factors: Blackwell Ultra (B300, GB300) is Blackwell's
#: architecture and HBM3e memory system with more FP4 throughput, so the fractions of peak it
#: reaches are Blackwell's, and its two sources alone cannot pin them down.
SHARED_FAMILIES = {"blackwell-ultra": "blackwell"}


#: What an engine's build for another vendor's GPUs (engines.toml ``built_from``) fits of its own: it
#: runs the CPU side (scheduler, sampling, launches per layer and step) of the engine it is built
#: from, so it shares that engine's overheads and TTFT terms and differs only in its kernels.
BACKEND_PARAMS = ("compute_scale", "memory_bw_scale")


def fit_family(family: str) -> str:
    """The family whose fitted factors a device family uses."""
    return SHARED_FAMILIES.get(family, family)


@record(frozen=False)
class Factors:
    family: dict[str, dict[str, float]] = field(default_factory=dict)
    engine: dict[str, dict[str, float]] = field(default_factory=dict)
    benchmark: dict[str, dict[str, float]] = field(default_factory=dict)
    #: families measured only on their own platform's engines (:func:`platform_families`): their
    #: factors are extrapolated from the fitted families, never fitted
    derived: dict[str, dict[str, float]] = field(default_factory=dict)
    built_from: dict[str, str] = field(default_factory=dict)  # a vendor build -> the engine whose CPU side it runs

    def copy(self) -> "Factors":
        return Factors({k: dict(v) for k, v in self.family.items()}, {k: dict(v) for k, v in self.engine.items()},
                       {k: dict(v) for k, v in self.benchmark.items()}, {k: dict(v) for k, v in self.derived.items()},
                       dict(self.built_from))


def ttft_row(case: Case) -> bool:
    """A served request's TTFT (closed loop): the rows the TTFT parameters are fitted on."""
    return case.kind == "serving" and case.metric == "ttft_ms"


def _apply_cases(cases: list[Case], f: Factors) -> list[Case]:
    """The cases with their benchmark's fitted shares (validation/benchmarks.toml)."""
    b = f.benchmark.get(cases[0].benchmark.key) if cases and cases[0].benchmark.key else None
    if not b:
        return cases
    bench = replace(cases[0].benchmark, **b)
    return [replace(c, benchmark=bench) for c in cases]


def engine_factors(f: Factors, engine: str) -> dict[str, float] | None:
    """The fitted factors of ``engine``: for a vendor build (``built_from``), its own kernel scales
    over the CPU-side factors of the engine it is built from."""
    own = f.engine.get(engine)
    base = f.engine.get(f.built_from.get(engine, ""))
    return {**base, **own} if own is not None and base is not None else own


def _apply_scenario(scn, f: Factors):
    hw, eng = scn.hardware, scn.engine
    fam = f.family.get(fit_family(hw.family)) or f.derived.get(fit_family(hw.family))
    if fam:
        eff = replace(hw.efficiency, compute=fam["compute"], memory_bw=fam["memory_bw"], kv_bw=fam["kv_bw"],
                      link=fam.get("link", hw.efficiency.link))
        hw = replace(hw, efficiency=eff)
    e = engine_factors(f, eng.key)
    if e:
        eng = replace(eng, compute_scale=e["compute_scale"], memory_bw_scale=e["memory_bw_scale"],
                      step_overhead_s=e["step_overhead_ms"] * 1e-3,
                      step_overhead_per_seq_s=e["step_overhead_per_seq_us"] * 1e-6,
                      step_overhead_per_layer_s=e["step_overhead_per_layer_us"] * 1e-6,
                      moe_tokens_half=e.get("moe_tokens_half", eng.moe_tokens_half),
                      ttft_overhead_s=e["ttft_overhead_ms"] * 1e-3 if "ttft_overhead_ms" in e else eng.ttft_overhead_s,
                      adp_prefill_balance=e.get("adp_prefill_balance", eng.adp_prefill_balance),
                      moe_layer_overhead_s=e["moe_layer_overhead_us"] * 1e-6 if "moe_layer_overhead_us" in e else eng.moe_layer_overhead_s)
    return replace(scn, deployment=replace(scn.deployment, hardware=hw), engine=eng)


@record(frozen=False)
class Rows:
    """Cases grouped by scenario (as validation.predict_many groups them), with their weights, so a
    trial of the factors rebuilds one scenario per group, not one per row."""

    cases: list[Case]
    weights: np.ndarray
    groups: list[tuple[str, list[int]]]

    @classmethod
    def of(cls, cases: list[Case]) -> "Rows":
        counts: dict[str, int] = {}
        for c in cases:
            counts[source_of(c)] = counts.get(source_of(c), 0) + 1
        weights = np.array([1.0 / math.sqrt(counts[source_of(c)]) for c in cases])
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(cases):
            groups.setdefault(_group_key(c), []).append(i)
        return cls(cases, weights, [(key[0], idx) for key, idx in groups.items()])

    def subset(self, keep: Callable[[Case], bool]) -> "Rows":
        idx = [i for i, c in enumerate(self.cases) if keep(c)]
        sub = Rows.of([self.cases[i] for i in idx])
        sub.weights = self.weights[idx]
        return sub

    def predict(self, f: Factors) -> np.ndarray:
        """Predicted value of every row with factors ``f`` (NaN where it cannot be predicted)."""
        out = np.full(len(self.cases), np.nan)
        for kind, idx in self.groups:
            scn = _apply_scenario(self.cases[idx[0]].scenario, f)
            if kind in GROUP_PREDICTORS:
                more = {"screen": False} if kind == "serving" else {}  # the rows were screened when they were built
                out[idx] = GROUP_PREDICTORS[kind](scn, _apply_cases([self.cases[i] for i in idx], f), **more)[0]
                continue
            for i in idx:
                try:
                    out[i] = PREDICTORS[kind](replace(self.cases[i], scenario=scn))
                except (Skip, KeyError):
                    pass
        return out


def _log_ratios(rows: Rows, f: Factors) -> np.ndarray:
    measured = np.array([c.measured for c in rows.cases])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(rows.predict(f) / measured)
    return np.where(np.isfinite(r), r, math.log(10.0))  # a row the factors make impossible counts as 10x off


def _loss(rows: Rows, f: Factors) -> float:
    z = _log_ratios(rows, f) / _DELTA
    return float(np.sum(rows.weights * 2.0 * (np.sqrt(1.0 + z * z) - 1.0)))


#: Prior (starting) values, fixed here so that the fit is reproducible whatever the catalog
#: currently holds. Compute: the measured best-shape matmul fraction (MAMF, stas00/ml-engineering,
#: github.com/stas00/ml-engineering/blob/master/compute/accelerator/README.md#maximum-achievable-flops);
#: weights: aiconfigurator's 0.8 of HBM; KV cache: paged reads reach about half of what weight
#: streaming does (~1.4 vs ~2.8 TB/s on H100: Nsight Compute figures in a single-author blog,
#: https://mikamirai.com/blog/gpu-memory-bandwidth/);
#: links: ~0.8 (nvbandwidth, nccl-tests).
FAMILY_PRIORS: dict[str, dict[str, float]] = {family: {"compute": f} for family, f in efficiency.MAMF_FRACTION.items()}
DEFAULT_FAMILY_PRIOR = {"compute": 0.7, "memory_bw": 0.8, "kv_bw": 0.5, "link": 0.8}
ENGINE_PRIOR = {"compute_scale": 1.0, "memory_bw_scale": 1.0, "step_overhead_ms": 1.0,
                "step_overhead_per_seq_us": efficiency.STEP_OVERHEAD_PER_SEQ_US,
                "step_overhead_per_layer_us": efficiency.STEP_OVERHEAD_PER_LAYER_US,
                "moe_tokens_half": efficiency.GROUPED_GEMM_TOKENS_HALF,
                "ttft_overhead_ms": efficiency.TTFT_OVERHEAD_MS, "adp_prefill_balance": 0.0,
                "moe_layer_overhead_us": efficiency.MOE_LAYER_OVERHEAD_US}
#: Priors of a benchmark client: every request of a fixed-length loop in phase (the limit cycle of
#: tokecon.serving.batching), and a first wave of one in ten (a run of 10 C requests).
BENCHMARK_PRIOR = {"first_wave_share": 0.1, "phase_coherence": 1.0}
#: Prior widths: log-space for fractions and the MoE half point (0.5 ~ x/÷1.65), additive for
#: the overheads (ms, us). A family or engine with few rows stays near its prior; many rows
#: override it (maximum a posteriori). 0.5 was chosen by held-out error (0.3 gave a worse
#: leave-one-source-out median on the curated rows: 17.9% against 16.3%).
PRIOR_SIGMA = {"compute": 0.5, "memory_bw": 0.5, "kv_bw": 0.6, "link": 0.4, "compute_scale": 0.5,
               "memory_bw_scale": 0.5, "step_overhead_ms": 3.0, "step_overhead_per_seq_us": 30.0,
               "step_overhead_per_layer_us": 20.0,
               "moe_tokens_half": 1.5, "ttft_overhead_ms": 100.0, "first_wave_share": 0.3, "phase_coherence": 0.5,
               "adp_prefill_balance": 0.5, "moe_layer_overhead_us": 100.0}
_ADDITIVE = {"step_overhead_ms": 10.0, "step_overhead_per_seq_us": 50.0, "step_overhead_per_layer_us": 40.0,
             "ttft_overhead_ms": 200.0, "first_wave_share": 0.4, "phase_coherence": 0.6,
             "adp_prefill_balance": 0.6, "moe_layer_overhead_us": 200.0}  # grid span per unit of span


def family_prior(family: str) -> dict[str, float]:
    return {**DEFAULT_FAMILY_PRIOR, **FAMILY_PRIORS.get(family, {})}


def _prior_penalty(name: str, value: float, prior: float) -> float:
    sigma = PRIOR_SIGMA[name]
    z = (value - prior) / sigma if name in _ADDITIVE else math.log(value / prior) / sigma
    return z * z


def initial_factors(cases: list[Case]) -> Factors:
    """The priors, for the families and engines with enough rows to be fitted (the MoE half point
    only for engines with MoE rows)."""
    f = Factors()
    fams: dict[str, int] = {}
    engs: dict[str, int] = {}
    moe: dict[str, int] = {}
    ttft: dict[str, int] = {}
    benches: dict[str, int] = {}
    adp: dict[str, int] = {}
    for c in cases:
        adp[c.engine] = adp.get(c.engine, 0) + (c.kind == "serving" and c.scenario.deployment.attention_dp and not ttft_row(c))
        if ttft_row(c):
            ttft[c.engine] = ttft.get(c.engine, 0) + 1
            if c.benchmark.key:
                benches[c.benchmark.key] = benches.get(c.benchmark.key, 0) + 1
            continue
        fams[fit_family(c.family)] = fams.get(fit_family(c.family), 0) + 1
        if c.scenario.engine.built_from:
            f.built_from[c.engine] = c.scenario.engine.built_from
        engs[c.engine] = engs.get(c.engine, 0) + 1
        moe[c.engine] = moe.get(c.engine, 0) + c.scenario.model.is_moe
    for family, n in fams.items():
        if n >= MIN_ROWS:
            f.family[family] = family_prior(family)
    for engine, n in engs.items():
        if n >= MIN_ROWS:
            f.engine[engine] = {k: v for k, v in ENGINE_PRIOR.items()
                                if (k not in ("moe_tokens_half", "moe_layer_overhead_us") or moe[engine] >= MIN_ROWS)
                                and (k != "ttft_overhead_ms" or ttft.get(engine, 0) >= MIN_ROWS)
                                and (k != "adp_prefill_balance" or adp.get(engine, 0) >= MIN_ROWS)
                                and (k in BACKEND_PARAMS or engs.get(f.built_from.get(engine, ""), 0) < MIN_ROWS)}
    for key, n in benches.items():
        if n >= MIN_ROWS:
            f.benchmark[key] = dict(BENCHMARK_PRIOR)
    return f


def platform_engines(cases: list[Case]) -> dict[str, list[str]]:
    """Families whose rows all ran on engines that no other family's rows ran on (the ROCm and HIP
    backends of 2024 on MI300X), with those engines. On those rows a family's fraction of peak and its
    engines' scales are one product that no fit can split, so the family is treated as unmeasured (its
    prior x the fitted families' mean fitted/prior ratio, :func:`extrapolate`) and the engines' scales
    take the rest: the hardware's factors then come from engines measured across vendors, and a current
    engine on that family is not charged with a 2024 backend's shortfall."""
    families_of: dict[str, set[str]] = {}
    engines_of: dict[str, set[str]] = {}
    for c in cases:
        if not ttft_row(c):
            families_of.setdefault(c.engine, set()).add(fit_family(c.family))
            engines_of.setdefault(fit_family(c.family), set()).add(c.engine)
    return {fam: sorted(engines) for fam, engines in engines_of.items() if all(len(families_of[e]) == 1 for e in engines)}


def platform_families(cases: list[Case]) -> set[str]:
    """The families of :func:`platform_engines`: fitted as unmeasured ones."""
    return set(platform_engines(cases))


def _device_platforms(cases: list[Case]) -> dict[str, list[str]]:
    """:func:`platform_engines` keyed by the device families of ``cases`` (as the interval table is)."""
    engines = platform_engines(cases)
    return {c.family: engines[fit_family(c.family)] for c in cases if fit_family(c.family) in engines}


def _pcie_tp_families(cases: list[Case]) -> set[str]:
    """Families with enough multi-GPU rows over PCIe to fit the link efficiency. NVLink/xGMI
    efficiency is known from nccl-tests and nvbandwidth (~0.8) and stays at the catalog value;
    PCIe all-reduce depends on the server (P2P support, switches, the CPU) and is fitted."""
    counts: dict[str, int] = {}
    for c in cases:
        dep = c.scenario.deployment
        if dep.tp > 1 and c.scenario.hardware.scaleup_link.upper().startswith("PCIE"):
            counts[fit_family(c.family)] = counts.get(fit_family(c.family), 0) + 1
    return {k for k, n in counts.items() if n >= MIN_ROWS}


def _coordinates(f: Factors, pcie: set[str]) -> list[tuple[str, str, str, tuple[float, float]]]:
    coords = [("family", k, p, b) for k in sorted(f.family) for p, b in FAMILY_PARAMS.items()
              if p != "link" or k in pcie]
    for k in sorted(f.engine):
        for p in f.engine[k]:
            if k == REFERENCE_ENGINE and p in ("compute_scale", "memory_bw_scale"):
                continue
            coords.append(("engine", k, p, ENGINE_PARAMS[p]))
    coords += [("benchmark", k, p, BENCHMARK_PARAMS[p]) for k in sorted(f.benchmark) for p in f.benchmark[k]]
    return coords


def fit_sample(cases: list[Case]) -> list[Case]:
    """At most ``MAX_FIT_ROWS_PER_SOURCE`` rows of each source, an even stride over its rows (its
    served TTFT rows apart: they fit their own parameters)."""
    by_source: dict[tuple[str, bool], list[Case]] = {}
    for c in cases:
        by_source.setdefault((source_of(c), ttft_row(c)), []).append(c)
    out = []
    for rows in by_source.values():
        step = max(1, math.ceil(len(rows) / MAX_FIT_ROWS_PER_SOURCE))
        out += rows[::step]
    return out


def _grid(name: str, current: float, span: float, points: int) -> np.ndarray:
    """Values a coordinate tries: additive for the overheads and shares, multiplicative otherwise."""
    if name in _ADDITIVE:
        return current + np.linspace(-1, 1, points) * span * _ADDITIVE[name]
    return current * np.exp(np.linspace(-1, 1, points) * span * (3.0 if name == "moe_tokens_half" else 1.0))


def _descend(f: Factors, coords: list[tuple[str, str, str, tuple[float, float]]],
             data_loss: Callable[[str, str], Callable[[], float]], prior_of: Callable[[str, str, str], float],
             sweeps: int, points: int, progress: Callable[[int, int], None] | None = None,
             before_sweep: Callable[[], None] = lambda: None) -> None:
    """Coordinate descent on ``f`` in place: each (group, key, name, bounds) in turn tries its grid
    (:func:`_grid`, clipped to bounds) and keeps the value of lowest data loss + prior penalty; the grid
    narrows x0.6 every sweep. ``data_loss(group, key)`` gives the loss of the rows the key touches.
    The loss at the current value is not recomputed where it is known: the grid's own centre, and a
    coordinate that follows one of the same key (its rows, and every factor but the one just kept, are
    the same)."""
    span, total, done = 0.5, sweeps * len(coords), 0
    for _ in range(sweeps):
        before_sweep()
        known: tuple[tuple[str, str], float] | None = None  # (key, data loss at the current factors)
        for group, key, name, (lo, hi) in coords:
            table, prior, loss = getattr(f, group)[key], prior_of(group, key, name), data_loss(group, key)
            current = table[name]
            data = known[1] if known and known[0] == (group, key) else loss()
            best_value, best_data = current, data
            best_loss = data + _prior_penalty(name, current, prior)
            for value in np.clip(_grid(name, current, span, points), lo, hi):
                if float(value) == current:
                    continue
                table[name] = float(value)
                data = loss()
                trial = data + _prior_penalty(name, float(value), prior)
                if trial < best_loss - 1e-12:
                    best_value, best_data, best_loss = float(value), data, trial
            table[name] = best_value
            known = ((group, key), best_data)
            done += 1
            if progress:
                progress(done, total)
        span *= 0.6


def fit(cases: list[Case], sweeps: int = 3, points: int = 5, progress: Callable[[int, int], None] | None = None) -> Factors:
    """Coordinate descent from the priors: each parameter in turn tries a grid around its value
    (additive for the overheads, multiplicative otherwise), keeps the value with the lowest
    data loss + prior penalty, and the grid narrows every sweep. Deterministic.

    Two stages: the step's parameters on every row but the served TTFTs, then the TTFT's own
    parameters (:data:`TTFT_PARAMS`) on those, from the TTFT's terms computed once with the step's
    factors (:func:`fit_ttft`): they change no step, so nothing flows back.
    ``progress(done, total)`` is called after every parameter."""
    sample = fit_sample(cases)
    f = initial_factors(sample)
    derived = sorted(platform_families(sample) & set(f.family))
    for family in derived:
        del f.family[family]
    priors = {("family", k): family_prior(k) for k in f.family} | {("engine", k): ENGINE_PRIOR for k in f.engine}
    rows = Rows.of(sample)
    touched = {("family", k): rows.subset(lambda c, k=k: fit_family(c.family) == k and not ttft_row(c))
               for k in f.family} | {
        ("engine", k): rows.subset(lambda c, k=k: k in (c.engine, f.built_from.get(c.engine)) and not ttft_row(c))
        for k in f.engine}
    coords = [c for c in _coordinates(f, _pcie_tp_families(sample)) if c[2] not in TTFT_PARAMS]
    _descend(f, coords, lambda group, key: (lambda: _loss(touched[(group, key)], f)),
             lambda group, key, name: priors[(group, key)][name], sweeps, points, progress,
             before_sweep=lambda: setattr(f, "derived", extrapolate(f, derived)))
    f.derived = extrapolate(f, derived)
    fit_ttft(f, [c for c in sample if ttft_row(c)], sweeps, points)
    for group in (f.family, f.engine, f.benchmark):
        for table in group.values():
            for k in table:
                table[k] = round(table[k], 3)
    return f


def ttft_terms(cases: list[Case], f: Factors) -> tuple[list[Case], dict[str, np.ndarray]]:
    """The terms of each served TTFT row (tokecon.serving.batching.TtftParts) with factors ``f``: one
    roofline evaluation per scenario; rows that cannot be predicted are dropped."""
    from tokecon.serving.batching import serve

    rows = Rows.of(cases)
    keep, parts = [], {k: [] for k in ("base", "staggered", "in_phase", "first_wave", "shape")}
    for _, idx in rows.groups:
        group = [rows.cases[i] for i in idx]
        scn = _apply_scenario(group[0].scenario, f)
        conc, isl, osl = (np.array([getattr(c, a) for c in group], dtype=float) for a in ("batch", "input_len", "output_len"))
        t = serve(scn, conc, isl, osl, step_tokens=group[0].benchmark.step_tokens(scn.engine.family, conc, isl)).ttft_parts
        ok = np.isfinite(t.staggered)
        keep += [c for c, good in zip(group, ok) if good]
        for k in parts:
            parts[k].append(np.broadcast_to(getattr(t, k), ok.shape)[ok])
    return keep, {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def fit_ttft(f: Factors, cases: list[Case], sweeps: int = 3, points: int = 5) -> None:
    """Stage two of :func:`fit`: each engine's first-token time and each benchmark's shares, by the same
    coordinate descent on the served TTFT rows, their terms computed once (:func:`ttft_terms`)."""
    if not cases or not (any("ttft_overhead_ms" in e for e in f.engine.values()) or f.benchmark):
        return
    keep, parts = ttft_terms(cases, f)
    if not keep:
        return
    measured = np.array([c.measured for c in keep]) * 1e-3
    weights = Rows.of(keep).weights
    engines = np.array([c.engine for c in keep])
    benches = np.array([c.benchmark.key for c in keep])

    def predicted() -> np.ndarray:
        t0 = np.array([(engine_factors(f, e) or {}).get("ttft_overhead_ms", ENGINE_PRIOR["ttft_overhead_ms"]) for e in engines]) * 1e-3
        w = np.array([f.benchmark.get(b, {}).get("first_wave_share", 0.0) for b in benches])
        chi = np.array([f.benchmark.get(b, {}).get("phase_coherence", 1.0) for b in benches])
        return (t0 + parts["base"] + (1 - w) * (chi * parts["shape"] * parts["in_phase"]
                                                + (1 - chi * parts["shape"]) * parts["staggered"]) + w * parts["first_wave"])

    def loss(mask: np.ndarray) -> float:
        z = np.log(predicted()[mask] / measured[mask]) / _DELTA
        z = np.where(np.isfinite(z), z, math.log(10.0) / _DELTA)
        return float(np.sum(weights[mask] * 2.0 * (np.sqrt(1.0 + z * z) - 1.0)))

    coords = [(g, k, p, b) for g, k, p, b in _coordinates(f, set()) if p in TTFT_PARAMS]
    _descend(f, coords, lambda group, key: partial(loss, (engines == key) if group == "engine" else (benches == key)),
             lambda group, key, name: (ENGINE_PRIOR if group == "engine" else BENCHMARK_PRIOR)[name], sweeps, points)


def source_of(case: Case) -> str:
    return case.row["id"].split("-")[0]


def regime(case: Case) -> str:
    """What a row measured, for its interval group (tokecon.fidelity.uncertainty): ``ttft`` (a served
    request's time to first token), ``tpot``, ``prefill`` (input throughput, a static batch's TTFT) or
    ``decode`` (output throughput, whole static batches); a disaggregated run's ``disagg-ttft`` and
    ``disagg-tpot``."""
    if case.kind == "disagg":
        return "disagg-ttft" if case.metric == "ttft_ms" else "disagg-tpot"
    if case.metric == "ttft_ms" and case.kind == "serving":
        return "ttft"
    if case.metric == "tpot_ms":
        return "tpot"
    return "prefill" if case.metric in ("ttft_ms", "prefill_tok_per_s", "input_tok_per_s_per_node") else "decode"


def speed_residual(case: Case, predicted: float) -> float:
    """ln(measured speed / predicted speed): a time's ratio is inverted (tokecon.fidelity.uncertainty)."""
    r = math.log(case.measured / predicted)
    return -r if case.metric in ("ttft_ms", "tpot_ms", "batch_latency_s") else r


def leave_one_source_out(cases: list[Case], sweeps: int = 2,
                         progress: Callable[[int, int], None] | None = None) -> list[tuple[Case, float]]:
    """(case, signed relative error) for every row, each predicted by factors fitted without its
    source; a family with no rows left is extrapolated as an unmeasured one would be."""
    out: list[tuple[Case, float]] = []
    sources = sorted({source_of(c) for c in cases})
    for n, source in enumerate(sources):
        train = [c for c in cases if source_of(c) != source]
        test = [c for c in cases if source_of(c) == source]
        f = fit(train, sweeps=sweeps)
        f.family.update(extrapolate(f, sorted({fit_family(c.family) for c in test})))  # as for an unmeasured device
        predicted = Rows.of(test).predict(f)
        out += [(c, p / c.measured - 1.0) for c, p in zip(test, predicted) if np.isfinite(p)]
        if progress:
            progress(n + 1, len(sources))
    return out


def disagg_residuals(outcomes: list[Outcome], f: Factors) -> list[tuple[Case, float]]:
    """(case, signed relative error) of the disaggregated runs that state their worker counts, predicted
    by ``f``: no fit sees a disaggregated row, so each is unseen. The runs that do not state them are
    left out: their layout (one prefill and one decode worker assumed) is a guess that a user giving
    serve's --prefill-gpus and --decode-gpus does not make, and its error is the guess's."""
    cases = [o.case for o in outcomes if o.case is not None and o.predicted is not None and o.case.kind == "disagg"
             and workers_stated(o.row)]
    predicted = Rows.of(cases).predict(f) if cases else np.zeros(0)
    return [(c, p / c.measured - 1.0) for c, p in zip(cases, predicted) if np.isfinite(p)]


def interval_table(held: list[tuple[Case, float]]) -> dict:
    """Interval groups from held-out residuals, and their coverage of unseen rows: each source's
    residuals against the table built from the other sources' (tokecon.fidelity.uncertainty)."""
    def tuples(items):
        return [(c.family, c.engine, c.scenario.model.is_moe, regime(c), speed_residual(c, c.measured * (1 + e)))
                for c, e in items]

    measured = sorted({c.family for c, _ in held})
    sources = sorted({source_of(c) for c, _ in held})
    trials = []  # per held-out source: the table of the other sources and its own residuals
    for source in sources:
        rest = [h for h in held if source_of(h[0]) != source]
        others, platform = {c.family for c, _ in rest}, _device_platforms([c for c, _ in rest])
        trials.append([uncertainty.lookup(uncertainty.build(tuples(rest)), *t[:4], others, platform) + (t[4], t[3], t[:3])
                       for t in tuples([h for h in held if source_of(h[0]) == source])])

    unseen = [t for trial in trials for t in trial]
    q10s, q90s, res = (np.array([t[i] for t in unseen], dtype=float) for i in (0, 1, 3))
    of = {name: np.array([str(v) for v in values]) for name, values in (
        ("regime", [t[4] for t in unseen]), ("family", [t[5][0] for t in unseen]), ("engine", [t[5][1] for t in unseen]),
        ("kind", ["moe" if t[5][2] else "dense" for t in unseen]),
        ("key_regime", [uncertainty.group_regime(t[2]) for t in unseen]))}

    def coverage(k: float | np.ndarray, mask: np.ndarray | None = None) -> float:
        """Share of the unseen rows (those of ``mask``) inside their interval widened by k (per row)."""
        inside = (k * q10s <= res) & (res <= k * q90s)
        inside = inside if mask is None else inside[mask]
        return float(inside.mean()) if inside.size else 0.0

    def smallest(share: Callable[[float], float], ks: np.ndarray) -> float:
        """The smallest k of ``ks`` whose coverage ``share(k)`` reaches 80% (the largest when none does)."""
        return float(next((k for k in ks if share(k) >= 0.8), ks[-1]))

    # A new source shifts as a whole (its engine build, its benchmark client), which residuals pooled
    # over rows understate: widen the intervals of each regime by the smallest k in steps of 0.05 whose
    # coverage of that regime's unseen rows reaches 80% (every regime apart: a TTFT spread is no TPOT
    # spread), the regime-free groups by the k of all rows together.
    regimes = sorted({regime(c) for c, _ in held})
    grow = np.arange(1.0, 4.0001, 0.05)
    ks = {r: smallest(lambda k, r=r: coverage(k, of["regime"] == r), grow) for r in regimes}
    k_all = smallest(coverage, grow)

    def widening(key: str) -> float:
        return ks.get(uncertainty.group_regime(key), k_all)

    factor = np.array([ks.get(v, k_all) for v in of["key_regime"]])

    def coverage_by(name: str) -> dict[str, dict[str, float]]:
        """Coverage of the unseen rows of each value of ``name`` (family, engine, kind), with their count."""
        values, n = np.unique(of[name], return_counts=True)
        return {str(v): {"rows": int(c), "coverage": round(coverage(factor, of[name] == v), 3)} for v, c in zip(values, n)}

    groups = {key: {"rows": v["rows"], "q10": round(widening(key) * v["q10"], 4), "q90": round(widening(key) * v["q90"], 4)}
              for key, v in uncertainty.build(tuples(held)).items()}
    return {"coverage_unseen": round(coverage(factor), 3), "coverage_unwidened": round(coverage(1.0), 3),
            "coverage_by_regime": {r: round(coverage(factor, of["regime"] == r), 3) for r in regimes},
            "coverage_by_family": coverage_by("family"), "coverage_by_engine": coverage_by("engine"),
            "coverage_by_kind": coverage_by("kind"),
            "source_widening": round(float(k_all), 2), "source_widening_by_regime": {r: round(float(k), 2) for r, k in ks.items()},
            "rows": len(held), "measured_families": measured,
            "platform_engines": dict(sorted(_device_platforms([c for c, _ in held]).items())), "groups": groups}


#: Rows that are validated (reported) but not fitted, and why. Excluding by a stated property of
#: the measurement, never by how well a row fits.
NOT_FITTED = {
    ("TRT09", "ttft_ms"): "TRT09's TTFT table may have been measured at a batch larger than the stated 1 "
    "(shared/calibration/SOURCES.md), so its scenario is uncertain",
}


DISAGG = "disaggregated serving: predicted with the factors fitted on aggregated rows, never fitted on"


def not_fitted(case: Case) -> str | None:
    """Why a predicted row is left out of the fit, or None. A served request's TTFT is fitted, but
    only for the TTFT's own parameters (:data:`TTFT_PARAMS`)."""
    if case.kind == "disagg":
        return DISAGG
    return NOT_FITTED.get((source_of(case), case.metric))


def fit_cases(outcomes: list[Outcome]) -> list[Case]:
    return [o.case for o in outcomes if o.case is not None and o.predicted is not None and not not_fitted(o.case)]


# --- storing the factors in the catalogs (text edits keep comments and layout) ------------------


def _set_key(block: str, key: str, value: str) -> str:
    pattern = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    if pattern.search(block):
        return pattern.sub(f"{key} = {value}", block, count=1)
    return block.rstrip("\n") + f"\n{key} = {value}\n"


def _edit_table(text: str, header: str, values: dict[str, str]) -> str:
    """Replace keys inside the TOML table ``[header]`` of ``text`` (up to the next table header)."""
    start = re.search(rf"^\[{re.escape(header)}\]\s*$", text, re.M)
    if not start:
        return text
    nxt = re.search(r"^\[", text[start.end():], re.M)
    end = start.end() + (nxt.start() if nxt else len(text) - start.end())
    block = text[start.end():end]
    for k, v in values.items():
        block = _set_key(block, k, v)
    if not block.endswith("\n\n") and nxt:
        block = block.rstrip("\n") + "\n\n"
    return text[: start.end()] + block + text[end:]


def extrapolate(f: Factors, families: list[str]) -> dict[str, dict[str, float]]:
    """Factors for families without measurements: each one's prior times the geometric mean, over
    the measured families, of fitted / prior. Without this an unmeasured device would keep its
    optimistic prior and look better than the measured ones it competes with in ``compare``."""
    params = ("compute", "memory_bw", "kv_bw")
    ratio = {p: math.exp(float(np.mean([math.log(v[p] / family_prior(k)[p]) for k, v in f.family.items()])))
             for p in params} if f.family else {p: 1.0 for p in params}
    out = {}
    for family in families:
        if family in f.family:
            continue
        prior = family_prior(family)
        out[family] = {p: round(min(0.95, prior[p] * ratio[p]), 3) for p in params}
    return out


def _fitted(values: dict[str, float], fitted_on: str) -> dict[str, str]:
    """The TOML fields of fitted ``values`` (3 decimals) and the quoted ``fitted_on`` that says how."""
    return {**{k: f"{v:.3f}" for k, v in values.items()}, "fitted_on": f'"{fitted_on}"'}


def write_factors(f: Factors, hardware_toml: Path, engines_toml: Path, families: dict[str, list[str]],
                  note: str) -> None:
    """Store fitted factors (every device of a fitted family, every fitted engine), and the
    extrapolated ones for the families without measurements."""
    text = hardware_toml.read_text()
    for family, values in f.family.items():
        for key in families.get(family, []):
            text = _edit_table(text, f"{key}.efficiency", _fitted(values, f"{note} (family {family})"))
    measured = ", ".join(sorted(f.family))
    for family, values in f.derived.items():
        for key in families.get(family, []):
            why = (f"measured only on its own platform's engines: family {family} prior x the mean fitted/prior ratio "
                   f"of the families measured on shared engines ({measured}); {note}")
            text = _edit_table(text, f"{key}.efficiency", _fitted(values, why))
    for family, values in extrapolate(f, [k for k in families if k not in f.derived]).items():
        for key in families[family]:
            why = f"not measured: family {family} prior x the mean fitted/prior ratio of the measured families ({measured})"
            text = _edit_table(text, f"{key}.efficiency", _fitted(values, why))
    hardware_toml.write_text(text)
    text = engines_toml.read_text()
    for engine in f.engine:
        text = _edit_table(text, engine, _fitted(engine_factors(f, engine), note))
    engines_toml.write_text(text)
    if f.benchmark:
        from tokecon.fidelity.validation import BENCHMARKS_FILE, benchmarks, measurements_path

        path = measurements_path(BENCHMARKS_FILE)
        if path.parent == engines_toml.parent / "validation" and path.is_file():
            text = path.read_text()
            for key, values in f.benchmark.items():
                text = _edit_table(text, key, _fitted(values, f"{note} (its TTFT rows)"))
            path.write_text(text)
            benchmarks.cache_clear()


def write_intervals(table: dict, path: Path) -> None:
    """Store the interval table (tokecon.fidelity.uncertainty reads it) atomically, as TOML."""
    import os
    import tempfile

    import tomli_w

    header = ("# 80% intervals from leave-one-source-out residuals, written by `tokecon validate --fit --held-out "
              "--write`.\n# q10/q90: percentiles of ln(measured speed / predicted speed) per group "
              "(family|engine|dense or moe|regime).\n")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".intervals-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(header + tomli_w.dumps(table))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
