"""Disaggregated prefill / decode for ``serve``, ``frontier`` and ``capacity``: the pools a user asks
for, the pools a search tries, and one row per operating point (the model: :mod:`tokecon.serving.disagg`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.economics import energy
from tokecon.serving import batching as serving
from tokecon.fidelity import uncertainty
from tokecon.catalogs.catalog import Catalog
from tokecon.commands.serve import Deployed, ModeOptions, ServeOptions, deploy
from tokecon.errors import TokeconError
from tokecon.serving import disagg
from tokecon.serving.deploy import GpuSpec, parse_gpus, positive_ints
from tokecon.serving.batching import Layout

MAX_WORKERS = 100_000  # workers of one pool: past the largest fleets (tens of thousands of GPUs)
_LAYOUT = re.compile(r"^\s*(tp|dep)(\d+)\s*$", re.I)


@dataclass(frozen=True)
class PoolSpec:
    """One pool as the command line gives it: GPUs of a worker, workers (None: balanced), layout
    (``tpN``: TP groups of N, the rest replicas; ``depN``: attention-DP with experts over N GPUs;
    None: the default layout of that many GPUs)."""

    gpus: str
    workers: int | None = None
    layout: str | None = None


@dataclass(frozen=True)
class DisaggSpec:
    prefill: PoolSpec
    decode: PoolSpec
    prefill_batch: int | None = None

    @classmethod
    def given(cls, prefill_gpus: str | None = None, prefill_workers: int | None = None, prefill_layout: str | None = None,
              prefill_batch: int | None = None, decode_gpus: str | None = None, decode_workers: int | None = None,
              decode_layout: str | None = None) -> DisaggSpec | None:
        """The layout the ``--prefill-*``/``--decode-*`` options give, or None when neither pool is named."""
        if prefill_gpus is None and decode_gpus is None:
            if any(v is not None for v in (prefill_workers, decode_workers, prefill_layout, decode_layout, prefill_batch)):
                raise TokeconError("the --prefill-*/--decode-* options need --prefill-gpus and --decode-gpus")
            return None
        if prefill_gpus is None or decode_gpus is None:
            raise TokeconError("disaggregated serving needs both --prefill-gpus and --decode-gpus")
        return cls(PoolSpec(prefill_gpus, prefill_workers, prefill_layout), PoolSpec(decode_gpus, decode_workers, decode_layout),
                   prefill_batch)

    def validate(self) -> None:
        for pool, name in ((self.prefill, "--prefill-workers"), (self.decode, "--decode-workers")):
            if pool.workers is not None:
                if isinstance(pool.workers, int) and pool.workers > MAX_WORKERS:
                    raise TokeconError(f"{name} {pool.workers:,} is more workers than any deployment runs (at most {MAX_WORKERS:,})")
                positive_ints([pool.workers], name)
        if self.prefill_batch is not None:
            positive_ints([self.prefill_batch], "--prefill-batch")


def parse_layout(text: str, n_gpus: int, is_moe: bool, flag: str) -> Layout:
    """``tp4`` -> Layout(4); ``dep8`` -> attention-DP with EP 8 (MoE models)."""
    m = _LAYOUT.match(text)
    if not m:
        raise TokeconError(f"{flag} takes tpN (tensor parallel groups of N) or depN (attention data-parallel, experts over N GPUs), got '{text}'")
    kind, size = m.group(1).lower(), int(m.group(2))
    if size < 1 or n_gpus % size:
        raise TokeconError(f"{flag} {text}: {size} must divide the worker's {n_gpus} GPUs")
    if kind == "dep":
        if not is_moe:
            raise TokeconError(f"{flag} {text}: depN (expert parallel) applies to mixture-of-experts models; use tpN")
        return Layout(1, size, True)
    return Layout(size)


def pool_label(d: Deployed, workers: float) -> str:
    dep = d.scenario.deployment
    return f"{int(workers)}x {dep.n_gpus}x{d.scenario.hardware.key} {d.layout.label(dep.n_gpus)}"


def _deploy_pool(catalog: Catalog, opts: ServeOptions, pool: PoolSpec, context: float, flag: str) -> Deployed:
    spec = parse_gpus(pool.gpus, catalog)
    model = catalog.models.get(opts.common.model)
    layout = parse_layout(pool.layout, spec.count, model.is_moe, flag) if pool.layout is not None else None
    d = deploy(catalog, opts, spec, context, layout)
    if not serving.max_running(d.scenario, context, 1.0) >= 1:
        raise TokeconError(f"{model.key} does not fit one {flag[2:].split('-')[0]} worker of {spec.label} "
                           f"({d.layout.label(spec.count)}) at {int(context)} tokens: give it more GPUs")
    return d


def deploy_pools(catalog: Catalog, opts: ServeOptions, spec: DisaggSpec, input_len: int, output_len: int
                 ) -> tuple[Deployed, Deployed, int, int]:
    """The two pools and their worker counts; missing counts balance the pools at the decode pool's
    largest batch (:func:`tokecon.serving.disagg.balance`)."""
    spec.validate()
    p = _deploy_pool(catalog, opts, spec.prefill, input_len, "--prefill-layout")
    d = _deploy_pool(catalog, opts, spec.decode, input_len + output_len, "--decode-layout")
    x, y = spec.prefill.workers, spec.decode.workers
    if x is None or y is None:
        top = max(float(serving.max_running(d.scenario, input_len, output_len)), 1.0)
        rp, rd = (float(v) for v in disagg.worker_rates(p.scenario, d.scenario, top, input_len, output_len, spec.prefill_batch, opts.modes.prefix_hit))
        if x is None and y is None:
            x, y = (int(v) for v in disagg.balance(np.asarray(rp), np.asarray(rd), 1, 1, None))
        elif x is None:
            x = max(1, round(y * rd / rp))  # x R_p1 = y R_d1
        else:
            y = max(1, round(x * rp / rd))
    return p, d, x, y


def rows(p: Deployed, d: Deployed, st: disagg.DisaggTimes, idx: list[int] | None = None,
         modes: ModeOptions | None = None) -> list[dict[str, Any]]:
    """One row per operating point, priced per pool: input tokens by the prefill pool's GPU time,
    output tokens by the decode pool's."""
    usd_h = st.prefill_usd_per_hour + st.decode_usd_per_hour
    money = {
        "usd_per_mtok_input": economics.usd_per_mtok(st.prefill_usd_per_hour, st.input_tok_s),
        "usd_per_mtok_output": economics.usd_per_mtok(st.decode_usd_per_hour, st.output_tok_s),
        "usd_per_mtok": economics.usd_per_mtok(usd_h, st.total_tok_s),
    }
    hw = d.scenario.hardware
    out = []
    for i in range(st.concurrency.size) if idx is None else idx:
        def f(a: np.ndarray) -> float | None:
            v = float(np.asarray(a).flat[i])
            return v if np.isfinite(v) else None

        x, y = int(st.prefill_workers.flat[i]), int(st.decode_workers.flat[i])
        fits = bool(st.fits.flat[i])
        row: dict[str, Any] = {
            "mode": "disagg",
            "deployment": f"{x}P{y}D: {pool_label(p, x)} + {pool_label(d, y)}",
            "hardware": hw.key,
            "n_gpus": int(st.n_gpus.flat[i]),
            "layout": f"{x}P{y}D {p.layout.label(p.scenario.deployment.n_gpus)} / {d.layout.label(d.scenario.deployment.n_gpus)}",
            "xpyd": f"{x}P{y}D",
            "prefill_workers": x,
            "decode_workers": y,
            "prefill_gpus": int(st.prefill_gpus.flat[i]),
            "decode_gpus": int(st.decode_gpus.flat[i]),
            "prefill_layout": pool_label(p, 1).split(" ", 1)[1],
            "decode_layout": pool_label(d, 1).split(" ", 1)[1],
            "concurrency": int(st.concurrency.flat[i]),
            "input_tokens": int(st.input_tokens.flat[i]),
            "output_tokens": int(st.output_tokens.flat[i]),
            "max_concurrency": int(st.max_running.flat[i]),
            "fits": fits,
        }
        for key in ("running", "prefill_batch", "ttft_s", "tpot_s", "e2e_latency_s", "queue_wait_s", "tok_s_per_user",
                    "requests_s", "input_tok_s", "output_tok_s", "output_tok_s_per_gpu", "total_tok_s", "total_tok_s_per_gpu",
                    "prefill_s", "kv_transfer_s", "kv_transfer_total_s", "kv_bytes_per_request",
                    "prefill_capacity_requests_s", "decode_capacity_requests_s"):  # fmt: skip
            row[key] = f(getattr(st, key))
        row["kv_link"] = str(st.kv_link.flat[i])
        row["limited_by"] = str(st.limited_by.flat[i]) if fits else None
        row["tok_s_per_gpu"] = row["output_tok_s_per_gpu"]
        row["usd_per_hour"] = float(usd_h.flat[i])
        row["usd_per_gpu_hour"] = d.cost.usd_per_gpu_hour
        row["cost_method"] = d.cost.method
        for key, values in money.items():
            row[key] = f(values) if fits else None
        row |= _mode_fields(row, st, i, p, d, modes or ModeOptions())
        out.append(uncertainty.annotate(row, d.scenario, "decode"))
    return out


