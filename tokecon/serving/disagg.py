"""Disaggregated prefill / decode serving: prompts on one pool of workers, decode on another, the
KV cache of each prompt handed over between them (NVIDIA Dynamo, https://github.com/ai-dynamo/dynamo;
DistServe, Zhong et al., OSDI 2024, arXiv:2401.09670; Splitwise, Patel et al., ISCA 2024,
arXiv:2311.18677; DeepSeek-V3 inference system, open-infra-index day 6, 2025-03-01).

A pool is ``workers`` copies of one worker (a :class:`tokecon.physics.scenario.Scenario` whose deployment is the
worker's GPUs and layout: TP groups, or attention-DP with EP). A worker holds ``u`` serving units
(``Deployment.replicas``: a TP group, or each GPU under attention-DP). x prefill and y decode workers
(xPyD) serve C requests in flight of I input and O output tokens:

    prefill  a unit prefills b prompts per step (b <= b_max, the engine's token budget / I, at
             least 1): T_p(b) = prefill step (tokecon.physics.phases.prefill_step, no decode tokens mixed in);
             most requests/s the pool takes  R_p = x u_p b_max / T_p(b_max)
    decode   pure decode steps (no prompt tokens in them) at the running batch r per unit and the
             average context I + O/2: T_d(r) = tokecon.physics.phases.decode_step;  TPOT = T_d(r) / E
             (T_d and T_p are tabulated on 16 geometric points from 1 to r_max / b_max and read by
             interpolation in log r while the closed loop below settles)
             r <= r_max = tokecon.serving.batching.max_running (KV admission and the engine's cap);
             a worker holds a request for S = 1 + (O - 1) / E steps (the first returns the
             prefill's token; E tokens per step with speculation, else 1)
             most requests/s the pool takes  R_d = y u_d r_max / (S T_d(r_max))
    hand-off KV bytes per request  V = I x KV bytes per token of the whole model (tokecon.physics.params),
             over the scale-up link when both pools sit in one scale-up domain (x g_p + y g_d <=
             scaleup_domain, e.g. GB200 NVL72), else the scale-out NIC, per GPU per direction x the
             link efficiency, on n = min(GPUs of a prefill unit, of a decode unit) links at once:
                 T_kv = alpha + b V / (n B_link)
             sent layer by layer while the prefill computes the next layers (assumed, as NVIDIA's
             NIXL library under Dynamo, https://github.com/ai-dynamo/nixl, and Mooncake's transfer
             engine, Qin et al., arXiv:2407.00079, move each layer's KV once written; DistServe
             places the two phases to keep this transfer on NVLink), so only what the L layers
             cannot hide is exposed:
                 T_x = max(T_kv / L, T_kv - T_p (L - 1) / L)
    closed loop  (Little's law over a request's life, E2E = C / X):
             free     E2E_0 = T_0 + T_load + T_p(b) + T_x + S T_d(r)  (T_load: prefix-cache hits; T_0 the
                                                                      engine's first-token time)
             X        = min(C / E2E_0, R_p, R_d)                     requests/s of the deployment
             r        = min(X S T_d(r) / (y u_d), r_max)            (fixed point, 12 passes)
             b        = clip(X T_p / (x u_p), 1, b_max)              prompts that meet in a step
             wait     = C / X - E2E_0                                 queued where a pool is full
             TTFT     = T_0 + wait + T_load + T_p + T_x + a + T_d     the decode worker's first step
                                                                      returns the first token (requests
                                                                      spread over time; a closed loop's
                                                                      phase: :func:`serve`); a = T_d
                                                                      when the decode worker schedules
                                                                      ahead (engines.toml
                                                                      schedules_ahead_from) and holds
                                                                      others (r > 1), else 0, so
             E2E      = TTFT + (O - 1) TPOT
    per GPU  output tok/s = X O / (x g_p + y g_d)                     all GPUs of both pools
    USD/Mtok input = prefill pool USD/h / input tok/h; output = decode pool USD/h / output tok/h

Balance (:func:`balance`): the xPyD that serves most requests/s per GPU for a decode operating point,
max over x, y of min(x R_p1, y R_d1) / (x g_p + y g_d) with R_p1, R_d1 one worker's rates; without
a GPU budget, the ratio x / y = R_d1 / R_p1 rounded, the smaller side one worker (DistServe's
placement and Splitwise's pool sizing pick the ratio from the two phases' throughputs the same way).

Assumes: steady state, identical requests; the prefill pool runs whole prompts (no chunking: no
decode to protect), the decode pool never prefills; the transfer has its own link (NIC or NVLink
copy engines) and does not slow either pool. Worked number (tests/test_disagg.py): llama3-70b bf16,
a 1,000-token prompt holds V = 80 x 2 x 8 x 128 x 2 B x 1,000 = 327.68 MB; TP4 to TP4 over H100
scale-out (50 GB/s per GPU, ideal) 327.68e6 / (4 x 50e9) = 1.64 ms, inside one HGX box (450 GB/s)
0.18 ms.
"""

