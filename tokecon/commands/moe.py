"""``tokecon moe``: mixture-of-experts serving at scale, and why the interconnect matters.

Deployed the way DeepSeek's inference system and SGLang's large-scale EP run it: on G GPUs
(``nodes`` x GPUs per node) attention is data-parallel (each GPU serves its own B sequences
and holds their MLA cache), the E routed experts are expert-parallel over all G GPUs (EP = G,
E/G experts per GPU), shared experts and the dense first layers are replicated. Per decode
step and per GPU (:func:`tokecon.physics.operations.step_operations` with ``attention_dp``):

    expert weights read = E_touched(B*G)/G * P_expert * L_moe      E_touched(N) = E(1-(1-k/E)^N)
    expert FLOP         = 2 * B * k * P_expert * L_moe             (the GPU's share of all G*B tokens)
    all-to-all sent     = B * k * D * (b_dispatch + b_combine) * L_moe, of which (G - d)/G
                          crosses the scale-out link (d = scale-up domain), the rest scale-up
    t_step = max(t_compute + t_memory, t_comm) + overhead   with --overlap (two micro-batches)
           = t_compute + t_memory + t_comm + overhead       without

Growing EP divides the expert weights each GPU reads per step over more tokens (per-node
throughput rises) until the all-to-all over the slower scale-out link outlasts the GPU work.

Assumes: balanced, independent routing (no node-limited routing or per-node deduplication of
dispatched tokens: an upper bound on scale-out bytes, as DeepEP's low-latency kernels send).

Worked number: deepseek-v3 (fp8), 64 sequences per GPU at 2048 tokens, 2 nodes of 8 H100
(EP16): each GPU hosts 16 experts, touches all of them, and reads 16 x 44.0e6 x 58 = 40.9 GB
of expert weights per step (15 ms at 2.68 TB/s, i.e. 80% of 3.35 TB/s); it sends 64 x 8 x 7168 x 3 B x 58 = 639 MB,
half of it over InfiniBand (8.0 ms at 40 GB/s).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tokecon.physics import comms
from tokecon.physics import memory
from tokecon.physics import operations
from tokecon.physics import params
from tokecon.fidelity import uncertainty
from tokecon.physics.interconnects import Interconnect, resolve_interconnect, with_interconnect
from tokecon.commands.common import cheapest, cost_fields, resolved_inputs, sources, unfit_fields
from tokecon.serving.request import DeviceRequest
from tokecon.commands.common import assumptions, dated_prices, device_request, method_notes
from tokecon.errors import TokeconError
from tokecon.physics.phases import decode_step, prefill_step
from tokecon.results import Column, Result, Thresholds
from tokecon.serving.resolve import GpuSpec, build_scenario, check_context, check_dtype, parse_gpus
from tokecon.values import positive_ints
from tokecon.physics.specs import Hardware
from tokecon.physics.scenario import Scenario
from tokecon.units import GB

PHASES = ("decode", "prefill")
DEFAULT_BATCH_PER_GPU = {"decode": 64, "prefill": 1}


def moe_scenario(opts: DeviceRequest, catalog, hw: Hardware, n_gpus: int, dispatch: str, combine: str) -> Scenario:
    """Attention data-parallel, experts expert-parallel over all ``n_gpus`` (balanced by EPLB with ``--eplb``)."""
    scn = build_scenario(
        catalog, opts.model, GpuSpec(n_gpus, hw), tp=1, dtype=opts.dtype, kv_dtype=opts.kv_dtype,
        engine=opts.engine, ideal=opts.ideal, usd_per_gpu_hour=opts.usd_per_gpu_hour, ep=n_gpus, attention_dp=True,
        eplb=opts.eplb,
    )
    prec = dataclasses.replace(scn.precision, dispatch=dispatch, combine=combine)
    return dataclasses.replace(scn, precision=prec)


_NUMERIC = (
    "bound", "flop", "bytes", "compute_time_s", "memory_time_s", "compute_bound_s", "memory_bound_s", "comm_time_s",
    "comm_exposed_s", "comm_share", "overhead_s", "step_time_s", "tpot_s", "ttft_s", "tok_s", "tok_s_per_gpu",
    "tok_s_per_node", "tok_s_per_user", "usd_per_hour", "usd_per_mtok", "expert_bytes_per_gpu", "alltoall_bytes_per_gpu",
)  # fmt: skip


def moe_rows(
    scn: Scenario, gpus_per_node: int, link: Interconnect, batches: list[int], context: int, phase: str, overlap: bool
) -> list[dict[str, Any]]:
    """Rows of one deployment size, one per batch per GPU (vectorised over the batches)."""
    m, dep, hw = scn.model, scn.deployment, scn.hardware
    ctx = np.asarray(float(context))
    B = np.asarray(batches, dtype=float)
    if phase == "decode":
        t = decode_step(scn, B, np.full_like(B, float(context)), overlap_comm=overlap)
        tokens = B
    else:
        t = prefill_step(scn, B, np.full_like(B, float(context)), overlap_comm=overlap)
        tokens = B * context
    step = t.step_time_s
    busy = t.compute_bound_s + t.memory_bound_s
    tok_gpu = tokens / step
    touched = operations.expected_experts_touched(m.experts, m.experts_per_token, tokens * dep.ep) / dep.ep
    zero = np.zeros_like(B)
    expert_bytes = t.breakdown_bytes.get("moe/experts", zero) + zero
    a2a_bytes = t.breakdown_bytes.get("comm/dispatch", zero) + t.breakdown_bytes.get("comm/combine", zero) + zero
    max_b = int(memory.max_batch(scn, ctx))
    used = memory.memory_used_per_gpu(scn, B, ctx)
    scaleup_copies, scaleout_copies = comms.alltoall_copies_per_token(
        m.experts, m.experts_per_token, dep.n_gpus, hw.scaleup_domain, m.expert_groups, m.expert_groups_per_token)
    nodes = dep.n_gpus // gpus_per_node
    rows = []
    for i, b in enumerate(batches):
        row: dict[str, Any] = {
            "deployment": f"{gpus_per_node}x {hw.name} per node; scale-out {link.name}, {link.bw_b_s / GB:g} GB/s per GPU",
            "hardware": hw.key,
            "nodes": nodes,
            "gpus_per_node": gpus_per_node,
            "n_gpus": dep.n_gpus,
            "ep": dep.ep,
            "tp": 1,
            "phase": phase,
            "batch": b,
            "context_tokens": context,
            "tokens_per_gpu_per_step": float(tokens[i]),
            "routed_experts_per_gpu": m.experts / dep.ep,
            "experts_touched_per_gpu": float(touched[i]),
            "scaleout_share_of_alltoall": scaleout_copies / (scaleup_copies + scaleout_copies)
            if scaleup_copies + scaleout_copies else 0.0,
            "scaleout_bw_b_s": hw.scaleout_bw_b_s,
            "max_batch": max_b,
            "fits": b <= max_b,
            "memory_used_bytes_per_gpu": float(used[i]),
        }
        if not row["fits"]:
            rows.append({**row, **unfit_fields(_NUMERIC)})
            continue
        total = float(tok_gpu[i]) * dep.n_gpus
        comm = float(t.comm_time_s[i])
        row.update(
            bound=str(t.bound.flat[i]),
            flop=float(t.flop[i]),
            bytes=float(t.bytes[i]),
            compute_time_s=float(t.compute_time_s[i]),
            memory_time_s=float(t.memory_time_s[i]),
            compute_bound_s=float(t.compute_bound_s[i]),
            memory_bound_s=float(t.memory_bound_s[i]),
            comm_time_s=comm,
            comm_exposed_s=max(comm - float(busy[i]), 0.0) if overlap else comm,  # step = max(busy, comm) + overhead
            comm_share=comm / float(busy[i] + comm) if busy[i] + comm > 0 else 0.0,
            overhead_s=float(t.overhead_s[i]),
            step_time_s=float(step[i]),
            tpot_s=float(step[i]) if phase == "decode" else None,
            ttft_s=float(step[i]) if phase == "prefill" else None,
            tok_s=total,
            tok_s_per_gpu=float(tok_gpu[i]),
            tok_s_per_node=float(tok_gpu[i]) * gpus_per_node,
            tok_s_per_user=1.0 / float(step[i]) if phase == "decode" else None,
            expert_bytes_per_gpu=float(expert_bytes[i]),
            alltoall_bytes_per_gpu=float(a2a_bytes[i]),
            **cost_fields(scn, total),
        )
        rows.append(uncertainty.annotate(row, scn, phase))
    return rows


def _columns(phase: str) -> list[Column]:
    word = "out" if phase == "decode" else "in"
    return [
        Column("nodes", "nodes", "int"),
        Column("ep", "EP [GPUs]", "int"),
        Column("tokens_per_gpu_per_step", "tok/GPU/step", "int", hide=1),
        Column("routed_experts_per_gpu", "experts/GPU", "num", hide=2),
        Column("compute_bound_s", "compute [ms]", "time", hide=2),
        Column("memory_bound_s", "memory [ms]", "time", hide=2),
        Column("comm_time_s", "comm [ms]", "time", hide=1),
        Column("step_time_s", "step [ms]", "time"),
        Column("comm_share", "comm share", "pct", hide=1),
        Column("tok_s_per_gpu", f"{word} tok/s/GPU", "rate"),
        Column("tok_s_per_node", f"{word} tok/s/node", "rate", hide=2),
        Column("usd_per_mtok", f"USD/Mtok {word}", "usd"),
        Column("usd_per_mtok", "80% range [USD/Mtok]", "usd_range", hide=1),
        Column("fits", "KV fits", "bool", hide=1),
    ]


def claims_note(rows: list[dict[str, Any]], link: Interconnect, overlap: bool) -> str | None:
    """The two MoE claims, read off the rows of one node type at its first batch size."""
    first_batch = rows[0]["batch"]
    fit = [r for r in rows if r["fits"] and r["batch"] == first_batch]
    if not fit:
        return None
    head = f"{fit[0]['gpus_per_node']}x{fit[0]['hardware']} per node, {first_batch} per GPU"
    best = max(fit, key=lambda r: r["tok_s_per_node"])
    parts = []
    lo = fit[0]
    if len(fit) > 1 and best is lo:
        parts.append(f"per-node output is highest at the smallest EP shown (EP {lo['ep']}, {lo['tok_s_per_node']:,.0f} tok/s)")
    elif len(fit) > 1:
        parts.append(
            f"per-node output goes from {lo['tok_s_per_node']:,.0f} tok/s at EP {lo['ep']} to {best['tok_s_per_node']:,.0f} "
            f"at EP {best['ep']} (the best shown) as each GPU's expert weights read per step fall from "
            f"{lo['expert_bytes_per_gpu'] / GB:.1f} to {best['expert_bytes_per_gpu'] / GB:.1f} GB"
        )
    slow = [r for r in fit if r["comm_time_s"] > r["compute_bound_s"] + r["memory_bound_s"]]
    if slow:
        r = slow[0]
        busy = r["compute_bound_s"] + r["memory_bound_s"]
        parts.append(
            f"from EP {r['ep']} the all-to-all ({r['comm_time_s'] * 1e3:.2f} ms per step, "
            f"{r['scaleout_share_of_alltoall']:.0%} of its bytes over the {link.bw_b_s / GB:g} GB/s scale-out link) "
            f"outlasts compute + memory ({busy * 1e3:.2f} ms): the link, not the GPU, sets the step time"
        )
    else:
        hidden = "hidden behind compute" if overlap else "added to each step"
        parts.append(f"the link keeps up at every size shown (communication at most compute + memory, {hidden})")
    return f"{head}: " + "; ".join(parts) + "."


def layout_note(scn: Scenario, batches: list[int], phase: str) -> str:
    m, prec = scn.model, scn.precision
    parts = [f"{m.shared_experts} shared expert(s)"] if m.shared_experts else []
    parts += [f"the {m.dense_layers} dense first layer(s)"] if m.dense_layers else []
    replicated = ", ".join(parts) + (" and " if parts else "") + "the LM head"
    attn = "MLA" if m.is_mla else "GQA"
    seqs = ", ".join(str(b) for b in batches)
    what = f"{seqs} sequences" if phase == "decode" else f"{seqs} prompts"
    return (
        f"Layout: attention data-parallel ({attn}; each GPU runs {what} over its own KV cache), the {m.experts} routed "
        f"experts (top-{m.experts_per_token}) expert-parallel over all GPUs (EP = GPUs), {replicated} "
        f"replicated; per MoE layer an all-to-all dispatch in {prec.dispatch} and combine in {prec.combine}, each "
        f"token sent to its {m.experts_per_token} experts (no node-limited routing or per-node deduplication: an upper "
        f"bound on scale-out bytes)."
    )


def link_note(hw: Hardware, link: Interconnect, ideal: bool) -> str:
    lat = "no latency (--ideal)" if ideal else (
        f"{(link.latency_s if link.latency_s is not None else hw.efficiency.collective_latency_s) * 1e6:g} us per call"
    )
    return (
        f"{hw.key}: scale-up {hw.scaleup_link} {hw.scaleup_bw_b_s / GB:g} GB/s per GPU within a node of {hw.scaleup_domain} "
        f"({'no latency' if ideal else f'{hw.efficiency.collective_latency_s * 1e6:g} us per call'}); scale-out {link.name}: "
        f"{link.bw_b_s / GB:g} GB/s per GPU, {lat} ({link.source})."
    )


def overlap_note(overlap: bool) -> str:
    if overlap:
        return ("--overlap is on (the default): communication hides behind compute with two micro-batches, as DeepSeek "
                "and SGLang do; step = max(compute + memory, comm) + overhead. --no-overlap adds them.")
    return "--no-overlap: communication adds to each step (step = compute + memory + comm + overhead)."


def unfit_note(rows: list[dict[str, Any]], scn_by_ep: dict[int, Scenario]) -> str | None:
    bad = sorted({r["ep"] for r in rows if not r["fits"]})
    if not bad:
        return None
    ep = bad[0]
    scn = scn_by_ep[ep]
    w = memory.weight_bytes_per_gpu(scn.model, scn.precision, scn.deployment)
    usable = memory.usable_bytes(scn)
    why = "its weights alone do not fit" if w >= usable else "too little is left for the batch's KV cache"
    return (
        f"Rows marked 'does not fit' have no numbers: at EP {ep} each {scn.hardware.key} needs {w / GB:.1f} GB for its "
        f"weights and has {usable / GB:.1f} GB usable: {why}; more nodes spread the experts thinner."
    )


def run(o: Any, limits: Thresholds) -> Result:
    """``tokecon moe``: tokecon.api.commands.MoeOptions."""
    opts = device_request(o)
    catalog = opts.load()
    phase = o.phase
    model = catalog.models.get(opts.model)
    if not model.is_moe:
        raise TokeconError(f"{model.key} is a dense model; `tokecon moe` needs a mixture-of-experts model (try `tokecon decode`)")
    dispatch = check_dtype(o.dispatch_dtype, "--dispatch-dtype")
    combine = check_dtype(o.combine_dtype, "--combine-dtype")
    nodes = positive_ints(list(o.nodes), "--nodes")
    batches = positive_ints(list(o.batch_per_gpu), "--batch-per-gpu") if o.batch_per_gpu else [DEFAULT_BATCH_PER_GPU[phase]]
    context = positive_ints([o.context], "--context")[0]
    check_context(model, context)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    method: list[str] = []
    highlight: set[int] = set()
    scns: list[Scenario] = []
    for text in opts.gpus:
        spec = parse_gpus(text, catalog)
        link = resolve_interconnect(o.interconnect, spec.hardware)
        hw = with_interconnect(spec.hardware, link, spec.count)
        too_many = [n for n in nodes if n * spec.count > model.experts]
        if too_many:
            raise TokeconError(
                f"{too_many[0]} nodes of {spec.label} make EP {too_many[0] * spec.count}, more GPUs than {model.key}'s "
                f"{model.experts} routed experts; use at most {model.experts // spec.count} nodes"
            )
        group: list[dict[str, Any]] = []
        by_ep: dict[int, Scenario] = {}
        for n in nodes:
            scn = moe_scenario(opts, catalog, hw, n * spec.count, dispatch, combine)
            by_ep[scn.deployment.ep] = scn
            group.extend(moe_rows(scn, spec.count, link, batches, context, phase, o.overlap))
        best = cheapest(group)
        if best is not None:
            highlight.add(len(rows) + best)
        rows.extend(group)
        scns.append(next(iter(by_ep.values())))
        notes += filter(None, [claims_note(group, link, o.overlap), unfit_note(group, by_ep)])
        method.append(link_note(hw, link, opts.ideal))
    notes += assumptions(scns, dated_prices(o, scns))
    method = [layout_note(scns[0], batches, phase), overlap_note(o.overlap)] + method + method_notes(scns, phase)
    inputs = {
        **resolved_inputs(scns[0]),
        "phase": phase,
        "gpus_per_node": [parse_gpus(g, catalog).label for g in opts.gpus],
        "nodes": nodes,
        "batch_per_gpu": batches,
        "context_tokens": context,
        "overlap": o.overlap,
        "dispatch_dtype": dispatch,
        "combine_dtype": combine,
        "routed_expert_params": params.expert_params(model),
    }
    result = Result("moe", inputs, rows, _columns(phase), notes=notes, highlight=highlight, sources=sources(scns), method=method)
    return limits.apply(result)
