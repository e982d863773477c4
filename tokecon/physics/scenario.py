"""A scenario: everything a core function needs (model, deployment, precision, engine), and what
the serving modes contribute to it.

The modes (a speculative draft, LoRA adapters) live in :mod:`tokecon.serving`; the physics never
imports them. A mode is data on the scenario that answers the questions below (the protocols), so
memory, operations and steps add its part without knowing which mode it is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from tokecon.physics.specs import Deployment, Engine, Hardware, Model, Precision
from tokecon.records import record


class Contribution(Protocol):
    """A mode served beside the base model: what it adds on each GPU."""

    def extra_weight_bytes_per_gpu(self, scn: Scenario) -> float:
        """Bytes it holds on each GPU whatever the batch (a draft's weights, resident adapters)."""

    def extra_kv_bytes_per_seq(self, scn: Scenario, context: np.ndarray) -> np.ndarray | float:
        """Bytes it adds per running sequence on each GPU (a draft's KV cache, a swapped-in adapter)."""

    def extra_operations(self, scn: Scenario, tokens: np.ndarray, sequences: np.ndarray) -> list[Any]:
        """Operations (:class:`tokecon.physics.operations.Op`) it adds to a step of ``tokens`` tokens
        from ``sequences`` sequences."""


class Speculating(Contribution, Protocol):
    """Speculative decoding: k drafted tokens per step, verified by the target in one pass."""

    draft_tokens: int
    label: str
    tokens_per_step: float

    def draft_times(self, scn: Scenario, batch: np.ndarray, context: np.ndarray, overlap_comm: bool = False) -> Any:
        """The k draft passes of one token per sequence that precede the verify pass
        (:class:`tokecon.physics.roofline.StepTimes`)."""


@record
class Scenario:
    """Everything a core function needs: model, deployment, precision, engine, efficiency."""

    model: Model
    deployment: Deployment
    precision: Precision
    engine: Engine
    ideal: bool = False
    usd_per_gpu_hour: float | None = None
    eplb: bool = False  # an expert-parallel load balancer with redundant experts (DeepSeek EPLB)
    speculation: Speculating | None = None  # speculative decoding (a draft verified each step)
    lora: Contribution | None = None  # many tenants: LoRA adapters served on the base model

    def __post_init__(self) -> None:
        """The model as the engine runs it: an engine without MLA kernels (vLLM before 0.7.1, engines.toml
        ``mla_kernels_from``) caches an MLA model's per-head keys and values, not its latent
        (``Model.mla_cache = "expanded"``, tokecon.physics.params.kv_bytes_per_token)."""
        cache = "latent" if self.engine.mla_kernels else "expanded"
        if self.model.is_mla and self.model.mla_cache != cache:
            self.__dict__["model"] = replace(self.model, mla_cache=cache)

    @property
    def contributions(self) -> tuple[Contribution, ...]:
        """What the serving modes add to every step and to memory (the draft, the adapters)."""
        return tuple(c for c in (self.speculation, self.lora) if c is not None)

    @property
    def verified_tokens(self) -> float:
        """Tokens per sequence the target computes in a decode step: k + 1 when speculating, else 1."""
        return 1.0 if self.speculation is None else self.speculation.draft_tokens + 1.0

    @property
    def tokens_per_step(self) -> float:
        """Tokens a sequence gains per decode step: the speculation's expected gain, else 1."""
        return 1.0 if self.speculation is None else self.speculation.tokens_per_step

    @property
    def hardware(self) -> Hardware:
        return self.deployment.hardware

    @property
    def compute_efficiency(self) -> float:
        """Fraction of dense peak FLOP/s reached: device factor x engine scale, at most the family's
        measured maximum achievable matmul fraction (tokecon.physics.efficiency.MAMF_FRACTION); 1 when ideal."""
        if self.ideal:
            return 1.0
        from tokecon.physics.efficiency import MAMF_FRACTION

        cap = MAMF_FRACTION.get(self.hardware.family, 1.0)
        return min(cap, self.hardware.efficiency.compute * self.engine.compute_scale)

    @property
    def memory_bw_efficiency(self) -> float:
        return 1.0 if self.ideal else min(1.0, self.hardware.efficiency.memory_bw * self.engine.memory_bw_scale)

    @property
    def kv_bw_efficiency(self) -> float:
        return 1.0 if self.ideal else min(1.0, self.hardware.efficiency.kv_cache_bw * self.engine.memory_bw_scale)

    @property
    def link_efficiency(self) -> float:
        return 1.0 if self.ideal else self.hardware.efficiency.link

    @property
    def collective_latency_s(self) -> float:
        return 0.0 if self.ideal else self.hardware.efficiency.collective_latency_s

    @property
    def scaleout_latency_s(self) -> float:
        """Per-call latency of a collective that leaves the scale-up domain (NIC, switches)."""
        if self.ideal:
            return 0.0
        e = self.hardware.efficiency
        return e.collective_latency_s if e.scaleout_latency_s is None else e.scaleout_latency_s

    @property
    def step_overhead_s(self) -> float:
        return 0.0 if self.ideal else self.engine.step_overhead_s

    @property
    def layer_overhead_s(self) -> float:
        """Kernel-launch floor of the layers one GPU runs per step: ((layers + MoE layers) x the
        per-layer time + MoE layers x the engine's fixed MoE-layer cost) x ceil(L/pp)/L (the busiest
        stage's share); an MoE layer launches about twice a dense layer's kernels (router, top-k,
        token permute or dispatch, two grouped GEMMs, combine), and its MoE path may cost more
        whatever its tokens (``moe_layer_overhead_us``: a Triton fused-MoE kernel's routing, alignment
        and launch, fitted on the engines' MoE rows)."""
        if self.ideal:
            return 0.0
        m, e = self.model, self.engine
        per_step = e.step_overhead_per_layer_s * (m.layers + m.moe_layers) + e.moe_layer_overhead_s * m.moe_layers
        return per_step * m.stage_share(self.deployment.pp)

    @property
    def max_running_requests(self) -> int:
        """The engine's cap on running sequences on this device: vLLM V1 runs 1024 on devices of 70 GiB
        or more and 256 below (engines.toml ``small_max_running_requests``, ``small_memory_gib``)."""
        e = self.engine
        small = e.small_max_running_requests and self.hardware.memory_bytes < e.small_memory_bytes
        return e.small_max_running_requests if small else e.max_running_requests

    @property
    def ttft_overhead_s(self) -> float:
        """A served request's fixed time to its first token that no step sees (the HTTP front end,
        tokenisation, the scheduler's admission, detokenising and streaming the first token)."""
        return 0.0 if self.ideal else self.engine.ttft_overhead_s

    @property
    def step_overhead_per_seq_s(self) -> float:
        return 0.0 if self.ideal else self.engine.step_overhead_per_seq_s

    @property
    def board_power_w(self) -> float:
        """Board power of all devices of the deployment at full load (catalog ``power_w`` x GPUs)."""
        return self.hardware.power_w * self.deployment.n_gpus

    @property
    def all_in_power_w(self) -> float:
        """All-in power of all devices (each GPU with its share of host, NICs and switches, ``all_in_power_w``)."""
        return self.hardware.all_in_power_w * self.deployment.n_gpus

    @property
    def usd_per_hour(self) -> float:
        """Hourly price of all devices of the deployment (rental, or the override per GPU-hour)."""
        per_gpu = self.usd_per_gpu_hour if self.usd_per_gpu_hour is not None else self.hardware.rental_usd_per_hour
        return per_gpu * self.deployment.n_gpus
