"""What a user asks tokecon to deploy and serve, as plain values checked once: the devices and
numerics (:class:`DeviceRequest`), the serving modes (:class:`ModeOptions`) and everything a
serving command runs under (:class:`ServingRequest`). The commands build these from their declared
options (tokecon.api.commands); the serving core reads them.
"""

from __future__ import annotations

import math
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np

from tokecon.catalogs.catalog import Catalog, load_catalog
from tokecon.economics.costs import CostModel, gpu_hour_cost
from tokecon.economics.money import ListPrices
from tokecon.errors import TokeconError
from tokecon.physics.scenario import Scenario
from tokecon.records import record
from tokecon.serving import lengths
from tokecon.serving.layouts import Layout
from tokecon.serving.requests import LengthMix
from tokecon.serving.resolve import GpuSpec, build_scenario, parse_gpus, register_model_file
from tokecon.values import positive_ints


@record
class DeviceRequest:
    """What to deploy: a model on device configurations, with its numerics, engine and price (plain
    values, as a command's options give them)."""

    model: str
    gpus: tuple[str, ...]
    tp: int | None = None
    dtype: str | None = None
    kv_dtype: str | None = None
    engine: str | None = None
    ideal: bool = False
    usd_per_gpu_hour: float | None = None
    catalogs: tuple[Path, ...] = field(default_factory=tuple)
    pp: int | None = None
    eplb: bool = False
    as_of: str | None = None  # price each device at this date (tokecon.economics.prices)

    def load(self) -> Catalog:
        """The merged catalogs; a ``--model path/config.json`` joins them under that path."""
        return register_model_file(load_catalog(self.catalogs), self.model)

    def price(self, spec: GpuSpec) -> float | None:
        """The price per GPU-hour the scenario carries: the one given, else the rental at ``as_of`` (None: the
        catalog's current rental)."""
        if self.usd_per_gpu_hour is not None or self.as_of is None:
            return self.usd_per_gpu_hour
        return gpu_hour_cost(spec.hardware, CostModel(as_of=self.as_of)).usd_per_gpu_hour

    def scenarios(self, catalog: Catalog, **kwargs: Any) -> list[Scenario]:
        specs: list[GpuSpec] = [parse_gpus(g, catalog) for g in self.gpus]
        return [
            build_scenario(
                catalog,
                self.model,
                spec,
                tp=self.tp,
                dtype=self.dtype,
                kv_dtype=self.kv_dtype,
                engine=self.engine,
                ideal=self.ideal,
                usd_per_gpu_hour=self.price(spec),
                eplb=self.eplb,
                **({"pp": self.pp} | kwargs),
            )
            for spec in specs
        ]


@record
class ModeOptions:
    """How production serves beyond plain continuous batching: speculative decoding, a prefix cache,
    and the list prices that turn an operating point into revenue."""

    speculative: str | None = None
    draft_tokens: int | None = None
    acceptance: float | None = None
    prefix_hit: float = 0.0
    prices: ListPrices | None = None
    range_ratio: float = 1.0

    @property
    def length_mix(self) -> LengthMix:
        """How request lengths are drawn (``--range-ratio``)."""
        return lengths.uniform(self.range_ratio)

    def inputs(self, scn: Scenario) -> dict[str, Any]:
        """The modes as resolved, for the JSON ``inputs``."""
        spec = scn.speculation
        return {
            "speculation": None if spec is None else {"method": spec.method, "draft": spec.draft.key, "draft_tokens": spec.draft_tokens,
                                                      "acceptance": spec.acceptance, "acceptance_source": spec.acceptance_source},
            "prefix_hit": self.prefix_hit,
            "range_ratio": self.range_ratio,
            "list_prices": None if self.prices is None else dict(self.prices.__dict__),
        }

    def validate(self) -> None:
        lengths.uniform(self.range_ratio)  # says what a bad ratio is
        if not (math.isfinite(self.prefix_hit) and 0.0 <= self.prefix_hit < 1.0):
            raise TokeconError(f"--prefix-hit must be a share of input tokens in [0, 1), got {self.prefix_hit}")
        p = self.prices
        given = [] if p is None else [p.usd_per_mtok_in, p.usd_per_mtok_out, p.usd_per_mtok_in_cached]
        if any(v is not None and not (0.0 <= v < 1e6 and math.isfinite(v)) for v in given):
            raise TokeconError("--price-in, --price-in-cached and --price-out must be prices in USD per million tokens in [0, 1e6)")
        if p is not None and p.usd_per_mtok_in_cached is not None and p.usd_per_mtok_in_cached > p.usd_per_mtok_in:
            raise TokeconError(f"--price-in-cached {p.usd_per_mtok_in_cached:g} is above --price-in {p.usd_per_mtok_in:g}: "
                               "a cached input token is billed at most the price of one computed")


def list_prices(price_in: float | None, price_in_cached: float | None, price_out: float | None) -> ListPrices | None:
    """The list prices given on the command line (both --price-in and --price-out, or none)."""
    if price_in is None and price_out is None and price_in_cached is None:
        return None
    if price_in is None or price_out is None:
        raise TokeconError("revenue needs both --price-in and --price-out (USD per million tokens); --price-in-cached is optional")
    return ListPrices(price_in, price_out, price_in_cached)


MAX_WORKERS = 100_000  # workers of one pool: past the largest fleets (tens of thousands of GPUs)


