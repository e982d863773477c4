"""Open-loop Poisson arrivals: the steady state of a deployment offered ``lambda`` requests per second.

:func:`tokecon.serving.batching.serve` gives the closed-loop steady state with n requests in flight: the
deployment's completion rate X(n) requests/s, TTFT(n), TPOT(n) and the queue wait once n exceeds
the M requests that run at once (KV cache, engine cap). Under Poisson arrivals at rate lambda the
number in the system is modelled by the flow-equivalent server (Chandy, Herzog & Woo, "Parametric
analysis of queueing networks", IBM J. Res. Dev. 19(1), 1975): a birth-death chain that enters
state n at rate lambda and leaves it at rate X(n), the throughput the closed system has at n,

    p(n) = p(0) prod_{k=1..n} lambda / X(k)                      (state-dependent M/M/1)

X(n) = X(M) = X_max for every n >= n0 = ceil(M) (the rest queue), so past n0 the chain is
geometric with rho = lambda / X_max and its tail is summed in closed form (no truncation):
P(n >= n0 + j) = P(n >= n0) rho^j. It is stable (finite latency) iff lambda < X_max, the highest
sustainable rate; at or past it nothing is finite and the rate is reported unstable. (X(n) can peak
a little above X_max below n0, where preemption or prompt chunking shift, but a queue that may grow
is served at X(n0): max_n X(n) is not sustainable, X_max is.) serve is evaluated once on
n = 1..n0 (:func:`states`), then every rate at once as numpy arrays (:func:`open_loop`).

What an arrival sees (PASTA: Poisson arrivals see time averages, Wolff 1982): it finds n with
probability p(n) and then is one of n + 1 in flight, so

    n < n0:   TTFT = TTFT(n + 1), TPOT = TPOT(n + 1)             (a slot is free)
    n >= n0:  TTFT = TTFT(n0) + W, TPOT = TPOT(n0)               (all slots busy)
              W = the n + 1 - n0 departures it waits for, each at X_max: Erlang(n + 1 - n0, X_max);
              mixed over the geometric tail this is exactly Exp(X_max - lambda), the M/M/1 wait
    P(TTFT <= t) = sum_{n<n0} p(n) [TTFT(n + 1) <= t] + P(n >= n0) (1 - exp(-(X_max - lambda)(t - TTFT(n0))))+

and the percentiles (p50 / p90 / p99) invert that mixture; TPOT's is the mixture of its point
masses. Mean queue wait Wq = sum p(n) wait(n + 1) + P(n >= n0) / (X_max - lambda); the mean
concurrency follows from Little's law, L = lambda (Wq + (O - 1) E[TPOT]), which equals sum n p(n)
because serve's own Little's law gives n / X(n) = wait(n) + (O - 1) TPOT(n) in every state.
Utilisation = lambda / X_max.

Assumes: identical requests, FCFS, Poisson arrivals (as MLPerf Inference's Server scenario,
https://github.com/mlcommons/inference_policies, and vLLM's benchmark_serving with
--request-rate, https://docs.vllm.ai/en/latest/contributing/benchmarks.html, generate them);
service times exponential in the flow-equivalent sense; a request keeps the TTFT and TPOT of the
state it arrives in (quasi-static: its decode steps in fact average over the states it lives
through, so the TPOT spread is an upper bound and the p99 TPOT pessimistic).
Worked number (tests/test_arrivals.py): one slot (M = 1), X = mu: the chain is M/M/1, mean number
rho / (1 - rho), and TTFT p99 = TTFT(1) + ln(rho / 0.01) / (mu - lambda) for rho > 0.01.
"""

from __future__ import annotations

import math

import numpy as np

from tokecon.errors import TokeconError
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.serving import batching as serving
from tokecon.serving.requests import FIXED

QUANTILES = (0.5, 0.9, 0.99)
MAX_STATES = 1 << 19  # states evaluated one by one (n0); beyond this the grid would not be cheap