def _mode_fields(row: dict[str, Any], st: disagg.DisaggTimes, i: int, p: Deployed, d: Deployed,
                 modes: ModeOptions) -> dict[str, Any]:
    """A row's speculation, prefix-cache (storage of one day's computed prompts: KV bytes per token x
    missed input tokens), energy (every GPU of each pool at its board power) and, at list prices,
    revenue figures, as aggregated rows carry them."""
    spec, h = d.scenario.speculation, modes.prefix_hit
    load = float(st.kv_load_s.flat[i])
    out: dict[str, Any] = {"tokens_per_step": float(st.tokens_per_step.flat[i]), "speculation": spec.label if spec else None,
                           "prefix_hit": h, "kv_load_s": load if h > 0 and math.isfinite(load) else None,
                           "range_ratio": 1.0, "mean_input_tokens": float(row["input_tokens"]),
                           "mean_output_tokens": float(row["output_tokens"]), "prefix_cache_tb_per_day": None,
                           "usd_per_mtok_input_miss": None}
    if not row["fits"] or row["total_tok_s"] is None:
        return out
    if h > 0:
        out["prefix_cache_tb_per_day"] = float(serving.prefix_cache_tb_per_day(p.scenario, row["input_tok_s"], h))
    if row["usd_per_mtok_input"] is not None:
        out["usd_per_mtok_input_miss"] = row["usd_per_mtok_input"] / (1.0 - h)
    board_w = row["prefill_workers"] * p.scenario.board_power_w + row["decode_workers"] * d.scenario.board_power_w
    power = energy.energy_fields(board_w, d.costs.pue, d.costs.usd_per_kwh, row["total_tok_s"], row["output_tok_s"], row["usd_per_hour"])
    out |= {k: float(v) for k, v in power.items()}
    if modes.prices is not None:
        daily = economics.daily_margin(modes.prices, row["input_tok_s"], row["output_tok_s"], h, row["usd_per_hour"] * 24.0)
        out |= {k: float(v) for k, v in daily.items()}
    return out


