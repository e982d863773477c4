"""Fit the efficiency factors to the public measurements, with held-out error.

Free parameters, and nothing else (no factor of a row's own):

* per device family (hopper, ampere, ada, blackwell, cdna3, ...): the achievable fraction of
  dense peak FLOP/s (``compute``), of memory bandwidth when streaming weights (``memory_bw``)
  and when reading the paged KV cache (``kv_bw``), and of a PCIe scale-up link (``link``);
* per serving engine: a fixed per-step overhead (``step_overhead_ms``) and scales on compute
  and bandwidth relative to TensorRT-LLM 0.9-0.14, the engine with the most rows, which is the
  reference (scales fixed at 1): the device factors are what that engine reaches.

Loss: a robust (soft-L1) sum over rows of the log ratio predicted / measured, so a row off by
2x counts the same whether it over- or under-predicts and one outlier cannot dominate.
A weak prior keeps each factor near its physically measured value (MAMF for compute, 0.8 of
HBM for weights, ...) unless the rows say otherwise, so a family with few rows cannot drift to
an unphysical value. Optimiser: deterministic coordinate descent from the priors on a shrinking
grid; each step re-predicts only the rows the parameter touches. Held-out error: leave-one-source-out (each
source prefix is predicted by factors fitted on all the others).

Run ``tokecon validate --fit`` (prints the factors and the held-out error); add ``--write`` to
store them in hardware.toml and engines.toml.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tokecon.validation import Case, Outcome, Skip, predict

FAMILY_PARAMS = {"compute": (0.15, 0.95), "memory_bw": (0.2, 0.95), "kv_bw": (0.1, 0.95), "link": (0.05, 0.95)}
ENGINE_PARAMS = {"compute_scale": (0.2, 1.3), "memory_bw_scale": (0.3, 1.3), "step_overhead_ms": (0.0, 40.0)}
REFERENCE_ENGINE = "trtllm-2024"  # most rows; the device factors are what it reaches
MIN_ROWS = 3  # a family or engine with fewer rows keeps its defaults
_DELTA = 0.25  # soft-L1 scale on the log ratio (~25%)


@dataclass
class Factors:
    family: dict[str, dict[str, float]] = field(default_factory=dict)
    engine: dict[str, dict[str, float]] = field(default_factory=dict)

    def copy(self) -> "Factors":
        return Factors({k: dict(v) for k, v in self.family.items()}, {k: dict(v) for k, v in self.engine.items()})


def _apply(case: Case, f: Factors) -> Case:
    scn = case.scenario
    hw, eng = scn.hardware, scn.engine
    fam = f.family.get(hw.family)
    if fam:
        eff = replace(hw.efficiency, compute=fam["compute"], memory_bw=fam["memory_bw"], kv_bw=fam["kv_bw"],
                      link=fam.get("link", hw.efficiency.link))
        hw = replace(hw, efficiency=eff)
    e = f.engine.get(eng.key)
    if e:
        eng = replace(eng, compute_scale=e["compute_scale"], memory_bw_scale=e["memory_bw_scale"],
                      step_overhead_s=e["step_overhead_ms"] * 1e-3)
    dep = replace(scn.deployment, hardware=hw)
    return replace(case, scenario=replace(scn, deployment=dep, engine=eng))


def _log_ratios(cases: list[Case], f: Factors) -> np.ndarray:
    out = []
    for c in cases:
        try:
            out.append(math.log(predict(_apply(c, f)) / c.measured))
        except (Skip, ValueError, ZeroDivisionError):
            out.append(math.log(10.0))  # a row the factors make impossible counts as 10x off
    return np.asarray(out)


def _loss(cases: list[Case], f: Factors) -> float:
    z = _log_ratios(cases, f) / _DELTA
    return float(np.sum(2.0 * (np.sqrt(1.0 + z * z) - 1.0)))


#: Prior (starting) values, fixed here so that the fit is reproducible whatever the catalog
#: currently holds. Compute: the measured best-shape matmul fraction (MAMF, stas00/ml-engineering,
#: reference/hardware.md section 6); weights: aiconfigurator's 0.8 of HBM; KV cache: paged reads
#: reach about half of what weight streaming does (~1.4 vs ~2.8 TB/s on H100, same section);
#: links: ~0.8 (nvbandwidth, nccl-tests).
FAMILY_PRIORS: dict[str, dict[str, float]] = {
    "ampere": {"compute": 0.87}, "hopper": {"compute": 0.80}, "blackwell": {"compute": 0.776},
    "blackwell-ultra": {"compute": 0.786}, "cdna3": {"compute": 0.514}, "cdna4": {"compute": 0.62},
    "gaudi": {"compute": 0.74},
}
DEFAULT_FAMILY_PRIOR = {"compute": 0.7, "memory_bw": 0.8, "kv_bw": 0.5, "link": 0.8}
ENGINE_PRIOR = {"compute_scale": 1.0, "memory_bw_scale": 1.0, "step_overhead_ms": 2.0}
#: Prior widths: log-space for fractions (0.5 ~ x/÷1.65), ms for the overhead. A family or engine
#: with few rows stays near its prior; many rows override it (maximum a posteriori). The width was
#: chosen by held-out error: 0.3 gave a leave-one-source-out median of 17.9%, 0.5 gives 16.3%.
PRIOR_SIGMA = {"compute": 0.5, "memory_bw": 0.5, "kv_bw": 0.6, "link": 0.4, "compute_scale": 0.5,
               "memory_bw_scale": 0.5, "step_overhead_ms": 3.0}


def family_prior(family: str) -> dict[str, float]:
    return {**DEFAULT_FAMILY_PRIOR, **FAMILY_PRIORS.get(family, {})}


def _prior_penalty(name: str, value: float, prior: float) -> float:
    sigma = PRIOR_SIGMA[name]
    z = (value - prior) / sigma if name == "step_overhead_ms" else math.log(value / prior) / sigma
    return z * z


def initial_factors(cases: list[Case]) -> Factors:
    """The priors, for the families and engines with enough rows to be fitted."""
    f = Factors()
    fams: dict[str, int] = {}
    engs: dict[str, int] = {}
    for c in cases:
        fams[c.family] = fams.get(c.family, 0) + 1
        engs[c.engine] = engs.get(c.engine, 0) + 1
    for family, n in fams.items():
        if n >= MIN_ROWS:
            f.family[family] = family_prior(family)
    for engine, n in engs.items():
        if n >= MIN_ROWS:
            f.engine[engine] = dict(ENGINE_PRIOR)
    return f


def _pcie_tp_families(cases: list[Case]) -> set[str]:
    """Families with enough multi-GPU rows over PCIe to fit the link efficiency. NVLink/xGMI
    efficiency is known from nccl-tests and nvbandwidth (~0.8) and stays at the catalog value;
    PCIe all-reduce depends on the server (P2P support, switches, the CPU) and is fitted."""
    counts: dict[str, int] = {}
    for c in cases:
        dep = c.scenario.deployment
        if dep.tp > 1 and c.scenario.hardware.scaleup_link.upper().startswith("PCIE"):
            counts[c.family] = counts.get(c.family, 0) + 1
    return {k for k, n in counts.items() if n >= MIN_ROWS}


def _coordinates(f: Factors, pcie: set[str]) -> list[tuple[str, str, str, tuple[float, float]]]:
    coords = [("family", k, p, b) for k in sorted(f.family) for p, b in FAMILY_PARAMS.items()
              if p != "link" or k in pcie]
    for k in sorted(f.engine):
        for p, b in ENGINE_PARAMS.items():
            if k == REFERENCE_ENGINE and p != "step_overhead_ms":
                continue
            coords.append(("engine", k, p, b))
    return coords


def fit(cases: list[Case], sweeps: int = 5, points: int = 9) -> Factors:
    """Coordinate descent from the priors: each parameter in turn tries a grid around its value
    (additive for the overhead, multiplicative for fractions), keeps the value with the lowest
    data loss + prior penalty, and the grid narrows every sweep. Deterministic."""
    f = initial_factors(cases)
    priors = {("family", k): family_prior(k) for k in f.family} | {("engine", k): ENGINE_PRIOR for k in f.engine}
    touched = {
        ("family", k): [c for c in cases if c.family == k] for k in f.family
    } | {("engine", k): [c for c in cases if c.engine == k] for k in f.engine}
    span = 0.5
    pcie = _pcie_tp_families(cases)
    for _ in range(sweeps):
        for group, key, name, (lo, hi) in _coordinates(f, pcie):
            table = getattr(f, group)[key]
            subset = touched[(group, key)]
            prior = priors[(group, key)][name]
            current = table[name]
            if name == "step_overhead_ms":
                grid = current + np.linspace(-1, 1, points) * span * 10.0
            else:
                grid = current * np.exp(np.linspace(-1, 1, points) * span)
            best_value, best_loss = current, _loss(subset, f) + _prior_penalty(name, current, prior)
            for value in np.clip(grid, lo, hi):
                table[name] = float(value)
                loss = _loss(subset, f) + _prior_penalty(name, float(value), prior)
                if loss < best_loss - 1e-12:
                    best_value, best_loss = float(value), loss
            table[name] = best_value
        span *= 0.6
    for group in (f.family, f.engine):
        for table in group.values():
            for k in table:
                table[k] = round(table[k], 3)
    return f


def source_of(case: Case) -> str:
    return case.row["id"].split("-")[0]


def leave_one_source_out(cases: list[Case], sweeps: int = 3) -> list[tuple[Case, float]]:
    """(case, signed relative error) for every row, each predicted by factors fitted without its
    source; a family with no rows left is extrapolated as an unmeasured one would be."""
    out: list[tuple[Case, float]] = []
    for source in sorted({source_of(c) for c in cases}):
        train = [c for c in cases if source_of(c) != source]
        test = [c for c in cases if source_of(c) == source]
        f = fit(train, sweeps=sweeps)
        f.family.update(extrapolate(f, sorted({c.family for c in test})))  # as for an unmeasured device
        for c in test:
            try:
                out.append((c, predict(_apply(c, f)) / c.measured - 1.0))
            except Skip:
                continue
    return out


#: Rows that are validated (reported) but not fitted, and why. Excluding by a stated property of
#: the measurement, never by how well a row fits.
NOT_FITTED = {
    "ttft_ms": "TRT09's TTFT table may have been measured at a batch larger than the stated 1 "
    "(shared/calibration/SOURCES.md), so its scenario is uncertain",
}


def fit_cases(outcomes: list[Outcome]) -> list[Case]:
    return [o.case for o in outcomes if o.case is not None and o.predicted is not None and o.case.metric not in NOT_FITTED]


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


def write_factors(f: Factors, hardware_toml: Path, engines_toml: Path, families: dict[str, list[str]],
                  note: str) -> None:
    """Store fitted factors (every device of a fitted family, every fitted engine), and the
    extrapolated ones for the families without measurements."""
    text = hardware_toml.read_text()
    for family, values in f.family.items():
        for key in families.get(family, []):
            fields = {k: f"{v:.3f}" for k, v in values.items()}
            fields["fitted_on"] = f'"{note} (family {family})"'
            text = _edit_table(text, f"{key}.efficiency", fields)
    for family, values in extrapolate(f, list(families)).items():
        for key in families[family]:
            fields = {k: f"{v:.3f}" for k, v in values.items()}
            fields["fitted_on"] = (f'"not measured: family {family} prior x the mean fitted/prior ratio of the measured '
                                   f'families ({", ".join(sorted(f.family))})"')
            text = _edit_table(text, f"{key}.efficiency", fields)
    hardware_toml.write_text(text)
    text = engines_toml.read_text()
    for engine, values in f.engine.items():
        fields = {k: f"{v:.3f}" for k, v in values.items()}
        fields["fitted_on"] = f'"{note}"'
        text = _edit_table(text, engine, fields)
    engines_toml.write_text(text)