@record
class OpenLoop:
    """The steady state at each offered rate (arrays over ``request_rate``); NaN where unstable.

    ``states`` is serve at 1..n0 requests in flight; ``p[:, n]`` the probability of n in flight for
    n < n0 and ``p[:, n0]`` that of n0 or more."""

    request_rate: np.ndarray
    max_request_rate: float  # X_max: past it the queue grows without bound
    n0: int  # requests in flight from which every further one queues
    states: serving.ServingTimes
    p: np.ndarray
    stable: np.ndarray
    ttft_s: np.ndarray  # mean
    tpot_s: np.ndarray  # mean over requests
    queue_wait_s: np.ndarray
    ttft_quantiles_s: np.ndarray  # (rate, QUANTILES)
    tpot_quantiles_s: np.ndarray

    @property
    def utilisation(self) -> np.ndarray:
        """rho = lambda / X_max (1 or more: unstable)."""
        return self.request_rate / self.max_request_rate

    @property
    def mean_concurrency(self) -> np.ndarray:
        """Little's law: L = lambda x (queue wait + (O - 1) x mean TPOT)."""
        steps = self.states.output_tokens[0] - 1.0
        return self.request_rate * (self.queue_wait_s + steps * self.tpot_s)

    @property
    def e2e_latency_s(self) -> np.ndarray:
        return self.ttft_s + (self.states.output_tokens[0] - 1.0) * self.tpot_s

    def prob_at_least(self, k: int) -> np.ndarray:
        """P(n >= k) for each rate: the share of arrivals that find k or more in flight."""
        if k >= self.n0:
            return self.p[:, self.n0] * self.utilisation ** (k - self.n0)
        return self.p[:, k:].sum(axis=1)

    @property
    def queue_probability(self) -> np.ndarray:
        """Share of requests that wait for a slot."""
        return self.prob_at_least(self.n0)

    def arrival_mean(self, per_state: np.ndarray) -> np.ndarray:
        """Mean over arrivals of a figure of serve at n + 1 in flight (the tail at n0)."""
        return _at_arrival(self.p, per_state)

    def busy_mean(self, per_state: np.ndarray) -> np.ndarray:
        """Mean over the time the deployment is busy of a figure of serve at n in flight."""
        return self.p[:, 1:] @ per_state / np.maximum(1.0 - self.p[:, 0], 1e-300)


def saturation(scn: Scenario, input_len: int, output_len: int, chunk_tokens: int | None = None,
               overlap_comm: bool = False, **modes) -> serving.ServingTimes:
    """serve with every request the deployment can run in flight (the KV cache, the engine's cap
    and the prefill budget all bind): its requests/s is X_max. ``modes``: serve's prefix_hit and
    lengths."""
    most = serving.max_running(scn, input_len, output_len, modes.get("lengths", FIXED)) * scn.deployment.replicas
    if not most >= 1:
        raise TokeconError("the model leaves no room for one request's KV cache: use more GPUs or a shorter context")
    return serving.serve(scn, np.asarray([float(most)]), input_len, output_len, chunk_tokens, overlap_comm, closed_loop=False,
                         **modes)


def states(scn: Scenario, input_len: int, output_len: int, chunk_tokens: int | None = None,
           overlap_comm: bool = False, **modes) -> serving.ServingTimes:
    """serve at n = 1, 2, ..., n0 requests in flight, n0 = ceil(M): every state the chain tells apart
    (past n0 each one queues at X_max). Evaluate once, then :func:`open_loop` for any set of rates."""
    n0 = math.ceil(float(saturation(scn, input_len, output_len, chunk_tokens, overlap_comm, **modes).running[0]) - 1e-9)
    if n0 > MAX_STATES:
        raise TokeconError(f"{n0:,} requests run at once here, more than the {MAX_STATES:,} states the arrival model "
                           "evaluates: give fewer GPUs per --gpus or a longer request")
    return serving.serve(scn, np.arange(1.0, n0 + 1.0), input_len, output_len, chunk_tokens, overlap_comm, closed_loop=False,
                         **modes)


