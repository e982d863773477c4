"""Predict every public measurement in ``validation/measurements.csv`` (curated) and
``validation/external.csv`` (converted by ``validation/import_external.py``) and state the error.

Each row is mapped to the scenario it describes (model, device, count, parallelism, precision,
engine) and to the way it was measured:

* static batch (TensorRT-LLM gptSessionBenchmark, vLLM benchmark_latency, llama.cpp llama-bench,
  Tensor Economics' vLLM runs): B sequences prefilled together, then OSL-1 decode steps with
  the context growing from ISL+1 to ISL+OSL-1; throughput = B*OSL / total time;
* batch-1 prefill (TTFT, llama.cpp pp512, embeddings): one prefill step;
* in-flight batching at maximum throughput (trtllm-bench, benchmark_throughput): the serving
  model at the largest concurrency whose KV cache fits;
* disaggregated large-scale MoE (DeepSeek, SGLang): the ``moe`` model per node;
* closed-loop serving (aiconfigurator): C requests always in flight, ISL in, OSL out, through
  :func:`tokecon.serving.batching.serve` with the engine's prefill chunk: mean TTFT and TPOT;
* closed-loop disaggregated serving (aiconfigurator ``mode = disagg``, ``external_disagg.csv``):
  the same through :func:`tokecon.serving.disagg.serve` with the row's prefill and decode pools
  (predicted with the fitted factors, never fitted on: ``calibrate.not_fitted``).

Rows are predicted in groups that share a scenario (same model, deployment, precision, engine,
kind), each group as one numpy evaluation over its (batch or concurrency, input, output) arrays:
:func:`predict_many`. :func:`predict` is the same for one row.

Rows that tokecon cannot model (hardware not in the catalog, deployment size not stated) are
reported as skipped with the reason, never dropped. No row has a factor of its own: the only
free parameters are the per-family and per-engine efficiencies in the catalogs.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.errors import TokeconError
from tokecon.physics import memory
from tokecon.physics.phases import decode_step, prefill_step
from tokecon.physics.scenario import Scenario
from tokecon.physics.specs import Deployment, Precision
from tokecon.records import record


MEASUREMENT_FILES = ("measurements.csv", "external.csv", "external_disagg.csv")
BENCHMARKS_FILE = "benchmarks.toml"
COLUMNS = ("id", "source_title", "source_url", "model", "weight_precision", "kv_precision", "hardware", "n_gpus",
           "parallelism", "engine", "scenario", "input_len", "output_len", "concurrency_or_batch", "metric", "value")


def measurements_path(name: str = "measurements.csv") -> Path:
    """Shipped copy in a wheel (``tokecon/data/``), ``validation/`` in a checkout."""
    from tokecon.datafiles import data_file

    return data_file(name, "validation")


def load_measurements(path: Path | None = None) -> list[dict[str, str]]:
    """Rows of ``path``; by default the curated and the external measurements together."""
    rows: list[dict[str, str]] = []
    from tokecon.catalogs.inputs import read_input_text

    for p in [path] if path else [measurements_path(n) for n in MEASUREMENT_FILES]:
        reader = csv.DictReader(io.StringIO(read_input_text(p, "a measurements CSV"), newline=""))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise TokeconError(f"{p}: not a measurements CSV: missing column(s) {', '.join(missing)} "
                               f"(expected the columns of validation/measurements.csv)")
        rows += reader
    return rows


def measured_value(row: dict[str, str]) -> float | None:
    """The row's measured value: a finite positive number (a time, a rate), else None."""
    try:
        value = float(row["value"])
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


class Skip(Exception):
    """This row cannot be predicted; the message says why."""


@record
class Benchmark:
    """How a source's closed loop offered its load (validation/benchmarks.toml): the share of its
    requests in the start-up burst, the share of a fixed-length loop that stays in phase
    (tokecon.serving.batching, "The phase of a closed loop"), and the step token budget its engine
    configs set, by engine family."""

    key: str = ""
    first_wave_share: float = 0.0
    phase_coherence: float = 1.0
    step_tokens_over_prompt: tuple[tuple[str, float], ...] = ()  # (engine family, K - C - I): the budget its configs set

    def step_tokens(self, engine_family: str, conc: np.ndarray, isl: np.ndarray) -> np.ndarray | None:
        """The token budget per step the source's engine configs set, K = C + I + margin (the engine
        family's margin), or None where the source states none (the engine's default)."""
        margin = dict(self.step_tokens_over_prompt).get(engine_family)
        return None if margin is None else conc + isl + margin


