"""Continuous batching at a fixed number of requests in flight: TTFT, TPOT and throughput.

A deployment of ``n_gpus`` is ``units`` independent serving units (TP groups; under attention
data parallelism every GPU is a unit whose experts are shared over ``ep`` GPUs). C requests in
flight put b = C / units on each unit. Each request is prefilled (I input tokens), then decoded
for O - 1 more steps (the prefill gives the first token); a finished request is replaced at once.
The engine profile (engines.toml) sets the scheduling: its cap on running requests, how much KV
cache it reserves per request, and its per-step token budget K, chunked or whole prompts.

    running  r = min(b, r_kv, cap)         r_kv: requests whose admitted KV footprint fits, I + O
                                           ("full") or I + O/2 ("average", paged engines); cap:
                                           max_running_requests (dropped by the ideal view)
    preempted phi, at context L            (paged engines, :func:`preemption`): each such request
                                           is re-prefilled over its L tokens, so a request needs
                                           P = I + phi L prefill tokens in 1 + phi prefills
    decode   T_d = decode step at r sequences, average context I + O/2
    prefill  every step carries the r decode tokens; prompts need p = r P / (O - 1) tokens per
             step, carried in mixed steps of c prompt tokens (T_m: weights read once for all):
             c = min(K - r, max(p, P / (1 + phi)))             chunked: prompts split to fill K
             c = whole prompts, at least one, up to K - r       whole: batched, never split
             a share f = p / c of the steps is mixed:  TPOT = f T_m + (1 - f) T_d
             (r is also capped where prefills fill the budget, so that p <= c always)
    TTFT     = residual + a + ceil(I / c) T_m + wait; residual = (f T_m^2 + (1 - f) T_d^2) / (2 TPOT),
             the rest of the step under way when a request arrives (renewal theory: half a step
             when all steps are equal; none when no other request is in flight, b <= 1); a = 0, or
             one mean step f T_m + (1 - f) T_d for an engine that schedules ahead (below)
    per unit requests/s  X = r / ((O - 1) TPOT)             (Little's law over the running slots)
    wait     = (b - r) / X                                   (requests queued for a slot)
    E2E      = TTFT + (O - 1) TPOT
    GPU time of prefill (priced to input tokens): f (T_m - T_d) per step

The phase of a closed loop (TTFT). The TTFT above is that of requests spread evenly over time
(staggered). A closed-loop benchmark (vLLM's benchmark_serving and SGLang's bench_serving with
``--max-concurrency``, genai-perf and aiperf in concurrency mode) starts its C requests at once and
replaces each as it finishes; with fixed lengths the replacements stay in phase: requests prefilled
in one burst finish within a few fast decode steps of each other (the slow mixed steps of the burst
held back the ones prefilled first), so their replacements arrive together again and every step that
carries prompts is full (a limit cycle; aiconfigurator's queueing oracle and its closed-loop
refinement, ai-dynamo/aiconfigurator docs/design/closed_loop_refinement.md, replay the same
calendar). In phase, prompts ride in steps of c_f tokens:

    c_f      = min(most a step carries, r P)                 the budget (chunked) or the whole prompts
                                                             that fit it, at most the r running prompts
    T_f      = mixed step of r decode sequences and c_f prompt tokens
    in phase    TTFT_p = E[ceil(I / c_f)] T_f                (a group arrives at a step boundary)
    first wave  TTFT_w = T_f (n_b + E[ceil(I / c_f)]) / 2,   n_b = ceil(r I / c_f) steps of the burst
                that starts every request at once (the first C requests of a benchmark)

Lengths drawn from a range de-phase the loop: completions spread over the output lengths' standard
deviation sigma_O (in decode steps), so the share still in phase is chi = chi_0 n_b^2 / (n_b^2 +
sigma_O^2) (chi_0 for fixed lengths, ~0 once sigma_O exceeds the burst; SGLang's default range ratio
0 spreads them most); chi_0 (``phase_coherence``, 1 by default) is what a benchmark client's own
jitter leaves in phase. With w the share of measured requests in the first wave (``first_wave_share``: a
benchmark of N requests at concurrency C has w = C / N) and the engine's fixed first-token time
T_0 (``ttft_overhead_ms``: HTTP, tokenisation, admission, detokenising the first token, which no
step sees):

    TTFT = T_0 + wait + (1 - w) (chi TTFT_p + (1 - chi) TTFT_s) + w TTFT_w

TTFT_s being the staggered TTFT above. Requests arriving at random (Poisson, ``closed_loop=False``)
are never in phase. TPOT and throughput keep the staggered steps: in phase the same prompt tokens
ride in fewer, fuller steps, which changes the mean step only through the small nonlinearity of a
step in its tokens.

Engines that schedule ahead (engines.toml ``schedules_ahead_from``: TensorRT-LLM 1.x's overlap scheduler,
SGLang's overlap scheduler from 0.4, vLLM's async scheduling from 0.14) prepare step k + 1 on the CPU
while step k runs on the GPU, so a request that arrives during step k cannot join step k + 1, already
prepared: it waits for that step too, a = one mean step more than a synchronous engine, in the
staggered and the in-phase TTFT (TensorRT-LLM's docs: the overlap scheduler "introduces one extra
decoding step", https://nvidia.github.io/TensorRT-LLM/torch/features/overlap_scheduler.html). An idle
engine (b <= 1, the first wave's start) has nothing prepared. The same pipelining adds one step to a
request's life (its stop is seen a step late), under 1% of the TPOT rows' hundreds of steps: not modelled.

Prefill-first engines (``mixed_prefill = false``: SGLang, whose scheduler runs a prefill-only batch
whenever requests wait and does not mix prompts into decode steps by default). A group in phase is
not split into steps that each start decoding: nobody decodes until the whole burst of n_b prefill
steps ends, so the group starts decoding together, finishes together and is replaced together.
Request j of the burst has its first token after j of its steps and waits the other n_b - j before
its decode, so for the share chi in phase

    TTFT_p = a + T_f (n_b + E[ceil(I / c_f)]) / 2 (a + TTFT_w)   TPOT step = T_d + (n_b - 1) T_f / (2 S)

S = (O - 1) / E decode steps; the rest is staggered. The cycle n_b T_f + S T_d is the staggered
work, so X is unchanged: only the split of the burst between TTFT and TPOT moves. Measured
(aiconfigurator, Qwen3-32B BF16 on 4 H100, 4,096 in / 128 out, 128 in flight, one client): SGLang
9.2 s TTFT and 94 ms TPOT against vLLM's 1.4 s and 159 ms, about 21 s per request for both.

Assumes: steady state, identical requests, FCFS; a queue only forms when the KV cache or the
engine's cap is full. Worked number (tests/test_serve.py): a 1-layer toy model, memory-bound
everywhere, at I = 16, O = 17, C = 2: one prompt in f = 2/16 of the steps, T_m = 10.048 s,
T_d(2) = 3.504 s, so TPOT = 10.048 / 8 + 3.504 x 7 / 8 = 4.322 s.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tokecon.errors import TokeconError
from tokecon.physics import memory
from tokecon.physics import params
from tokecon.physics.operations import Op, step_operations
from tokecon.physics.phases import decode_step, pipeline_rounds
from tokecon.physics.roofline import StepTimes, step_times
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.serving.requests import FIXED, LengthMix, LengthMoments
from tokecon.units import SECONDS_PER_DAY


@record
class ServingTimes:
    """Steady-state serving figures; arrays broadcast over (concurrency, input, output).

    Deployment-wide unless the name says per GPU or per unit. NaN where nothing fits."""

    concurrency: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    units: int
    max_running: np.ndarray  # requests that run at once: KV admission and the engine's cap (deployment)
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
    prefill_s: np.ndarray  # one mixed step (decode batch + prompt tokens)
    chunk_tokens: np.ndarray | None  # prompt tokens per mixed step when chunked, else None
    preempted: np.ndarray  # share of requests preempted once and re-prefilled
    decode: StepTimes  # the decode step, for the bound and the breakdown
    tokens_per_step: np.ndarray  # tokens a sequence gains per decode step (speculation: E > 1)
    prefix_hit: float = 0.0  # share of input tokens found in the prefix cache
    kv_load_s: np.ndarray | float = 0.0  # loading a prompt's cached prefix, part of TTFT
    lengths: LengthMix = FIXED  # how lengths are drawn; input_tokens/output_tokens are the longest
    in_phase: np.ndarray | float = 0.0  # chi: share of a closed loop's requests arriving in phase (module docstring)
    ttft_parts: "TtftParts | None" = None  # the TTFT's terms, for a fit of the closed loop's shares

    @property
    def fits(self) -> np.ndarray:
        return self.max_running >= 1

    @property
    def bound(self) -> np.ndarray:
        return self.decode.bound


@record
class TtftParts:
    """The terms of a closed loop's TTFT (module docstring, "The phase of a closed loop"), so that the
    benchmark's shares and the engine's first-token time can be varied without a roofline call:
    ``base`` = prefix-cache load + queue wait, ``staggered`` = TTFT_s, ``in_phase`` = TTFT_p,
    ``first_wave`` = TTFT_w, ``shape`` = n_b^2 / (n_b^2 + sigma_O^2) (0 for random arrivals), ``prepared``
    = the step an engine that schedules ahead had prepared (part of TTFT_s and TTFT_p; 0 for the others)."""

    base: np.ndarray
    staggered: np.ndarray
    in_phase: np.ndarray
    first_wave: np.ndarray
    shape: np.ndarray
    prepared: np.ndarray | float = 0.0

    def ttft(self, overhead_s: float | np.ndarray, first_wave_share: float | np.ndarray,
             phase_coherence: float | np.ndarray) -> np.ndarray:
        """T_0 + base + (1 - w) (chi TTFT_p + (1 - chi) TTFT_s) + w TTFT_w, chi = chi_0 x shape."""
        chi = phase_coherence * self.shape
        steady = chi * self.in_phase + (1.0 - chi) * self.staggered
        return overhead_s + self.base + (1.0 - first_wave_share) * steady + first_wave_share * self.first_wave


def _core(ops: list[Op]) -> list[Op]:
    return [op for op in ops if op.name.startswith("attn/core")]


def mixed_step(
    scn: Scenario,
    decode_batch: np.ndarray,
    context: np.ndarray,
    chunk_tokens: np.ndarray,
    input_len: np.ndarray,
    overlap_comm: bool = False,
    cached_len: np.ndarray | float = 0.0,
) -> StepTimes:
    """One step carrying ``decode_batch`` decode sequences and ``chunk_tokens`` prompt tokens (with
    ``pp`` stages: a round of pp micro-batches, as in :func:`tokecon.physics.phases.decode_step`).

    Linear layers (projections, FFN or experts, norms, head, collectives) see all q B + c tokens
    and read their weights once (q = 1, or k + 1 when speculating: the verified draft tokens, after
    the draft's own passes); attention is the decode attention over ``context`` plus c/I of one
    prompt's causal attention, its I computed tokens after ``cached_len`` tokens found in a prefix
    cache; logits for the q B decoded tokens and c/I finished prompts.
    """
    pp = scn.deployment.pp
    q = scn.verified_tokens
    B = np.asarray(decode_batch, dtype=float)
    c = np.asarray(chunk_tokens, dtype=float)
    if pp > 1:  # pp micro-batches, each with its share of the decode tokens and of the chunk
        B, c = np.maximum(B / pp, 1.0), c / pp
    inp = np.asarray(input_len, dtype=float)
    n = q * B + c
    rows = (q * B + c / inp) / n
    ctx = np.asarray(context, dtype=float)
    share = c / inp
    linear = [op for op in step_operations(scn, n, 1.0, 0.0, rows, B + share) if not op.name.startswith("attn/core")]
    dec = _core(step_operations(scn, B, np.full_like(ctx, q), np.maximum(ctx - 1.0, 0.0)))
    pre = [replace(op, flop=op.flop * share, bytes=op.bytes * share) for op in _core(step_operations(scn, 1.0, inp, cached_len))]
    times = step_times(linear + dec + pre, scn, overlap_comm, sequences=B + share)
    if scn.speculation is not None:
        times = times.plus(scn.speculation.draft_times(scn, B, ctx, overlap_comm), "draft/")
    return times.rounds(pipeline_rounds(scn.model.layers, pp, decode_batch), scn.layer_overhead_s) if pp > 1 else times


def lockstep_share(scn: Scenario, share: np.ndarray) -> np.ndarray:
    """Share of the steps that carry prompt tokens on some rank, when ranks step in lockstep.

    Under attention data parallelism each of the g = min(ep, GPUs) ranks that share the experts runs
    its own batch, but the all-to-all of every MoE layer makes them wait for each other, so a step
    lasts as long as its slowest rank: one rank's prefill stalls all (TensorRT-LLM blog 10, "ADP
    Balance Strategy": iteration time = max over ranks). If each rank carries prompt tokens in a
    share f of its steps, independently, some rank does in 1 - (1 - f)^g of them; a scheduler that
    makes ranks take their prompts in the same steps (TensorRT-LLM's attention_dp_config
    enable_balance) removes a share beta of the difference (engines.toml ``adp_prefill_balance``):

        f_g = f + (1 - beta) (1 - (1 - f)^g - f)

    Worked number (tests/test_fidelity_terms.py): DeepSeek-V3 on 8 GB200, ADP8 EP8, 512 running per
    rank, 803-token prompts over 3,653 output tokens: f = 512 x 803 / 3,652 / 803 = 0.140 per rank,
    f_8 = 1 - 0.860^8 = 0.70. Throughput at f_8 over that at f (the blog's 'SOL' of perfect
    balance) is (T_d + f D) / (T_d + f_8 D) with D = T_m - T_d; the blog measured 25.7k / 39.6k =
    0.65, which D = 1.1 T_d gives, and its balanced run (34.1k of its own 37.9k SOL, 0.90) beta =
    0.8. One unit (a TP group, or g = 1): f itself."""
    dep = scn.deployment
    g = min(dep.ep, dep.n_gpus) if dep.attention_dp else 1
    if g <= 1:
        return share
    beta = scn.engine.adp_prefill_balance
    return share + (1.0 - beta) * (1.0 - (1.0 - share) ** g - share)


def admission_context(scn: Scenario, input_len: np.ndarray, output_len: np.ndarray) -> np.ndarray:
    """Tokens of KV cache the engine reckons an admitted request needs (engines.toml ``kv_admission``):
    I + O reserved up front ("full": TensorRT-LLM's GUARANTEED_NO_EVICT, llama.cpp slots), or the
    average over its life, I + O/2 ("average": paged vLLM and SGLang, which preempt on overflow)."""
    inp, out = np.asarray(input_len, dtype=float), np.asarray(output_len, dtype=float)
    return inp + (out / 2.0 if scn.engine.kv_admission == "average" else out)


def max_running(scn: Scenario, input_len: np.ndarray, output_len: np.ndarray, lengths: LengthMix = FIXED) -> np.ndarray:
    """Most requests one serving unit runs at once: those whose admitted KV footprint fits (on average
    over the running mix when lengths vary, ``lengths``), at most the engine's
    ``max_running_requests`` (vLLM max_num_seqs), a software cap the ideal view drops. 0 when the
    longest request cannot hold its last token."""
    inp, out = np.asarray(input_len, dtype=float), np.asarray(output_len, dtype=float)
    lm = lengths.moments(inp, out)
    footprint = lm.running_mean(admission_context(scn, lm.input_tokens, lm.output_tokens))
    fit = np.where(memory.max_batch(scn, inp + out) >= 1, memory.max_batch(scn, footprint), 0)
    return fit.astype(float) if scn.ideal else np.minimum(fit, scn.max_running_requests).astype(float)


def preemption(running: np.ndarray, fit_full: np.ndarray, full_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share phi of requests preempted once, their mean context L in tokens) when r requests run and
    the KV cache holds m = ``fit_full`` requests at their full length I + O = ``full_len``.

    Requests admitted together grow in lockstep (a fixed-concurrency run of identical requests), so
    the running KV cache peaks with all r at I + O tokens; a cache of F = m (I + O) tokens holds m of
    them and the engine preempts the rest, dropping their KV and re-prefilling prompt and generated
    tokens when space returns (vLLM's recompute preemption; SGLang's retraction):
        phi = max(1 - m / r, 0)
    At context x the cache holds F / x sequences, so preemptions fall at contexts from F / r to
    I + O with density F / x^2, and their mean is L = F ln(r / m) / (r - m) (-> I + O as r -> m).
    When ages are spread out the peak is lower: this is the most the overflow costs."""
    r, m, full = (np.asarray(a, dtype=float) for a in (running, fit_full, full_len))
    over = r > m
    phi = np.where(over, 1.0 - m / np.maximum(r, 1e-12), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(over & (m > 0), m * full * np.log(r / m) / (r - m), full)
    return phi, mean


def _budget_cap(budget: np.ndarray, r: np.ndarray, prompt: np.ndarray, segments: np.ndarray, steps: np.ndarray,
                chunked: bool, q: float = 1.0) -> np.ndarray:
    """Most requests whose prefills fit the token budget K beside the q r decode tokens of ``r``
    sequences (q = 1, or k + 1 verified tokens when speculating): chunked, r (q + P / S) = K over
    S steps per request; whole prompts, (1 + phi) r / S prefills per step = as many whole ones as
    fit in K - q r (at least one)."""
    if chunked:
        return budget * steps / (prompt + q * steps)
    return steps / segments * np.maximum(np.floor(np.maximum(budget - q * r, 1.0) * segments / prompt), 1.0)


def kv_load_s(scn: Scenario, cached_tokens: np.ndarray) -> np.ndarray:
    """Time to load a prompt's ``cached_tokens`` of KV cache from a prefix store outside the GPUs
    (DeepSeek's 3FS on SSD, Mooncake's pooled store), over the scale-out NICs of the serving unit's
    GPUs: tokens x KV bytes per token / (GPUs x NIC bandwidth x link efficiency). Counted before the
    prefill starts (not overlapped): the most it adds to TTFT."""
    dep, hw = scn.deployment, scn.hardware
    gpus = 1 if dep.attention_dp else dep.tp * dep.pp
    per_token = params.kv_bytes_per_token(scn.model, scn.precision.kv_cache)
    return np.asarray(cached_tokens, dtype=float) * per_token / (gpus * hw.scaleout_bw_b_s * scn.link_efficiency)


def prefix_cache_tb_per_day(scn: Scenario, input_tok_s: np.ndarray, prefix_hit: float) -> np.ndarray:
    """Prefix-store TB one day of computed prompts fills: missed input tok/s x 86,400 s x KV bytes
    per token / 1e12 (NaN without a prefix cache)."""
    if prefix_hit <= 0:
        return np.full(np.shape(input_tok_s), np.nan)
    per_token = params.kv_bytes_per_token(scn.model, scn.precision.kv_cache)
    return np.asarray(input_tok_s, dtype=float) * (1.0 - prefix_hit) * per_token * SECONDS_PER_DAY / 1e12


def _check_serve_args(C: np.ndarray, inp: np.ndarray, out: np.ndarray, chunk_tokens: int | None, prefix_hit: float,
                      first_wave_share: float, phase_coherence: float) -> None:
    """Refuse a grid or an option the model has no steady state for, naming the CLI's option."""
    if np.any(out < 2):
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token); use `tokecon prefill` for prompts alone")
    if np.any(inp < 1) or np.any(C <= 0):
        raise TokeconError("--input-len and --concurrency must be positive")
    if chunk_tokens is not None and chunk_tokens < 2:
        raise TokeconError(f"--chunked-prefill must be at least 2 tokens per step, got {chunk_tokens}")
    if not (0.0 <= prefix_hit < 1.0):
        raise TokeconError(f"--prefix-hit must be a share of input tokens in [0, 1), got {prefix_hit}")
    if not (0.0 <= first_wave_share <= 1.0 and 0.0 <= phase_coherence <= 1.0):
        raise TokeconError(f"the first wave's share and the phase coherence must be in [0, 1], got {first_wave_share}, "
                           f"{phase_coherence}")


def _admitted(scn: Scenario, lm: LengthMoments, b: np.ndarray, most_running: np.ndarray, new: np.ndarray, budget: np.ndarray,
              steps: np.ndarray, chunked: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r, phi, L) of a unit with b requests in flight, each with ``new`` prompt tokens to compute over S =
    ``steps`` decode steps: r = min(b, r_kv, cap) running, also capped where prefills fill the budget
    (:func:`_budget_cap`, so that p <= c always); phi of them preempted at mean context L
    (:func:`preemption`: the KV cache holds m requests at a running slot's last token E_v[I + O]),
    reckoned again at the capped r."""
    full = lm.running_mean(lm.input_tokens + lm.output_tokens)  # a running slot's KV at its last token
    fit_full = memory.max_batch(scn, full).astype(float)
    r = np.minimum(b, most_running)
    phi, ctx_pre = preemption(r, fit_full, full)
    r = np.minimum(r, _budget_cap(budget, r, new + phi * ctx_pre, 1.0 + phi, steps, chunked, scn.verified_tokens))
    phi, ctx_pre = preemption(r, fit_full, full)  # fewer running, less overflow: still within budget
    return r, phi, ctx_pre


@record
class _UnitState:
    """The steady state of one serving unit (module docstring), per unit: r ``running``, phi
    ``preempted``; the pure decode step T_d (``decode``); mixed steps of c = ``chunk`` prompt tokens,
    T_m = ``mixed_s``, in a share f = ``share`` of the steps; TPOT's step f T_m + (1 - f) T_d
    (``step_s``); X = ``requests_s`` and the queue's ``wait_s``. In phase: c_f = ``full`` prompt tokens
    per step, T_f = ``full_s`` (NaN when the TTFT is left out), n_b = ``burst`` steps of the r prompts."""

    running: np.ndarray
    preempted: np.ndarray
    decode: StepTimes
    chunk: np.ndarray
    mixed_s: np.ndarray
    share: np.ndarray
    step_s: np.ndarray
    requests_s: np.ndarray
    wait_s: np.ndarray
    full: np.ndarray
    full_s: np.ndarray
    burst: np.ndarray


def _unit_state(scn: Scenario, lm: LengthMoments, b: np.ndarray, most_running: np.ndarray, prefix_hit: float,
                budget: np.ndarray, chunked: bool, overlap_comm: bool, ttft: bool) -> _UnitState:
    """One unit with b requests in flight, r of them running (:func:`_admitted`), each needing
    P = I (1 - h) + phi L prefill tokens in 1 + phi prefills and S = (O - 1) / E decode steps; T_d at
    r sequences and context E_v[I + O/2]; prompts need p = r P / S tokens per step, in mixed steps of
        c = min(K - q r, max(p, P / (1 + phi)))           chunked: prompts split to fill K
        c = whole prompts, at least one, up to K - q r   whole: batched, never split
    in a share f = p / c of the steps (:func:`lockstep_share`); X = r / (S TPOT), wait = (b - r) / X.
    In phase: c_f = min(most a step carries, r P / (1 + phi)), n_b = ceil(r I (1 - h) / c_f)."""
    kept = 1.0 - prefix_hit  # prompt tokens computed; the rest come from the prefix cache
    new = lm.input_mean * kept
    steps = (lm.output_mean - 1.0) / scn.tokens_per_step  # decode steps per request
    r, phi, ctx_pre = _admitted(scn, lm, b, most_running, new, budget, steps, chunked)
    prompt = new + phi * ctx_pre  # prefill tokens per request, recompute included
    segment = prompt / (1.0 + phi)  # mean tokens of one prefill
    attn_len = (kept * new * lm.attention_length + phi * ctx_pre**2) / prompt  # the length weighting prompt-token attention
    cached = lm.input_mean * prefix_hit * new / prompt  # the cached prefix those tokens attend over, on average
    r_step = np.maximum(r, 1.0)  # a busy unit holds at least one sequence
    ctx = lm.running_mean(lm.input_tokens + lm.output_tokens / 2.0)
    dec = decode_step(scn, r_step, ctx, overlap_comm)
    need = r_step * prompt / steps
    room = np.maximum(budget - scn.verified_tokens * r_step, 1.0)
    most = room if chunked else segment * np.maximum(np.floor(room / segment), 1.0)
    chunk = np.minimum(most, np.maximum(need, segment))
    share = lockstep_share(scn, np.minimum(need / chunk, 1.0))
    t_m = mixed_step(scn, r_step, ctx, chunk, attn_len, overlap_comm, cached).step_time_s
    step = share * t_m + (1.0 - share) * dec.step_time_s
    with np.errstate(divide="ignore", invalid="ignore"):
        x_unit = r / (steps * step)
        wait = np.maximum(b - r, 0.0) / x_unit
    full = np.minimum(most, np.maximum(r_step * segment, segment))  # c_f: a step of prompts in phase
    needed = ttft or not scn.engine.mixed_prefill  # a prefill-first engine's TPOT needs the burst's step too
    t_f = mixed_step(scn, r_step, ctx, full, attn_len, overlap_comm, cached).step_time_s if needed else np.full_like(t_m, np.nan)
    burst = np.ceil(r_step * new / full - 1e-9)  # n_b: steps of a burst of the r running prompts
    return _UnitState(running=r, preempted=phi, decode=dec, chunk=chunk, mixed_s=t_m, share=share, step_s=step,
                      requests_s=x_unit, wait_s=wait, full=full, full_s=t_f, burst=burst)


def _ttft_parts(u: _UnitState, lm: LengthMoments, b: np.ndarray, prefix_hit: float, gain: float, closed_loop: bool,
                base: np.ndarray, nan: np.ndarray, ahead: bool = False) -> TtftParts:
    """The TTFT's terms (module docstring) from one unit's state ``u`` at b requests in flight, ``base``
    given (prefix-cache load + queue wait), each term times ``nan`` (NaN where nothing fits):
        TTFT_s = residual + a + E[ceil(I / c)] T_m,   residual = (f T_m^2 + (1 - f) T_d^2) / (2 TPOT), none when b <= 1
        TTFT_p = a + E[ceil(I / c_f)] T_f,            TTFT_w = T_f (n_b + E[ceil(I / c_f)]) / 2
        shape  = n_b^2 / (n_b^2 + sigma_O^2),        sigma_O in decode steps (E per step); 0 unless ``closed_loop``
    a = the step already prepared when the request arrives, f T_m + (1 - f) T_d, for an engine that
    schedules ahead (``ahead``; none when b <= 1: an idle engine prepares nothing), else 0."""
    kept = 1.0 - prefix_hit
    t_d, t_m, t_f, share, burst = u.decode.step_time_s, u.mixed_s, u.full_s, u.share, u.burst
    busy = np.clip(b - 1.0, 0.0, 1.0)
    residual = busy * (share * t_m**2 + (1.0 - share) * t_d**2) / (2.0 * u.step_s)
    prepared = busy * u.step_s if ahead else np.zeros_like(residual)
    chunks = lm.mean(np.ceil(lm.input_tokens * kept / u.chunk[..., None]))
    own = lm.mean(np.ceil(lm.input_tokens * kept / u.full[..., None]))
    spread = np.sqrt(np.maximum(lm.mean(lm.output_tokens**2) - lm.output_mean**2, 0.0)) / gain  # sigma_O in steps
    shape = burst**2 / (burst**2 + spread**2) if closed_loop else np.zeros_like(burst)
    return TtftParts(base=base, staggered=(residual + prepared + chunks * t_m) * nan, in_phase=(prepared + own * t_f) * nan,
                     first_wave=t_f * (burst + own) / 2.0 * nan, shape=shape, prepared=prepared * nan)


def _prefill_first(u: _UnitState, parts: TtftParts, steps: np.ndarray, coherence: float) -> tuple[TtftParts, np.ndarray]:
    """A prefill-first engine's closed loop (module docstring, "Prefill-first engines"): the share
    chi = chi_0 x ``parts.shape`` in phase runs as one group, whose n_b prefill steps T_f precede its
    decode: TTFT_p = a + T_f (n_b + own) / 2 (a + TTFT_w, a the prepared step), and the step TPOT sees is
    T_d + (n_b - 1) T_f / (2 S), S decode steps per request; the rest is staggered. Returns the parts
    and that step."""
    lock = coherence * parts.shape
    stall = (u.burst - 1.0) * u.full_s / (2.0 * np.maximum(steps, 1.0))
    seen = lock * (u.decode.step_time_s + stall) + (1.0 - lock) * u.step_s
    return replace(parts, in_phase=parts.prepared + parts.first_wave), seen


def serve(
    scn: Scenario,
    concurrency: np.ndarray,
    input_len: np.ndarray,
    output_len: np.ndarray,
    chunk_tokens: int | None = None,
    overlap_comm: bool = False,
    prefix_hit: float = 0.0,
    lengths: LengthMix = FIXED,
    closed_loop: bool = True,
    first_wave_share: float = 0.0,
    phase_coherence: float = 1.0,
    ttft: bool = True,
    step_tokens: np.ndarray | None = None,
) -> ServingTimes:
    """Continuous batching of ``concurrency`` requests in flight (module docstring has the model).

    ``chunk_tokens`` overrides the engine's default (its budget, chunked or whole) with chunked
    prefill of that many tokens per step. ``prefix_hit``: the share of input tokens whose KV cache is
    found in a prefix cache (computed once before, loaded by :func:`kv_load_s`), so only the rest is
    prefilled, attending over the cached prefix. With ``scn.speculation`` every step verifies k + 1
    tokens per sequence and yields E of them (``scn.tokens_per_step``). ``lengths`` draws each request's
    lengths around the grid's ``input_len`` and ``output_len`` (:mod:`tokecon.serving.lengths`: from
    [ratio x L, L]); they are then the longest. ``closed_loop``: requests replaced as they finish, so
    fixed lengths keep them in phase (False: random arrivals, never in phase); ``first_wave_share``:
    the share of requests that started together in the loop's first wave (0: the steady state);
    ``phase_coherence``: chi_0, the share of a fixed-length loop that stays in phase (1: all; a
    benchmark client whose requests return with jitter longer than a decode step keeps less).
    ``ttft=False`` leaves the TTFT out (NaN), sparing its roofline evaluation (a fit of TPOT rows).
    ``step_tokens``: the deployment's token budget per step (max_num_tokens), per point, instead of
    the engine's default; prompts are still split or kept whole as the engine does."""
    C, inp, out = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(concurrency, input_len, output_len))
    _check_serve_args(C, inp, out, chunk_tokens, prefix_hit, first_wave_share, phase_coherence)
    gain = scn.tokens_per_step
    chunked = chunk_tokens is not None or scn.engine.chunked_prefill
    default = scn.engine.prefill_chunk_tokens if step_tokens is None else step_tokens
    budget = np.broadcast_to(np.asarray(chunk_tokens if chunk_tokens is not None else default, dtype=float), C.shape)
    dep = scn.deployment
    units = dep.replicas
    lm = lengths.moments(inp, out)
    inp_mean, out_mean = lm.input_mean, lm.output_mean
    b = C / units
    most_running = max_running(scn, inp, out, lengths)
    u = _unit_state(scn, lm, b, most_running, prefix_hit, budget, chunked, overlap_comm, ttft)
    r, t_d, t_m, step = u.running, u.decode.step_time_s, u.mixed_s, u.step_s
    nan = np.where(most_running >= 1, 1.0, np.nan)  # the longest request fits (max_running is 0 when not)
    load = kv_load_s(scn, inp_mean * prefix_hit)
    parts = _ttft_parts(u, lm, b, prefix_hit, gain, closed_loop, (load + u.wait_s) * nan, nan, scn.engine.schedules_ahead)
    prefill_first = closed_loop and not scn.engine.mixed_prefill
    parts, seen = _prefill_first(u, parts, (out_mean - 1.0) / gain, phase_coherence) if prefill_first else (parts, step)
    ttft_s = parts.ttft(scn.ttft_overhead_s, first_wave_share, phase_coherence)
    tpot = seen / gain * nan
    req_s = u.requests_s * units * nan
    out_tok_s, in_tok_s = req_s * out_mean, req_s * inp_mean
    return ServingTimes(
        concurrency=C, input_tokens=inp, output_tokens=out, units=units,
        max_running=most_running * units, running=r * units * nan,
        queued=np.maximum(b - r, 0.0) * units * nan,
        ttft_s=ttft_s, tpot_s=tpot, e2e_latency_s=ttft_s + (out_mean - 1.0) * tpot, queue_wait_s=u.wait_s * nan,
        requests_s=req_s, input_tok_s=in_tok_s, output_tok_s=out_tok_s, total_tok_s=in_tok_s + out_tok_s,
        output_tok_s_per_gpu=out_tok_s / dep.n_gpus, total_tok_s_per_gpu=(in_tok_s + out_tok_s) / dep.n_gpus,
        tok_s_per_user=1.0 / tpot, prefill_time_fraction=np.clip(u.share * (t_m - t_d) / step, 0.0, 1.0),
        decode_step_s=t_d * nan, prefill_s=t_m * nan, chunk_tokens=u.chunk if chunked else None,
        preempted=u.preempted * nan, decode=u.decode, tokens_per_step=np.full_like(C, gain), prefix_hit=prefix_hit,
        kv_load_s=load * nan, lengths=lengths, in_phase=phase_coherence * parts.shape * nan, ttft_parts=parts,
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
