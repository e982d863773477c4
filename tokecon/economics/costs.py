"""What one GPU-hour costs: a rental price, or a total cost of ownership (TCO).

    CRF(i, n)          = i (1 + i)^n / ((1 + i)^n - 1)          capital recovery factor (1/n at i = 0)
    capital  USD/h     = purchase x (1 + other_capital_ratio) x CRF / 8760 h
    energy   USD/h     = power_W / 1000 x PUE x USD/kWh
    TCO      USD/GPU-h = (capital + energy) / utilisation
    rental   USD/GPU-h = catalog price (or --usd-per-gpu-hour) / utilisation

Assumes: the other capital of a data centre (building, power and cooling plant, network) is spent
in proportion to the accelerators; the default ratio 1.0 follows the premise that about half of
data-centre capital is the hardware itself. Every default below is an assumption to be overridden,
not a measurement.

Worked number: h100-sxm (purchase 30,000 USD, 700 W), other capital 1.0x, 5 years at 10 %,
PUE 1.3, 0.10 USD/kWh: CRF = 0.1 x 1.1^5 / (1.1^5 - 1) = 0.2638, capital 60,000 x 0.2638 / 8760
= 1.807 USD/h, energy 0.7 kW x 1.3 x 0.10 = 0.091 USD/h, TCO 1.898 USD/GPU-h.

Every option can be kept in a ``[cost]`` table of a TOML file (``--cost-file``); flags override it.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tokecon.errors import TokeconError
from tokecon.physics.specs import Hardware

HOURS_PER_YEAR = 8760.0
METHODS = ("rental", "tco")


@dataclass(frozen=True)
class CostModel:
    """How an hourly price per GPU is obtained. ``purchase_usd`` may map device keys to prices."""

    method: str = "rental"
    usd_per_gpu_hour: float | None = None  # rental override
    purchase_usd: float | dict[str, float] | None = None  # TCO override of the catalog price
    other_capital_ratio: float = 1.0  # USD of other capital per USD of accelerators
    depreciation_years: float = 5.0
    interest_rate: float = 0.10  # per year (cost of capital)
    pue: float = 1.3  # power usage effectiveness of the facility
    usd_per_kwh: float = 0.10
    utilisation: float = 1.0  # share of hours the GPUs do paid work

    def purchase_for(self, hw: Hardware) -> float | None:
        if isinstance(self.purchase_usd, dict):
            for name in (hw.key, *hw.aliases):
                for key, value in self.purchase_usd.items():
                    if key.lower() == name.lower():
                        return value
            return hw.purchase_usd
        return self.purchase_usd if self.purchase_usd is not None else hw.purchase_usd


@dataclass(frozen=True)
class CostBreakdown:
    """The hourly price of one GPU and its parts (USD/h); ``usd_per_gpu_hour`` is the total."""

    hardware: str
    method: str
    usd_per_gpu_hour: float
    utilisation: float
    rental_usd_per_hour: float | None = None
    purchase_usd: float | None = None
    capital_usd: float | None = None
    capital_recovery_factor: float | None = None
    capital_usd_per_hour: float | None = None
    energy_usd_per_hour: float | None = None
    power_w: float | None = None
    depreciation_years: float | None = None
    interest_rate: float | None = None
    pue: float | None = None
    usd_per_kwh: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def explain(self) -> str:
        """One line, e.g. for ``--explain-cost``."""
        util = f" / utilisation {self.utilisation:.0%}" if self.utilisation != 1.0 else ""
        if self.method == "rental":
            return f"{self.hardware}: rental {self.rental_usd_per_hour:.3f} USD/GPU-h{util} = {self.usd_per_gpu_hour:.3f} USD/GPU-h"
        return (
            f"{self.hardware}: capital {self.capital_usd_per_hour:.3f} USD/h (purchase {self.purchase_usd:,.0f} USD "
            f"+ other capital = {self.capital_usd:,.0f} USD x CRF {self.capital_recovery_factor:.4f} "
            f"[{self.depreciation_years:g} y at {self.interest_rate:.1%}] / 8760 h) + energy {self.energy_usd_per_hour:.3f} USD/h "
            f"({self.power_w:.0f} W x PUE {self.pue:g} x {self.usd_per_kwh:g} USD/kWh){util} = {self.usd_per_gpu_hour:.3f} USD/GPU-h"
        )


def capital_recovery_factor(interest_rate: float, years: float) -> float:
    """Share of a capital sum to pay each year to repay it with interest over ``years``:
    i (1+i)^n / ((1+i)^n - 1); 1/n when i = 0. Worked number: 10 %, 5 years -> 0.2638."""
    if years <= 0:
        raise TokeconError(f"depreciation years must be > 0, got {years}")
    if interest_rate * years < 1e-6:  # series 1/n + i (n+1) / 2n: no 0/0 near i = 0
        return 1.0 / years + interest_rate * (years + 1.0) / (2.0 * years)
    growth = math.log1p(interest_rate) * years  # ln (1+i)^n, exact for tiny i
    return interest_rate * math.exp(growth) / math.expm1(growth)


def gpu_hour_cost(hw: Hardware, model: CostModel) -> CostBreakdown:
    """Hourly price of one ``hw`` under ``model`` (raises :class:`TokeconError` when TCO lacks a price,
    or when the inputs give an implausible price, naming the inputs rather than a flag not given)."""
    cost = _gpu_hour_cost(hw, model)
    if not (math.isfinite(cost.usd_per_gpu_hour) and cost.usd_per_gpu_hour <= MAX_USD_PER_GPU_HOUR):
        raise TokeconError(f"{model.method} cost of {hw.key}: {cost.usd_per_gpu_hour:.3g} USD per GPU-hour is implausible "
                           f"(limit {MAX_USD_PER_GPU_HOUR:g}); check utilisation, depreciation_years and the prices")
    return cost


def energy_usd_per_hour(hw: Hardware, model: CostModel) -> float:
    """Electricity of one GPU at full board power: W / 1000 x PUE x USD/kWh."""
    return hw.power_w / 1000.0 * model.pue * model.usd_per_kwh


def _gpu_hour_cost(hw: Hardware, model: CostModel) -> CostBreakdown:
    util = model.utilisation
    if model.method == "rental":
        rent = model.usd_per_gpu_hour if model.usd_per_gpu_hour is not None else hw.rental_usd_per_hour
        return CostBreakdown(hw.key, "rental", rent / util, util, rental_usd_per_hour=rent)
    purchase = model.purchase_for(hw)
    if purchase is None:
        raise TokeconError(
            f"--cost tco needs a purchase price for {hw.key}: the catalog has none; give --purchase-usd "
            f"(or purchase_usd in the [cost] table)"
        )
    capex = purchase * (1.0 + model.other_capital_ratio)
    crf = capital_recovery_factor(model.interest_rate, model.depreciation_years)
    capital = capex * crf / HOURS_PER_YEAR
    energy = energy_usd_per_hour(hw, model)
    return CostBreakdown(
        hw.key, "tco", (capital + energy) / util, util,
        purchase_usd=purchase, capital_usd=capex, capital_recovery_factor=crf, capital_usd_per_hour=capital,
        energy_usd_per_hour=energy, power_w=hw.power_w, depreciation_years=model.depreciation_years,
        interest_rate=model.interest_rate, pue=model.pue, usd_per_kwh=model.usd_per_kwh,
    )  # fmt: skip


# --- options and the [cost] table ------------------------------------------------------------

MIN_UTILISATION = 0.01  # below 1% busy the hourly price (rent / utilisation) stops meaning anything
MAX_USD_PER_GPU_HOUR = 1e6

# key -> (lower bound, inclusive?, upper bound): plausibility limits for user input
_LIMITS: dict[str, tuple[float, bool, float]] = {
    "usd_per_gpu_hour": (0.0, True, MAX_USD_PER_GPU_HOUR),
    "other_capital_ratio": (0.0, True, 100.0),
    "depreciation_years": (0.1, True, 100.0),  # a month or so at least: 1e-300 years priced GPUs at inf
    "interest_rate": (0.0, True, 10.0),
    "pue": (1.0, True, 10.0),
    "usd_per_kwh": (0.0, True, 100.0),
    "utilisation": (MIN_UTILISATION, True, 1.0),
}
KEYS = ("method", "purchase_usd", *_LIMITS)


def _check_number(key: str, value: Any, where: str, name: str | None = None) -> float:
    """``value`` for cost field ``key`` within its limits; errors name it as ``name`` (the flag)."""
    name = name or key
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokeconError(f"{where}{name} must be a number, got {value!r}")
    lo, inclusive, hi = _LIMITS[key]
    if value < lo or (value == lo and not inclusive) or value > hi:
        lower = f">= {lo:g}" if inclusive else f"> {lo:g}"
        raise TokeconError(f"{where}{name} must be {lower} and <= {hi:g}, got {value!r}")
    return float(value)


def cost_model(values: dict[str, Any], where: str = "--") -> CostModel:
    """Validate a mapping of cost options (from flags or a [cost] table) into a :class:`CostModel`.

    ``where`` prefixes error messages ("--" for flags, "FILE: [cost] " for a file)."""
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        flag = key.replace("_", "-") if where == "--" else key
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TokeconError(f"{where}unknown cost option '{key}'{hint}; known: {', '.join(KEYS)}")
        if key == "method":
            if value not in METHODS:
                raise TokeconError(f"{where}{flag} must be one of {', '.join(METHODS)}, got {value!r}")
            kwargs[key] = value
        elif key == "purchase_usd":
            if isinstance(value, dict):
                kwargs[key] = {str(k): _check_purchase(v, f"{where}{flag}.{k}") for k, v in value.items()}
            else:
                kwargs[key] = _check_purchase(value, f"{where}{flag}")
        else:
            kwargs[key] = _check_number(key, value, where, flag)
    return CostModel(**kwargs)


def _check_purchase(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1e9:
        raise TokeconError(f"{name} must be a price in USD between 0 and 1e9, got {value!r}")
    return float(value)


def load_cost_file(path: Path) -> dict[str, Any]:
    """The ``[cost]`` table of a TOML file, unvalidated (see :func:`cost_model`)."""
    from tokecon.catalogs.inputs import parse_toml, read_input_text

    data = parse_toml(read_input_text(path, "a cost file"), str(path), "a cost file")
    table = data.get("cost")
    if not isinstance(table, dict):
        raise TokeconError(f"{path}: expected a [cost] table (keys: {', '.join(KEYS)})")
    return table


def resolve_cost_model(file: Path | None, flags: dict[str, Any]) -> CostModel:
    """The [cost] table of ``file`` (if any), then the flags given on the command line on top."""
    base = cost_model(load_cost_file(file), f"{file}: [cost] ") if file else CostModel()
    given = {k: v for k, v in flags.items() if v is not None}
    return replace(base, **{k: v for k, v in cost_model(given).__dict__.items() if k in given})