from __future__ import annotations


import numpy as np

from tokecon.physics import params
from tokecon.physics.phases import decode_step, prefill_step
from tokecon.physics.roofline import StepTimes
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.serving import batching as serving
from tokecon.serving.requests import FIXED, LengthMix, LengthMoments

_ITERATIONS = 12  # fixed-point passes of the closed loop, on tabulated step times (:func:`_tabulated`)
_GRID = 16  # geometric grid points per operating point on which the step times are tabulated


def _tabulated(fn, top: np.ndarray):
    """``fn(v)`` for v in [1, ``top``] at every operating point: evaluated once on a geometric grid of
    _GRID values (one vectorised roofline call, shape (..., _GRID)) and read back by linear
    interpolation in log v, so the fixed point costs no roofline call per pass."""
    log_top = np.log(np.maximum(top, 1.0))
    frac = np.linspace(0.0, 1.0, _GRID)
    table = np.asarray(fn(np.exp(log_top[..., None] * frac)), dtype=float).reshape(-1, _GRID)
    row = np.arange(table.shape[0]).reshape(np.shape(log_top)) * _GRID
    flat, scale, top1 = table.ravel(), (_GRID - 1) / np.maximum(log_top, 1e-12), np.maximum(top, 1.0)

    def read(v: np.ndarray) -> np.ndarray:
        pos = np.log(np.minimum(np.maximum(v, 1.0), top1)) * scale
        i = np.minimum(pos.astype(int), _GRID - 2)
        lo, hi = flat[row + i], flat[row + i + 1]
        return lo + (pos - i) * (hi - lo)

    return read


@record
class Pool:
    """``workers`` identical workers, each the deployment of ``scenario`` (its GPUs and layout)."""

    scenario: Scenario
    workers: int

    @property
    def units(self) -> int:
        """Serving units of one worker: TP groups, or each GPU under attention-DP."""
        return self.scenario.deployment.replicas

    @property
    def gpus_per_worker(self) -> int:
        return self.scenario.deployment.n_gpus

    @property
    def gpus_per_unit(self) -> int:
        dep = self.scenario.deployment
        return 1 if dep.attention_dp else dep.tp * dep.pp


def default_prefill_batch(scn: Scenario, input_len: np.ndarray) -> np.ndarray:
    """Prompts a prefill unit batches per step: as many whole prompts as the engine's per-step token
    budget holds, at least one."""
    return np.maximum(np.floor(scn.engine.prefill_chunk_tokens / np.asarray(input_len, dtype=float)), 1.0)


def kv_bytes_per_request(scn: Scenario, input_len: np.ndarray) -> np.ndarray:
    """V = bytes of the whole model's KV cache for a prompt of ``input_len`` tokens (all layers, all heads)."""
    return np.asarray(params.kv_bytes_per_sequence(scn.model, scn.precision.kv_cache, np.asarray(input_len, dtype=float)))


def same_domain(prefill: Scenario, decode: Scenario, gpus: np.ndarray | int) -> np.ndarray:
    """Whether both pools sit in one scale-up domain: the same device, all GPUs within its domain."""
    same = prefill.hardware.key == decode.hardware.key
    return np.asarray(same & (np.asarray(gpus) <= prefill.hardware.scaleup_domain))


