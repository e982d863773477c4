"""What one GPU-hour costs: a rental price, a total cost of ownership (TCO) from capital, or a published TCO.

    CRF(i, n)          = i (1 + i)^n / ((1 + i)^n - 1)          capital recovery factor (1/n at i = 0)
    capital  USD/h     = server share x (1 + other_capital_ratio) x CRF / 8760 h
    energy   USD/h     = all-in power_W / 1000 x PUE x USD/kWh
    TCO      USD/GPU-h = (capital + energy) / utilisation
    rental   USD/GPU-h = catalog price (or --usd-per-gpu-hour) / utilisation
    published USD/GPU-h = a named source's all-in TCO for a buyer tier (tco_source, tier) / utilisation

Capital is one scope for every device: the GPU's share of its server or rack (accelerator, host share, NICs,
chassis, scale-up switches), as tokecon.economics.prices normalises the catalog's points; a ``purchase_usd`` given
by the user is read as that scope. ``other_capital_ratio`` then covers the facility only (building, power and cooling
plant). Its default 0.40: Cushman & Wakefield, Data Center Development Cost Guide 2025, average 11.7 M USD per MW of
critical load over 19 US markets (cushwake.cld.bz/Data-Center-Development-Cost-Guide-2025/8-9) x B200's all-in
1.71 kW = 20,000 USD per GPU, over its 50,259 USD server share = 0.40 (H100: 16,000 / 34,694 = 0.46). Assumes: the
facility is recovered over the servers' life (an upper bound: buildings last longer) and in proportion to capital
(a device cheap per watt gets too little); the scale-out fabric (Epoch AI: 19% of cluster cost) is not counted.

Worked number: h100-sxm (capital 34,694 USD server share, all-in 1,370 W), facility 0.40x, 5 years at 10 %, PUE
1.3, 0.10 USD/kWh: CRF = 0.1 x 1.1^5 / (1.1^5 - 1) = 0.2638, capital 48,572 x 0.2638 / 8760 = 1.463 USD/h, energy
1.37 kW x 1.3 x 0.10 = 0.178 USD/h, TCO 1.641 USD/GPU-h.

``as_of`` prices at another date than today's catalog values (tokecon.economics.prices.price_at interpolates
between dated points and says how in the breakdown's ``price_note``). Every option can be kept in a ``[cost]``
table of a TOML file (``--cost-file``); flags override it.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Sequence

from tokecon.economics import prices
from tokecon.errors import TokeconError
from tokecon.physics.specs import Hardware
from tokecon.records import record

HOURS_PER_YEAR = 8760.0
METHODS = ("rental", "tco", "tco-published")


@record
class CostModel:
    """How an hourly price per GPU is obtained. ``purchase_usd`` may map device keys to prices (server share)."""

    method: str = "rental"
    usd_per_gpu_hour: float | None = None  # rental override
    purchase_usd: float | dict[str, float] | None = None  # TCO override of the catalog capital, USD per GPU server share
    other_capital_ratio: float = 0.40  # USD of facility capital per USD of server share (module docstring)
    depreciation_years: float = 5.0
    interest_rate: float = 0.10  # per year (cost of capital)
    pue: float = 1.3  # power usage effectiveness of the facility
    usd_per_kwh: float = 0.10
    utilisation: float = 1.0  # share of hours the GPUs do paid work
    tco_source: str = "SemiAnalysis"  # tco-published: whose all-in TCO per GPU-hour (a price point's provider)
    tier: str = "hyperscaler"  # tco-published: the buyer tier of that TCO
    as_of: str | None = None  # YYYY-MM: price at this date instead of the catalog's current values

    def purchase_for(self, hw: Hardware) -> float | None:
        """The user's capital for ``hw`` (a number, or a per-device table); None when not given."""
        if isinstance(self.purchase_usd, dict):
            for name in (hw.key, *hw.aliases):
                for key, value in self.purchase_usd.items():
                    if key.lower() == name.lower():
                        return value
            return None
        return self.purchase_usd


