"""Predict every public measurement in ``validation/measurements.csv`` and state the error.

Each row is mapped to the scenario it describes (model, device, count, parallelism, precision,
engine) and to the way it was measured:

* static batch (TensorRT-LLM gptSessionBenchmark, vLLM benchmark_latency, llama.cpp llama-bench,
  Tensor Economics' vLLM runs): B sequences prefilled together, then OSL-1 decode steps with
  the context growing from ISL+1 to ISL+OSL-1; throughput = B*OSL / total time;
* batch-1 prefill (TTFT, llama.cpp pp512, embeddings): one prefill step;
* in-flight batching at maximum throughput (trtllm-bench, benchmark_throughput): the serving
  model at the largest concurrency whose KV cache fits;
* disaggregated large-scale MoE (DeepSeek, SGLang): the ``moe`` model per node.

Rows that tokecon cannot model (hardware not in the catalog, deployment size not stated) are
reported as skipped with the reason, never dropped. No row has a factor of its own: the only
free parameters are the per-family and per-engine efficiencies in the catalogs.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tokecon import memory
from tokecon.catalog import Catalog
from tokecon.errors import TokeconError
from tokecon.phases import decode_step, prefill_step
from tokecon.specs import Deployment, Precision, Scenario


def measurements_path() -> Path:
    """Shipped copy in a wheel, ``validation/measurements.csv`` in a checkout."""
    packaged = Path(__file__).parent / "data" / "measurements.csv"
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parent.parent / "validation" / "measurements.csv"


def load_measurements(path: Path | None = None) -> list[dict[str, str]]:
    with open(path or measurements_path(), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class Skip(Exception):
    """This row cannot be predicted; the message says why."""


@dataclass(frozen=True)
class Case:
    """A measurement turned into something tokecon can evaluate."""

    row: dict[str, str]
    kind: str  # static | prefill | inflight | moe
    scenario: Scenario
    batch: int
    input_len: int
    output_len: int
    metric: str
    measured: float

    @property
    def family(self) -> str:
        return self.scenario.hardware.family

    @property
    def engine(self) -> str:
        return self.scenario.engine.key


_ENGINES = (("tensorrt", "trtllm"), ("vllm", "vllm"), ("sglang", "sglang"), ("llama.cpp", "llamacpp"),
            ("deepseek", "sglang"))  # DeepSeek's in-house system runs the same DeepEP/DeepGEMM kernels as SGLang


def _strip(text: str) -> str:
    return re.sub(r"\s*\(.*\)\s*$", "", text).strip()


def _engine_key(text: str) -> str:
    """Engine profile of a measurement. TensorRT-LLM before 0.15 (2024: the TRT engine flow)
    and from 0.19 on (2025: PyTorch backend, newer kernels) are different profiles: the same
    GPU reaches very different fractions of its roofline with them."""
    low = text.lower()
    for needle, key in _ENGINES:
        if needle in low:
            if key == "trtllm":
                version = re.search(r"tensorrt-llm\s+(\d+)\.(\d+)", low)
                if version and (int(version.group(1)), int(version.group(2))) < (0, 15):
                    return "trtllm-2024"
            return key
    raise Skip(f"engine '{text}' has no profile")


def _engine_or_raw(text: str) -> str:
    try:
        return _engine_key(text)
    except Skip:
        return text


def _precision(row: dict[str, str]) -> Precision:
    w = row["weight_precision"].lower()
    if "nvfp4" in w or w.startswith("fp4"):
        weights = "nvfp4"
    elif w.startswith("q4_k_m"):
        weights = "q4_k_m"
    elif w.startswith("fp8"):
        weights = "fp8"
    elif w.startswith("fp16"):
        weights = "fp16"
    elif w.startswith("bf16"):
        weights = "bf16"
    else:
        raise Skip(f"weight precision '{row['weight_precision']}' not understood")
    kv_text = row["kv_precision"].lower()
    kv = "fp8" if kv_text.startswith("fp8") else "bf16"
    if kv_text.startswith("not stated") and weights in ("fp8", "nvfp4") and "tensorrt" in row["engine"].lower():
        kv = "fp8"  # NVIDIA's ModelOpt FP8/NVFP4 checkpoints, which the perf-overview runs use, quantise the KV cache to FP8
    return Precision(weights=weights, kv_cache=kv)


def _int(text: str) -> int | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)", text or "")
    return int(round(float(m.group(1)))) if m else None


def _kind(row: dict[str, str]) -> str:
    s = row["scenario"].lower()
    if "offline max-throughput" in s:
        return "inflight"
    par = row["parallelism"].lower()
    if any(w in s for w in ("disaggregated", "production", "decode-only", "prefill-only")) or "disagg" in par:
        return "moe"
    if "prompt processing" in s or "embedding" in s or row["metric"] == "ttft_ms":
        return "prefill"
    if s.startswith("fixed-batch"):
        return "static"
    raise Skip(f"scenario '{row['scenario']}' not modelled")


def build_case(row: dict[str, str], catalog: Catalog, ideal: bool = False) -> Case:
    """Map one CSV row to a :class:`Case`; raises :class:`Skip` with the reason."""
    try:
        model = catalog.models.get(_strip(row["model"]))
    except TokeconError:
        raise Skip(f"model '{row['model']}' not in the catalog") from None
    try:
        hw = catalog.hardware.get(_strip(row["hardware"]))
    except TokeconError:
        raise Skip(f"hardware '{row['hardware']}' not in the catalog") from None
    n = _int(row["n_gpus"])
    if n is None:
        raise Skip("deployment size not stated")
    kind = _kind(row)
    par = row["parallelism"]
    layer_split = "layer split" in par.lower()
    tp_match = re.search(r"TP(\d+)", par)
    ep_match = re.search(r"(?:DEP|EP)(\d+)", par)
    if kind == "moe" or (ep_match and not tp_match):
        tp, ep, dp_attn = 1, int(ep_match.group(1)) if ep_match else n, True
        kind = "moe" if kind == "moe" else kind
    else:
        tp, ep, dp_attn = (1 if layer_split else int(tp_match.group(1)) if tp_match else n), 1, False
    pp = n if layer_split else 1  # llama.cpp's default multi-GPU split: consecutive layers per GPU
    precision = _precision(row)
    engine = catalog.engines.get(_engine_key(row["engine"]))
    deployment = Deployment(hw, n, tp if not dp_attn else 1, ep, dp_attn, pp)
    scn = Scenario(model, deployment, precision, engine, ideal)
    batch = _int(row["concurrency_or_batch"]) or 0
    isl = _int(row["input_len"]) or 0
    osl = _int(row["output_len"]) or 0
    return Case(row, kind, scn, batch, isl, osl, row["metric"], float(row["value"]))


# --- predictions -----------------------------------------------------------------------------

_QUADRATURE = 12  # decode steps sampled along the output; step time is smooth in context


def static_batch_times(scn: Scenario, batch: float, isl: int, osl: int) -> tuple[float, float]:
    """(prefill time, decode time) of a static batch: B prompts of ``isl`` tokens prefilled in one
    step, then ``osl - 1`` decode steps with contexts isl+1 .. isl+osl-1 (sampled, trapezoid)."""
    t_prefill = float(prefill_step(scn, np.asarray(float(batch)), np.asarray(float(max(isl, 1)))).step_time_s) if isl else 0.0
    steps = osl - 1 if isl else osl
    if steps <= 0:
        return t_prefill, 0.0
    ctx = np.linspace(isl + 1, isl + steps, min(steps, _QUADRATURE))
    t = decode_step(scn, np.full_like(ctx, float(batch)), ctx).step_time_s
    return t_prefill, float(np.mean(t)) * steps


def _max_batch(case: Case) -> int:
    ctx = np.asarray(float(case.input_len + case.output_len))
    return int(memory.max_batch(case.scenario, ctx))


#: Engines that admit only as many sequences as their KV cache holds and queue the rest
#: (continuous batching); a static engine (TensorRT-LLM's gptSessionBenchmark) cannot run a
#: batch that does not fit.
_QUEUEING_ENGINES = {"vllm", "sglang"}


def predict_static(case: Case) -> float:
    """A static batch of B requests; when B exceeds what the KV cache holds (or the engine's cap on
    running sequences), a queueing engine runs it in ceil(B / max) equal waves (DESIGN.md:
    engines run what fits and queue the rest)."""
    scn, b = case.scenario, max(case.batch, 1)
    max_b = _max_batch(case)
    if case.engine in _QUEUEING_ENGINES and max_b >= 1 and not scn.ideal:
        # vLLM max_num_seqs, SGLang max_running_requests: a software cap, which the ideal drops
        max_b = min(max_b, scn.engine.max_running_requests)
    if max_b < 1 or (b > max_b and case.engine not in _QUEUEING_ENGINES):
        raise Skip(f"batch {b} of {case.input_len}+{case.output_len} tokens does not fit in tokecon's memory model")
    waves = math.ceil(b / max_b)
    per_wave = b / waves
    t_pf, t_dec = static_batch_times(scn, per_wave, case.input_len, case.output_len)
    total = waves * (t_pf + t_dec)
    osl = case.output_len
    per_group = b * osl / total
    # Per user: the mean over requests of OSL / (its own completion time); wave k of w ends at k/w
    # of the run, so the mean is OSL / total x H_w (harmonic number; 1 for a single wave).
    harmonic = sum(1.0 / k for k in range(1, waves + 1))
    return {
        "output_tok_per_s_per_gpu": per_group / scn.deployment.n_gpus,
        "output_tok_per_s_total": per_group,
        "output_tok_per_s_per_user": osl / total * harmonic,
    }[case.metric]


def predict_prefill(case: Case) -> float:
    scn, b = case.scenario, max(case.batch, 1)
    if _max_batch(case) < b:
        raise Skip(f"batch {b} of {case.input_len} tokens does not fit in tokecon's memory model")
    t = float(prefill_step(scn, np.asarray(float(b)), np.asarray(float(case.input_len))).step_time_s)
    if case.metric == "ttft_ms":
        return t * 1e3
    if case.metric == "prefill_tok_per_s":
        return b * case.input_len / t
    raise Skip(f"metric '{case.metric}' not modelled for prefill")


def predict_inflight(case: Case) -> float:
    """Offline maximum throughput (every request queued at once): continuous batching at the
    engine's cap on running requests, prompts chunked into its per-step token budget
    (tokecon.serving); the KV cache caps the running batch further."""
    from tokecon.serving import serve

    scn = case.scenario
    if case.output_len < 2 or case.input_len < 1:
        raise Skip("in-flight rows need input and output lengths")
    concurrency = scn.engine.max_running_requests * scn.deployment.replicas
    t = serve(scn, concurrency, case.input_len, case.output_len, chunk_tokens=scn.engine.prefill_chunk_tokens)
    value = {
        "output_tok_per_s_total": t.output_tok_s,
        "output_tok_per_s_per_gpu": t.output_tok_s_per_gpu,
    }.get(case.metric)
    if value is None:
        raise Skip(f"metric '{case.metric}' not modelled for in-flight batching")
    value = float(value)
    if not math.isfinite(value):
        raise Skip("one request does not fit in tokecon's memory model")
    return value


def predict_moe(case: Case) -> float:
    """Disaggregated large-scale MoE (DeepSeek, SGLang): attention data-parallel, experts over
    EP GPUs, communication overlapped with compute (two micro-batches). Decode at the stated
    batch per GPU and KV length; prefill with the engine's per-step token budget per GPU."""
    scn = case.scenario
    gpus_per_node = min(scn.hardware.scaleup_domain, 8)
    if case.metric == "output_tok_per_s_per_node":
        if not case.batch or not case.input_len:
            raise Skip("batch per GPU or KV length not stated")
        t = float(decode_step(scn, np.asarray(float(case.batch)), np.asarray(float(case.input_len)), overlap_comm=True).step_time_s)
        return gpus_per_node * case.batch / t
    if case.metric == "input_tok_per_s_per_node":
        if not case.input_len:
            raise Skip("production mix: input length not stated")
        per_gpu = max(1.0, scn.engine.prefill_chunk_tokens / case.input_len)
        t = float(prefill_step(scn, np.asarray(per_gpu), np.asarray(float(case.input_len)), overlap_comm=True).step_time_s)
        return gpus_per_node * per_gpu * case.input_len / t
    raise Skip("batch per GPU not stated" if not case.batch else f"metric '{case.metric}' not modelled for disaggregated MoE")


