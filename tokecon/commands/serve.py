"""``tokecon serve``: a workload end to end under continuous batching at fixed concurrency.

Also the pieces ``frontier`` and ``capacity`` share: serving options, the default layout of a
model on a device count, the hourly price under ``--cost``, and one row per operating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tokecon.economics import money as economics
from tokecon.economics import energy
from tokecon.physics import memory
from tokecon.serving import batching as serving
from tokecon.serving import sram
from tokecon.fidelity import uncertainty
from tokecon.catalogs.catalog import Catalog
from tokecon.commands.common import BOUND_NOTE, CommonOptions, cheapest, efficiency_note, resolved_inputs, sources
from tokecon.economics.costs import CostBreakdown, CostModel, gpu_hour_cost
from tokecon.economics.money import ListPrices
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.serving import lengths
from tokecon.serving.requests import LengthMix
from tokecon.serving import speculative
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.deploy import GpuSpec, build_scenario, check_context, parse_gpus, parse_int_list, positive_ints, require_fit
from tokecon.serving.batching import Layout, ServingTimes
from tokecon.physics.scenario import Scenario

ENERGY_COLUMNS = [  # hidden first on a narrow terminal; always in JSON
    Column("joules_per_output_token", "J per out tok", "num", hide=3),
    Column("tok_s_per_mw", "tok/s per MW", "rate", hide=3),
    Column("energy_share", "energy share", "pct", hide=3),
]

if TYPE_CHECKING:
    from tokecon.commands.disagg import DisaggSpec

COLUMNS = [
    Column("concurrency", "concurrency", "int"),
    Column("running", "running", "int", hide=2),
    Column("ttft_s", "TTFT [ms]", "time"),
    Column("tpot_s", "TPOT [ms]", "time"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("e2e_latency_s", "E2E [s]", "num", hide=2),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate"),
    Column("total_tok_s_per_gpu", "total tok/s per GPU", "rate", hide=2),
    Column("output_tok_s", "out tok/s", "rate", hide=2),
    Column("requests_s", "req/s", "num", hide=2),
    Column("bound", "bound", "str", hide=2),
    Column("usd_per_mtok_input", "USD/Mtok in", "usd", hide=1),
    Column("usd_per_mtok_output", "USD/Mtok out", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
    Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
    *ENERGY_COLUMNS,
]

DISAGG_COLUMNS = [
    Column("xpyd", "xPyD", "str"),
    Column("concurrency", "concurrency", "int"),
    Column("ttft_s", "TTFT [ms]", "time"),
    Column("tpot_s", "TPOT [ms]", "time"),
    Column("tok_s_per_user", "tok/s per user", "rate"),
    Column("kv_transfer_s", "KV hand-off [ms]", "time", hide=2),
    Column("output_tok_s_per_gpu", "out tok/s per GPU", "rate"),
    Column("limited_by", "limited by", "str", hide=2),
    Column("usd_per_mtok_input", "USD/Mtok in", "usd", hide=1),
    Column("usd_per_mtok_output", "USD/Mtok out", "usd", hide=1),
    Column("usd_per_mtok", "USD/Mtok blended", "usd"),
]


REVENUE_COLUMNS = [Column("revenue_usd_per_day", "revenue USD/day", "usd", hide=1), Column("margin", "margin", "pct")]


@dataclass(frozen=True)
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

    def columns(self) -> list[Column]:
        """Extra table columns: revenue and margin when list prices are given."""
        return REVENUE_COLUMNS if self.prices is not None else []

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


@dataclass(frozen=True)
class ServeOptions:
    """Serving options on top of the common ones (plain values from the command line)."""

    common: CommonOptions
    ep: int | None = None
    attention_dp: bool = False
    chunked_prefill: int | None = None
    cost: CostModel = field(default_factory=CostModel)
    explain_cost: bool = False
    price_split: float | None = None
    modes: ModeOptions = field(default_factory=ModeOptions)
    disagg: DisaggSpec | None = None  # serve this disaggregated layout instead of --gpus
    layouts: str = "agg"  # --mode of frontier / capacity: search aggregated, disaggregated or both layouts

    def serve_modes(self) -> dict[str, float]:
        """The keywords of :func:`tokecon.serving.batching.serve` these options set."""
        return {"prefix_hit": self.modes.prefix_hit, "lengths": self.modes.length_mix}

    def aggregated_only(self) -> dict[str, str]:
        """The options given that disaggregated pools do not take, each with the reason: a prefill
        worker runs whole prompts and each pool prices its own GPU time; the search picks each pool's
        layout, and a given pool without ``--*-layout`` takes ``--tp``/``--pp``/``--ep``/``--attention-dp``."""
        given = {"--chunked-prefill": (self.chunked_prefill is not None, "a prefill worker runs whole prompts"),
                 "--price-split": (self.price_split is not None, "each pool prices its own GPU time"),
                 "--range-ratio": (self.modes.range_ratio != 1.0, "varied lengths are modelled for aggregated serving")}
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
        if self.layouts == "both" and self.modes.range_ratio != 1.0:
            raise TokeconError("--range-ratio is modelled for aggregated serving only; drop it or use --mode agg")
        if self.chunked_prefill is not None:
            positive_ints([self.chunked_prefill], "--chunked-prefill")
        if self.ep is not None:
            positive_ints([self.ep], "--ep")
        if self.price_split is not None and not (0 < self.price_split <= 100 and np.isfinite(self.price_split)):
            raise TokeconError(f"--price-split must be a ratio of input to output token price in (0, 100], got {self.price_split}")


@dataclass(frozen=True)
class Deployed:
    """One device configuration ready to serve: its scenario, layout and hourly price."""

    scenario: Scenario
    layout: Layout
    cost: CostBreakdown
    costs: CostModel = field(default_factory=CostModel)  # the options it was priced under (PUE, USD/kWh for energy)

    @property
    def label(self) -> str:
        dep = self.scenario.deployment
        return f"{dep.n_gpus}x {self.scenario.hardware.name}, {self.layout.label(dep.n_gpus)}"


def parse_concurrency(values: list[str] | None) -> list[int | str] | None:
    """``["1,8", "max"]`` -> [1, 8, "max"]."""
    if not values:
        return None
    out: list[int | str] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if part.lower() == "max":
                out.append("max")
            elif part:
                out.extend(parse_int_list(part, "--concurrency") or [])
    if not out:
        raise TokeconError("--concurrency expects comma-separated positive integers or 'max'")
    return out


def _scenario(catalog: Catalog, opts: ServeOptions, spec: GpuSpec, layout: Layout, cost: CostBreakdown) -> Scenario:
    c, m = opts.common, opts.modes
    scn = build_scenario(
        catalog, c.model, spec, tp=layout.tp, dtype=c.dtype, kv_dtype=c.kv_dtype, engine=c.engine, ideal=c.ideal,
        usd_per_gpu_hour=cost.usd_per_gpu_hour, ep=layout.ep, attention_dp=layout.attention_dp, pp=layout.pp,
    )  # fmt: skip
    spec_ = speculative.resolve(catalog, scn.model, m.speculative, m.draft_tokens, m.acceptance)
    return replace(scn, speculation=spec_) if spec_ is not None else scn


def fits(scn: Scenario, context: float) -> bool:
    return bool(memory.max_batch(scn, np.asarray([float(context)]))[0] >= 1)


def requested_layout(opts: ServeOptions, spec: GpuSpec, is_moe: bool, model_key: str) -> Layout | None:
    """The layout the flags ask for, or None when they leave it to the default."""
    n = spec.count
    tp, ep, adp, pp = opts.common.tp, opts.ep, opts.attention_dp, opts.common.pp
    if ep is not None and ep > 1 and not adp:
        raise TokeconError("--ep needs --attention-dp: expert parallelism is modelled with data-parallel attention (DeepSeek-style)")
    if adp:
        if not is_moe:
            raise TokeconError(f"--attention-dp and --ep apply to mixture-of-experts models; {model_key} is dense (use --tp)")
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


def default_layout(catalog: Catalog, opts: ServeOptions, spec: GpuSpec, cost: CostBreakdown, context: float) -> Layout:
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
    tps = [t for t in serving.divisors(n) if model.heads % t == 0]
    inside = [t for t in tps if t <= hw.scaleup_domain] or tps[:1]
    first = Layout(max(inside))
    if fits(_scenario(catalog, opts, spec, first, cost), context):
        return first
    for t in tps:
        if t > first.tp and fits(_scenario(catalog, opts, spec, Layout(t), cost), context):
            return Layout(t)
    return first  # does not fit: require_fit says so, with the smallest device count


def sized(catalog: Catalog, opts: ServeOptions, spec: GpuSpec, context: float) -> GpuSpec:
    """A bare SRAM device name (``-g groq``) means as many chips as hold the model (tokecon.serving.sram)."""
    if spec.count_given or not sram.is_sram(spec.hardware):
        return spec
    scn = _scenario(catalog, opts, spec, Layout(1), gpu_hour_cost(spec.hardware, opts.cost))
    n = sram.chips_to_hold(scn, context)
    if n is None:
        raise DoesNotFitError(f"{scn.model.key} does not fit in {spec.hardware.key} SRAM: {sram.NONE_HOLDS}")
    return GpuSpec(n, spec.hardware)


def deploy(catalog: Catalog, opts: ServeOptions, spec: GpuSpec, context: float, layout: Layout | None = None) -> Deployed:
    cost = gpu_hour_cost(spec.hardware, opts.cost)
    model = catalog.models.get(opts.common.model)
    layout = layout or requested_layout(opts, spec, model.is_moe, model.key) or default_layout(catalog, opts, spec, cost, context)
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
        "layout": d.layout.label(dep.n_gpus),
        "replicas": dep.replicas,
    }


def prices(d: Deployed, st: ServingTimes, price_split: float | None) -> dict[str, np.ndarray]:
    """USD/Mtok of input, output and all tokens at each serving point."""
    return token_prices(d.scenario.usd_per_hour, st.input_tok_s, st.output_tok_s, st.prefill_time_fraction, price_split)


def token_prices(usd_h: float, input_tok_s: np.ndarray, output_tok_s: np.ndarray, prefill_fraction: np.ndarray,
                 price_split: float | None) -> dict[str, np.ndarray]:
    """USD/Mtok of input, output and all tokens (input/output split by GPU time, or by a fixed price ratio)."""
    if price_split is None:
        inp, out = economics.split_by_time(usd_h, input_tok_s, output_tok_s, prefill_fraction)
    else:
        inp, out = economics.split_by_ratio(usd_h, input_tok_s, output_tok_s, price_split)
    return {"usd_per_mtok_input": inp, "usd_per_mtok_output": out,
            "usd_per_mtok": economics.usd_per_mtok(usd_h, np.asarray(input_tok_s) + np.asarray(output_tok_s))}


def _f(a: np.ndarray, i: int) -> float | None:
    v = float(np.asarray(a).flat[i])
    return v if np.isfinite(v) else None


def mode_columns(d: Deployed, input_tok_s: np.ndarray, output_tok_s: np.ndarray, st: ServingTimes,
                 list_prices: ListPrices | None) -> dict[str, np.ndarray]:
    """Per point at these token rates: tokens per decode step (speculation), the prefix-cache load
    and the storage one day of computed prompts fills (KV bytes per token x missed input tokens), the
    energy figures (every GPU at full board power) and at list prices the day's revenue, cost and
    margin of the deployment held at that point."""
    scn, h = d.scenario, st.prefix_hit
    inp, outp = np.asarray(input_tok_s, dtype=float), np.asarray(output_tok_s, dtype=float)
    shape = inp.shape
    out = {
        "tokens_per_step": np.broadcast_to(np.asarray(st.tokens_per_step).flat[0], shape),
        "kv_load_s": np.broadcast_to(np.asarray(st.kv_load_s).flat[0], shape) if h > 0 else np.full(shape, np.nan),
        "prefix_cache_tb_per_day": serving.prefix_cache_tb_per_day(scn, inp, h),
        **energy.energy_fields(scn.board_power_w, d.costs.pue, d.costs.usd_per_kwh, inp + outp, outp, scn.usd_per_hour),
    }
    if list_prices is not None:
        out |= economics.daily_margin(list_prices, inp, outp, h, scn.usd_per_hour * 24.0)
    return out


def mode_fields(row: dict[str, Any], d: Deployed, st: ServingTimes, extra: dict[str, np.ndarray], i: int) -> None:
    """Add to ``row`` (point ``i`` of ``extra``) the serving modes it ran under and their figures."""
    scn = d.scenario
    row["range_ratio"] = st.lengths.range_ratio
    lm = st.lengths.moments(row["input_tokens"], row["output_tokens"])
    row["mean_input_tokens"], row["mean_output_tokens"] = float(lm.input_mean), float(lm.output_mean)
    row["speculation"] = scn.speculation.label if scn.speculation else None
    row["prefix_hit"] = st.prefix_hit
    ok = row["fits"] and row.get("stable", True)
    for key, values in extra.items():
        row[key] = _f(values, i) if ok else None
    inp = row["usd_per_mtok_input"]
    row["usd_per_mtok_input_miss"] = inp / (1.0 - st.prefix_hit) if inp is not None else None


def point_rows(d: Deployed, st: ServingTimes, price_split: float | None, idx: list[int] | None = None,
               list_prices: ListPrices | None = None) -> list[dict[str, Any]]:
    """One row per serving point (all points, or those in ``idx``)."""
    money = prices(d, st, price_split)
    extra = mode_columns(d, st.input_tok_s, st.output_tok_s, st, list_prices)
    bound = st.bound  # once: an array over all points (per row it made long -c lists quadratic)
    scn = d.scenario
    units = scn.deployment.replicas
    rows = []
    for i in range(st.concurrency.size) if idx is None else idx:
        running = _f(st.running, i)
        row: dict[str, Any] = {
            **deployment_fields(d),
            "concurrency": int(st.concurrency.flat[i]),
            "input_tokens": int(st.input_tokens.flat[i]),
            "output_tokens": int(st.output_tokens.flat[i]),
            "chunked_prefill_tokens": None if st.chunk_tokens is None else int(np.round(st.chunk_tokens.flat[i])),
            "max_concurrency": int(st.max_running.flat[i]),
            "running": running,
            "queued": _f(st.queued, i),
            "fits": bool(st.fits.flat[i]),
        }
        for key in ("ttft_s", "tpot_s", "e2e_latency_s", "queue_wait_s", "tok_s_per_user", "requests_s", "input_tok_s",
                    "output_tok_s", "output_tok_s_per_gpu", "total_tok_s", "total_tok_s_per_gpu", "decode_step_s",
                    "prefill_s", "prefill_time_fraction", "preempted"):  # fmt: skip
            row[key] = _f(getattr(st, key), i)
        row["preempted_fraction"] = row.pop("preempted")
        row["tok_s_per_gpu"] = row["output_tok_s_per_gpu"]  # the common threshold key (--min-tok-s-per-gpu)
        row["bound"] = str(bound.flat[i]) if row["fits"] else None
        ctx = serving.admission_context(scn, st.input_tokens.flat[i], st.output_tokens.flat[i])
        per_unit = (running or 0.0) / units
        row["memory_used_bytes_per_gpu"] = float(memory.memory_used_per_gpu(scn, per_unit, ctx))
        row["usd_per_hour"] = scn.usd_per_hour
        row["usd_per_gpu_hour"] = d.cost.usd_per_gpu_hour
        row["cost_method"] = d.cost.method
        row["price_split"] = price_split
        for key, values in money.items():
            row[key] = _f(values, i) if row["fits"] else None
        mode_fields(row, d, st, extra, i)
        rows.append(uncertainty.annotate(row, scn, "decode"))
    return rows


INTERACTIVE_TOK_S = 10.0  # below this a reader waits on the text


def interactivity_note(label: str, row: dict[str, Any], slo: Thresholds) -> list[str]:
    """A note when no interactivity floor was given and the answer serves each user slower than people read."""
    speed = row.get("tok_s_per_user")
    if slo.min_tok_s_per_user is not None or speed is None or speed >= INTERACTIVE_TOK_S:
        return []
    return [f"{label}: the answer serves {speed:.1f} tok/s per user, below {INTERACTIVE_TOK_S:g} (slower than people read): "
            "cheap but not interactive; --min-tok-s-per-user (e.g. 20) sizes for an interactive service."]


def cost_notes(deployed: list[Deployed], opts: ServeOptions) -> list[str]:
    seen: dict[str, str] = {}
    for d in deployed:
        seen.setdefault(d.cost.hardware, d.cost.explain())
    return [f"Cost per GPU-hour ({opts.cost.method}): {line}" for line in seen.values()]


def split_note(price_split: float | None) -> str:
    if price_split is None:
        return ("USD/Mtok in and out: GPU time attributed to the phase that used it (prompt processing to input "
                "tokens, decode steps to output tokens); blended = all GPU time over all tokens.")
    return (f"USD/Mtok in and out: fixed price ratio, an input token costs {price_split:g} output tokens "
            f"(Tensor Economics' method); blended = all GPU time over all tokens.")


def mode_notes(scn: Scenario, prefix_hit: float, list_prices: ListPrices | None) -> list[str]:
    """What the speculation, prefix cache and revenue figures assume."""
    notes = []
    spec = scn.speculation
    if spec is not None:
        gain = speculative.tokens_per_step(spec.draft_tokens, spec.acceptance)
        notes.append(f"Speculative decoding ({spec.label}; acceptance: {spec.acceptance_source}): each step verifies "
                     f"{spec.draft_tokens + 1} tokens per sequence after {spec.draft_tokens} draft pass(es) and yields "
                     f"{gain:.2f} on average (tokens_per_step); TPOT = step / {gain:.2f}. The gain shrinks as the batch "
                     "becomes compute-bound; the draft's weights and KV cache are counted in memory.")
    if prefix_hit > 0:
        notes.append(f"Prefix cache: {prefix_hit:.1%} of input tokens are found cached and not prefilled; their KV is "
                     "loaded over the serving unit's NICs before the prefill (kv_load_s, in TTFT); USD/Mtok in counts all "
                     "input tokens, usd_per_mtok_input_miss only the computed ones; prefix_cache_tb_per_day is the "
                     "KV one day of computed prompts writes (what a 24 h retention stores; storage not priced).")
    if list_prices is not None:
        cached = list_prices.usd_per_mtok_in_cached
        notes.append(f"Revenue at list prices {list_prices.usd_per_mtok_in:g} in"
                     + (f" / {cached:g} cached in" if cached is not None else "")
                     + f" / {list_prices.usd_per_mtok_out:g} out USD/Mtok, each deployment held at its operating point "
                     "24 h a day; margin = revenue / cost - 1 (DeepSeek's cost-profit margin).")
    return notes


def model_note(scn: Scenario, chunk: int | None) -> str:
    """The serving model as the engine profile (or ``--chunked-prefill``) sets it."""
    eng = scn.engine
    source = f"--chunked-prefill {chunk}" if chunk else f"{eng.name} default"
    prefill = (f"prompts in chunks filling {chunk or eng.prefill_chunk_tokens} tokens per step" if chunk or eng.chunked_prefill
               else f"whole prompts batched up to {eng.prefill_chunk_tokens} tokens per step")
    cap = "no cap on running requests (ideal)" if scn.ideal else f"at most {eng.max_running_requests} running per serving unit"
    admit = ("KV cache admitted at the average footprint (input + output/2); requests the cache cannot carry to "
             "their last token are preempted and re-prefilled" if eng.kv_admission == "average"
             else "KV cache reserved for input + output tokens at admission")
    return (f"Continuous batching at fixed concurrency, steady state: {prefill}, mixed with the decode batch ({source}); "
            f"{cap}; {admit}; TPOT at the running batch with the average context (input + output/2); "
            "requests beyond what runs at once queue, and the wait adds to TTFT.")


def cost_inputs(deployed: list[Deployed], opts: ServeOptions) -> dict[str, Any]:
    return {"method": opts.cost.method, "per_gpu_hour": {d.cost.hardware: d.cost.as_dict() for d in deployed}}


def run_serve(
    opts: ServeOptions, concurrency: list[int | str] | None, input_len: int, output_len: int, thresholds: Thresholds,
    request_rate: list[float] | None = None,
) -> Result:
    """Serve at each concurrency (closed loop), or at each offered ``request_rate`` (open-loop Poisson
    arrivals, :mod:`tokecon.commands.arrivals`)."""
    from tokecon.commands import arrivals  # it builds on this module's rows and prices

    opts.validate()
    if request_rate and concurrency:
        raise TokeconError("give --concurrency (requests in flight) or --request-rate (Poisson arrivals per second), not both")
    if request_rate and opts.disagg is not None:
        raise TokeconError("--request-rate is modelled for aggregated serving only; serve a disaggregated layout at --concurrency "
                           "or size it with `tokecon capacity --prefill-gpus ... --decode-gpus ...`")
    catalog = opts.common.load()
    positive_ints([input_len, output_len], "--input-len/--output-len")
    if output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token); use `tokecon prefill` for prompts alone")
    model = catalog.models.get(opts.common.model)
    context = input_len + output_len
    check_context(model, context, "--input-len + --output-len")
    specs = [sized(catalog, opts, parse_gpus(g, catalog), context) for g in opts.common.gpus]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    highlight: set[int] = set()
    deployed: list[Deployed] = []
    if opts.disagg is not None:
        from tokecon.commands.disagg import serve_rows

        rows, notes, deployed = serve_rows(catalog, opts, opts.disagg, concurrency, input_len, output_len)
        best = cheapest(rows)
        highlight = set() if best is None else {best}
        notes += list(dict.fromkeys(efficiency_note(d.scenario) for d in reversed(deployed)))  # decode's first; prefill's if another device
    elif not specs:
        raise TokeconError("give --gpus (aggregated) or --prefill-gpus and --decode-gpus (disaggregated)")
    for spec in specs:
        d = deploy(catalog, opts, spec, context)
        deployed.append(d)
        scn = d.scenario
        require_fit(scn, context)
        if request_rate:
            these, ol = arrivals.rate_rows(d, opts, request_rate, input_len, output_len)
            notes.extend(arrivals.rate_notes(d, ol, input_len, output_len, opts.modes.range_ratio))
        else:
            these = _concurrency_rows(d, opts, concurrency, input_len, output_len, notes)
        best = cheapest(these)
        if best is not None:
            highlight.add(len(rows) + best)
        rows.extend(these)
        notes.append(efficiency_note(scn))
        if sram.is_sram(scn.hardware):
            notes.extend(sram.explain(scn, context))
    if opts.disagg is None:
        notes.append(model_note(deployed[0].scenario, opts.chunked_prefill))
    notes.extend(mode_notes(deployed[0].scenario, opts.modes.prefix_hit, opts.modes.prices))
    if request_rate:
        notes.append(arrivals.MODEL_NOTE)
    if opts.disagg is None:
        notes.append(split_note(opts.price_split))
    notes.append(energy.NOTE)
    if opts.explain_cost:
        notes.extend(cost_notes(deployed, opts))
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": [d.scenario.deployment.label for d in deployed],
        **({"disaggregated": {"prefill": rows[0]["prefill_layout"], "decode": rows[0]["decode_layout"],
                              "xpyd": rows[0]["xpyd"]}} if opts.disagg is not None else {}),
        "input_tokens": input_len,
        "output_tokens": output_len,
        "request_rates": request_rate,
        "chunked_prefill_tokens": opts.chunked_prefill,
        "price_split": opts.price_split,
        "cost": cost_inputs(deployed, opts),
        **opts.modes.inputs(deployed[0].scenario),
    }
    if opts.disagg is None:
        notes.append(BOUND_NOTE)
    columns = (DISAGG_COLUMNS if opts.disagg is not None else arrivals.COLUMNS if request_rate else COLUMNS) + opts.modes.columns()
    result = Result("serve", inputs, rows, columns, notes=notes, highlight=highlight,
                    sources=sources([d.scenario for d in deployed]))
    return thresholds.apply(result)


def _concurrency_rows(d: Deployed, opts: ServeOptions, concurrency: list[int | str] | None, input_len: int,
                      output_len: int, notes: list[str]) -> list[dict[str, Any]]:
    scn = d.scenario
    max_c = int(serving.max_running(scn, input_len, output_len, opts.modes.length_mix)) * scn.deployment.replicas
    chosen = _concurrencies(concurrency, max_c)
    st = serving.serve(scn, np.asarray(chosen, dtype=float), input_len, output_len, opts.chunked_prefill, **opts.serve_modes())
    over = [c for c in chosen if c > max_c]
    if over:
        notes.append(f"{d.label}: {max_c} requests of {input_len + output_len} tokens run at once (KV cache and engine cap); "
                     f"at concurrency {', '.join(map(str, over))} the rest queue and TTFT includes the wait.")
    return point_rows(d, st, opts.price_split, list_prices=opts.modes.prices)


def _concurrencies(asked: list[int | str] | None, max_c: int) -> list[int]:
    """The asked values with ``max`` resolved; by default powers of two up to the largest that fits, and it."""
    if not asked:
        out = [1 << i for i in range(31) if (1 << i) <= max_c]
        return out + ([max_c] if max_c not in out else [])
    return [max_c if c == "max" else int(c) for c in asked]
