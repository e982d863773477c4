"""Time of a step from its operations: the roofline of each operation, summed, plus communication
and a fixed per-step overhead.

    t_op   = max(FLOP / (peak_FLOP/s * compute_eff), bytes / (peak_B/s * bandwidth_eff))

(a dense GEMM's max is rounded near its ridge, as measured GEMMs are: tokecon.physics.efficiency).

Attention reads the KV cache in scattered pages rather than streaming weights, and reaches a
lower fraction of peak bandwidth (H100: ~2.8 TB/s for weights vs ~1.4 TB/s for paged KV reads,
Nsight Compute figures in a single-author blog, https://mikamirai.com/blog/gpu-memory-bandwidth/),
so KV-cache operations have their own bandwidth efficiency.
A device with slower memory tiers (Cerebras MemoryX) reads its weights at the bandwidth their
placement allows (:func:`tokecon.physics.memory.tier_placement`).
    t_step = sum(t_op) + t_comm + t_overhead

Summing per-operation maxima is more faithful than the max of the totals: at batch 128 the
matmuls may be balanced while attention stays memory-bound: at batch b a bf16 matmul does b FLOP
per weight byte (2b FLOP per 2-byte weight), near H100's ridge of 989e12 / 3.35e12 = 295 FLOP per byte
when b is in the hundreds, while attention reads each sequence's own bf16 cache at heads / kv_heads
FLOP per byte whatever the batch.
The weights' share of the bytes is kept apart (``weight_bytes``, ``weight_read_s``): the time to
read every weight once, the article's "141/3350 = 0.04 s" for Llama 3.3 70B on one H100, which a
prefill's total memory time (activations, KV) can hide.
Each operation's time is attributed to the resource that bound it; the step is "compute",
"memory" or "communication"-bound by whichever share is largest.
"""

from __future__ import annotations


import numpy as np

from tokecon.physics import comms
from tokecon.physics import efficiency
from tokecon.physics import memory
from tokecon.physics.operations import Op
from tokecon.physics.scenario import Scenario
from tokecon.records import record

BOUNDS = ("compute", "memory", "communication")
_OP_BOUNDS = np.array(["memory", "compute"])  # an operation's bound, indexed by (compute time >= memory time)


@record
class StepTimes:
    """Times of one step on one device (arrays broadcast over the scenario grid)."""

    flop: np.ndarray
    bytes: np.ndarray
    compute_time_s: np.ndarray  # sum of FLOP / achievable FLOP/s over all operations
    memory_time_s: np.ndarray  # sum of bytes / achievable B/s over all operations
    comm_time_s: np.ndarray
    overhead_s: np.ndarray  # the engine's fixed + per-sequence time of the step
    compute_bound_s: np.ndarray  # time of the operations that compute bound
    memory_bound_s: np.ndarray  # time of the operations that memory bound
    step_time_s: np.ndarray
    breakdown_s: dict[str, np.ndarray]
    breakdown_flop: dict[str, np.ndarray]
    breakdown_bytes: dict[str, np.ndarray]
    latency_s: np.ndarray | None = None  # time until the work is done, when it differs from the step
    breakdown_bound: dict[str, np.ndarray] | None = None  # what bound each operation
    weight_bytes: np.ndarray | float = 0.0  # the part of ``bytes`` that reads weights
    weight_read_s: np.ndarray | float = 0.0  # weight_bytes / achievable B/s: the floor of a step that reads them once

    @property
    def latency(self) -> np.ndarray:
        """Time from the start of the work to its result: the step time, or with pipeline stages
        that a prefill crosses in turn, pp x the stage time (the stages meanwhile serve others)."""
        return self.step_time_s if self.latency_s is None else self.latency_s

    def rounds(self, k: float | np.ndarray, repeated_s: float = 0.0) -> "StepTimes":
        """``k`` of these steps back to back (a pipeline round: every stage runs each micro-batch);
        the engine's per-step overhead is paid once per round, except ``repeated_s`` of it (the
        per-layer launch floor of the stage's layers), which every micro-batch pays."""
        once = self.overhead_s - repeated_s
        return StepTimes(
            self.flop * k, self.bytes * k, self.compute_time_s * k, self.memory_time_s * k, self.comm_time_s * k,
            once + repeated_s * k, self.compute_bound_s * k, self.memory_bound_s * k,
            (self.step_time_s - once) * k + once,
            {n: v * k for n, v in self.breakdown_s.items()}, {n: v * k for n, v in self.breakdown_flop.items()},
            {n: v * k for n, v in self.breakdown_bytes.items()}, None, self.breakdown_bound,
            self.weight_bytes * k, self.weight_read_s * k,
        )

    def plus(self, other: "StepTimes", prefix: str) -> "StepTimes":
        """This step followed by ``other`` in the same iteration; ``other``'s operations are named
        with ``prefix`` in the breakdowns."""
        def merged(a: dict | None, b: dict | None) -> dict | None:
            return None if a is None or b is None else {**a, **{prefix + n: v for n, v in b.items()}}

        return StepTimes(
            self.flop + other.flop, self.bytes + other.bytes, self.compute_time_s + other.compute_time_s,
            self.memory_time_s + other.memory_time_s, self.comm_time_s + other.comm_time_s,
            self.overhead_s + other.overhead_s, self.compute_bound_s + other.compute_bound_s,
            self.memory_bound_s + other.memory_bound_s, self.step_time_s + other.step_time_s,
            merged(self.breakdown_s, other.breakdown_s), merged(self.breakdown_flop, other.breakdown_flop),
            merged(self.breakdown_bytes, other.breakdown_bytes), None, merged(self.breakdown_bound, other.breakdown_bound),
            self.weight_bytes + other.weight_bytes, self.weight_read_s + other.weight_read_s,
        )

    @property
    def bound(self) -> np.ndarray:
        """'compute', 'memory' or 'communication' per grid point."""
        shares = np.stack(np.broadcast_arrays(self.compute_bound_s, self.memory_bound_s, self.comm_time_s))
        return np.asarray(BOUNDS)[np.argmax(shares, axis=0)]