PREDICTORS: dict[str, Callable[[Case], float]] = {"static": predict_static, "prefill": predict_prefill,
                                                 "inflight": predict_inflight, "moe": predict_moe}


def predict(case: Case) -> float:
    fn = PREDICTORS.get(case.kind)
    if fn is None:
        raise Skip(f"{case.kind} rows not modelled yet")
    return fn(case)


# --- the report ----------------------------------------------------------------------------


@dataclass
class Outcome:
    id: str
    row: dict[str, str]
    case: Case | None = None
    predicted: float | None = None
    ideal: float | None = None
    skipped: str | None = None

    @property
    def error(self) -> float | None:
        """Signed relative error, (predicted - measured) / measured."""
        if self.predicted is None or self.case is None:
            return None
        return (self.predicted - self.case.measured) / self.case.measured


def evaluate(rows: list[dict[str, str]], catalog: Catalog, with_ideal: bool = True) -> list[Outcome]:
    outcomes = []
    for row in rows:
        out = Outcome(row["id"], row)
        try:
            out.case = build_case(row, catalog)
            out.predicted = predict(out.case)
            if with_ideal:
                out.ideal = predict(replace(out.case, scenario=replace(out.case.scenario, ideal=True)))
        except Skip as why:
            out.skipped = str(why)
            out.predicted = None
        outcomes.append(out)
    return outcomes