def transfer_s(prefill: Scenario, decode: Scenario, prompts: np.ndarray, input_len: np.ndarray, links: int,
               scaleup: np.ndarray) -> np.ndarray:
    """T_kv = alpha + b V / (n B_link): ``prompts`` KV caches over ``links`` GPUs' links at once, over
    scale-up where ``scaleup`` is true, else scale-out (the slower side's link, x its efficiency)."""
    hw = (prefill.hardware, decode.hardware)
    eff = min(prefill.link_efficiency, decode.link_efficiency)
    up = min(h.scaleup_bw_b_s for h in hw) * eff
    out = min(h.scaleout_bw_b_s for h in hw) * eff
    bw = np.where(scaleup, up, out) * links
    alpha = np.where(scaleup, prefill.collective_latency_s, prefill.scaleout_latency_s)
    return alpha + np.asarray(prompts, dtype=float) * kv_bytes_per_request(prefill, input_len) / bw


def exposed_transfer_s(transfer: np.ndarray, prefill_s: np.ndarray, layers: int) -> np.ndarray:
    """Layer-by-layer hand-off: T_x = max(T_kv / L, T_kv - T_p (L - 1) / L)."""
    return np.maximum(transfer / layers, transfer - prefill_s * (layers - 1) / layers)


@record
class DisaggTimes:
    """Steady state of an xPyD deployment; arrays over the operating points. NaN where nothing fits."""

    concurrency: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prefill_workers: np.ndarray
    decode_workers: np.ndarray
    n_gpus: np.ndarray
    prefill_gpus: np.ndarray
    decode_gpus: np.ndarray
    prefill_batch: np.ndarray  # prompts per prefill step per unit
    running: np.ndarray  # requests decoding (deployment)
    max_running: np.ndarray  # most requests decoding at once (KV admission, engine cap; deployment)
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_latency_s: np.ndarray
    queue_wait_s: np.ndarray
    prefill_s: np.ndarray
    kv_transfer_s: np.ndarray  # exposed hand-off time (after layer-by-layer overlap)
    kv_transfer_total_s: np.ndarray  # the whole transfer, overlapped or not
    kv_bytes_per_request: np.ndarray
    kv_link: np.ndarray  # "scale-up" | "scale-out"
    requests_s: np.ndarray
    prefill_capacity_requests_s: np.ndarray
    decode_capacity_requests_s: np.ndarray
    input_tok_s: np.ndarray
    output_tok_s: np.ndarray
    total_tok_s: np.ndarray
    output_tok_s_per_gpu: np.ndarray
    total_tok_s_per_gpu: np.ndarray
    tok_s_per_user: np.ndarray
    prefill_usd_per_hour: np.ndarray
    decode_usd_per_hour: np.ndarray
    limited_by: np.ndarray  # "load" (neither pool full) | "prefill" | "decode"
    tokens_per_step: np.ndarray  # tokens a sequence gains per decode step (speculation: E > 1)
    kv_load_s: np.ndarray  # loading a prompt's cached prefix before its prefill (part of TTFT)
    lengths: LengthMix = FIXED  # how lengths are drawn; input_tokens/output_tokens are the longest
    in_phase: np.ndarray | float = 0.0  # chi: share of the closed loop's requests in phase

    @property
    def fits(self) -> np.ndarray:
        return self.max_running >= 1


def _prefill(scn: Scenario, batch, input_len, prefix_hit: float) -> StepTimes:
    """A prefill step of ``batch`` prompts whose share ``prefix_hit`` of tokens is found in the prefix
    cache: the rest computed, attending over the cached prefix."""
    inp = np.asarray(input_len, dtype=float)
    return prefill_step(scn, batch, inp * (1.0 - prefix_hit), inp * prefix_hit)


