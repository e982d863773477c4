"""Layout search: every layout a device configuration can serve a model in, each at a geometric grid
of concurrencies (aggregated), and the disaggregated pool pairs within its GPUs; what ``frontier``,
``compare``, ``capacity`` and ``fleet`` sweep."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.economics.costs import gpu_hour_cost
from tokecon.errors import TokeconError
from tokecon.serving import batching, disagg, layouts, sram
from tokecon.serving.deploy import Deployed, deploy
from tokecon.serving.resolve import GpuSpec
from tokecon.serving.request import ServingRequest


def sweep(opts: ServingRequest, catalog: Catalog, spec: GpuSpec, input_len: int, output_len: int) -> list[tuple[Deployed, batching.ServingTimes]]:
    """Every fitting layout of one device configuration, each at its concurrency grid."""
    model = catalog.models.get(opts.common.model)
    context = input_len + output_len
    asked = opts.layout(spec.count, model)
    candidates = sram.pipeline_layouts if sram.is_sram(spec.hardware) else layouts.candidate_layouts
    tried = [asked] if asked else candidates(model, spec.count)
    if not tried:
        raise TokeconError(f"no layout of {spec.label} serves {model.key}: tensor parallelism must divide its {model.heads} "
                           f"heads" + (f" and a pipeline has at most {model.layers} stages" if sram.is_sram(spec.hardware) else "")
                           + "; try another count" + (f" (-g {spec.hardware.key} sizes one)" if sram.is_sram(spec.hardware) else ""))
    gpu_hour_cost(spec.hardware, opts.cost)  # a missing price is the user's to fix, not a layout that does not fit
    out, refused = [], []
    for layout, d in _deployed(catalog, opts, spec, context, tried, refused):
        scn = d.scenario
        per_unit = int(batching.max_running(scn, input_len, output_len, opts.modes.length_mix))
        if per_unit < 1:
            continue
        conc = batching.batch_grid(per_unit, 3) * scn.deployment.replicas
        out.append((d, batching.serve(scn, conc, input_len, output_len, opts.chunked_prefill, **opts.serve_modes())))
    if refused and len(refused) == len(tried):  # not one layout deployed: the options are wrong (an unknown engine, ...)
        raise refused[0]
    return out


def _deployed(catalog: Catalog, opts: ServingRequest, spec: GpuSpec, context: float, tried: list, refused: list):
    """Each layout deployed (the ones the model cannot take into ``refused``) and, where the model ships an MTP
    module and the engine serves it (engines.toml ``speculative``) and no --speculative was given, the same layout
    speculating with it too: InferenceMAX sweeps DeepSeek with and without MTP."""
    model = catalog.models.get(opts.common.model)
    mtp = replace(opts, modes=replace(opts.modes, speculative="mtp")) if model.mtp_modules and opts.modes.speculative is None else None
    for layout in tried:
        try:
            d = deploy(catalog, opts, spec, context, layout)
        except TokeconError as exc:
            refused.append(exc)  # a layout the model cannot take (heads not divisible, ...)
            continue
        yield layout, d
        if mtp is not None and "mtp" in d.scenario.engine.speculative and layout.pp == 1:
            yield layout, deploy(catalog, mtp, spec, context, layout)


def pool_pairs(catalog: Catalog, opts: ServingRequest, spec: GpuSpec, input_len: int, output_len: int,
           points_per_doubling: int = 3) -> list[tuple[Deployed, Deployed, disagg.DisaggTimes]]:
    """Disaggregated layouts within ``spec``'s GPUs: worker sizes dividing them, each one TP group or one
    attention-DP / EP group,
    the prefill layouts pruned to those no other beats on both prompts/s per GPU and prefill time, and
    per decode batch the xPyD (x g_p + y g_d <= GPUs) that serves most requests/s per GPU."""
    model = catalog.models.get(opts.common.model)
    n = spec.count
    sizes = [g for g in layouts.divisors(n) if g < n]
    prefills, decodes, tried, refused = [], [], 0, []
    for g in sizes:
        sub = GpuSpec(g, spec.hardware)
        workers = [lay for lay in layouts.candidate_layouts(model, g) if (lay.ep if lay.attention_dp else lay.tp * lay.pp) == g]
        tried += len(workers)  # a worker of replicas is that many smaller workers, which x and y already count
        for _, dp in _deployed(catalog, opts, sub, input_len, workers, refused):
            if dp.scenario.speculation is None and batching.max_running(dp.scenario, input_len, 1.0) >= 1:
                prefills.append(dp)  # a prefill worker does not speculate
            top = int(batching.max_running(dp.scenario, input_len, output_len))
            if top >= 1:
                decodes.append((dp, top))
    if tried and len(refused) == tried:  # not one worker deployed: the options are wrong (an unknown engine, ...)
        raise refused[0]
    if not prefills or not decodes:
        return []
    inp = float(input_len)
    rate = np.array([float(disagg.prefill_rate(dp.scenario, inp, prefix_hit=opts.modes.prefix_hit)) / dp.scenario.deployment.n_gpus for dp in prefills])
    t_p = np.array([float(disagg.prefill_time_s(dp.scenario, inp, prefix_hit=opts.modes.prefix_hit)) for dp in prefills])
    keep = batching.pareto_mask(rate, 1.0 / t_p)
    prefills = [dp for dp, k in zip(prefills, keep) if k]
    out = []
    for dd, top in decodes:
        r = batching.batch_grid(top, points_per_doubling)
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
            out.append((dp, dd, disagg.serve(dp.scenario, dd.scenario, x, y, conc, inp, float(output_len),
                                                    prefix_hit=opts.modes.prefix_hit, lengths=opts.modes.length_mix)))
    return out
