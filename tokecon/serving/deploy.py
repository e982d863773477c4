"""A model deployed on devices in a layout at a price (:class:`Deployed`): the layout the flags ask
for, else the one engines use by default, and SRAM machines sized by the chips that hold the model."""

from __future__ import annotations

from dataclasses import field, replace
from typing import Any

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.economics.costs import CostBreakdown, CostModel, gpu_hour_cost
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.physics import memory
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.serving import speculative, sram
from tokecon.serving.layouts import Layout, divisors
from tokecon.serving.request import ServingRequest
from tokecon.serving.resolve import GpuSpec, build_scenario


@record
class Deployed:
    """One device configuration ready to serve: its scenario, layout and hourly price."""

    scenario: Scenario
    layout: Layout
    cost: CostBreakdown
    costs: CostModel = field(default_factory=CostModel)  # the options it was priced under (PUE, USD/kWh for energy)

    @property
    def label(self) -> str:
        dep = self.scenario.deployment
        return f"{dep.n_gpus}x {self.scenario.hardware.name}, {self.layout_label}"

    @property
    def layout_label(self) -> str:
        """The layout in words, with the speculation it decodes with (``TP8 + MTP``)."""
        spec = self.scenario.speculation
        return self.layout.label(self.scenario.deployment.n_gpus) + (f" + {spec.method.upper()}" if spec is not None else "")


def _scenario(catalog: Catalog, opts: ServingRequest, spec: GpuSpec, layout: Layout, cost: CostBreakdown) -> Scenario:
    c, m = opts.common, opts.modes
    scn = build_scenario(
        catalog, c.model, spec, tp=layout.tp, dtype=c.dtype, kv_dtype=c.kv_dtype, engine=c.engine, ideal=c.ideal,
        usd_per_gpu_hour=cost.usd_per_gpu_hour, ep=layout.ep, attention_dp=layout.attention_dp, pp=layout.pp,
    )  # fmt: skip
    if opts.sync_scheduling:
        scn = replace(scn, engine=replace(scn.engine, schedules_ahead=False))
    spec_ = speculative.resolve(catalog, scn.model, m.speculative, m.draft_tokens, m.acceptance)
    if spec_ is not None and scn.engine.speculative and spec_.method not in scn.engine.speculative:
        raise TokeconError(f"{scn.engine.name} does not serve {spec_.method} speculation (it serves: "
                           f"{', '.join(scn.engine.speculative)}); choose another --speculative or --engine")
    return replace(scn, speculation=spec_) if spec_ is not None else scn


def fits(scn: Scenario, context: float) -> bool:
    return bool(memory.max_batch(scn, np.asarray([float(context)]))[0] >= 1)


def default_layout(catalog: Catalog, opts: ServingRequest, spec: GpuSpec, cost: CostBreakdown, context: float) -> Layout:
    """The layout engines use by default: DeepSeek-style attention-DP + EP over all GPUs for MLA
    mixture-of-experts models; otherwise the widest TP inside one scale-up domain (the rest replicas),
    or, when that does not hold the model, the smallest TP that does."""
    model = catalog.models.get(opts.common.model)
    n, hw = spec.count, spec.hardware
    if model.is_moe and model.is_mla and n > 1:
        dep = Layout(1, n, True)
        if fits(_scenario(catalog, opts, spec, dep, cost), context):
            return dep
    if sram.is_sram(hw):  # weights on chip: the pipeline that serves one user fastest
        lay = sram.fastest_layout(_scenario(catalog, opts, spec, Layout(1), cost), n, context)
        if lay is not None:
            return lay
    tps = [t for t in divisors(n) if model.heads % t == 0]
    inside = [t for t in tps if t <= hw.scaleup_domain] or tps[:1]
    first = Layout(max(inside))
    if fits(_scenario(catalog, opts, spec, first, cost), context):
        return first
    for t in tps:
        if t > first.tp and fits(_scenario(catalog, opts, spec, Layout(t), cost), context):
            return Layout(t)
    return first  # does not fit: require_fit says so, with the smallest device count


def sized(catalog: Catalog, opts: ServingRequest, spec: GpuSpec, context: float) -> GpuSpec:
    """A bare SRAM device name (``-g groq``) means as many chips as hold the model (tokecon.serving.sram)."""
    if spec.count_given or not sram.is_sram(spec.hardware):
        return spec
    scn = _scenario(catalog, opts, spec, Layout(1), gpu_hour_cost(spec.hardware, opts.cost))
    n = sram.chips_to_hold(scn, context)
    if n is None:
        raise DoesNotFitError(f"{scn.model.key} does not fit in {spec.hardware.key} SRAM: {sram.NONE_HOLDS}")
    return GpuSpec(n, spec.hardware)


def deploy(catalog: Catalog, opts: ServingRequest, spec: GpuSpec, context: float, layout: Layout | None = None) -> Deployed:
    cost = gpu_hour_cost(spec.hardware, opts.cost)
    model = catalog.models.get(opts.common.model)
    layout = layout or opts.layout(spec.count, model) or default_layout(catalog, opts, spec, cost, context)
    return Deployed(_scenario(catalog, opts, spec, layout, cost), layout, cost, opts.cost)


def deployment_fields(d: Deployed) -> dict[str, Any]:
    dep = d.scenario.deployment
    return {
        "deployment": d.label,
        "hardware": d.scenario.hardware.key,
        "n_gpus": dep.n_gpus,
        "tp": dep.tp,
        "pp": dep.pp,
        "ep": dep.ep,
        "attention_dp": dep.attention_dp,
        "layout": d.layout_label,
        "replicas": dep.replicas,
    }
