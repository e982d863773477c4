"""Many tenants on one base model: N LoRA adapters, their memory, and their FLOP and bytes per step.

A LoRA adapter (Hu et al. 2021, arXiv:2106.09685) adds B A x to a frozen weight W (d_out x d_in),
with A: r x d_in and B: d_out x r, so per adapter

    params = sum over target modules and their layers of r (d_in + d_out)

Llama-3-8B, r = 16 on q, k, v, o (D = 4096, K hd = 1024, L = 32):
16 x (2 (4096 + 4096) + 2 (4096 + 1024)) x 32 = 13.6e6 parameters, 27.3 MB in bf16 (0.17% of 16 GB).

Serving (S-LoRA, Sheng et al. 2023, arXiv:2311.03285; Punica, Chen et al. 2023, arXiv:2310.18547):
the base weights are read once per step for the whole batch, and a batched adapter kernel (Punica
SGMV / BGMV, S-LoRA MBGMM) adds every sequence's own B A x. Per target module a step of T tokens
from sequences using d distinct adapters costs

    FLOP  = 2 T r (d_in + d_out)                     (x A: 2 d_in r, then (x A) B: 2 r d_out per token)
    bytes = d r (d_in + d_out) b_w + T (d_in + d_out) b_a     (each distinct adapter read once)

so adapters are cheap while d x adapter bytes << weight bytes, and their reads approach the base
weights' when many distinct adapters share each batch. A batch of s sequences drawn from N tenants,
the i-th most popular with probability p_i (uniform, or Zipf p_i ~ i^-alpha), holds

    E[d] = sum_i (1 - (1 - p_i)^s)        (uniform: N (1 - (1 - 1/N)^s); the occupancy expectation)

distinct adapters. Routed experts carry one adapter per expert (vLLM's fused-MoE LoRA); an adapter's
T / d tokens touch E (1 - (1 - k/E)^(T/d)) of them, as for the base experts (a token misses a given
expert with probability 1 - k/E, so T/d independent tokens all miss it with (1 - k/E)^(T/d)).
Under tensor parallelism the adapters shard as vLLM does: column-parallel modules (q, k, v, gate, up)
keep A whole and split B, row-parallel ones (o, down) split A and keep B; the LoRA output joins the
base output before its all-reduce (no extra collective; S-LoRA's own TP scheme adds a small one).

Memory: adapters on the GPU take room from the KV cache (fewer requests run at once). With a cache of
M adapter slots per GPU (S-LoRA keeps all adapters in host memory and the active ones on the GPU),
the M most requested stay resident and a request for another misses, with probability

    miss = 1 - sum_{i <= M} p_i,

and loads its adapter shard over the host link (PCIe Gen5 x16: 64 GB/s per direction) before its
prefill: TTFT += miss x bytes / host B/s. The loaded adapter stays beside its request while it runs
(S-LoRA's unified pool of KV and adapter pages): each running request takes miss x bytes more.
Loads for other requests overlap compute (S-LoRA prefetch), so the host link only caps throughput
when it is busy: utilisation = requests/s x miss x bytes / B/s; above 1, requests/s scale down by it. dLoRA (Wu et al., OSDI 2024) merges a hot adapter into the base
weights instead; not modelled (its unmerged batched mode is this one).

Assumes: every request uses one adapter, drawn independently; a batch's adapters are on the GPU;
adapter kernels reach the device's matmul and bandwidth fractions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from tokecon.errors import TokeconError
from tokecon.physics.operations import Op, expected_experts_touched
from tokecon.physics.scenario import Scenario
from tokecon.physics.specs import Model
from tokecon.records import record
from tokecon.units import dtype_bytes

if TYPE_CHECKING:
    from tokecon.serving.batching import ServingTimes

ATTENTION = ("q", "k", "v", "o")
MLP = ("gate", "up", "down")
TARGET_SETS = {"qkvo": ATTENTION, "attn": ATTENTION, "mlp": MLP, "all": ATTENTION + MLP}
MAX_ADAPTERS = 1_000_000


@record
class LoraAdapters:
    """``adapters`` LoRA adapters of rank ``rank`` on ``targets`` (q k v o gate up down), served on
    one base model; :mod:`tokecon.serving.lora` has their FLOP, bytes and memory. A request picks
    the i-th most popular adapter with probability proportional to i^-``zipf_alpha`` (0: uniform).
    ``gpu_slots`` adapters stay on each GPU (None: all); the rest load over the host link on a miss."""

    adapters: int
    rank: int
    targets: tuple[str, ...] = ("q", "k", "v", "o")
    zipf_alpha: float = 0.0
    gpu_slots: int | None = None
    dtype: str = "bf16"
    host_link_b_s: float = 64e9  # per direction, per GPU: PCIe Gen5 x16

    @property
    def resident(self) -> int:
        """Adapters held on each GPU."""
        return self.adapters if self.gpu_slots is None else min(self.gpu_slots, self.adapters)

    def extra_weight_bytes_per_gpu(self, scn: Scenario) -> float:
        """Adapter bytes held on each GPU: all adapters, or the ``gpu_slots`` cached ones."""
        return self.resident * adapter_bytes_per_gpu(scn)

    def extra_kv_bytes_per_seq(self, scn: Scenario, context: np.ndarray) -> float:
        """GPU bytes a running request adds beside its KV cache: its adapter when that was swapped in,
        miss x adapter bytes (an upper bound: requests sharing a cold adapter hold it once); 0 when all
        adapters are resident."""
        return 0.0 if self.resident >= self.adapters else miss_rate(self) * adapter_bytes_per_gpu(scn)

    def extra_operations(self, scn: Scenario, tokens: np.ndarray, sequences: np.ndarray) -> list[Op]:
        """The adapter kernels of the step (:func:`lora_operations`)."""
        return lora_operations(scn, tokens, sequences)



@record
class Module:
    """One adapted weight on one GPU: ``d_in`` x ``d_out`` as that GPU holds its adapter
    (A: r x d_in, B: d_out x r), in ``layers`` layers, ``copies`` of it per layer (routed experts)."""

    name: str
    group: str  # attn | mlp | experts: the step operation it adds to
    d_in: float
    d_out: float
    layers: int
    copies: float = 1.0


def parse_targets(text: str) -> tuple[str, ...]:
    """``qkvo``, ``attn``, ``mlp``, ``all`` or a comma list of q, k, v, o, gate, up, down."""
    key = text.strip().lower()
    if key in TARGET_SETS:
        return TARGET_SETS[key]
    names = tuple(dict.fromkeys(p.strip() for p in key.split(",") if p.strip()))
    bad = [n for n in names if n not in ATTENTION + MLP]
    if not names or bad:
        raise TokeconError(f"--lora-targets {text!r}: use qkvo, mlp, all or a comma list of "
                           f"{', '.join(ATTENTION + MLP)}")
    return names


def parse_popularity(text: str) -> float:
    """``uniform`` -> 0; ``zipf`` -> 1; ``zipf:1.2`` -> 1.2 (the Zipf exponent alpha)."""
    key = text.strip().lower()
    if key == "uniform":
        return 0.0
    if key == "zipf":
        return 1.0
    if key.startswith("zipf:"):
        try:
            alpha = float(key[5:])
        except ValueError:
            alpha = -1.0
        if np.isfinite(alpha) and 0.0 <= alpha <= 10.0:
            return alpha
    raise TokeconError(f"--popularity {text!r}: use uniform, zipf or zipf:ALPHA with 0 <= ALPHA <= 10")


def check(lora: LoraAdapters, model: Model) -> None:
    """Bad adapter settings as one line each (exit 2)."""
    if not 1 <= lora.adapters <= MAX_ADAPTERS:
        raise TokeconError(f"--adapters must be between 1 and {MAX_ADAPTERS:,}, got {lora.adapters}")
    if lora.rank < 1 or lora.rank > model.hidden_size:
        raise TokeconError(f"--lora-rank must be between 1 and {model.key}'s width {model.hidden_size}, got {lora.rank}")
    if lora.gpu_slots is not None and lora.gpu_slots < 1:
        raise TokeconError(f"--adapter-slots must be at least 1, got {lora.gpu_slots}")
    if not lora.host_link_b_s > 0:
        raise TokeconError("--host-link-gb-s must be positive")
    if model.is_mla and set(lora.targets) & set(ATTENTION):
        raise TokeconError(f"{model.key} has MLA attention, whose low-rank projections are not modelled as "
                           "LoRA targets; use --lora-targets mlp")


def modules(model: Model, targets: tuple[str, ...], tp: int = 1, ep: int = 1) -> list[Module]:
    """The adapted weights as one GPU of a ``tp``-way group (routed experts over ``ep`` GPUs) holds
    their adapters: column-parallel (q k v gate up) split d_out by tp, row-parallel (o down) d_in.
    A plain (ungated) MLP has no gate to adapt."""
    D, H, K, hd, L = model.hidden_size, model.heads, model.kv_heads, model.head_dim, model.layers
    kv_out = np.ceil(K / tp) * hd  # KV heads replicate when fewer than tp
    shapes = {"q": (D, H * hd / tp), "k": (D, kv_out), "v": (D, kv_out), "o": (H * hd / tp, D)}
    out = [Module(n, "attn", *shapes[n], L) for n in ATTENTION if n in targets]
    ffn = [n for n in MLP if n in targets and (n != "gate" or model.mlp == "gated")]

    def mlp(group: str, width: float, layers: int, copies: float = 1.0) -> list[Module]:
        return [Module(n, group, *((width / tp, D) if n == "down" else (D, width / tp)), layers, copies) for n in ffn]

    if model.ffn_dense_layers:
        out += mlp("mlp", model.intermediate_size, model.ffn_dense_layers)
    if model.is_moe:
        if model.shared_experts:
            out += mlp("mlp", model.shared_experts * model.shared_expert_intermediate_size, model.moe_layers)
        out += mlp("experts", model.expert_intermediate_size, model.moe_layers, model.experts / ep)
    return out


def adapter_params(model: Model, lora: LoraAdapters, tp: int = 1, ep: int = 1) -> float:
    """Parameters of one adapter (on one GPU of a tp group / ep group; whole with tp = ep = 1)."""
    return sum(lora.rank * (m.d_in + m.d_out) * m.layers * m.copies for m in modules(model, lora.targets, tp, ep))


def _split(scn: Scenario) -> tuple[int, int]:
    dep = scn.deployment
    return (1 if dep.attention_dp else dep.tp), max(dep.ep, 1)


def adapter_bytes_per_gpu(scn: Scenario) -> float:
    """Bytes of one adapter on one GPU (its tp / ep shard, the busiest pipeline stage's layers)."""
    assert scn.lora is not None
    tp, ep = _split(scn)
    return adapter_params(scn.model, scn.lora, tp, ep) * dtype_bytes(scn.lora.dtype) * scn.model.stage_share(scn.deployment.pp)


def popularity(adapters: int, alpha: float) -> np.ndarray:
    """Request share of each adapter, most popular first: p_i ~ i^-alpha (alpha 0: uniform)."""
    w = np.arange(1, adapters + 1, dtype=float) ** -alpha
    return w / w.sum()


def expected_distinct(adapters: int, alpha: float, draws: np.ndarray) -> np.ndarray:
    """Expected distinct adapters among ``draws`` requests: sum_i 1 - (1 - p_i)^s (uniform closed form)."""
    s = np.asarray(draws, dtype=float)
    if alpha == 0.0 or adapters == 1:
        return adapters * (1.0 - (1.0 - 1.0 / adapters) ** s)
    p = popularity(adapters, alpha)
    total = np.zeros(s.shape)
    for start in range(0, adapters, 1 << 15):  # chunks of adapters bound the memory, not a loop over points
        chunk = p[start:start + (1 << 15)]
        total = total - np.expm1(s[..., None] * np.log1p(-chunk)).sum(axis=-1)
    return total


def miss_rate(lora: LoraAdapters) -> float:
    """Share of requests whose adapter is not among the ``resident`` most popular: 1 - sum_{i<=M} p_i."""
    if lora.resident >= lora.adapters:
        return 0.0
    return max(float(1.0 - popularity(lora.adapters, lora.zipf_alpha)[: lora.resident].sum()), 0.0)


def lora_operations(scn: Scenario, tokens: np.ndarray, sequences: np.ndarray) -> list[Op]:
    """The adapter kernels of one step on one device: ``tokens`` through every target module from
    ``sequences`` requests (one TP group, or one GPU under attention data parallelism); one op per
    group (``lora/attn``, ``lora/mlp``, ``lora/experts``), totalled over layers (module docstring)."""
    lora = scn.lora
    assert lora is not None
    tp, ep = _split(scn)
    N = np.asarray(tokens, dtype=float)
    r, wb, ab = lora.rank, dtype_bytes(lora.dtype), dtype_bytes(scn.precision.activations)
    m = scn.model
    ops: list[Op] = []
    for group in ("attn", "mlp", "experts"):
        mods = [x for x in modules(m, lora.targets, tp, ep) if x.group == group]
        if not mods:
            continue
        width = sum((x.d_in + x.d_out) * x.layers for x in mods)  # per copy, over layers
        if group == "experts":
            k = m.experts_per_token
            seen = np.asarray(sequences, dtype=float) * ep  # the experts see the tokens of all ep GPUs
            distinct = expected_distinct(lora.adapters, lora.zipf_alpha, seen)
            per_adapter = N * ep / np.maximum(distinct, 1e-9)
            touched = distinct * expected_experts_touched(m.experts, k, per_adapter) / ep
            flop = 2.0 * N * k * r * width
            traffic = touched * r * width * wb + N * k * width * ab
        else:
            distinct = expected_distinct(lora.adapters, lora.zipf_alpha, sequences)
            flop = 2.0 * N * r * width
            traffic = distinct * r * width * wb + N * width * ab
        ops.append(Op(f"lora/{group}", flop, traffic, lora.dtype))
    return ops


@record
class TenantServing:
    """One shared deployment serving N tenants' adapters against a dedicated deployment per tenant.

    Throughput and TTFT of ``shared`` are before the host-link cap and the adapter loads; the
    properties apply them. Arrays broadcast over the concurrency points."""

    shared: ServingTimes  # with the adapters
    dedicated: ServingTimes  # each tenant on its own deployment at its share of the load (axis 0: tenants)
    adapter_step_s: np.ndarray  # time of the adapter kernels in a decode step at the running batch
    adapter_step_bytes: np.ndarray  # bytes they move (the distinct adapters' weights and activations)
    distinct: np.ndarray  # expected distinct adapters in that step
    miss: float  # share of requests whose adapter loads over the host link
    load_s: float  # time to load one adapter shard over the host link

    @property
    def host_link_utilisation(self) -> np.ndarray:
        """Busy share of the host link: loads per second per serving unit x load time."""
        return self.shared.requests_s / self.shared.units * self.miss * self.load_s

    @property
    def throttle(self) -> np.ndarray:
        """Factor (<= 1) the host link leaves of the shared deployment's request rate."""
        return 1.0 / np.maximum(self.host_link_utilisation, 1.0)

    @property
    def total_tok_s(self) -> np.ndarray:
        return self.shared.total_tok_s * self.throttle

    @property
    def output_tok_s(self) -> np.ndarray:
        return self.shared.output_tok_s * self.throttle

    @property
    def ttft_s(self) -> np.ndarray:
        return self.shared.ttft_s + self.miss * self.load_s

    @property
    def dedicated_total_tok_s(self) -> np.ndarray:
        """Tokens per second of all N dedicated deployments together (they cost N times one)."""
        return self.dedicated.total_tok_s.sum(axis=0)


def serve_tenants(
    scn: Scenario, lora: LoraAdapters, concurrency: np.ndarray, input_len: float, output_len: float
) -> TenantServing:
    """N tenants, ``concurrency`` requests in flight in all, on one deployment of ``scn`` with the
    adapters; and each tenant i on its own copy of the deployment without them (its fine-tune merged
    into its own weights) at its share of the load, concurrency x p_i."""
    from tokecon.serving import batching as serving

    check(lora, scn.model)
    shared_scn = replace(scn, lora=lora)
    C = np.asarray(concurrency, dtype=float)
    shared = serving.serve(shared_scn, C, input_len, output_len)
    shares = popularity(lora.adapters, lora.zipf_alpha).reshape((-1,) + (1,) * C.ndim)
    dedicated = serving.serve(replace(scn, lora=None), C * shares, input_len, output_len)
    step = shared.decode
    zero = np.zeros_like(step.step_time_s)
    adapter_s = sum((v for name, v in step.breakdown_s.items() if name.startswith("lora/")), zero)
    adapter_b = sum((v for name, v in step.breakdown_bytes.items() if name.startswith("lora/")), zero)
    running = np.maximum(shared.running / shared.units, 1.0)
    return TenantServing(
        shared, dedicated, adapter_s, adapter_b, expected_distinct(lora.adapters, lora.zipf_alpha, running),
        miss_rate(lora), adapter_bytes_per_gpu(shared_scn) / lora.host_link_b_s,
    )
