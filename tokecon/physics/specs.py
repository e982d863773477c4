"""Plain frozen dataclasses for what a scenario is made of: hardware, model, engine, deployment.

No I/O and no printing here; :mod:`tokecon.catalogs.catalog` builds these from TOML. Every field is
in SI base units (B, B/s, FLOP/s, s, W, USD) whatever the catalog key said.
"""

from __future__ import annotations

import math

from tokecon.records import record
from tokecon.units import COMPUTE_DTYPE

# All-in power per GPU (its share of host CPUs, memory, NICs and switches) over board power where no figure is
# published: the median of the catalog's published ratios (SemiAnalysis AI Cloud TCO Model "All-In (W)" per GPU over
# board power, H100 1,370 / 700 W ... MI355X 2,090 / 1,400 W: github.com/SemiAnalysisAI/InferenceX-app
# packages/constants/src/gpu-keys.ts, July 2026 survey); tests/test_price_provenance.py recomputes it.
ALL_IN_OVER_BOARD = 1.70


@record
class Efficiency:
    """Achievable fractions of peak on one device family, and the per-call collective latency.

    Fitted to public measurements where ``fitted_on`` says so; otherwise defaults.
    """

    compute: float = 0.7
    memory_bw: float = 0.8
    link: float = 0.8
    collective_latency_s: float = 8e-6
    fitted_on: str = "default"
    kv_bw: float | None = None  # fraction of bandwidth reading the KV cache; None: same as memory_bw

    @property
    def kv_cache_bw(self) -> float:
        return self.memory_bw if self.kv_bw is None else self.kv_bw
    scaleout_latency_s: float | None = None  # per call when a collective crosses scale-out; None: same as above


@record
class PricePoint:
    """A dated, sourced market price of one device (the catalog's ``[[NAME.price_points]]``).

    ``kind``: ``purchase`` (``usd`` per GPU of ``scope``), ``rental`` (``usd`` per GPU-hour) or ``tco`` (a published
    all-in owning cost, ``usd`` per GPU-hour). Provenance: ``scope`` (chip, card, baseboard, server_share, rack_share,
    system, all_in), ``source_class`` (primary, secondary, derived; a derived point names its inputs in
    ``derived_from``), buyer ``tier`` (hyperscaler, neocloud, retail), ``rental_kind`` (on_demand, reserved, spot) for a
    rental, and ``unit``: ``per_gpu``, or ``instance`` when the quote was for ``gpus_per_unit`` GPUs (``usd`` is then
    already divided by them). tokecon.economics.prices reads these; a point without a stated scope is a guess.
    """

    date: str  # YYYY-MM (or YYYY) observed
    kind: str  # purchase | rental | tco
    usd: float  # USD per GPU (purchase) or USD per GPU-hour (rental, tco)
    source: str
    scope: str = ""
    source_class: str = ""
    tier: str = ""
    rental_kind: str = ""
    unit: str = "per_gpu"
    gpus_per_unit: int = 1
    provider: str = ""
    derived_from: tuple[str, ...] = ()

    @property
    def value_key(self) -> str:
        """The catalog key of the value, its unit in the name: ``usd`` (per GPU) or ``usd_per_hour`` (per GPU-hour)."""
        return "usd" if self.kind == "purchase" else "usd_per_hour"

    def as_entry(self) -> dict[str, object]:
        """The catalog's own keys (the unit in the value's name), empty provenance fields left out."""
        entry: dict[str, object] = {"date": self.date, "kind": self.kind, self.value_key: self.usd}
        optional = {"scope": self.scope, "source_class": self.source_class, "tier": self.tier,
                    "rental_kind": self.rental_kind, "provider": self.provider, "derived_from": list(self.derived_from)}
        entry |= {k: v for k, v in optional.items() if v}
        entry["unit"] = self.unit
        if self.unit == "instance":
            entry["gpus_per_unit"] = self.gpus_per_unit
        return entry | {"source": self.source}