STEADY = Benchmark()  # a source that states no closed-loop protocol: the steady state


@lru_cache(maxsize=1)
def benchmarks() -> dict[str, Benchmark]:
    """id prefix -> the :class:`Benchmark` of its source."""
    import tomllib

    path = measurements_path(BENCHMARKS_FILE)
    if not path.is_file():
        return {}
    with open(path, "rb") as fh:
        table = tomllib.load(fh)
    return {prefix: Benchmark(key, float(e["first_wave_share"]), float(e["phase_coherence"]),
                              tuple(sorted((k, float(v)) for k, v in e.get("step_tokens_over_prompt", {}).items())))
            for key, e in table.items() for prefix in e.get("ids", ())}


def benchmark_of(row: dict[str, str]) -> Benchmark:
    return benchmarks().get(row["id"].split(".")[0].split("-")[0], STEADY)


@record
class Case:
    """A measurement turned into something tokecon can evaluate."""

    row: dict[str, str]
    kind: str  # static | prefill | inflight | moe | serving | disagg
    scenario: Scenario  # disagg: the decode worker
    batch: int
    input_len: int
    output_len: int
    metric: str
    measured: float
    prefill: tuple[Deployment, int, int, int | None] | None = None  # disagg: prefill worker, x, y, prefill batch
    benchmark: Benchmark = STEADY  # the closed-loop protocol of the row's source

    @property
    def family(self) -> str:
        return self.scenario.hardware.family

    @property
    def engine(self) -> str:
        return self.scenario.engine.key


_ENGINES = (("tensorrt", "trtllm"), ("trtllm", "trtllm"), ("vllm-rocm", "vllm-rocm"), ("vllm", "vllm"), ("sglang", "sglang"), ("llamacpp-hip", "llamacpp-hip"),
            ("llama.cpp", "llamacpp"), ("llamacpp", "llamacpp"),
            ("deepseek", "sglang@0.4"))  # DeepSeek's in-house system (2025-02): the DeepEP/DeepGEMM kernels SGLang 0.4 ran


def _strip(text: str) -> str:
    return re.sub(r"\s*\(.*\)\s*$", "", text).strip()


def _engine_key(text: str) -> str:
    """Engine of a measurement as ``NAME@VERSION`` when the text states a version (``TensorRT-LLM
    0.9.0 (gptSessionBenchmark)`` -> ``trtllm@0.9.0``), else ``NAME``: the engine catalog picks the
    generation whose version range covers it (engines change 1.5x between releases)."""
    low = text.lower()
    for needle, key in _ENGINES:
        if needle in low:
            if "@" in key:
                return key
            version = re.search(r"@?\s*v?(\d+\.\d+(?:\.\d+)?)", low[low.index(needle) + len(needle):])
            return f"{key}@{version.group(1)}" if version else key
    raise Skip(f"engine '{text}' has no profile")


def _engine_or_raw(text: str) -> str:
    try:
        return _engine_key(text)
    except Skip:
        return text


def _dtype(text: str, row: dict[str, str]) -> str:
    for prefix, dtype in (("nvfp4", "nvfp4"), ("fp4", "nvfp4"), ("mxfp4", "mxfp4"), ("q4_k_m", "q4_k_m"),
                          ("int4", "int4"), ("fp8", "fp8"), ("fp16", "fp16"), ("bf16", "bf16")):
        if text.strip().startswith(prefix):
            return dtype
    raise Skip(f"weight precision '{row['weight_precision']}' not understood")


_FP4 = ("nvfp4", "mxfp4", "fp4")


