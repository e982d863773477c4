"""Small builders for tests: a scenario from catalog names without the CLI."""

from __future__ import annotations

from dataclasses import replace

from tokecon.catalogs.catalog import Catalog
from tokecon.serving.deploy import GpuSpec, build_scenario
from tokecon.physics.scenario import Scenario


def scenario(catalog: Catalog, model: str, device: str, n: int = 1, **kwargs) -> Scenario:
    return build_scenario(catalog, model, GpuSpec(n, catalog.hardware.get(device)), **kwargs)


def with_hardware(scn: Scenario, **changes) -> Scenario:
    """The same scenario on a device with some fields changed (e.g. memory_bw_b_s)."""
    hw = replace(scn.hardware, **changes)
    return replace(scn, deployment=replace(scn.deployment, hardware=hw))