@record
class MemoryTier:
    """A slower memory below a device's own (``memory_bytes`` at ``memory_bw_b_s``): capacity and the
    bandwidth at which one device reads it (Cerebras MemoryX over SwarmX, SambaNova's DDR)."""

    name: str
    capacity_bytes: float
    bw_b_s: float


def rack_scale(topology: str, domain: int) -> bool:
    """A scale-up domain wider than one 8-GPU server on a switch (GB200/GB300 NVL72): the GPU's system is a rack."""
    return topology == "switch" and domain > 8


@record
class Hardware:
    """One accelerator (per GPU / chip figures)."""

    key: str
    name: str
    vendor: str
    family: str
    memory_bytes: float  # usable capacity
    memory_bw_b_s: float
    flop_s: dict[str, float]  # dense peak per compute type: bf16, fp8, fp4, int8
    scaleup_link: str
    scaleup_bw_b_s: float  # per direction, per GPU
    scaleup_domain: int
    scaleout_bw_b_s: float  # per direction, per GPU
    power_w: float
    rental_usd_per_hour: float  # current rental per GPU-hour (tokecon.economics.prices says which point)
    price_date: str  # the date of that rental
    efficiency: Efficiency
    purchase_usd: float | None = None  # current capital per GPU at server share (scale-up switches, host share, NICs)
    aliases: tuple[str, ...] = ()
    source: str = ""
    origin: str = ""  # catalog file the entry came from
    scaleup_topology: str = "switch"  # switch (NVSwitch) | mesh (xGMI: one link per peer) | torus (TPU ICI)
    scaleup_links: int = 0  # links per device (mesh: peers, torus: ports) sharing scaleup_bw_b_s; 0: switch
    price_points: tuple[PricePoint, ...] = ()  # dated, sourced prices (tokecon.economics.prices picks and interpolates)
    memory_kind: str = "dram"  # "sram": weights live on chip, so a system is sized by chips that hold the model
    memory_tiers: tuple[MemoryTier, ...] = ()  # slower tiers below memory_bytes, fastest first
    engine: str = ""  # the serving stack the device runs when --engine is not given ("": vllm)
    gemm_tile_rows: int = 64  # tokens a matmul's M is padded to (Hopper wgmma m64; 1 on vector-streaming chips)
    all_in_power_w: float | None = None  # per GPU with its share of host, NICs and switches (None: board x ratio)
    all_in_power_source: str = ""

    def __post_init__(self) -> None:
        if self.all_in_power_w is None:  # no published figure: board power x the catalog's median ratio
            object.__setattr__(self, "all_in_power_w", self.power_w * ALL_IN_OVER_BOARD)
            object.__setattr__(self, "all_in_power_source", f"derived: board {self.power_w:,.0f} W x {ALL_IN_OVER_BOARD:g} "
                                                            "(median published all-in / board ratio)")

    @property
    def rack_scale(self) -> bool:
        return rack_scale(self.scaleup_topology, self.scaleup_domain)

    def rate_note(self, dtype: str) -> str | None:
        """Which rate matmuls on ``dtype`` weights were priced at, when the device has no tensor-core
        rate of that type (None when it has)."""
        want = COMPUTE_DTYPE.get(dtype, "bf16")
        if self.flop_s.get(want) or want == "bf16":
            return None
        rate = "TF32 (half bf16)" if want == "tf32" else "bf16"
        return (f"{self.key} has no {want} tensor-core rate: {dtype} matmuls priced as weight-only kernels at the {rate} "
                f"rate ({self.peak_flop_s(dtype) / 1e12:,.0f} TFLOP/s dense); the weights are still read at {dtype} size")

    def peak_flop_s(self, dtype: str) -> float:
        """Dense peak FLOP/s for matmuls whose weights are stored as ``dtype``.

        A device without the type's tensor-core rate runs a weight-only kernel (the weights are
        dequantised, the matmul runs in 16-bit: Marlin / Machete W4A16 and W8A16 in vLLM, the
        path gpt-oss MXFP4 takes on Hopper), so the fallback is the bf16 rate, never fp8.
        fp32 runs at the TF32 rate: the catalog's ``tf32`` or half the bf16 rate (NVIDIA H100
        datasheet: TF32 494.7 vs BF16 989.4 dense; A100 156 vs 312; AMD MI300X 653.7 vs 1,307.4).
        """
        want = COMPUTE_DTYPE.get(dtype, "bf16")
        if self.flop_s.get(want):
            return self.flop_s[want]
        return self.flop_s["bf16"] / 2.0 if want == "tf32" else self.flop_s["bf16"]


