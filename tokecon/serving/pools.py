"""Disaggregated prefill and decode pools as a user gives them (``--prefill-gpus 4xH200
--decode-gpus 8xH200 --decode-layout dep8``): each pool's worker, layout and count, deployed; the
serving model of a pair of pools is :mod:`tokecon.serving.disagg`."""

from __future__ import annotations

import re

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.errors import TokeconError
from tokecon.serving import batching, disagg
from tokecon.serving.deploy import Deployed, deploy
from tokecon.serving.resolve import parse_gpus
from tokecon.serving.layouts import Layout
from tokecon.serving.request import DisaggSpec, PoolSpec, ServingRequest

_LAYOUT = re.compile(r"^\s*(tp|dep)(\d+)\s*$", re.I)


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


def _deploy_pool(catalog: Catalog, opts: ServingRequest, pool: PoolSpec, context: float, flag: str) -> Deployed:
    spec = parse_gpus(pool.gpus, catalog)
    model = catalog.models.get(opts.common.model)
    layout = parse_layout(pool.layout, spec.count, model.is_moe, flag) if pool.layout is not None else None
    d = deploy(catalog, opts, spec, context, layout)
    if not batching.max_running(d.scenario, context, 1.0) >= 1:
        raise TokeconError(f"{model.key} does not fit one {flag[2:].split('-')[0]} worker of {spec.label} "
                           f"({d.layout.label(spec.count)}) at {int(context)} tokens: give it more GPUs")
    return d


def deploy_pools(catalog: Catalog, opts: ServingRequest, spec: DisaggSpec, input_len: int, output_len: int
                 ) -> tuple[Deployed, Deployed, int, int]:
    """The two pools and their worker counts; missing counts balance the pools at the decode pool's
    largest batch (:func:`tokecon.serving.disagg.balance`)."""
    spec.validate()
    p = _deploy_pool(catalog, opts, spec.prefill, input_len, "--prefill-layout")
    d = _deploy_pool(catalog, opts, spec.decode, input_len + output_len, "--decode-layout")
    x, y = spec.prefill.workers, spec.decode.workers
    if x is None or y is None:
        top = max(float(batching.max_running(d.scenario, input_len, output_len)), 1.0)
        rp, rd = (float(v) for v in disagg.worker_rates(p.scenario, d.scenario, top, input_len, output_len, spec.prefill_batch, opts.modes.prefix_hit))
        if x is None and y is None:
            x, y = (int(v) for v in disagg.balance(np.asarray(rp), np.asarray(rd), 1, 1, None))
        elif x is None:
            x = max(1, round(y * rd / rp))  # x R_p1 = y R_d1
        else:
            y = max(1, round(x * rp / rd))
    return p, d, x, y
