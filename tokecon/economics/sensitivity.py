"""``--vary NAME=v1,v2,...``: USD/Mtok of an analysis re-priced at each value of one cost input.

    USD/Mtok(x) = USD/Mtok(base) x USD/GPU-h(x) / USD/GPU-h(base)       (the tokens do not change)
    elasticity  = d ln USD/Mtok / d ln x                                  (% change in USD/Mtok per % change in x)

The physics does not depend on a price, so each row keeps its tokens per second and only the price
per GPU-hour (tokecon.economics.costs) is recomputed. The elasticity is the point elasticity at each value, by a
central difference in ln x (step 1e-4; one-sided at an option's bound, e.g. PUE 1). Under TCO it is, for the interest rate i,
capital share x i CRF'(i) / CRF(i); for the purchase price, the capital share; for utilisation, -1.

Worked number: h100-sxm TCO at 10 %, 5 years: capital 1.463 USD/h, energy 0.178 USD/h (capital share
0.891); CRF'(i) = g/(g-1) - i n (1+i)^(n-1)/(g-1)^2 with g = 1.1^5 = 1.6105: 2.6380 - 1.9641 = 0.6739, so
i CRF'/CRF = 0.1 x 0.6739 / 0.2638 = 0.2555 -> elasticity 0.891 x 0.2555 = 0.228: a 1 % higher interest
rate (10 % -> 10.1 %) makes every token 0.23 % dearer.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable

from tokecon.economics.costs import CostModel, cost_model, gpu_hour_cost
from tokecon.errors import TokeconError
from tokecon.results import Column, Result
from tokecon.physics.specs import Hardware

# --vary NAME -> (CostModel field, the method it belongs to: "tco", "rental" or None for both)
VARY: dict[str, tuple[str, str | None]] = {
    "interest-rate": ("interest_rate", "tco"),
    "depreciation-years": ("depreciation_years", "tco"),
    "other-capital-ratio": ("other_capital_ratio", "tco"),
    "purchase-usd": ("purchase_usd", "tco"),
    "usd-per-kwh": ("usd_per_kwh", "tco"),
    "pue": ("pue", "tco"),
    "usd-per-gpu-hour": ("usd_per_gpu_hour", "rental"),
    "utilisation": ("utilisation", None),
}
STEP = 1e-4

COLUMNS = [
    Column("deployment", "devices", "str"),
    Column("vary_value", "value", "num"),
    Column("usd_per_gpu_hour", "USD/GPU-h", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok", "usd"),
    Column("usd_per_mtok_rel_change", "vs base [%]", "signed_pct"),
    Column("elasticity", "elasticity", "num"),
]


def parse_vary(text: str) -> tuple[str, list[float]]:
    """``"interest-rate=0.02,0.05"`` -> ("interest-rate", [0.02, 0.05])."""
    name, sep, values = text.partition("=")
    name = name.strip().lower().replace("_", "-").replace("utilization", "utilisation")
    if not sep or name not in VARY:
        raise TokeconError(f"--vary expects NAME=v1,v2,... with NAME one of {', '.join(VARY)}; got {text!r}")
    try:
        out = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise TokeconError(f"--vary {name}: values must be numbers separated by commas, got {values!r}") from None
    if not out:
        raise TokeconError(f"--vary {name}: give at least one value, e.g. {name}=0.05,0.10")
    return name, out


def _model_at(base: CostModel, name: str, value: float) -> CostModel:
    key = VARY[name][0]
    return replace(base, **{key: getattr(cost_model({key: value}), key)})  # checked against the option's limits


def _gpu_hour(hw: Hardware, base: CostModel, name: str, value: float) -> float:
    return gpu_hour_cost(hw, _model_at(base, name, value)).usd_per_gpu_hour


def elasticity(hw: Hardware, base: CostModel, name: str, value: float) -> float | None:
    """d ln (USD/GPU-h) / d ln x at ``value`` (None at 0, where a relative change has no meaning); a
    one-sided step where ``value`` sits on a bound of its option (utilisation 1, PUE 1)."""
    if value <= 0:
        return None
    steps = ((1 - STEP, 1 + STEP), (1.0, 1 + 2 * STEP), (1 - 2 * STEP, 1.0))
    for lo, hi in ((value * a, value * b) for a, b in steps):
        try:
            up, down = _gpu_hour(hw, base, name, hi), _gpu_hour(hw, base, name, lo)
        except TokeconError:
            continue  # a step past the option's limits
        return (math.log(up) - math.log(down)) / (math.log(hi) - math.log(lo))
    return None


def _scales(key: str) -> bool:
    """Money keys of a row that scale with the price per GPU-hour."""
    return key.startswith("usd_per_mtok") or key in ("usd_per_hour", "usd_per_day")


def _base_rows(result: Result) -> list[dict[str, Any]]:
    """The rows a sensitivity table starts from: each device's answer (frontier's ``device_best``, or the
    highlighted rows), else its cheapest row."""
    priced = [r for r in result.rows if r.get("usd_per_mtok") is not None and r.get("hardware")]
    picked = [r for r in priced if r.get("device_best")] or [result.rows[i] for i in sorted(result.highlight)
                                                              if any(result.rows[i] is r for r in priced)]
    def device(row: dict[str, Any]) -> Any:
        return row.get("device", row.get("deployment"))

    seen = {device(r) for r in picked}
    for row in sorted(priced, key=lambda r: r["usd_per_mtok"]):
        if device(row) not in seen:
            seen.add(device(row))
            picked.append(row)
    return picked


def vary(result: Result, text: str, base: CostModel, hardware: Callable[[str], Hardware]) -> Result:
    """The sensitivity of ``result``'s USD/Mtok to one cost input (``--vary`` text), one row per device
    and value; ``hardware`` looks a row's device key up."""
    name, values = parse_vary(text)
    key, method = VARY[name]
    if method is not None and method != base.method:
        fix = "add --cost tco (serve, frontier, capacity)" if method == "tco" else "drop --cost tco"
        raise TokeconError(f"--vary {name} changes the {method} price, but this run prices by {base.method}: {fix}")
    rows: list[dict[str, Any]] = []
    for row in _base_rows(result):
        hw = hardware(row["hardware"])
        base_gpu_h = gpu_hour_cost(hw, base).usd_per_gpu_hour
        for value in values:
            gpu_h = _gpu_hour(hw, base, name, value)
            ratio = gpu_h / base_gpu_h
            new = {k: v * ratio for k, v in row.items() if _scales(k) and isinstance(v, float)}
            rows.append({
                "deployment": row.get("deployment"), "hardware": row["hardware"], "n_gpus": row.get("n_gpus"),
                "vary": name, "vary_value": value, "usd_per_gpu_hour": gpu_h, **new,
                "base_usd_per_mtok": row["usd_per_mtok"], "usd_per_mtok_rel_change": ratio - 1.0,
                "elasticity": elasticity(hw, base, name, value),
            })  # fmt: skip
    if not rows:
        raise TokeconError(f"--vary {name}: no row of this {result.command} has a price to vary")
    current = getattr(base, key)
    notes = [
        f"Sensitivity of USD/Mtok to {name} (base: {current if current is not None else 'the catalog price'}; "
        f"{base.method} pricing): each device's {'answer' if result.highlight else 'cheapest row'} re-priced at every "
        "value; its tokens per second do not change with a price. elasticity = % change in USD/Mtok per % change in "
        f"{name} at that value (d ln USD/Mtok / d ln x); vs base = the change from the run without --vary.",
    ]
    return Result(f"{result.command}: sensitivity to {name}", {**result.inputs, "vary": {"name": name, "values": values}},
                  rows, COLUMNS, group_key=None, notes=notes, sources=result.sources)