@record
class CostBreakdown:
    """The hourly price of one GPU and its parts (USD/h); ``usd_per_gpu_hour`` is the total."""

    hardware: str
    method: str
    usd_per_gpu_hour: float
    utilisation: float
    price_note: str = ""  # which price, of what scope and source, at which date
    rental_usd_per_hour: float | None = None
    published_usd_per_gpu_hour: float | None = None
    tco_source: str | None = None
    tier: str | None = None
    purchase_usd: float | None = None  # capital per GPU, server share
    capital_usd: float | None = None
    capital_recovery_factor: float | None = None
    capital_usd_per_hour: float | None = None
    energy_usd_per_hour: float | None = None
    all_in_power_w: float | None = None
    depreciation_years: float | None = None
    interest_rate: float | None = None
    pue: float | None = None
    usd_per_kwh: float | None = None
    as_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, "")}

    def explain(self) -> str:
        """One line, e.g. for ``--explain-cost``."""
        util = f" / utilisation {self.utilisation:.0%}" if self.utilisation != 1.0 else ""
        why = f" [{self.price_note}]" if self.price_note else ""
        if self.method == "rental":
            return f"{self.hardware}: rental {self.rental_usd_per_hour:.3f} USD/GPU-h{util} = {self.usd_per_gpu_hour:.3f} USD/GPU-h{why}"
        if self.method == "tco-published":
            return (f"{self.hardware}: {self.tco_source} {self.tier} all-in TCO {self.published_usd_per_gpu_hour:.3f} "
                    f"USD/GPU-h{util} = {self.usd_per_gpu_hour:.3f} USD/GPU-h{why}")
        return (
            f"{self.hardware}: capital {self.capital_usd_per_hour:.3f} USD/h (server share {self.purchase_usd:,.0f} USD "
            f"+ facility = {self.capital_usd:,.0f} USD x CRF {self.capital_recovery_factor:.4f} "
            f"[{self.depreciation_years:g} y at {self.interest_rate:.1%}] / 8760 h) + energy {self.energy_usd_per_hour:.3f} USD/h "
            f"({self.all_in_power_w:,.0f} W all-in x PUE {self.pue:g} x {self.usd_per_kwh:g} USD/kWh){util} = "
            f"{self.usd_per_gpu_hour:.3f} USD/GPU-h{why}"
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
    """Electricity of one GPU at its all-in power (its share of host, NICs, switches): W / 1000 x PUE x USD/kWh."""
    return hw.all_in_power_w / 1000.0 * model.pue * model.usd_per_kwh


def _dated(hw: Hardware, kind: str, model: CostModel, now: float | None, note: str) -> tuple[float, str]:
    """The ``kind`` price at ``model.as_of`` (interpolated, and how), else the current value and its provenance."""
    if model.as_of is not None:
        at = prices.price_at(hw, kind, prices.year_of(model.as_of), model.tco_source, model.tier)
        return at.usd, f"as of {model.as_of}: {at.how}"
    if now is None:
        raise TokeconError(f"{hw.key} has no {kind} price")
    return now, note


def _gpu_hour_cost(hw: Hardware, model: CostModel) -> CostBreakdown:
    util = model.utilisation
    if model.method == "rental":
        if model.usd_per_gpu_hour is not None:
            rent, note = model.usd_per_gpu_hour, "given"
        else:
            now = prices.current(hw, "rental")
            rent, note = _dated(hw, "rental", model, now.usd, now.note)
        return CostBreakdown(hw.key, "rental", rent / util, util, note, rental_usd_per_hour=rent, as_of=model.as_of)
    if model.method == "tco-published":
        tco = prices.series(hw, "tco", model.tco_source, model.tier)
        if not tco and model.as_of is None:
            raise TokeconError(f"--cost tco-published: {hw.key} has no published TCO from '{model.tco_source}' for tier "
                               f"'{model.tier}' (published: {prices.published_tco(hw) or 'none'}); use --cost tco")
        newest = tco[-1] if tco else None
        usd, note = _dated(hw, "tco", model, newest.usd if newest else None,
                           f"{hw.key}: {newest.provider} {newest.tier} TCO ({newest.date}, {newest.source_class})" if newest else "")
        return CostBreakdown(hw.key, "tco-published", usd / util, util, note, published_usd_per_gpu_hour=usd,
                             tco_source=model.tco_source, tier=model.tier, as_of=model.as_of)
    given = model.purchase_for(hw)
    if given is not None:
        capital, note = given, "capital given (read as server share)"
    else:
        now = prices.current(hw, "purchase")
        if now is None and model.as_of is None:
            raise TokeconError(
                f"--cost tco needs a purchase price for {hw.key}: the catalog has no primary one "
                f"({_purchase_points(hw)}); give --purchase-usd (server share per GPU, or purchase_usd in the [cost] table)"
            )
        capital, note = _dated(hw, "purchase", model, now.usd if now else None, now.note if now else "")
    capex = capital * (1.0 + model.other_capital_ratio)
    crf = capital_recovery_factor(model.interest_rate, model.depreciation_years)
    capital_h = capex * crf / HOURS_PER_YEAR
    energy = energy_usd_per_hour(hw, model)
    return CostBreakdown(
        hw.key, "tco", (capital_h + energy) / util, util, note,
        purchase_usd=capital, capital_usd=capex, capital_recovery_factor=crf, capital_usd_per_hour=capital_h,
        energy_usd_per_hour=energy, all_in_power_w=hw.all_in_power_w, depreciation_years=model.depreciation_years,
        interest_rate=model.interest_rate, pue=model.pue, usd_per_kwh=model.usd_per_kwh, as_of=model.as_of,
    )  # fmt: skip


def _purchase_points(hw: Hardware) -> str:
    weak = [f"{p.source_class} {p.scope} {p.usd:,.0f} USD ({p.date})" for p in hw.price_points if p.kind == "purchase"]
    return "its purchase points: " + "; ".join(weak) if weak else "no purchase points"


def scope_note(hardware: Sequence[Hardware], model: CostModel) -> str | None:
    """One line when devices compared under ``model`` are priced from different kinds of price (a chip price with
    an overhead beside a rack share; an on-demand rental beside a contract rate), naming each; None when alike."""
    if model.method == "tco-published" or (model.method == "rental" and model.usd_per_gpu_hour is not None):
        return None
    devices = dict((h.key, h) for h in hardware).values()
    if model.method == "rental":  # each device's rental names its kind beside its price (commands.common.catalog_price_source)
        kinds = {prices.rental_kind(hw) or ("stated catalog value" if hw.rental_usd_per_hour is not None else "no catalog price")
                 for hw in devices}
        return f"Rentals of different kinds ({', '.join(sorted(kinds))}): `--cost tco-published` prices all from one source." \
            if len(kinds) > 1 else None
    basis: dict[str, str] = {}
    for hw in devices:
        now = prices.current(hw, "purchase")
        q = now.quote if now else None
        if model.purchase_for(hw) is not None:
            basis[hw.key] = "a capital given by the user"
        elif q is None:
            basis[hw.key] = "a stated catalog value" if now else "no catalog price"
        else:
            over = f" x {q.overhead.factor:g} {q.overhead.name}" if q.overhead else ""
            basis[hw.key] = f"a {q.point.tier} {q.point.scope.replace('_', ' ')} price{over}"
    if len(set(basis.values())) < 2:
        return None
    return ("Prices of different kinds (capital): " + "; ".join(f"{k} from {v}" for k, v in basis.items())
            + " (tokecon.economics.prices; `--cost tco-published` prices all from one source).")


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
KEYS = ("method", "purchase_usd", *_LIMITS, "tco_source", "tier", "as_of")


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
        elif key == "tco_source":
            if not isinstance(value, str) or not value.strip():
                raise TokeconError(f"{where}{flag} must name a published TCO (e.g. SemiAnalysis), got {value!r}")
            kwargs[key] = value.strip()
        elif key == "tier":
            if value not in prices.TIERS:
                raise TokeconError(f"{where}{flag} must be one of {', '.join(prices.TIERS)}, got {value!r}")
            kwargs[key] = value
        elif key == "as_of":
            if not isinstance(value, str):
                raise TokeconError(f"{where}{flag} must be a date YYYY-MM, got {value!r}")
            try:
                prices.year_of(value)
            except TokeconError as exc:
                raise TokeconError(f"{where}{flag}: {exc}") from None
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