@record
class PoolSpec:
    """One pool as the command line gives it: GPUs of a worker, workers (None: balanced), layout
    (``tpN``: TP groups of N, the rest replicas; ``depN``: attention-DP with experts over N GPUs;
    None: the default layout of that many GPUs)."""

    gpus: str
    workers: int | None = None
    layout: str | None = None


@record
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


@record
class ServingRequest:
    """What to serve: a :class:`DeviceRequest` with its layout constraints, cost model, serving modes
    and, for disaggregated serving, its pools."""

    common: DeviceRequest
    ep: int | None = None
    attention_dp: bool = False
    chunked_prefill: int | None = None
    max_num_tokens: int | None = None  # the step budget, prompts split or whole as the engine does
    sync_scheduling: bool = False  # the engine does not prepare a step while one runs, whatever its version's default
    cost: CostModel = field(default_factory=CostModel)
    explain_cost: bool = False
    price_split: float | None = None
    modes: ModeOptions = field(default_factory=ModeOptions)
    disagg: DisaggSpec | None = None  # serve this disaggregated layout instead of --gpus
    layouts: str = "agg"  # --mode of frontier / capacity: search aggregated, disaggregated or both layouts

    def serve_modes(self) -> dict[str, Any]:
        """The keywords of :func:`tokecon.serving.batching.serve` these options set."""
        return {"prefix_hit": self.modes.prefix_hit, "lengths": self.modes.length_mix, "step_tokens": self.max_num_tokens}

    def aggregated_only(self) -> dict[str, str]:
        """The options given that disaggregated pools do not take, each with the reason: a prefill
        worker runs whole prompts and each pool prices its own GPU time; the search picks each pool's
        layout, and a given pool without ``--*-layout`` takes ``--tp``/``--pp``/``--ep``/``--attention-dp``."""
        given = {"--chunked-prefill": (self.chunked_prefill is not None, "a prefill worker runs whole prompts"),
                 "--max-num-tokens": (self.max_num_tokens is not None, "a prefill worker batches --prefill-batch prompts"),
                 "--price-split": (self.price_split is not None, "each pool prices its own GPU time")}
        pools_laid_out = self.disagg is not None and self.disagg.prefill.layout is not None and self.disagg.decode.layout is not None
        if self.disagg is None or pools_laid_out:
            why = "both pools have a --prefill-layout/--decode-layout" if pools_laid_out else "the search picks each pool's layout"
            given |= {"--tp": (self.common.tp is not None, why), "--pp": (self.common.pp is not None, why),
                      "--ep": (self.ep is not None, why), "--attention-dp": (self.attention_dp, why)}
        return {flag: why for flag, (on, why) in given.items() if on}

    def scope_note(self) -> list[str]:
        """With ``--mode both``, which given options the disaggregated layouts do not take."""
        only_agg = self.aggregated_only() if self.layouts == "both" else {}
        return [f"{', '.join(only_agg)}: for the aggregated layouts only; the disaggregated search picks each pool's "
                "layout and runs whole prompts."] if only_agg else []

    def validate(self) -> None:
        self.modes.validate()
        if self.layouts not in ("agg", "disagg", "both"):
            raise TokeconError(f"--mode must be agg, disagg or both, got '{self.layouts}'")
        only_agg = self.aggregated_only()
        if only_agg and (self.disagg is not None or self.layouts == "disagg"):
            reasons = "; ".join(f"{flag} ({why})" for flag, why in only_agg.items())
            fix = "or use --mode agg" if self.disagg is None else "or serve aggregated with --gpus"
            raise TokeconError(f"not modelled for disaggregated pools: {reasons}; drop them {fix}")
        if self.chunked_prefill is not None:
            positive_ints([self.chunked_prefill], "--chunked-prefill")
        if self.max_num_tokens is not None:
            positive_ints([self.max_num_tokens], "--max-num-tokens")
            if self.chunked_prefill is not None:
                raise TokeconError("--chunked-prefill and --max-num-tokens both set the token budget per step: give one")
        if self.ep is not None:
            positive_ints([self.ep], "--ep")
        if self.price_split is not None and not (0 < self.price_split <= 100 and np.isfinite(self.price_split)):
            raise TokeconError(f"--price-split must be a ratio of input to output token price in (0, 100], got {self.price_split}")

    def layout(self, n_gpus: int, model: Any) -> Layout | None:
        """The layout the flags ask for on ``n_gpus`` devices, or None when they leave it to the default."""
        n, tp, ep, adp, pp = n_gpus, self.common.tp, self.ep, self.attention_dp, self.common.pp
        if ep is not None and ep > 1 and not adp:
            raise TokeconError("--ep needs --attention-dp: expert parallelism is modelled with data-parallel attention (DeepSeek-style)")
        if adp:
            if not model.is_moe:
                raise TokeconError(f"--attention-dp and --ep apply to mixture-of-experts models; {model.key} is dense (use --tp)")
            if tp not in (None, 1) or pp not in (None, 1):
                raise TokeconError("--attention-dp runs attention on each GPU (tp=1, no pipeline); drop --tp and --pp")
            ep = n if ep is None else ep
            if n % ep:
                raise TokeconError(f"--ep {ep} must divide the device count {n}")
            return Layout(1, ep, True)
        if pp is not None and pp > 1:
            if n % pp:
                raise TokeconError(f"--pp {pp} must divide the device count {n}")
            return Layout(tp if tp is not None else n // pp, pp=pp)
        return Layout(tp) if tp is not None else None