def _precision(row: dict[str, str], model=None, engine=None) -> Precision:
    """``weight_precision`` is the weights' type, optionally followed by ``; experts TYPE``. Where the
    model publishes a checkpoint of that type (its recipe, models.toml) the row ran that checkpoint:
    its per-component types (a row's generic "fp4" on gpt-oss is OpenAI's MXFP4 experts with BF16
    attention; on DeepSeek NVIDIA's FP4 checkpoint with BF16 attention), and, where the row does not
    state the KV type, the recipe's KV type when the engine reads checkpoint KV scales, else bf16
    (tokecon.serving.resolve.precision_for). Without a recipe, an unstated KV type is FP8 for
    TensorRT-LLM with FP8/NVFP4 weights (NVIDIA's ModelOpt checkpoints quantise the KV cache)."""
    w, _, experts = row["weight_precision"].lower().partition("; experts ")
    w = "nvfp4" if "nvfp4" in w else w
    weights = _dtype(w, row)
    kv_text = row["kv_precision"].lower()
    stated = not (kv_text.startswith("not stated") or "assumed" in kv_text)
    kv = "fp8" if kv_text.startswith("fp8") else "bf16"
    if kv_text.startswith("not stated") and weights in ("fp8", "nvfp4") and "tensorrt" in row["engine"].lower():
        kv = "fp8"  # NVIDIA's ModelOpt FP8/NVFP4 checkpoints, which the perf-overview runs use, quantise the KV cache to FP8
    recipe = model.recipe("fp4" if weights in _FP4 else weights, engine.family if engine else "") if model else None
    if recipe is None:
        return Precision(weights=weights, kv_cache=kv, experts=_dtype(experts, row) if experts else None)
    from tokecon.serving.resolve import precision_for

    return precision_for(model, recipe.dtype, kv if stated else None, engine)


def _int(text: str) -> int | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)", text or "")
    return int(round(float(m.group(1)))) if m else None


def _kind(row: dict[str, str]) -> str:
    s = row["scenario"].lower()
    if s.startswith("closed-loop serving"):
        return "disagg" if "disaggregated" in s else "serving"
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
    if measured_value(row) is None:
        raise Skip(f"measured value {row['value']!r} is not a positive number")
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
    if kind == "disagg":
        return _disagg_case(row, model, hw, catalog, ideal)
    par = row["parallelism"]
    layout = _LAYOUT.match(par)
    layer_split = "layer split" in par.lower()
    tp_match = re.search(r"TP(\d+)", par)
    ep_match = re.search(r"(?:DEP|EP)(\d+)", par)
    if layout:
        tp, pp, dp, moe_tp, moe_ep = (int(g) for g in layout.groups())
        tp, ep, dp_attn = _layout(model, tp, dp, moe_tp * moe_ep)
    elif kind == "moe" or (ep_match and not tp_match):
        tp, ep, dp_attn = 1, int(ep_match.group(1)) if ep_match else n, True
        kind = "moe" if kind == "moe" else kind
    else:
        tp, ep, dp_attn = (1 if layer_split else int(tp_match.group(1)) if tp_match else n), 1, False
    if not layout:
        pp = n if layer_split else 1  # llama.cpp's default multi-GPU split: consecutive layers per GPU
    engine = _resolve_engine(row["engine"], catalog)
    precision = _precision(row, model, engine)
    deployment = Deployment(hw, n, tp if not dp_attn else 1, ep, dp_attn, pp)
    eplb = "eplb" in (row["engine"] + " " + row["scenario"] + " " + row.get("notes", "")).lower()  # the run says so
    scn = Scenario(model, deployment, precision, engine, ideal, eplb=eplb)
    batch = _int(row["concurrency_or_batch"]) or 0
    isl = _int(row["input_len"]) or 0
    osl = _int(row["output_len"]) or 0
    return Case(row, kind, scn, batch, isl, osl, row["metric"], measured_value(row), benchmark=benchmark_of(row))


#: aiconfigurator's layout: attention TP x PP x attention-DP GPUs; experts split moeTP x moeEP ways.
_LAYOUT = re.compile(r"^TP(\d+) PP(\d+) attnDP(\d+) moeTP(\d+) moeEP(\d+)$")


#: One pool of a disaggregated row (validation/import_external.py ``_pool``).
_POOL = re.compile(r"(prefill|decode) (\d+|\?)x TP(\d+) PP(\d+) attnDP(\d+) moeTP(\d+) moeEP(\d+)(?: batch (\d+))?")