def serve_rows(catalog: Catalog, opts: ServeOptions, spec: DisaggSpec, concurrency: list[int | str] | None,
               input_len: int, output_len: int) -> tuple[list[dict[str, Any]], list[str], list[Deployed]]:
    """``serve`` on a given disaggregated layout: rows at each concurrency and notes."""
    if opts.common.gpus:
        raise TokeconError("give --gpus (aggregated) or --prefill-gpus and --decode-gpus (disaggregated), not both")
    p, d, x, y = deploy_pools(catalog, opts, spec, input_len, output_len)
    top = int(serving.max_running(d.scenario, input_len, output_len)) * d.scenario.deployment.replicas * y
    if not concurrency:
        chosen = [1 << i for i in range(31) if (1 << i) <= top] + [top]
    else:
        chosen = [top if c == "max" else int(c) for c in concurrency]
    st = disagg.serve(p.scenario, d.scenario, x, y, np.asarray(sorted(set(chosen)) if not concurrency else chosen, dtype=float),
                      input_len, output_len, spec.prefill_batch, opts.modes.prefix_hit)
    out = rows(p, d, st, modes=opts.modes)
    balanced = "given" if spec.prefill.workers and spec.decode.workers else "balanced at the decode pool's largest batch"
    notes = [
        f"Disaggregated {x}P{y}D ({balanced}): prefill {pool_label(p, x)}, decode {pool_label(d, y)}; "
        f"{int(st.n_gpus.flat[0])} GPUs in all, every one counted per GPU.",
        f"KV hand-off: {float(st.kv_bytes_per_request.flat[0]) / 1e6:,.1f} MB per request over the {st.kv_link.flat[0]} link, "
        "sent layer by layer while the prefill runs (Dynamo NIXL, Mooncake): only what the layers cannot hide adds to TTFT.",
        "TTFT = queue wait + prefill + exposed KV transfer + the decode worker's first step; TPOT = a pure decode step at "
        "the running batch; USD/Mtok in = prefill pool's cost over input tokens, out = decode pool's over output tokens.",
    ]
    return out, notes, [p, d]