#: Components a checkpoint's recipe types separately (recipes in models.toml, :class:`Recipe`).
COMPONENTS = ("attention", "dense_mlp", "shared_experts", "routed_experts", "mtp")


@record
class Recipe:
    """How a published checkpoint stores each component: checkpoints quantise components, not models
    (NVIDIA's DeepSeek-R1-FP4 keeps attention and the MTP module in BF16, Meta's Llama-3.1-405B-FP8
    its attention and first and last MLP, gpt-oss ships MXFP4 experts and BF16 elsewhere).

    ``dtype`` is the type ``--dtype`` names to pick it (its main quantised type); a component left
    empty takes ``dtype``; embeddings, the LM head and MoE routers stay 16-bit beside a quantised type
    (:func:`tokecon.units.embedding_dtype`). ``kv_cache``: the KV type the checkpoint carries scales
    for ("" none: the engine's default); ``engines``: the engine families whose builds use this
    checkpoint for ``dtype`` (empty: any)."""

    name: str
    dtype: str
    checkpoint: str = ""
    attention: str = ""
    dense_mlp: str = ""
    shared_experts: str = ""
    routed_experts: str = ""
    mtp: str = ""
    dense_16bit_layers: int = 0  # dense MLP layers kept in 16-bit (Meta's 405B FP8: layers 0 and 125)
    kv_cache: str = ""
    engines: tuple[str, ...] = ()
    source: str = ""
    status: str = ""


@record
class Model:
    """A transformer's architecture. Notation (as in the jax-ml scaling book): L layers, D width,
    H query heads, K KV heads, hd head dim, F dense FFN width, V vocab, E routed experts, k experts
    per token, Fe expert width."""

    key: str
    name: str
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool = False
    max_context: int = 4096
    weight_dtype: str = "bf16"
    expert_dtype: str | None = None
    attention: str = "gqa"  # gqa | mla
    causal: bool = True
    lm_head: bool = True
    mlp: str = "gated"  # gated (3 matrices) | plain (2 matrices)
    norm: str = "rmsnorm"
    qk_norm: bool = False
    attention_bias: bool = False
    linear_bias: bool = False
    position_embeddings: int = 0
    extra_norms_per_layer: int = 0
    # MLA
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    mla_cache: str = "latent"  # latent | expanded: what the engine caches (tokecon.physics.scenario.Scenario)
    # MoE
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    expert_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    dense_layers: int = 0
    expert_groups: int = 0  # node-limited routing (DeepSeek n_group): experts in this many groups
    expert_groups_per_token: int = 0  # ... of which a token may use this many (topk_group); 0: no limit
    # windowed attention
    sliding_window: int = 0
    sliding_layers: int = 0
    # chunked attention (Llama 4): a token sees the keys of its own chunk, from its start to itself
    attention_chunk_size: int = 0
    chunked_layers: int = 0
    # multi-token prediction modules shipped with the checkpoint (DeepSeek-V3 num_nextn_predict_layers)
    mtp_modules: int = 0
    # published checkpoints' per-component types (models.toml [MODEL.recipes.NAME])
    recipes: tuple[Recipe, ...] = ()
    # coefficient of variation of routed tokens over experts (0: the default of tokecon.physics.efficiency)
    expert_load_cv: float = 0.0
    # published figures, for tests and `models show`
    published_params_b: float | None = None
    published_active_params_b: float | None = None
    active_params_exclude_embeddings: bool = False
    aliases: tuple[str, ...] = ()
    hf_id: str = ""
    source: str = ""
    origin: str = ""

    def recipe(self, dtype: str, engine_family: str = "") -> Recipe | None:
        """The published checkpoint ``--dtype dtype`` means for this model on an engine of
        ``engine_family``: a recipe of that type (any FP4 for "fp4") made for that engine first, then
        one made for any engine; None when the model publishes none of that type."""
        fp4 = ("fp4", "nvfp4", "mxfp4")
        matches = [r for r in self.recipes if r.dtype == dtype or (dtype == "fp4" and r.dtype in fp4)]
        for r in matches:
            if engine_family and engine_family in r.engines:
                return r
        return next((r for r in matches if not r.engines), None)

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.attention == "mla"

    def stage_share(self, pp: int) -> float:
        """Share of the layers the busiest of ``pp`` pipeline stages holds: ceil(L / pp) / L (1 / pp when
        pp divides L; 80 layers on 72 stages put 2 on some: 1/40)."""
        return math.ceil(self.layers / pp) / self.layers if pp > 1 and self.layers else 1.0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def ffn_dense_layers(self) -> int:
        return self.dense_layers if self.is_moe else self.layers

    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.sliding_layers - self.chunked_layers