def _step_tables(prefill: Scenario, decode: Scenario, lm: LengthMoments, b_max: np.ndarray, r_top: np.ndarray,
                 prefix_hit: float):
    """(T_d(r), T_p(b), the prefill pool's stage time at b_max): the decode step at the running mix's context
    E_v[I + O/2] for r in [1, r_max] and the prefill latency of b prompts for b in [1, b_max], each tabulated
    (:func:`_tabulated`) for the closed loop to read; a stream of prompts keeps every pipeline stage busy, so
    the pool's rate R_p follows the stage time (T_p(b_max) without pipeline stages)."""
    inp = lm.input_mean
    ctx = lm.running_mean(lm.input_tokens + lm.output_tokens / 2.0)
    decode_s = _tabulated(lambda v: decode_step(decode, v, ctx[..., None]).step_time_s, r_top)
    prefill_s = _tabulated(lambda v: _prefill(prefill, v, inp[..., None], prefix_hit).latency, b_max)
    t_p_top = _prefill(prefill, b_max, inp, prefix_hit).step_time_s if prefill.deployment.pp > 1 else prefill_s(b_max)
    return decode_s, prefill_s, t_p_top


def _handoff(p: Pool, d: Pool, inp: np.ndarray, gpus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale-up, alpha, V / (n B_link)) of the KV hand-off from a prefill unit to a decode unit, T_kv = alpha +
    b V / (n B_link) (:func:`transfer_s`): over scale-up where both pools sit in one domain
    (:func:`same_domain`, ``gpus`` in all), on n = min(GPUs of a prefill unit, of a decode unit) links."""
    scaleup = same_domain(p.scenario, d.scenario, gpus)
    links = min(p.gpus_per_unit, d.gpus_per_unit)
    alpha = transfer_s(p.scenario, d.scenario, 0.0, inp, links, scaleup)
    return scaleup, alpha, transfer_s(p.scenario, d.scenario, 1.0, inp, links, scaleup) - alpha


def _request_life(decode_s, prefill_s, alpha: np.ndarray, per_prompt: np.ndarray, layers: int, fixed_s: np.ndarray,
                  steps: np.ndarray):
    """``life(r, b)``: (T_d(r), T_p(b), T_kv, T_x, E2E_0) of a request through free pools at r running per
    decode unit and b prompts per prefill step, with T_kv = alpha + b x ``per_prompt``, T_x exposed over L =
    ``layers`` (:func:`exposed_transfer_s`) and E2E_0 = T_0 + T_load + T_p + T_x + S T_d (``fixed_s`` =
    T_0 + T_load, S = ``steps``)."""

    def life(r: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        t_d, t_p = decode_s(r), prefill_s(b)
        t_kv = alpha + b * per_prompt
        t_x = exposed_transfer_s(t_kv, t_p, layers)
        return t_d, t_p, t_kv, t_x, fixed_s + t_p + t_x + steps * t_d

    return life


def _settle(life, C: np.ndarray, prefill_units: np.ndarray, decode_units: np.ndarray, cap_p: np.ndarray,
            cap_d: np.ndarray, steps: np.ndarray, r_top: np.ndarray, b_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, b) of the closed loop: _ITERATIONS passes of the fixed point, from r = C / (y u_d) and b = 1,
        X = min(C / E2E_0, R_p, R_d),  r = min(X S T_d(r) / (y u_d), r_max),  b = clip(X T_p / (x u_p), 1, b_max)
    (r at least 1 too), E2E_0 and the steps from ``life`` (:func:`_request_life`)."""
    r = np.clip(C / decode_units, 1.0, r_top)
    b = np.ones_like(C)
    for _ in range(_ITERATIONS):
        t_d, t_p, _, _, e2e0 = life(r, b)
        X = np.minimum(np.minimum(C / e2e0, cap_p), cap_d)
        r = np.clip(X * steps * t_d / decode_units, 1.0, r_top)
        b = np.clip(X * t_p / prefill_units, 1.0, b_max)
    return r, b