def search(catalog: Catalog, opts: ServeOptions, spec: GpuSpec, input_len: int, output_len: int,
           points_per_doubling: int = 3) -> list[tuple[Deployed, Deployed, disagg.DisaggTimes]]:
    """Disaggregated layouts within ``spec``'s GPUs: worker sizes dividing them, each one TP group or one
    attention-DP / EP group,
    the prefill layouts pruned to those no other beats on both prompts/s per GPU and prefill time, and
    per decode batch the xPyD (x g_p + y g_d <= GPUs) that serves most requests/s per GPU."""
    model = catalog.models.get(opts.common.model)
    n = spec.count
    sizes = [g for g in serving.divisors(n) if g < n]
    prefills, decodes, tried, refused = [], [], 0, []
    for g in sizes:
        sub = GpuSpec(g, spec.hardware)
        for layout in serving.candidate_layouts(model, g):
            if (layout.ep if layout.attention_dp else layout.tp * layout.pp) != g:
                continue  # a worker of replicas is that many smaller workers, which x and y already count
            tried += 1
            try:
                dp = deploy(catalog, opts, sub, input_len, layout)
            except TokeconError as exc:
                refused.append(exc)  # a layout the model cannot take
                continue
            if serving.max_running(dp.scenario, input_len, 1.0) >= 1:
                prefills.append(dp)
            top = int(serving.max_running(dp.scenario, input_len, output_len))
            if top >= 1:
                decodes.append((dp, top))
    if tried and len(refused) == tried:  # not one worker deployed: the options are wrong (an unknown engine, ...)
        raise refused[0]
    if not prefills or not decodes:
        return []
    inp = float(input_len)
    rate = np.array([float(disagg.prefill_rate(dp.scenario, inp, prefix_hit=opts.modes.prefix_hit)) / dp.scenario.deployment.n_gpus for dp in prefills])
    t_p = np.array([float(disagg.prefill_time_s(dp.scenario, inp, prefix_hit=opts.modes.prefix_hit)) for dp in prefills])
    keep = serving.pareto_mask(rate, 1.0 / t_p)
    prefills = [dp for dp, k in zip(prefills, keep) if k]
    out = []
    for dd, top in decodes:
        r = serving.batch_grid(top, points_per_doubling)
        for dp in prefills:
            g_p, g_d = dp.scenario.deployment.n_gpus, dd.scenario.deployment.n_gpus
            if g_p + g_d > n:
                continue
            rp, rd = disagg.worker_rates(dp.scenario, dd.scenario, r, inp, float(output_len), prefix_hit=opts.modes.prefix_hit)
            x, y = disagg.balance(rp, rd, g_p, g_d, n)
            ok = np.isfinite(x)
            if not ok.any():
                continue
            x, y, r_ok = x[ok], y[ok], r[ok]
            conc = np.round(y * dd.scenario.deployment.replicas * r_ok)
            out.append((dp, dd, disagg.serve(dp.scenario, dd.scenario, x, y, conc, inp, float(output_len), prefix_hit=opts.modes.prefix_hit)))
    return out