@record
class Engine:
    """A serving engine's efficiency relative to the device's fitted factors, plus fixed overheads.

    ``step_overhead_s`` is the per-step scheduling/launch time that no roofline sees.
    """

    key: str
    name: str
    compute_scale: float = 1.0
    memory_bw_scale: float = 1.0
    step_overhead_s: float = 0.0
    memory_reserve_fraction: float = 0.10  # share of device memory kept from weights and KV (vLLM 1 - gpu_memory_utilization)
    max_running_requests: int = 1024  # the engine's cap on sequences in one batch
    memory_reserve_bytes: float = 0.0  # fixed reserve per GPU: activations at the token budget, CUDA graphs, workspace
    memory_reserve_bytes_per_rank: float = 0.0  # reserve per GPU of the group (SGLang: P/2 GB, P = TP x PP)
    kv_free_fraction: float = 1.0  # share of the memory left after weights and reserve that becomes KV cache
    small_max_running_requests: int = 0  # the cap on devices under ``small_memory_bytes`` (0: the same cap)
    small_memory_bytes: float = 0.0
    prefill_chunk_tokens: int = 8192  # token budget per step (decode tokens + prompt tokens)
    chunked_prefill: bool = False  # default: prompts split to fill the budget; else whole prompts batched up to it
    mixed_prefill: bool = True  # prompts ride in the decode steps; False: prefill-only steps run first, decode waits
    schedules_ahead_from: str = ""  # first version that schedules step k + 1 while step k runs ("": none does)
    schedules_ahead: bool = False  # this version does: an arriving request waits for the step already prepared
    mla_kernels_from: str = ""  # first version that caches MLA's latent ("": every version does)
    mla_kernels: bool = True  # this version does; else it caches MLA's per-head keys and values (Model.mla_cache)
    kv_admission: str = "full"  # KV reserved per admitted request: "full" (input + output) | "average" (input + output/2)
    moe_tokens_half: float = 100.0  # tokens per expert at which grouped expert GEMMs reach half their efficiency
    step_overhead_per_seq_s: float = 10e-6  # CPU time per sequence per step (scheduler, sampler)
    step_overhead_per_layer_s: float = 0.0  # launch floor of a layer's kernels per step (catalog default 20 us)
    checkpoint_kv_cache: bool = False  # uses the KV type a checkpoint carries scales for (TensorRT-LLM), else bf16
    adp_prefill_balance: float = 0.0  # share of attention-DP ranks' prefill imbalance its scheduler removes (0: none)
    moe_layer_overhead_s: float = 0.0  # fixed cost of an MoE layer's path per step beyond the launch floor
    ttft_overhead_s: float = 0.0  # a served request's fixed time to its first token outside the steps
    source: str = ""
    fitted_on: str = "default"
    origin: str = ""
    family: str = ""  # the engine this profile is a generation of (vllm, sglang, trtllm, ...)
    built_from: str = ""  # a vendor build (vLLM's ROCm backend): the profile whose CPU side it runs
    version_from: str = ""  # first version the profile covers ("" = the oldest)
    version_before: str = ""  # first version it no longer covers ("" = the newest)
    version_note: str = ""  # how a NAME@VERSION request was resolved to this profile
    speculative: tuple[str, ...] = ()  # speculative decoding methods the engine serves (mtp, eagle, draft)

    @property
    def version_range(self) -> str:
        """``0.8 <= v < 1.0`` style text of the versions this profile covers."""
        lo = f"{self.version_from} <= " if self.version_from else ""
        hi = f" < {self.version_before}" if self.version_before else ""
        return f"{lo}v{hi}" if (lo or hi) else "all versions"