def _in_phase(life, lm: LengthMoments, C: np.ndarray, prefill_units: np.ndarray, r: np.ndarray, b_max: np.ndarray,
              load: np.ndarray, gain: float, closed_loop: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TTFT_p, TTFT_w, n_b^2 / (n_b^2 + sigma_O^2)) of the closed loop, as in the aggregated model
    (:func:`tokecon.serving.batching.serve`): in phase, the C prompts reach the prefill pool in groups that
    fill its batches, TTFT_p = T_p(b_f) + T_x + T_d with b_f = min(b_max, C / (x u_p)); a first wave of all C
    at once clears in n_b = ceil(C / (x u_p b_f)) prefill steps, TTFT_w = T_p(b_f) (n_b + 1) / 2 + T_x + T_d
    (both after T_load); sigma_O the output lengths' standard deviation in decode steps (0 unless ``closed_loop``)."""
    b_f = np.clip(C / prefill_units, 1.0, b_max)  # prompts of a group in phase per prefill unit
    t_d, t_pf, _, t_xf, _ = life(r, b_f)
    burst = np.ceil(C / (prefill_units * b_f) - 1e-9)
    spread = np.sqrt(np.maximum(lm.mean(lm.output_tokens**2) - lm.output_mean**2, 0.0)) / gain
    shape = burst**2 / (burst**2 + spread**2) if closed_loop else np.zeros_like(burst)
    return load + t_pf + t_xf + t_d, load + t_pf * (burst + 1.0) / 2.0 + t_xf + t_d, shape


