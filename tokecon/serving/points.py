"""One row per serving operating point, the same keys for aggregated serving and for a pair of
disaggregated pools, priced by one function (:func:`tokecon.economics.money.token_prices`).

A :class:`Points` holds what differs between the two ways of serving: who the point is (layout,
pools, workers), how the hour splits between input and output tokens (the prefill share of GPU
time, or each pool's own price), the board power drawn, and the keys only one of them has
(aggregated: the running batch's bound, memory, preemption; disaggregated: the KV hand-off and the
pool that limits). Everything else (latencies, throughput, prices, energy, the prefix cache,
speculation, revenue at list prices, the 80% range) is written once, here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tokecon.economics import energy
from tokecon.economics.money import ListPrices, daily_margin, token_prices
from tokecon.fidelity import uncertainty
from tokecon.physics import memory
from tokecon.records import record
from tokecon.serving import batching
from tokecon.serving.deploy import Deployed, deployment_fields
from tokecon.serving.requests import FIXED, LengthMix

#: figures every serving point has, read from its times by name
COMMON = ("ttft_s", "tpot_s", "e2e_latency_s", "queue_wait_s", "tok_s_per_user", "requests_s", "input_tok_s",
          "output_tok_s", "output_tok_s_per_gpu", "total_tok_s", "total_tok_s_per_gpu", "prefill_s")
AGGREGATED = ("decode_step_s", "prefill_time_fraction")
DISAGGREGATED = ("prefill_batch", "kv_transfer_s", "kv_transfer_total_s", "kv_bytes_per_request",
                 "prefill_capacity_requests_s", "decode_capacity_requests_s")


def value(a: Any, i: int) -> float | None:
    """Point ``i`` of an array (or a scalar) as a float; None where it is not finite."""
    v = float(np.asarray(a).flat[i])
    return v if np.isfinite(v) else None


@record
class Points:
    """Serving points of one deployment: ``times`` (arrays over the points) and what the rows need."""

    times: Any  # tokecon.serving.batching.ServingTimes or tokecon.serving.disagg.DisaggTimes
    decode: Deployed  # the deployment whose steps make the output tokens (efficiency, range, speculation)
    identity: Callable[[int], dict[str, Any]]  # who point i is
    input_usd_per_hour: np.ndarray  # the hour's share charged to input tokens
    output_usd_per_hour: np.ndarray
    power_w: tuple[Any, Any]  # (board, all-in) power of every GPU the point uses
    own: Callable[[int, bool], dict[str, Any]]  # the keys only this way of serving has
    prefix_hit: float = 0.0
    lengths: LengthMix = FIXED
    mode: str = "agg"  # agg | disagg

    @property
    def usd_per_hour(self) -> np.ndarray:
        return np.asarray(self.input_usd_per_hour) + np.asarray(self.output_usd_per_hour)


def aggregated(d: Deployed, st: batching.ServingTimes) -> Points:
    """Continuous batching on one deployment: the hour splits by the share of GPU time spent on prompts."""
    scn = d.scenario
    f = np.clip(np.nan_to_num(st.prefill_time_fraction, nan=0.0), 0.0, 1.0)
    bound, units = st.bound, scn.deployment.replicas  # the bound once: per row it made long -c lists quadratic

    def own(i: int, fits: bool) -> dict[str, Any]:
        running = value(st.running, i)
        ctx = batching.admission_context(scn, st.input_tokens.flat[i], st.output_tokens.flat[i])
        return {"mode": "agg", "chunked_prefill_tokens": None if st.chunk_tokens is None else int(np.round(st.chunk_tokens.flat[i])),
                "running": running, "queued": value(st.queued, i), "preempted_fraction": value(st.preempted, i),
                "bound": str(bound.flat[i]) if fits else None,
                "memory_used_bytes_per_gpu": float(memory.memory_used_per_gpu(scn, (running or 0.0) / units, ctx)),
                **{k: value(getattr(st, k), i) for k in AGGREGATED}}

    return Points(st, d, lambda i: deployment_fields(d), scn.usd_per_hour * f, scn.usd_per_hour * (1.0 - f),
                  (scn.board_power_w, scn.all_in_power_w), own, st.prefix_hit, st.lengths)


def worker_label(d: Deployed) -> str:
    """``8xh200 (TP8)``: one worker of a pool."""
    return f"{d.scenario.deployment.n_gpus}x{d.scenario.hardware.key} ({d.layout_label})"


def pool_label(d: Deployed, workers: float, role: str) -> str:
    """``2 prefill workers of 8xh200 (TP8)``: one pool."""
    return f"{int(workers)} {role} worker{'s' if int(workers) != 1 else ''} of {worker_label(d)}"


def disaggregated(p: Deployed, d: Deployed, st: Any, prefix_hit: float = 0.0, lengths: LengthMix = FIXED) -> Points:
    """xPyD pools: input tokens carry the prefill pool's hour, output tokens the decode pool's."""
    hw = d.scenario.hardware

    def identity(i: int) -> dict[str, Any]:
        x, y = int(st.prefill_workers.flat[i]), int(st.decode_workers.flat[i])
        return {"deployment": f"{pool_label(p, x, 'prefill')} + {pool_label(d, y, 'decode')}", "hardware": hw.key,
                "n_gpus": int(st.n_gpus.flat[i]),
                "layout": f"{x} prefill ({p.layout_label}) + {y} decode ({d.layout_label})",
                "xpyd": f"{x}P{y}D", "prefill_workers": x, "decode_workers": y, "prefill_gpus": int(st.prefill_gpus.flat[i]),
                "decode_gpus": int(st.decode_gpus.flat[i]), "prefill_layout": worker_label(p),
                "decode_layout": worker_label(d)}

    def own(i: int, fits: bool) -> dict[str, Any]:
        return {"mode": "disagg", "kv_link": str(st.kv_link.flat[i]), "limited_by": str(st.limited_by.flat[i]) if fits else None,
                **{k: value(getattr(st, k), i) for k in DISAGGREGATED}}

    power = tuple(st.prefill_workers * getattr(p.scenario, k) + st.decode_workers * getattr(d.scenario, k)
                  for k in ("board_power_w", "all_in_power_w"))
    return Points(st, d, identity, st.prefill_usd_per_hour, st.decode_usd_per_hour, power, own, prefix_hit, lengths, "disagg")


def priced_figures(pts: Points, price_split: float | None = None,
                   list_prices: ListPrices | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every point's USD/Mtok (in, out, blended) and the modes' figures (energy, prefix cache, margin) as
    arrays: what :func:`point_rows` writes into the rows, for a caller that ranks points before building any."""
    st = pts.times
    money = token_prices(pts.input_usd_per_hour, pts.output_usd_per_hour, st.input_tok_s, st.output_tok_s, price_split)
    extra = mode_figures(pts.decode, st, st.input_tok_s, st.output_tok_s, pts.power_w, pts.usd_per_hour, pts.prefix_hit,
                         list_prices)
    return money, extra