@record
class Precision:
    """Storage types of the weights, the KV cache and the activations; each weight component may have
    its own (a checkpoint's :class:`Recipe`): None takes ``weights``. ``recipe`` names the published
    checkpoint whose types these are ("" none: every matmul in ``weights``), ``kv_source`` why the KV
    cache has its type (the front end prints both)."""

    weights: str
    kv_cache: str = "bf16"
    activations: str = "bf16"
    experts: str | None = None  # routed experts; None: same as weights
    dispatch: str = "fp8"  # MoE all-to-all dispatch payload (DeepSeek: FP8)
    combine: str = "bf16"  # MoE all-to-all combine payload (DeepSeek: BF16)
    attention: str | None = None  # attention projections (q, k, v, o; MLA's low-rank projections)
    dense: str | None = None  # dense MLPs (every layer of a dense model, the first layers of DeepSeek)
    shared: str | None = None  # shared experts
    mtp: str | None = None  # the multi-token prediction module, when speculating with it
    dense_16bit_layers: int = 0  # dense MLP layers kept in 16-bit whatever ``dense`` says
    recipe: str = ""
    kv_source: str = ""

    @property
    def expert_weights(self) -> str:
        return self.experts or self.weights

    @property
    def attention_weights(self) -> str:
        return self.attention or self.weights

    @property
    def dense_weights(self) -> str:
        return self.dense or self.weights

    @property
    def shared_weights(self) -> str:
        return self.shared or self.weights

    def components(self) -> dict[str, str]:
        """The type of every weight component (what ``--explain`` and the resolved inputs show)."""
        return {"attention": self.attention_weights, "dense_mlp": self.dense_weights, "shared_experts": self.shared_weights,
                "routed_experts": self.expert_weights, **({"mtp": self.mtp} if self.mtp else {}),
                **({"dense_16bit_layers": str(self.dense_16bit_layers)} if self.dense_16bit_layers else {})}

    def for_mtp(self) -> "Precision":
        """The types of the MTP module: the recipe's ``mtp`` type for all its matmuls (NVIDIA's DeepSeek
        FP4 keeps it in BF16), else these."""
        if not self.mtp:
            return self
        m = self.mtp
        return Precision(m, self.kv_cache, self.activations, m, self.dispatch, self.combine, m, m, m, None, 0,
                         self.recipe, self.kv_source)


@record
class Deployment:
    """``n_gpus`` devices of one kind serving one model: replicas of ``tp``-way tensor parallel x
    ``pp`` pipeline stages.

    Replicas (data parallel) = n_gpus / (tp * pp). ``ep`` > 1 spreads routed experts over ``ep`` GPUs
    (with attention data-parallel, as in DeepSeek-style serving).
    """

    hardware: Hardware
    n_gpus: int
    tp: int
    ep: int = 1
    attention_dp: bool = False
    pp: int = 1  # pipeline stages: each holds layers / pp

    @property
    def replicas(self) -> int:
        return self.n_gpus // (self.tp * self.pp)

    @property
    def label(self) -> str:
        return f"{self.n_gpus}x{self.hardware.key}"