def workers_stated(row: dict[str, str]) -> bool:
    """Whether a disaggregated row states both pools' worker counts (``?x``: not stated, one assumed)."""
    return "?x" not in row["parallelism"]


def _disagg_case(row: dict[str, str], model, hw, catalog: Catalog, ideal: bool) -> Case:
    """A disaggregated row: the decode worker is the case's scenario, the prefill worker, the worker
    counts (``?``: one) and the prefill batch (None: the engine's budget) ride along."""
    pools = {m.group(1): m.groups()[1:] for m in _POOL.finditer(row["parallelism"])}
    if set(pools) != {"prefill", "decode"}:
        raise Skip(f"parallelism '{row['parallelism']}' does not name a prefill and a decode pool")
    deps, workers = {}, {}
    for side, (n, tp, pp, dp, moe_tp, moe_ep, _) in pools.items():
        tp, pp, dp = int(tp), int(pp), int(dp)
        if pp > 1:
            raise Skip("pipeline stages in a disaggregated pool not modelled")
        t, ep, adp = _layout(model, tp, dp, int(moe_tp) * int(moe_ep))
        deps[side] = Deployment(hw, tp * dp, t, ep, adp, 1)
        workers[side] = 1 if n == "?" else int(n)
    engine = _resolve_engine(row["engine"], catalog)
    precision = _precision(row, model, engine)
    batch = pools["prefill"][-1]
    return Case(row, "disagg", Scenario(model, deps["decode"], precision, engine, ideal), _int(row["concurrency_or_batch"]) or 0,
                _int(row["input_len"]) or 0, _int(row["output_len"]) or 0, row["metric"], measured_value(row),
                (deps["prefill"], workers["prefill"], workers["decode"], int(batch) if batch else None),
                benchmark_of(row))


def _layout(model, tp: int, dp: int, expert_split: int) -> tuple[int, int, bool]:
    """(tp, ep, attention_dp) of tokecon's Deployment. Attention data-parallel (tp 1, dp > 1): every
    GPU its own attention unit, experts over ``expert_split`` GPUs. Attention TP (dp 1): experts split
    over the same GPUs as the heads, which tokecon models as TP for expert FLOP and traffic whether the
    engine slices or places experts. Attention TP inside DP groups is not modelled."""
    if dp > 1 and tp > 1:
        raise Skip(f"attention TP{tp} inside {dp} data-parallel groups not modelled")
    if dp > 1:
        return 1, expert_split, True
    if model.heads % tp:
        raise Skip(f"TP{tp} does not divide {model.key}'s {model.heads} attention heads")
    return tp, 1, False


def _resolve_engine(text: str, catalog: Catalog):
    """The engine generation of a row (``NAME@VERSION`` or free text naming one)."""
    return catalog.engines.get(_engine_key(text.partition("@")[0]) + ("@" + text.partition("@")[2] if "@" in text else ""))


# --- predictions -----------------------------------------------------------------------------

_QUADRATURE = 12  # decode steps sampled along the output; step time is smooth in context


