"""Continuous batching at a fixed number of requests in flight: TTFT, TPOT and throughput.

A deployment of ``n_gpus`` is ``units`` independent serving units (TP groups; under attention
data parallelism every GPU is a unit whose experts are shared over ``ep`` GPUs). C requests in
flight put b = C / units on each unit. Each request is prefilled (I input tokens), then decoded
for O - 1 more steps (the prefill gives the first token); a finished request is replaced at once.

    running  r = min(b, r_kv)              r_kv: most sequences of I + O tokens whose KV cache fits
                                           (engines admit only what fits and queue the rest)
    decode   T_d = decode step at r sequences, average context I + O/2
    whole prefill (default): arriving prompts run as their own steps, t_p = prefill of one prompt;
             in O - 1 steps the r slots each turn over once, so every step carries r t_p / (O - 1):
             TPOT = T_d + r t_p / (O - 1),                 TTFT = t_p + wait
    chunked prefill (budget K tokens per step): each step carries the r decode tokens and up to
             c = K - r prompt tokens; prompts need p = r I / (O - 1) tokens per step, so a share
             f = p / c of the steps carries a chunk (mixed step T_m, weights read once for all):
             TPOT = f T_m + (1 - f) T_d,                   TTFT = ceil(I / c) T_m + wait
             (r is also capped at K (O - 1) / (I + O - 1), where prompts use the whole budget)
    per unit requests/s  X = r / ((O - 1) TPOT)             (Little's law over the running slots)
    wait     = (b - r) / X                                   (requests queued for a KV slot)
    E2E      = TTFT + (O - 1) TPOT
    GPU time of prefill (priced to input tokens): r t_p, or f (T_m - T_d) per step when chunked

Assumes: steady state, identical requests, FCFS; a queue only forms when the KV cache is full.
Worked number (tests/test_serve.py): a 1-layer toy model, memory-bound everywhere, gives
T_d(2) = 3.504 s, t_p = 8.208 s at I = 16, O = 17, so TPOT = 3.504 + 2 x 8.208 / 16 = 4.530 s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tokecon import memory
from tokecon.errors import TokeconError
from tokecon.operations import Op, step_operations
from tokecon.phases import decode_step, prefill_step
from tokecon.roofline import StepTimes, step_times
from tokecon.specs import Model, Scenario


@dataclass(frozen=True)
class Layout:
    """How a deployment splits its GPUs: ``tp``-way tensor parallel groups, or (``attention_dp``)
    data-parallel attention on every GPU with routed experts spread over ``ep`` GPUs."""

    tp: int
    ep: int = 1
    attention_dp: bool = False
    pp: int = 1

    def label(self, n_gpus: int) -> str:
        if self.attention_dp:
            groups = n_gpus // self.ep
            return f"DP{n_gpus}-attn EP{self.ep}" + (f" x{groups}" if groups > 1 else "")
        replicas = n_gpus // (self.tp * self.pp)
        return f"TP{self.tp}" + (f" PP{self.pp}" if self.pp > 1 else "") + (f" x{replicas}" if replicas > 1 else "")


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_layouts(model: Model, n_gpus: int) -> list[Layout]:
    """Every layout the frontier sweeps: TP degrees that divide the GPUs and the heads (the rest
    replicas); for mixture-of-experts models also attention-DP with every EP size dividing the GPUs."""
    out = [Layout(tp) for tp in divisors(n_gpus) if model.heads % tp == 0]
    if model.is_moe:
        out += [Layout(1, ep, True) for ep in divisors(n_gpus) if ep > 1]
    return out


@dataclass(frozen=True)
class ServingTimes:
    """Steady-state serving figures; arrays broadcast over (concurrency, input, output).

    Deployment-wide unless the name says per GPU or per unit. NaN where nothing fits."""

    concurrency: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    units: int
    max_running: np.ndarray  # requests whose KV cache fits at once (deployment)
    running: np.ndarray  # requests decoding (deployment)
    queued: np.ndarray  # requests waiting for a KV slot (deployment)
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_latency_s: np.ndarray
    queue_wait_s: np.ndarray
    requests_s: np.ndarray
    input_tok_s: np.ndarray
    output_tok_s: np.ndarray
    total_tok_s: np.ndarray
    output_tok_s_per_gpu: np.ndarray
    total_tok_s_per_gpu: np.ndarray
    tok_s_per_user: np.ndarray  # 1 / TPOT
    prefill_time_fraction: np.ndarray  # share of GPU time spent on prompts
    decode_step_s: np.ndarray  # pure decode step at the running batch
    prefill_s: np.ndarray  # whole prefill of one prompt, or one mixed (chunk) step
    chunk_tokens: np.ndarray | None
    decode: StepTimes  # the decode step, for the bound and the breakdown

    @property
    def fits(self) -> np.ndarray:
        return self.max_running >= 1

    @property
    def bound(self) -> np.ndarray:
        return self.decode.bound


def _core(ops: list[Op]) -> list[Op]:
    return [op for op in ops if op.name.startswith("attn/core")]


def mixed_step(
    scn: Scenario,
    decode_batch: np.ndarray,
    context: np.ndarray,
    chunk_tokens: np.ndarray,
    input_len: np.ndarray,
    overlap_comm: bool = False,
) -> StepTimes:
    """One step carrying ``decode_batch`` decode tokens and ``chunk_tokens`` prompt tokens (with
    ``pp`` stages: a round of pp micro-batches, as in :func:`tokecon.phases.decode_step`).

    Linear layers (projections, FFN or experts, norms, head, collectives) see all B + c tokens
    and read their weights once; attention is the decode attention over ``context`` plus c/I of a
    whole prompt's causal attention; logits for the B decoded sequences and c/I finished prompts.
    """
    pp = scn.deployment.pp
    B = np.asarray(decode_batch, dtype=float)
    c = np.asarray(chunk_tokens, dtype=float)
    if pp > 1:  # pp micro-batches, each with its share of the decode tokens and of the chunk
        B, c = np.maximum(B / pp, 1.0), c / pp
    inp = np.asarray(input_len, dtype=float)
    n = B + c
    rows = (B + c / inp) / n
    linear = [op for op in step_operations(scn, n, 1.0, 0.0, rows) if not op.name.startswith("attn/core")]
    dec = _core(step_operations(scn, B, 1.0, np.maximum(np.asarray(context, dtype=float) - 1.0, 0.0)))
    share = c / inp
    pre = [replace(op, flop=op.flop * share, bytes=op.bytes * share) for op in _core(step_operations(scn, 1.0, inp, 0.0))]
    times = step_times(linear + dec + pre, scn, overlap_comm)
    return times.rounds(pp) if pp > 1 else times


def serve(
    scn: Scenario,
    concurrency: np.ndarray,
    input_len: np.ndarray,
    output_len: np.ndarray,
    chunk_tokens: int | None = None,
    overlap_comm: bool = False,
) -> ServingTimes:
    """Continuous batching of ``concurrency`` requests in flight (module docstring has the model)."""
    C, inp, out = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(concurrency, input_len, output_len))
    if np.any(out < 2):
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token); use `tokecon prefill` for prompts alone")
    if np.any(inp < 1) or np.any(C <= 0):
        raise TokeconError("--input-len and --concurrency must be positive")
    if chunk_tokens is not None and chunk_tokens < 2:
        raise TokeconError(f"--chunked-prefill must be at least 2 tokens per step, got {chunk_tokens}")
    dep = scn.deployment
    units = dep.replicas
    steps = out - 1.0
    b = C / units
    r_kv = memory.max_batch(scn, inp + out).astype(float)
    r = np.minimum(b, r_kv)
    if chunk_tokens is not None:
        r = np.minimum(r, chunk_tokens * steps / (inp + steps))
    r_step = np.maximum(r, 1.0)  # a busy unit holds at least one sequence
    ctx = inp + out / 2.0
    dec = decode_step(scn, r_step, ctx, overlap_comm)
    t_d = dec.step_time_s
    if chunk_tokens is None:
        pre = prefill_step(scn, 1.0, inp, 0.0, overlap_comm)
        t_p = pre.step_time_s  # GPU time of one prompt (per stage under pipeline parallelism)
        tpot = t_d + r_step * t_p / steps
        ttft_service = pre.latency
        prefill_per_step = r_step * t_p / steps
        chunk = None
        first = t_p
    else:
        chunk = np.maximum(chunk_tokens - r_step, 1.0)
        share = np.minimum(r_step * inp / steps / chunk, 1.0)
        t_m = mixed_step(scn, r_step, ctx, chunk, inp, overlap_comm).step_time_s
        tpot = share * t_m + (1.0 - share) * t_d
        ttft_service = np.ceil(inp / chunk) * t_m
        prefill_per_step = share * (t_m - t_d)
        first = t_m
    with np.errstate(divide="ignore", invalid="ignore"):
        x_unit = r / (steps * tpot)
        wait = np.maximum(b - r, 0.0) / x_unit
    ok = r_kv >= 1
    nan = np.where(ok, 1.0, np.nan)
    ttft = (ttft_service + wait) * nan
    tpot = tpot * nan
    req_s = x_unit * units * nan
    out_tok_s, in_tok_s = req_s * out, req_s * inp
    return ServingTimes(
        concurrency=C, input_tokens=inp, output_tokens=out, units=units,
        max_running=r_kv * units, running=r * units * nan, queued=np.maximum(b - r, 0.0) * units * nan,
        ttft_s=ttft, tpot_s=tpot, e2e_latency_s=ttft + steps * tpot, queue_wait_s=wait * nan,
        requests_s=req_s, input_tok_s=in_tok_s, output_tok_s=out_tok_s, total_tok_s=in_tok_s + out_tok_s,
        output_tok_s_per_gpu=out_tok_s / dep.n_gpus, total_tok_s_per_gpu=(in_tok_s + out_tok_s) / dep.n_gpus,
        tok_s_per_user=1.0 / tpot, prefill_time_fraction=prefill_per_step / tpot,
        decode_step_s=t_d * nan, prefill_s=first * nan, chunk_tokens=chunk, decode=dec,
    )  # fmt: skip


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points not dominated in (x, y), both to be maximised; NaN points are never kept.

    Sorted by x descending (ties by y descending), a point is kept when its y beats every point
    with a larger x, so along the kept points y never rises as x rises."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    valid = np.isfinite(x) & np.isfinite(y)
    xs = np.where(valid, x, -np.inf)
    ys = np.where(valid, y, -np.inf)
    order = np.lexsort((-ys, -xs))
    ys_sorted = ys[order]
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], ys_sorted[:-1]]))
    mask = np.zeros(x.shape, dtype=bool)
    mask[order] = (ys_sorted > best_before) & valid[order]
    return mask


def batch_grid(max_running: int, points_per_doubling: int = 2) -> np.ndarray:
    """Per-unit batch sizes from 1 to ``max_running``, geometric (2 points per doubling), integer."""
    if max_running < 1:
        return np.zeros(0)
    top = np.log2(max_running)
    grid = np.round(2.0 ** np.arange(0.0, top + 1e-9, 1.0 / points_per_doubling))
    return np.unique(np.append(grid, max_running))