def point_rows(pts: Points, price_split: float | None = None, idx: list[int] | None = None,
               list_prices: ListPrices | None = None,
               priced: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None) -> list[dict[str, Any]]:
    """One row per point (all, or those in ``idx``) with the figures every serving row carries
    (``priced``: :func:`priced_figures` of the same arguments, when the caller has them)."""
    st, d, h = pts.times, pts.decode, pts.prefix_hit
    money, extra = priced or priced_figures(pts, price_split, list_prices)
    rows = []
    for i in range(st.concurrency.size) if idx is None else idx:
        fits = bool(st.fits.flat[i])
        row: dict[str, Any] = {**pts.identity(i), "concurrency": int(st.concurrency.flat[i]),
                               "input_tokens": int(st.input_tokens.flat[i]), "output_tokens": int(st.output_tokens.flat[i]),
                               "max_concurrency": int(st.max_running.flat[i]), "fits": fits}
        row.update(pts.own(i, fits))
        row.update({k: value(getattr(st, k), i) for k in COMMON})
        row["running"] = value(st.running, i)
        row["tok_s_per_gpu"] = row["output_tok_s_per_gpu"]  # the common threshold key (--min-tok-s-per-gpu)
        row.update(usd_per_hour=float(np.asarray(pts.usd_per_hour).flat[min(i, np.size(pts.usd_per_hour) - 1)]),
                   usd_per_gpu_hour=d.cost.usd_per_gpu_hour, cost_method=d.cost.method, price_split=price_split)
        row.update({k: value(v, i) if fits else None for k, v in money.items()})
        row.update(mode_keys(row, d, pts.lengths, h))
        row.update({k: value(v, i) if fits else None for k, v in extra.items()})
        rows.append(uncertainty.annotate(row, d.scenario, "decode" if pts.mode == "agg" else "disagg-tpot"))
    return rows


def mode_keys(row: dict[str, Any], d: Deployed, lengths: LengthMix, prefix_hit: float) -> dict[str, Any]:
    """The serving modes a row ran under: its length mix and mean lengths, speculation, prefix hits
    and the price of an input token that missed the cache."""
    lm = lengths.moments(row["input_tokens"], row["output_tokens"])
    inp = row.get("usd_per_mtok_input")
    return {"range_ratio": lengths.range_ratio, "mean_input_tokens": float(lm.input_mean),
            "mean_output_tokens": float(lm.output_mean), "prefix_hit": prefix_hit,
            "speculation": d.scenario.speculation.label if d.scenario.speculation else None,
            "usd_per_mtok_input_miss": inp / (1.0 - prefix_hit) if inp is not None else None}


def mode_figures(d: Deployed, st: Any, input_tok_s: Any, output_tok_s: Any, power_w: tuple[Any, Any], usd_per_hour: Any,
                 prefix_hit: float, list_prices: ListPrices | None) -> dict[str, np.ndarray]:
    """Per point at these token rates: tokens per decode step (speculation), the prefix-cache load and
    the storage one day of computed prompts fills (KV bytes per token x missed input tokens), the
    energy figures (every GPU at full board power) and, at list prices, the day's revenue, cost and
    margin there."""
    scn, h = d.scenario, prefix_hit
    inp, outp = np.asarray(input_tok_s, dtype=float), np.asarray(output_tok_s, dtype=float)
    shape = inp.shape
    usd_h = np.broadcast_to(np.asarray(usd_per_hour, dtype=float), shape)
    out = {
        "tokens_per_step": np.full(shape, np.asarray(st.tokens_per_step, dtype=float).flat[0]),  # the same at every point
        "kv_load_s": np.full(shape, np.asarray(st.kv_load_s, dtype=float).flat[0] if h > 0 else np.nan),
        "prefix_cache_tb_per_day": batching.prefix_cache_tb_per_day(scn, inp, h),
        **energy.energy_fields(power_w[0], d.costs.pue, d.costs.usd_per_kwh, inp + outp, outp, usd_h, power_w[1]),
    }
    if list_prices is not None:
        out |= daily_margin(list_prices, inp, outp, h, usd_h * 24.0)
    return out