def open_loop(st: serving.ServingTimes, request_rate: np.ndarray) -> OpenLoop:
    """The open-loop steady state at each ``request_rate`` (requests/s) over the :func:`states` ``st``
    (module docstring has the model)."""
    lam = np.atleast_1d(np.asarray(request_rate, dtype=float))
    if lam.size == 0 or not np.all(np.isfinite(lam) & (lam > 0)):
        raise TokeconError("--request-rate must be positive numbers of requests per second")
    n0 = st.concurrency.size
    x = st.requests_s
    x_max = float(x[-1])
    stable = lam < x_max
    lam_s = np.where(stable, lam, 0.5 * x_max)[:, None]  # placeholder rates, masked to NaN below
    rho = lam_s / x_max
    # log weights of 0..n0 in flight (state n0 stands for the whole geometric tail n >= n0)
    log_w = np.concatenate([np.zeros_like(lam_s), np.cumsum(np.log(lam_s) - np.log(x)[None, :], axis=1)], axis=1)
    log_w[:, -1] -= np.log1p(-rho[:, 0])
    log_w -= log_w.max(axis=1, keepdims=True)
    w = np.exp(log_w)
    p = w / w.sum(axis=1, keepdims=True)
    tail, drain = p[:, -1], x_max - lam_s[:, 0]  # P(n >= n0); the exponential wait's rate
    mean_wait = _at_arrival(p, st.queue_wait_s) + tail / drain
    ttft = _at_arrival(p, st.ttft_s) + tail / drain
    tpot = _at_arrival(p, st.tpot_s)
    q = np.asarray(QUANTILES)
    ttft_q = _quantiles(st.ttft_s, p[:, :-1], tail, float(st.ttft_s[-1]), drain, q)
    tpot_q = _quantiles(np.append(st.tpot_s, st.tpot_s[-1]), p, np.zeros_like(tail), 0.0, drain, q)
    nan = np.where(stable, 1.0, np.nan)
    return OpenLoop(
        request_rate=lam, max_request_rate=x_max, n0=n0, states=st, p=p * nan[:, None], stable=stable,
        ttft_s=ttft * nan, tpot_s=tpot * nan, queue_wait_s=mean_wait * nan,
        ttft_quantiles_s=ttft_q * nan[:, None], tpot_quantiles_s=tpot_q * nan[:, None],
    )  # fmt: skip


def _at_arrival(p: np.ndarray, per_state: np.ndarray) -> np.ndarray:
    """sum_n p(n) v(n + 1), the tail (p[:, n0]) at v(n0): what arrivals find, on average."""
    return p @ np.append(per_state, per_state[-1])


def _quantiles(values: np.ndarray, weights: np.ndarray, tail: np.ndarray, base: float, rate: np.ndarray,
               q: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Quantiles (rate x q) of the mixture of point masses ``weights`` (rate x state) at ``values``
    and an exponential of mass ``tail`` and ``rate`` shifted by ``base``: the least t with
    F(t) >= q, by bisection on all rates and quantiles at once."""
    order = np.argsort(values)
    sorted_values = values[order]
    cum = np.concatenate([np.zeros((weights.shape[0], 1)), np.cumsum(weights[:, order], axis=1)], axis=1)
    rows = np.arange(weights.shape[0])[:, None]

    def cdf(t: np.ndarray) -> np.ndarray:
        points = cum[rows, np.searchsorted(sorted_values, t, side="right")]
        return points + tail[:, None] * -np.expm1(-rate[:, None] * np.maximum(t - base, 0.0))

    lo = np.full((weights.shape[0], q.size), min(float(sorted_values[0]), base))
    hi = np.maximum(float(sorted_values[-1]), base) - np.log1p(-q)[None, :] / rate[:, None]
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = cdf(mid) >= q[None, :]
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return hi