def static_batch_times(scn: Scenario, batch: np.ndarray, isl: np.ndarray, osl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prefill time, decode time) of static batches, over arrays: B prompts of ``isl`` tokens
    prefilled in one step, then ``osl - 1`` decode steps with contexts isl+1 .. isl+osl-1 (at most
    12 sampled, evenly spaced, averaged)."""
    batch, isl, osl = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(batch, isl, osl))
    t_prefill = np.where(isl > 0, prefill_step(scn, batch, np.maximum(isl, 1.0)).step_time_s, 0.0)
    steps = np.where(isl > 0, osl - 1.0, osl)
    points = np.clip(np.minimum(steps, _QUADRATURE), 1.0, None)
    j = np.arange(_QUADRATURE, dtype=float)
    frac = j / np.maximum(points[..., None] - 1.0, 1.0)
    ctx = isl[..., None] + 1.0 + frac * np.maximum(steps[..., None] - 1.0, 0.0)
    used = j < points[..., None]
    t = decode_step(scn, np.broadcast_to(batch[..., None], ctx.shape), np.where(used, ctx, isl[..., None] + 1.0)).step_time_s
    mean = np.sum(np.where(used, t, 0.0), axis=-1) / points
    return t_prefill, np.where(steps > 0, mean * steps, 0.0)


#: Engines that admit only as many sequences as their KV cache holds and queue the rest
#: (continuous batching); a static engine (TensorRT-LLM's gptSessionBenchmark) cannot run a
#: batch that does not fit.
_QUEUEING_ENGINES = {"vllm", "vllm-rocm", "sglang"}


def _arrays(cases: list[Case]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.array([getattr(c, a) for c in cases], dtype=float) for a in ("batch", "input_len", "output_len"))


def _static(scn: Scenario, cases: list[Case]) -> tuple[np.ndarray, list[str | None]]:
    """Static batches of B requests; when B exceeds what the KV cache holds (or the engine's cap on
    running sequences), a queueing engine runs it in ceil(B / max) equal waves: it runs what fits and
    queues the rest (vLLM's scheduler, vllm/v1/core/sched/scheduler.py, starts a waiting request only
    while fewer than max_num_seqs run and its KV-cache blocks can be allocated)."""
    batch, isl, osl = _arrays(cases)
    b = np.maximum(batch, 1.0)
    queueing = (scn.engine.family or scn.engine.key) in _QUEUEING_ENGINES
    max_b = memory.max_batch(scn, isl + osl).astype(float)
    if queueing and not scn.ideal:  # vLLM max_num_seqs, SGLang max_running_requests: a software cap, which the ideal drops
        max_b = np.where(max_b >= 1, np.minimum(max_b, scn.max_running_requests), max_b)
    ok = (max_b >= 1) & ((b <= max_b) | queueing)
    waves = np.where(ok, np.ceil(b / np.maximum(max_b, 1.0)), 1.0)
    t_pf, t_dec = static_batch_times(scn, b / waves, isl, osl)
    total = waves * (t_pf + t_dec)
    per_group = b * osl / total
    # Per user: the mean over requests of OSL / (its own completion time); wave k of w ends at k/w
    # of the run, so the mean is OSL / total x H_w (harmonic number; 1 for a single wave).
    harmonic = np.array([sum(1.0 / k for k in range(1, int(w) + 1)) for w in waves])
    metrics = {"output_tok_per_s_per_gpu": per_group / scn.deployment.n_gpus, "output_tok_per_s_total": per_group,
               "output_tok_per_s_per_user": osl / total * harmonic, "batch_latency_s": total}
    return _pick(cases, metrics, ok, "static batches",
                 lambda c: f"batch {max(c.batch, 1)} of {c.input_len}+{c.output_len} tokens does not fit in tokecon's memory model")


def _pick(cases: list[Case], metrics: dict[str, np.ndarray], ok: np.ndarray, kind: str,
          misfit: Callable[[Case], str]) -> tuple[np.ndarray, list[str | None]]:
    """Each case's value from the array of its metric, or NaN and the reason: ``misfit`` where
    ``ok`` is false, or a metric this kind of row does not model."""
    values, reasons = np.full(len(cases), np.nan), []
    for i, c in enumerate(cases):
        if not ok[i]:
            reasons.append(misfit(c))
        elif c.metric not in metrics:
            reasons.append(f"metric '{c.metric}' not modelled for {kind}")
        else:
            values[i] = metrics[c.metric][i]
            reasons.append(None)
    return values, reasons


def _prefill(scn: Scenario, cases: list[Case]) -> tuple[np.ndarray, list[str | None]]:
    batch, isl, osl = _arrays(cases)
    b = np.maximum(batch, 1.0)
    fits = memory.max_batch(scn, isl + osl) >= b
    t = prefill_step(scn, b, isl).step_time_s * np.ones_like(b)
    metrics = {"ttft_ms": t * 1e3, "prefill_tok_per_s": b * isl / t}
    return _pick(cases, metrics, fits, "prefill",
                 lambda c: f"batch {max(c.batch, 1)} of {c.input_len} tokens does not fit in tokecon's memory model")


def _serving(scn: Scenario, cases: list[Case], screen: bool = True) -> tuple[np.ndarray, list[str | None]]:
    """Closed loop: C requests always in flight (tokecon.serving.batching), prompts prefilled as the engine
    does by default, as :func:`predict_inflight` does; mean TTFT and TPOT. ``screen``: skip the runs
    whose measured TPOT is impossible (:func:`impossible_tpot_floor_ms`; a fit, whose rows are already
    screened, passes False)."""
    from tokecon.serving.batching import serve

    conc, isl, osl = _arrays(cases)
    if np.any(osl < 2) or np.any(isl < 1) or np.any(conc < 1):
        return np.full(len(cases), np.nan), ["closed-loop rows need concurrency, input and output lengths"] * len(cases)
    bench = cases[0].benchmark
    t = serve(scn, conc, isl, osl, first_wave_share=bench.first_wave_share, phase_coherence=bench.phase_coherence,
              ttft=any(c.metric == "ttft_ms" for c in cases), step_tokens=bench.step_tokens(scn.engine.family, conc, isl))
    metrics = {"ttft_ms": t.ttft_s * 1e3, "tpot_ms": t.tpot_s * 1e3}
    floor = impossible_tpot_floor_ms(scn, conc, isl, osl) if screen else np.zeros(len(cases))
    bad = np.array([c.metric == "tpot_ms" and c.measured < f for c, f in zip(cases, floor)])
    impossible = {id(c) for c, b in zip(cases, bad) if b}
    return _pick(cases, metrics, np.isfinite(t.tpot_s) & ~bad, "closed-loop serving",
                 lambda c: IMPOSSIBLE if id(c) in impossible else "one request does not fit in tokecon's memory model")


IMPOSSIBLE = ("impossible as recorded: the measured TPOT is below the ideal roofline's decode step at the run's batch "
              "(every peak at 100%, no overhead)")


def impossible_tpot_floor_ms(scn: Scenario, conc: np.ndarray, isl: np.ndarray, osl: np.ndarray) -> np.ndarray:
    """The least TPOT a closed loop of C requests can show (ms): the ideal roofline's decode step (100% of
    every peak, no overhead, no prompt in it) at the batch that fits, min(C per unit, what the KV cache
    holds at the average footprint), over the shortest context I + 1, per token a step yields. A
    measured TPOT below it is impossible as recorded (a mislabelled deployment or a wrong concurrency):
    such rows are skipped, with :data:`IMPOSSIBLE` as the reason, never fitted (each row on its own, so
    that a row predicts the same alone or in its group)."""
    from tokecon.serving.batching import max_running

    ideal = replace(scn, ideal=True)
    r = np.maximum(np.minimum(conc / scn.deployment.replicas, max_running(ideal, isl, osl)), 1.0)
    return decode_step(ideal, r, isl + 1.0).step_time_s / ideal.tokens_per_step * 1e3


def _disagg(scn: Scenario, cases: list[Case]) -> tuple[np.ndarray, list[str | None]]:
    """Closed loop on x prefill and y decode workers (:func:`tokecon.serving.disagg.serve`): mean TTFT
    and TPOT. Cases of a group share both pools."""
    from tokecon.serving.disagg import serve

    if scn.ideal:  # the ideal column is a throughput bound; these rows are times, summarised apart
        return np.full(len(cases), np.nan), ["no ideal roofline for disaggregated rows"] * len(cases)
    conc, isl, osl = _arrays(cases)
    dep, x, y, batch = cases[0].prefill
    if np.any(osl < 2) or np.any(isl < 1) or np.any(conc < 1):
        return np.full(len(cases), np.nan), ["closed-loop rows need concurrency, input and output lengths"] * len(cases)
    bench = cases[0].benchmark
    t = serve(replace(scn, deployment=dep), scn, x, y, conc, isl, osl, batch, first_wave_share=bench.first_wave_share,
              phase_coherence=bench.phase_coherence)
    metrics = {"ttft_ms": t.ttft_s * 1e3, "tpot_ms": t.tpot_s * 1e3}
    return _pick(cases, metrics, np.isfinite(t.tpot_s), "disaggregated serving",
                 lambda c: "one request does not fit a prefill or decode worker in tokecon's memory model")


def predict_inflight(case: Case) -> float:
    """Offline maximum throughput (every request queued at once): :func:`tokecon.serving.batching.serve` with as
    many requests in flight as run at once (KV admission and the engine's cap, which the ideal view
    drops), and the engine's default prefill (its budget, chunked or whole prompts)."""
    from tokecon.serving.batching import max_running, serve

    scn = case.scenario
    if case.output_len < 2 or case.input_len < 1:
        raise Skip("in-flight rows need input and output lengths")
    per_unit = float(max_running(scn, case.input_len, case.output_len))
    t = serve(scn, max(per_unit, 1.0) * scn.deployment.replicas, case.input_len, case.output_len)
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


