"""Rows of ``serve --request-rate`` and the rate ``capacity`` sizes deployments for, over
:mod:`tokecon.serving.arrivals` (open-loop Poisson arrivals)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.physics import memory
from tokecon.serving import batching as serving
from tokecon.fidelity import uncertainty
from tokecon.economics.money import token_prices
from tokecon.serving.deploy import Deployed, deployment_fields
from tokecon.serving import points
from tokecon.serving.request import ServingRequest
from tokecon.errors import TokeconError
from tokecon.serving import arrivals
from tokecon.serving import lengths
from tokecon.serving.arrivals import OpenLoop
from tokecon.results import Column, Thresholds

COLUMNS = [
    Column("request_rate", "req/s offered", "num"),
    Column("mean_concurrency", "in flight (mean)", "num", hide=2),
    Column("utilisation", "load", "pct", hide=2),
    Column("ttft_s", "TTFT mean [ms]", "time"),
    Column("ttft_s", "TTFT 80% range [ms]", "time_range", hide=2),
    Column("ttft_p99_s", "TTFT p99 [ms]", "time", hide=1),
    Column("tpot_s", "TPOT mean [ms]", "time"),
    Column("tpot_p99_s", "TPOT p99 [ms]", "time", hide=1),
    Column("queue_wait_s", "queue wait [ms]", "time", hide=2),
    Column("tok_s_per_user", "tok/s per user", "rate", hide=2),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
]

MODEL_NOTE = ("Open-loop Poisson arrivals (flow-equivalent server, Chandy, Herzog & Woo 1975): a request finds n "
              "in flight with the steady-state probability of a birth-death chain served at the closed-loop rate "
              "X(n), and keeps the TTFT and TPOT of continuous batching at n + 1; once every slot is busy it waits "
              "an exponential time (M/M/1). Percentiles are those of that mixture; a request's TPOT in fact averages "
              "over the states it lives through, so TPOT percentiles are an upper bound. USD/Mtok include idle time.")


#: what the held-out check on MLPerf Server runs found (validation/poisson_check.py, docs/reference.md)
NEAR_CAPACITY = ("Near capacity measured engines hold larger batches than this model: on 17 MLPerf Server runs at the "
                 "same load its median TTFT was 2-3x and TPOT 1.5-2x too low, and its rate within p99 limits about a quarter too high "
                 "(docs/reference.md, Poisson arrivals). Read latencies at high load as lower bounds.")
HIGH_LOAD = 0.8  # utilisation from which the caveat is printed


MAX_RATE = 1e9  # requests per second: far past any deployment's, short of overflowing the chain's weights


def rate_list(values: list[str] | None) -> list[float] | None:
    """``["0.5,1", "2"]`` -> [0.5, 1.0, 2.0] requests per second."""
    if not values:
        return None
    out: list[float] = []
    for value in values:
        for part in str(value).split(","):
            try:
                rate = float(part)
            except ValueError:
                raise TokeconError(f"--request-rate expects comma-separated requests per second, got {part.strip()!r}") from None
            if not (0 < rate <= MAX_RATE):
                raise TokeconError(f"--request-rate must be a positive number of requests per second, at most {MAX_RATE:g}; got {part.strip()}")
            out.append(rate)
    return out


def latency_fields(ol: OpenLoop) -> list[dict[str, Any]]:
    """Per rate: the figures latency thresholds read (None where unstable)."""
    rows = []
    for i, rate in enumerate(ol.request_rate):
        ok = bool(ol.stable[i])
        row: dict[str, Any] = {"request_rate": float(rate), "max_request_rate": ol.max_request_rate, "stable": ok}
        for key, values in (("ttft", ol.ttft_quantiles_s), ("tpot", ol.tpot_quantiles_s)):
            row[f"{key}_s"] = float(getattr(ol, f"{key}_s")[i]) if ok else None
            for q, value in zip(arrivals.QUANTILES, values[i]):
                row[f"{key}_p{round(q * 100)}_s"] = float(value) if ok else None
        row["tok_s_per_user"] = 1.0 / row["tpot_s"] if ok else None
        rows.append(row)
    return rows


def rate_rows(d: Deployed, opts: ServingRequest, rates: list[float], input_len: int,
              output_len: int) -> tuple[list[dict[str, Any]], OpenLoop]:
    """One row per offered rate, with serve's keys (means; state figures averaged over the time the
    deployment is busy, per-request ones over arrivals) and the percentiles beside them."""
    scn = d.scenario
    st = arrivals.states(scn, input_len, output_len, opts.chunked_prefill, **opts.serve_modes())
    ol = arrivals.open_loop(st, np.asarray(rates, dtype=float))
    lam = ol.request_rate
    units, n_gpus = scn.deployment.replicas, scn.deployment.n_gpus
    queued = lam * ol.queue_wait_s  # Little's law on the queue
    running = ol.mean_concurrency - queued
    prefill_share = ol.busy_mean(st.prefill_time_fraction)
    mean_in, mean_out = (float(st.input_tok_s[0] / st.requests_s[0]), float(st.output_tok_s[0] / st.requests_s[0]))
    f = np.clip(np.nan_to_num(prefill_share, nan=0.0), 0.0, 1.0)
    money = token_prices(scn.usd_per_hour * f, scn.usd_per_hour * (1.0 - f), lam * mean_in, lam * mean_out, opts.price_split)
    extra = points.mode_figures(d, st, lam * mean_in, lam * mean_out, (scn.board_power_w, scn.all_in_power_w), scn.usd_per_hour, st.prefix_hit,
                         opts.modes.prices)
    per_arrival = {"preempted_fraction": ol.arrival_mean(st.preempted)}
    if st.chunk_tokens is not None:
        per_arrival["chunked_prefill_tokens"] = np.round(ol.arrival_mean(st.chunk_tokens))
    busy = {"decode_step_s": ol.busy_mean(st.decode_step_s), "prefill_s": ol.busy_mean(st.prefill_s),
            "prefill_time_fraction": prefill_share}
    ctx = serving.admission_context(scn, input_len, output_len)
    rows = []
    for i, row in enumerate(latency_fields(ol)):
        ok = row["stable"]
        v = _picker(i, ok)
        mean_running = v(running)
        row = {
            **deployment_fields(d), **row, "utilisation": float(ol.utilisation[i]),
            "queue_probability": v(ol.queue_probability), "mean_concurrency": v(ol.mean_concurrency),
            "concurrency": None, "input_tokens": input_len, "output_tokens": output_len,
            "chunked_prefill_tokens": None, "max_concurrency": int(st.max_running[0]),
            "running": mean_running, "queued": v(queued), "fits": True,
            "e2e_latency_s": v(ol.e2e_latency_s), "queue_wait_s": v(ol.queue_wait_s),
            "requests_s": v(lam), "input_tok_s": v(lam * mean_in), "output_tok_s": v(lam * mean_out),
            "output_tok_s_per_gpu": v(lam * mean_out / n_gpus), "total_tok_s": v(lam * (mean_in + mean_out)),
            "total_tok_s_per_gpu": v(lam * (mean_in + mean_out) / n_gpus),
            **{k: v(a) for k, a in (*per_arrival.items(), *busy.items())},
            "bound": str(st.bound[min(max(round(mean_running) - 1, 0), ol.n0 - 1)]) if ok else None,
            "memory_used_bytes_per_gpu": float(memory.memory_used_per_gpu(scn, (mean_running or 0.0) / units, ctx)),
            "usd_per_hour": scn.usd_per_hour, "usd_per_gpu_hour": d.cost.usd_per_gpu_hour,
            "cost_method": d.cost.method, "price_split": opts.price_split,
            **{k: v(a) for k, a in money.items()},
        }  # fmt: skip
        if row["chunked_prefill_tokens"] is not None:
            row["chunked_prefill_tokens"] = int(row["chunked_prefill_tokens"])
        row["tok_s_per_gpu"] = row["output_tok_s_per_gpu"]  # the common threshold key (--min-tok-s-per-gpu)
        row.update(points.mode_keys(row, d, st.lengths, st.prefix_hit))
        row.update({k: points.value(a, i) if ok else None for k, a in extra.items()})
        rows.append(uncertainty.annotate_arrivals(uncertainty.annotate(row, scn, "decode"), scn) if ok else row)
    return rows, ol


def _picker(i: int, ok: bool):
    """values -> values[i] as a float, or None where the rate is unstable."""
    return lambda values: float(values[i]) if ok else None


def rate_notes(d: Deployed, ol: OpenLoop, input_len: int, output_len: int, range_ratio: float = 1.0) -> list[str]:
    """The highest sustainable rate (and its tok/s at the mean request lengths), and which offered
    rates are past it."""
    top = ol.max_request_rate
    mix = lengths.mix(input_len, output_len, range_ratio)
    notes = [f"{d.label}: at most {top:,.4g} req/s sustained ({top * float(mix.input_mean + mix.output_mean):,.0f} tok/s; "
             f"{ol.n0:,} requests run at once); past it the queue grows without bound."]
    over = [f"{r:g}" for r, ok in zip(ol.request_rate, ol.stable) if not ok]
    if over:
        notes.append(f"{d.label}: {', '.join(over)} req/s is at or past {top:,.4g} req/s: unstable, no finite latency.")
    if any(ok and u >= HIGH_LOAD for u, ok in zip(ol.utilisation, ol.stable)):
        notes.append(NEAR_CAPACITY)
    if any(ok and uncertainty.arrivals_apply(d.scenario, float(u)) for u, ok in zip(ol.utilisation, ol.stable)):
        notes.append(uncertainty.arrivals_note())
    return notes


LATENCY_LIMITS = ("max_ttft_ms", "max_tpot_ms", "min_tok_s_per_user", "max_ttft_p99_ms", "max_tpot_p99_ms")


def max_rate_within(d: Deployed, opts: ServingRequest, slo: Thresholds, input_len: int, output_len: int,
                    passes: int = 4, points: int = 64) -> tuple[float, list[str], dict[str, Any]]:
    """The highest Poisson rate one deployment takes with every latency limit of ``slo`` met, the
    limits that bind just above it, and the figures there (or, when no rate meets them, at the
    lowest rate tried). The latency figures rise with the rate (p(n) shifts to larger n), so each
    pass narrows the bracket [last rate met, first rate missed] on a grid of ``points`` rates:
    precision (points + 1) ** -passes of the highest sustainable rate."""
    latency = Thresholds(**{k: getattr(slo, k) for k in LATENCY_LIMITS})
    st = arrivals.states(d.scenario, input_len, output_len, opts.chunked_prefill, **opts.serve_modes())
    lo, hi = 0.0, float(st.requests_s[-1])
    missed: dict[str, Any] = {}
    for _ in range(passes):
        rates = lo + (hi - lo) * np.arange(1, points + 1) / (points + 1)
        ol = arrivals.open_loop(st, rates)
        fields = latency_fields(ol)
        met = [not latency.check(r) for r in fields]
        k = max((i for i, ok in enumerate(met) if ok), default=-1)
        lo = float(rates[k]) if k >= 0 else lo
        if k + 1 < points:
            hi, missed = float(rates[k + 1]), fields[k + 1]
    binding = [name for name in LATENCY_LIMITS
               if getattr(slo, name) is not None and missed and Thresholds(**{name: getattr(slo, name)}).check(missed)]
    return lo, binding, missed