def comm_time_s(op: Op, scn: Scenario) -> np.ndarray:
    """Time of one communication op: all-to-all over EP GPUs (comms.alltoall_time_s, its scale-out
    share from comms.alltoall_copies_per_token), a pipeline send to the next stage (latency + bytes
    / link), or the ring all-reduces of a TP group over the scale-up link when the group fits in
    one domain, else over scale-out. Scale-up bandwidth is what a group of that size gets on the
    device's fabric (comms.scaleup_group_bw_b_s: a mesh gives a TP2 pair one link)."""
    hw, dep, m = scn.hardware, scn.deployment, scn.model
    eff = scn.link_efficiency
    lat = scn.collective_latency_s

    def scaleup(n: int) -> float:
        return comms.scaleup_group_bw_b_s(hw.scaleup_bw_b_s, n, hw.scaleup_topology, hw.scaleup_links)

    if op.link == "alltoall":
        up, out = comms.alltoall_copies_per_token(
            m.experts, m.experts_per_token, dep.ep, hw.scaleup_domain, m.expert_groups, m.expert_groups_per_token
        )
        return comms.alltoall_time_s(
            op.bytes, dep.ep, hw.scaleup_domain, scaleup(min(dep.ep, hw.scaleup_domain)) * eff,
            hw.scaleout_bw_b_s * eff, lat, op.calls, scn.scaleout_latency_s, out / (up + out),
        )
    if op.link == "p2p":  # pipeline: activations to the next stage, one send per step
        link = scaleup(2) if dep.tp * dep.pp <= hw.scaleup_domain else hw.scaleout_bw_b_s
        return op.calls * lat + np.asarray(op.bytes, dtype=float) / (link * eff)
    link = scaleup(dep.tp) if dep.tp <= hw.scaleup_domain else hw.scaleout_bw_b_s  # one TP group
    return comms.allreduce_time_s(op.bytes, dep.tp, link * eff, lat, op.calls)


def op_compute_efficiency(op: Op, scn: Scenario) -> np.ndarray | float:
    """Fraction of peak FLOP/s one operation reaches (tokecon.physics.efficiency): the device x engine
    fraction, times the grouped-GEMM curve for expert GEMMs, capped at the attention kernels'
    measured fraction for the attention core. 1 when ideal."""
    ce = scn.compute_efficiency
    if scn.ideal:
        return ce
    if op.tokens_per_expert is not None:
        return ce * efficiency.grouped_gemm_fraction(op.tokens_per_expert, scn.engine.moe_tokens_half)
    if op.kv_cache:
        return min(ce, efficiency.ATTENTION_COMPUTE_FRACTION)
    if op.gemm_rows is not None:
        return ce * efficiency.tile_fraction(op.gemm_rows, scn.hardware.gemm_tile_rows)
    return ce