#: Kinds evaluated a group at a time over numpy arrays, and kinds evaluated row by row.
GROUP_PREDICTORS: dict[str, Callable[[Scenario, list[Case]], tuple[np.ndarray, list[str | None]]]] = {
    "static": _static, "prefill": _prefill, "serving": _serving, "disagg": _disagg}
PREDICTORS: dict[str, Callable[[Case], float]] = {"inflight": predict_inflight, "moe": predict_moe}


def _group_key(case: Case) -> tuple:
    """Cases that share this key share one scenario (values, not identity: calibrate.py rebuilds the
    hardware and engine of every case with the factors it tries)."""
    scn, dep, hw = case.scenario, case.scenario.deployment, case.scenario.hardware
    return (case.kind, scn.model, hw.key, hw.efficiency, hw.memory_bytes, dep.n_gpus, dep.tp, dep.ep,
            dep.attention_dp, dep.pp, scn.precision, scn.engine, scn.ideal, _pool_key(case), case.benchmark)


def _pool_key(case: Case) -> tuple | None:
    if case.prefill is None:
        return None
    dep, x, y, batch = case.prefill
    return (dep.n_gpus, dep.tp, dep.ep, dep.attention_dp, x, y, batch)


def predict_many(cases: list[Case]) -> tuple[np.ndarray, list[str | None]]:
    """Predicted value of every case (NaN where it cannot be predicted) and, in parallel, the reason
    for each NaN (None where predicted). Cases sharing a scenario are evaluated as one array."""
    values, reasons = np.full(len(cases), np.nan), [None] * len(cases)
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault(_group_key(c), []).append(i)
    for key, idx in groups.items():
        kind = key[0]
        if kind in GROUP_PREDICTORS:
            v, why = GROUP_PREDICTORS[kind](cases[idx[0]].scenario, [cases[i] for i in idx])
            values[idx] = v
            for i, w in zip(idx, why):
                reasons[i] = w
            continue
        for i in idx:
            try:
                if kind not in PREDICTORS:
                    raise Skip(f"{kind} rows not modelled yet")
                values[i] = PREDICTORS[kind](cases[i])
            except Skip as exc:
                reasons[i] = str(exc)
    return values, reasons