@dataclass
class Summary:
    group: str
    n: int
    median_ape: float
    p90_ape: float
    median_error: float
    worst: list[str] = field(default_factory=list)


def summarise(outcomes: list[Outcome], key: Callable[[Outcome], str] | None = None) -> list[Summary]:
    """Median and 90th-percentile absolute percentage error per group (and overall when key is None)."""
    done = [o for o in outcomes if o.error is not None]
    groups: dict[str, list[Outcome]] = {}
    for o in done:
        groups.setdefault(key(o) if key else "all", []).append(o)
    out = []
    for name, items in sorted(groups.items()):
        ape = np.abs([o.error for o in items])
        worst = sorted(items, key=lambda o: -abs(o.error))[:3]
        out.append(Summary(name, len(items), float(np.median(ape)), float(np.percentile(ape, 90)),
                           float(np.median([o.error for o in items])), [w.id for w in worst]))
    return out


GROUP_KEYS: dict[str, Callable[[Outcome], str]] = {
    "hardware": lambda o: o.case.family if o.case else "?",
    "device": lambda o: o.case.scenario.hardware.key if o.case else "?",
    "model": lambda o: o.case.scenario.model.key if o.case else "?",
    "source": lambda o: o.id.split("-")[0],
    "metric": lambda o: o.row["metric"],
    "engine": lambda o: o.case.engine if o.case else "?",
}


def mape(outcomes: list[Outcome]) -> float:
    errs = [abs(o.error) for o in outcomes if o.error is not None]
    return float(np.median(errs)) if errs else math.nan


def outcome_fields(o: Outcome) -> dict[str, Any]:
    r = o.row
    return {
        "id": o.id,
        "model": o.case.scenario.model.key if o.case else r["model"],
        "hardware": o.case.scenario.hardware.key if o.case else r["hardware"],
        "n_gpus": o.case.scenario.deployment.n_gpus if o.case else _int(r["n_gpus"]),
        "engine": o.case.engine if o.case else _engine_or_raw(r["engine"]),
        "scenario": o.case.kind if o.case else r["scenario"],
        "metric": r["metric"],
        "measured": float(r["value"]),
        "predicted": o.predicted,
        "ideal": o.ideal,
        "error": o.error,
        "skipped": o.skipped,
        "source_url": r["source_url"],
    }