def step_times(ops: list[Op], scn: Scenario, overlap_comm: bool = False, sequences: np.ndarray | float = 0.0) -> StepTimes:
    """Roofline of ``ops`` on the scenario's device; ``overlap_comm`` hides communication behind
    compute (two micro-batches, DeepSeek/SGLang style): t = max(sum t_op, t_comm). The engine's overhead is its fixed
    per-step time, plus a per-layer kernel-launch floor x the layers of the stage, plus its
    per-sequence time x ``sequences`` in the step. An expert op takes as long as its busiest rank:
    its FLOP and activation bytes x ``Op.imbalance``, its weight bytes once:
    t = max(t_c x imb, t_m + (imb - 1) (bytes - weight bytes) / B/s). A dense GEMM takes
    (t_c^p + t_m^p)^(1/p) (:func:`tokecon.physics.efficiency.gemm_time_s`), every other op max(t_c, t_m)."""
    hw = scn.hardware
    shape = np.broadcast_shapes(*(np.shape(op.flop) for op in ops), *(np.shape(op.bytes) for op in ops))
    z = np.zeros(shape)
    bw = (memory.tier_placement(scn)[0] if hw.memory_tiers else hw.memory_bw_b_s) * scn.memory_bw_efficiency
    kv_bw: np.ndarray | float = hw.memory_bw_b_s * scn.kv_bw_efficiency
    if hw.memory_tiers:  # the cache the step reads is what each stage holds of its micro-batch: x pp resident
        read = sum((op.bytes for op in ops if op.kind != "comm" and op.kv_cache), z)
        kv_bw = memory.kv_read_bw_b_s(scn, read * scn.deployment.pp) * scn.kv_bw_efficiency
    flop, byts, t_c, t_m, comm, c_bound, m_bound, w_bytes = (z.copy() for _ in range(8))
    br_t: dict[str, np.ndarray] = {}
    br_f: dict[str, np.ndarray] = {}
    br_b: dict[str, np.ndarray] = {}
    br_bound: dict[str, np.ndarray] = {}
    for op in ops:
        if op.kind == "comm":
            t = comm_time_s(op, scn) + z
            comm = comm + t
            br_bound[op.name] = np.full(shape, "communication")
        else:
            imb = 1.0 if scn.ideal else op.imbalance  # the busiest rank's tokens; its weights are read once
            op_bw = kv_bw if op.kv_cache else bw
            tc = op.flop / (hw.peak_flop_s(op.dtype) * op_compute_efficiency(op, scn)) + z
            tm = op.bytes / op_bw + z
            if isinstance(imb, float) and imb == 1.0:  # balanced (every op but the expert GEMMs): the plain roofline
                knee = op.gemm_rows is not None and not scn.ideal  # a dense GEMM: the measured rounded knee
                t = efficiency.gemm_time_s(tc, tm) if knee else np.maximum(tc, tm)
            else:
                t = np.maximum(tc * imb, tm + (imb - 1.0) * (op.bytes - op.weight_bytes) / op_bw)
            on_compute = tc >= tm
            compute_s = np.where(on_compute, t, 0.0)
            t_c, t_m = t_c + tc, t_m + tm
            c_bound, m_bound = c_bound + compute_s, m_bound + (t - compute_s)
            br_bound[op.name] = _OP_BOUNDS[on_compute.astype(np.intp)]
            flop, byts, w_bytes = flop + op.flop, byts + op.bytes, w_bytes + op.weight_bytes
        br_t[op.name] = br_t.get(op.name, 0.0) + t
        br_f[op.name] = br_f.get(op.name, 0.0) + op.flop + z
        br_b[op.name] = br_b.get(op.name, 0.0) + op.bytes + z
    overhead = scn.step_overhead_s + scn.layer_overhead_s + scn.step_overhead_per_seq_s * np.asarray(sequences, dtype=float) + z
    busy = c_bound + m_bound
    step = (np.maximum(busy, comm) if overlap_comm else busy + comm) + overhead
    return StepTimes(flop, byts, t_c, t_m, comm, overhead, c_bound, m_bound, step, br_t, br_f, br_b, None, br_bound,
                     w_bytes, w_bytes / bw)