def predict(case: Case) -> float:
    """One row; raises :class:`Skip` with the reason when it cannot be predicted."""
    values, reasons = predict_many([case])
    if reasons[0]:
        raise Skip(reasons[0])
    return float(values[0])


# --- the report ----------------------------------------------------------------------------


@record(frozen=False)
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
    outcomes = [Outcome(row["id"], row) for row in rows]
    for out in outcomes:
        try:
            out.case = build_case(out.row, catalog)
        except Skip as why:
            out.skipped = str(why)
    built = [o for o in outcomes if o.case is not None]
    values, reasons = predict_many([o.case for o in built])
    ideal = predict_many([replace(o.case, scenario=replace(o.case.scenario, ideal=True)) for o in built])[0] if with_ideal else None
    for i, o in enumerate(built):
        if reasons[i]:
            o.skipped = reasons[i]
            continue
        o.predicted = float(values[i])
        if ideal is not None:
            o.ideal = float(ideal[i]) if np.isfinite(ideal[i]) else None
    return outcomes


@record(frozen=False)
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
    "kind": lambda o: ("moe" if o.case.scenario.model.is_moe else "dense") if o.case else "?",
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
        "measured": measured_value(r),
        "predicted": o.predicted,
        "ideal": o.ideal,
        "error": o.error,
        "skipped": o.skipped,
        "source_url": r["source_url"],
    }