def serve(prefill: Scenario, decode: Scenario, prefill_workers, decode_workers, concurrency, input_len, output_len,
          prefill_batch=None, prefix_hit: float = 0.0, lengths: LengthMix = FIXED, closed_loop: bool = True,
          first_wave_share: float = 0.0, phase_coherence: float = 1.0) -> DisaggTimes:
    """C requests in flight on x prefill and y decode workers (module docstring has the model); every
    argument after the two scenarios broadcasts (numpy) over the operating points. ``prefix_hit``: the
    share of prompt tokens found in a prefix cache (loaded, :func:`tokecon.serving.batching.kv_load_s`, before the
    prefill, which computes the rest); a speculating decode scenario yields E tokens per step.

    ``lengths`` draws each request's lengths around ``input_len`` and ``output_len`` as
    :func:`tokecon.serving.batching.serve` does (:mod:`tokecon.serving.lengths`, ``--range-ratio``): the
    pools see the mean prompt (its prefill, its KV hand-off) and the mean output, the decode slots the
    length-biased running mix (context E_v[I + O/2], KV admission), and the longest request must fit
    both workers. The TTFT carries the closed loop's phase as in the aggregated model
    (``closed_loop``, ``first_wave_share``, ``phase_coherence``; the engine's first-token time T_0 too):
    its terms in phase and in a first wave, :func:`_in_phase`."""
    x, y, C, inp, out = (np.asarray(a, dtype=float) for a in
                         np.broadcast_arrays(prefill_workers, decode_workers, concurrency, input_len, output_len))
    longest_in, longest_out = inp, out
    lm = lengths.moments(inp, out)
    inp, out = lm.input_mean, lm.output_mean  # the pools' mean request
    new = inp * (1.0 - prefix_hit)
    b_max = default_prefill_batch(prefill, new) if prefill_batch is None else np.asarray(prefill_batch, dtype=float) + 0 * inp
    p, d = Pool(prefill, 1), Pool(decode, 1)
    u_p, u_d = p.units, d.units
    gpus = x * p.gpus_per_worker + y * d.gpus_per_worker
    gain = decode.tokens_per_step
    steps = 1.0 + (out - 1.0) / gain  # decode steps a worker holds a request: the first returns the prefill's token
    r_max = serving.max_running(decode, longest_in, longest_out, lengths)
    fits = (r_max >= 1) & (serving.max_running(prefill, longest_in, np.ones_like(inp)) >= 1)
    r_top = np.maximum(r_max, 1.0)
    decode_s, prefill_s, t_p_top = _step_tables(prefill, decode, lm, b_max, r_top, prefix_hit)
    load = serving.kv_load_s(prefill, inp * prefix_hit)
    t0 = prefill.ttft_overhead_s  # the engine's first-token time: part of every request's life
    cap_p = x * u_p * b_max / t_p_top
    cap_d = y * u_d * r_top / (steps * decode_s(r_top))
    scaleup, alpha, per_prompt = _handoff(p, d, inp, gpus)
    life = _request_life(decode_s, prefill_s, alpha, per_prompt, prefill.model.layers, t0 + load, steps)
    r, b = _settle(life, C, x * u_p, y * u_d, cap_p, cap_d, steps, r_top, b_max)
    t_d, t_p, t_kv, t_x, e2e0 = life(r, b)
    X = np.minimum(np.minimum(C / e2e0, cap_p), cap_d)
    nan = np.where(fits, 1.0, np.nan)
    e2e = np.maximum(C / X, e2e0) * nan
    wait = e2e - e2e0
    X = X * nan
    limited = np.where(X >= C / e2e0 * (1 - 1e-9), "load", np.where(cap_p <= cap_d, "prefill", "decode"))
    out_tok, in_tok = X * out, X * inp
    # a decode worker that prepares its next step while one runs takes an arriving request a step later
    prepared = np.clip(r - 1.0, 0.0, 1.0) * t_d if decode.engine.schedules_ahead else np.zeros_like(t_d)
    staggered = wait + load + t_p + t_x + t_d + prepared
    in_phase, first_wave, shape = _in_phase(life, lm, C, x * u_p, r, b_max, load, gain, closed_loop)
    parts = serving.TtftParts(base=wait * nan, staggered=(staggered - wait) * nan, in_phase=(in_phase + prepared) * nan,
                              first_wave=(first_wave + prepared) * nan, shape=shape)
    ttft = parts.ttft(t0, first_wave_share, phase_coherence)
    return DisaggTimes(
        concurrency=C, input_tokens=longest_in, output_tokens=longest_out, prefill_workers=x, decode_workers=y, n_gpus=gpus,
        prefill_gpus=x * p.gpus_per_worker, decode_gpus=y * d.gpus_per_worker, prefill_batch=b * nan,
        running=r * y * u_d * nan, max_running=np.where(fits, r_max, 0.0) * y * u_d,
        ttft_s=ttft, tpot_s=t_d / gain * nan, e2e_latency_s=ttft + (out - 1.0) * t_d / gain * nan, queue_wait_s=wait,
        prefill_s=t_p * nan,
        kv_transfer_s=t_x * nan, kv_transfer_total_s=t_kv * nan, kv_bytes_per_request=kv_bytes_per_request(prefill, inp),
        kv_link=np.where(scaleup, "scale-up", "scale-out"), requests_s=X,
        prefill_capacity_requests_s=cap_p * nan, decode_capacity_requests_s=cap_d * nan,
        input_tok_s=in_tok, output_tok_s=out_tok, total_tok_s=in_tok + out_tok,
        output_tok_s_per_gpu=out_tok / gpus, total_tok_s_per_gpu=(in_tok + out_tok) / gpus, tok_s_per_user=gain / t_d * nan,
        prefill_usd_per_hour=x * prefill.usd_per_hour + 0 * C, decode_usd_per_hour=y * decode.usd_per_hour + 0 * C,
        limited_by=limited, tokens_per_step=np.full_like(C, gain), kv_load_s=load * nan, lengths=lengths,
        in_phase=phase_coherence * shape * nan,
    )  # fmt: skip


def prefill_time_s(scn: Scenario, input_len, prefill_batch=None, prefix_hit: float = 0.0) -> np.ndarray:
    """T_p of one prefill unit at its full batch (the engine's budget, or ``prefill_batch``)."""
    inp = np.asarray(input_len, dtype=float)
    b = default_prefill_batch(scn, inp * (1.0 - prefix_hit)) if prefill_batch is None else np.asarray(prefill_batch, dtype=float)
    return _prefill(scn, b, inp, prefix_hit).latency


