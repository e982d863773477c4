"""Small builders for tests: a scenario from catalog names without the CLI, and results as the CLI's
JSON shows them."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from tokecon.catalogs.catalog import Catalog
from tokecon.serving.deploy import GpuSpec, build_scenario
from tokecon.physics.scenario import Scenario


def scenario(catalog: Catalog, model: str, device: str, n: int = 1, **kwargs) -> Scenario:
    return build_scenario(catalog, model, GpuSpec(n, catalog.hardware.get(device)), **kwargs)


def with_hardware(scn: Scenario, **changes) -> Scenario:
    """The same scenario on a device with some fields changed (e.g. memory_bw_b_s)."""
    hw = replace(scn.hardware, **changes)
    return replace(scn, deployment=replace(scn.deployment, hardware=hw))


def validation_script(name: str) -> ModuleType:
    """A script of the repository's validation/ folder (not a package) imported as a module."""
    path = Path(__file__).resolve().parents[1] / "validation" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def json_rows(result: Any, explain: bool = False) -> list[dict[str, Any]]:
    """A :class:`tokecon.results.Result`'s rows as ``--format json`` prints them: JSON-cleaned, and
    without the per-operation ``breakdown`` unless ``explain`` (the CLI keeps it only with --explain)."""
    rows = json.loads(json.dumps(result.to_dict()["rows"]))
    return rows if explain else [{k: v for k, v in r.items() if k != "breakdown"} for r in rows]