def prefill_rate(prefill: Scenario, input_len, prefill_batch=None, prefix_hit: float = 0.0) -> np.ndarray:
    """R_p1: requests/s one prefill worker takes at its full batch, u_p b / T_p(b)."""
    inp = np.asarray(input_len, dtype=float)
    b = default_prefill_batch(prefill, inp * (1.0 - prefix_hit)) if prefill_batch is None else np.asarray(prefill_batch, dtype=float)
    return prefill.deployment.replicas * b / _prefill(prefill, b, inp, prefix_hit).step_time_s


def worker_rates(prefill: Scenario, decode: Scenario, decode_batch, input_len, output_len,
                 prefill_batch=None, prefix_hit: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(R_p1, R_d1): requests/s one prefill worker takes at its full batch, and one decode worker at
    ``decode_batch`` running per unit (steady state, neither waiting on the other)."""
    inp, out = np.asarray(input_len, dtype=float), np.asarray(output_len, dtype=float)
    r_p = prefill_rate(prefill, inp, prefill_batch, prefix_hit)
    r = np.asarray(decode_batch, dtype=float)
    step, gain = decode_step(decode, r, inp + out / 2.0), decode.tokens_per_step
    r_d = decode.deployment.replicas * r / ((1.0 + (out - 1.0) / gain) * step.step_time_s)
    return r_p, r_d


MAX_PREFILL_WORKERS = 512  # prefill workers a pool-pair search tries: more only refine the rounding of one ratio


def balance(rate_p: np.ndarray, rate_d: np.ndarray, gpus_p: int, gpus_d: int, max_gpus: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) workers serving most requests/s per GPU: max over x, y >= 1 with x g_p + y g_d <=
    ``max_gpus`` of min(x R_p1, y R_d1) / (x g_p + y g_d). Without a budget, one worker of the faster
    side per ceil(ratio) of the slower: x / y the integer nearest R_d1 / R_p1 (at least 1:1)."""
    rp, rd = np.broadcast_arrays(np.asarray(rate_p, dtype=float), np.asarray(rate_d, dtype=float))
    if max_gpus is None:
        ratio = rd / rp
        x = np.where(ratio >= 1, np.maximum(np.round(ratio), 1.0), 1.0)
        y = np.where(ratio >= 1, 1.0, np.maximum(np.round(1.0 / ratio), 1.0))
        return x, y
    # For a given x the objective rises with y up to the balance y* = x R_p1 / R_d1 and falls after it,
    # so only floor(y*) and ceil(y*) (within the budget) can be best; larger x only refine the
    # rounding of one ratio, so x runs to at most MAX_PREFILL_WORKERS (the work is bounded, not N^2).
    xs = np.arange(1, min(max(max_gpus // gpus_p, 1), MAX_PREFILL_WORKERS) + 1, dtype=float)
    y_top = np.floor((max_gpus - xs * gpus_p) / gpus_d)  # per x, the most decode workers the budget leaves
    balanced = xs * rp[..., None] / np.where(rd > 0, rd, np.nan)[..., None]
    X = np.broadcast_to(xs, balanced.shape)[..., None].repeat(2, axis=-1)
    Y = np.stack([np.floor(balanced), np.ceil(balanced)], axis=-1)
    Y = np.clip(np.nan_to_num(Y, nan=1.0), 1.0, np.maximum(y_top, 1.0)[..., None])
    ok = (X * gpus_p + Y * gpus_d <= max_gpus) & (y_top >= 1)[..., None]
    X, Y = X.reshape(*rp.shape, -1), Y.reshape(*rp.shape, -1)
    ok = ok.reshape(*rp.shape, -1)
    if not ok.any():
        return np.full(rp.shape, np.nan), np.full(rp.shape, np.nan)
    per_gpu = np.minimum(X * rp[..., None], Y * rd[..., None]) / (X * gpus_p + Y * gpus_d)
    best = np.argmax(np.where(ok & np.isfinite(per_gpu), per_gpu, -np.inf), axis=-1)
    found = np.take_along_axis(ok, best[..., None], axis=-1)[..., 0]
    pick = lambda a: np.where(found, np.take_along_axis(a, best[..., None], axis=-1)[..., 0], np.nan)  # noqa: E731
    return pick(X), pick(Y)
