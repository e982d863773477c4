"""``tokecon serve``: a workload end to end under continuous batching, at fixed concurrencies
(closed loop), at Poisson arrival rates (open loop, :mod:`tokecon.commands.arrivals`), or on a given
pair of disaggregated pools."""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.commands import arrivals
from tokecon.commands.common import cheapest, resolved_inputs, serving_request, sources, varied
from tokecon.commands.serving import (
    COLUMNS,
    DISAGG_COLUMNS,
    REVENUE_COLUMNS,
    check_workload,
    cost_inputs,
    cost_notes,
    serving_assumptions,
    serving_method,
)
from tokecon.errors import TokeconError
from tokecon.results import Result, Thresholds
from tokecon.serving import batching, disagg, sram
from tokecon.serving.deploy import Deployed, deploy, sized
from tokecon.serving.resolve import parse_gpus, require_fit
from tokecon.serving.points import aggregated, disaggregated, point_rows, pool_label
from tokecon.serving.pools import deploy_pools
from tokecon.serving.request import DisaggSpec
from tokecon.serving.request import ServingRequest
from tokecon.values import powers_of_two


def concurrencies(asked: tuple[int | str, ...] | None, top: int) -> list[int]:
    """The asked values with ``max`` resolved; by default powers of two up to ``top`` (the most that
    run at once), and ``top``."""
    if not asked:
        return powers_of_two(top)
    return [top if c == "max" else int(c) for c in asked]


def _closed_loop(d: Deployed, opts: ServingRequest, asked: tuple | None, inp: int, out: int,
                 notes: list[str]) -> list[dict[str, Any]]:
    scn = d.scenario
    top = int(batching.max_running(scn, inp, out, opts.modes.length_mix)) * scn.deployment.replicas
    chosen = concurrencies(asked, top)
    st = batching.serve(scn, np.asarray(chosen, dtype=float), inp, out, opts.chunked_prefill, **opts.serve_modes())
    over = [c for c in chosen if c > top]
    if over:
        notes.append(f"{d.label}: {top} requests of {inp + out} tokens run at once (KV cache and engine cap); at "
                     f"concurrency {', '.join(map(str, over))} the rest queue and TTFT includes the wait.")
    return point_rows(aggregated(d, st), opts.price_split, list_prices=opts.modes.prices)


def _pools(catalog: Catalog, opts: ServingRequest, spec: DisaggSpec, asked: tuple | None, inp: int,
           out: int) -> tuple[list[dict[str, Any]], list[str], list[Deployed]]:
    """``serve`` on a given disaggregated layout: rows at each concurrency, and what they assume."""
    if opts.common.gpus:
        raise TokeconError("give --gpus (aggregated) or --prefill-gpus and --decode-gpus (disaggregated), not both")
    p, d, x, y = deploy_pools(catalog, opts, spec, inp, out)
    top = int(batching.max_running(d.scenario, inp, out, opts.modes.length_mix)) * d.scenario.deployment.replicas * y
    chosen = sorted(set(concurrencies(asked, top))) if not asked else concurrencies(asked, top)
    st = disagg.serve(p.scenario, d.scenario, x, y, np.asarray(chosen, dtype=float), inp, out, spec.prefill_batch,
                      opts.modes.prefix_hit, opts.modes.length_mix)
    rows = point_rows(disaggregated(p, d, st, opts.modes.prefix_hit, opts.modes.length_mix), list_prices=opts.modes.prices)
    balanced = "given" if spec.prefill.workers and spec.decode.workers else "balanced at the decode pool's largest batch"
    notes = [f"Disaggregated {x}P{y}D ({balanced}): {pool_label(p, x, 'prefill')} + {pool_label(d, y, 'decode')}; "
             f"{int(st.n_gpus.flat[0])} GPUs in all; KV hand-off {float(st.kv_bytes_per_request.flat[0]) / 1e6:,.1f} MB per "
             f"request over the {st.kv_link.flat[0]} link, layer by layer while the prefill runs."]
    return rows, notes, [p, d]


def run(o: Any, limits: Thresholds) -> Result:
    """``tokecon serve``: tokecon.api.commands.ServeOptions."""
    opts = serving_request(o)
    if o.request_rate and o.concurrency:
        raise TokeconError("give --concurrency (requests in flight) or --request-rate (Poisson arrivals per second), not both")
    if o.request_rate and opts.disagg is not None:
        raise TokeconError("--request-rate is modelled for aggregated serving only; serve a disaggregated layout at "
                           "--concurrency or size it with `tokecon capacity --prefill-gpus ... --decode-gpus ...`")
    catalog = opts.common.load()
    inp, out = o.input_len, o.output_len
    check_workload(catalog.models.get(o.model), inp, out)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    method: list[str] = []
    highlight: set[int] = set()
    deployed: list[Deployed] = []
    if opts.disagg is not None:
        rows, notes, deployed = _pools(catalog, opts, opts.disagg, o.concurrency, inp, out)
        best = cheapest(rows)
        highlight = set() if best is None else {best}
    elif not o.gpus:
        raise TokeconError("give --gpus (aggregated) or --prefill-gpus and --decode-gpus (disaggregated)")
    for text in o.gpus:
        d = deploy(catalog, opts, sized(catalog, opts, parse_gpus(text, catalog), inp + out), inp + out)
        deployed.append(d)
        require_fit(d.scenario, inp + out)
        if o.request_rate:
            these, ol = arrivals.rate_rows(d, opts, list(o.request_rate), inp, out)
            notes += [n for n in arrivals.rate_notes(d, ol, inp, out, opts.modes.range_ratio) if n not in notes]
        else:
            these = _closed_loop(d, opts, o.concurrency, inp, out, notes)
        best = cheapest(these)
        if best is not None:
            highlight.add(len(rows) + best)
        rows.extend(these)
        if sram.is_sram(d.scenario.hardware):
            method += sram.explain(d.scenario, inp + out)
    if highlight:
        r = rows[min(highlight)]
        notes.insert(0, answer(r, f"* {r['deployment']} at {_point(r)}"))
    notes += serving_assumptions(deployed)
    if opts.explain_cost:
        notes += cost_notes(deployed, opts)
    method += serving_method(deployed, opts, opts.disagg is None) + ([arrivals.MODEL_NOTE] if o.request_rate else [])
    inputs = {
        **resolved_inputs(deployed[0].scenario),
        "gpus": [d.scenario.deployment.label for d in deployed],
        **({"disaggregated": {"prefill": rows[0]["prefill_layout"], "decode": rows[0]["decode_layout"],
                              "xpyd": rows[0]["xpyd"]}} if opts.disagg is not None else {}),
        "input_tokens": inp,
        "output_tokens": out,
        "request_rates": list(o.request_rate) if o.request_rate else None,
        "chunked_prefill_tokens": opts.chunked_prefill,
        "max_num_tokens": opts.max_num_tokens,
        "schedules_ahead": deployed[0].scenario.engine.schedules_ahead,
        "price_split": opts.price_split,
        "cost": cost_inputs(deployed, opts),
        **opts.modes.inputs(deployed[0].scenario),
    }
    columns = (DISAGG_COLUMNS if opts.disagg is not None else arrivals.COLUMNS if o.request_rate else COLUMNS)
    columns = columns + (REVENUE_COLUMNS if opts.modes.prices is not None else [])
    result = Result("serve", inputs, rows, columns, notes=notes, highlight=highlight, method=method,
                    sources=sources([d.scenario for d in deployed]))
    return varied(limits.apply(result), o, opts.cost, catalog)


def answer(r: dict[str, Any], head: str) -> str:
    """The cheapest point in one line: its blended, input and output prices and what a user sees."""
    def usd(key: str) -> str:
        return "—" if r.get(key) is None else f"{r[key]:.3g}"

    ttft = "—" if r.get("ttft_s") is None else f"{r['ttft_s'] * 1e3:,.0f}"
    speed = "—" if r.get("tok_s_per_user") is None else f"{r['tok_s_per_user']:.1f}"
    return (f"{head}: {usd('usd_per_mtok')} USD/Mtok blended ({usd('usd_per_mtok_input')} in, {usd('usd_per_mtok_output')} "
            f"out), the cheapest; TTFT {ttft} ms, {speed} tok/s per user.")


def _point(row: dict[str, Any]) -> str:
    rate = row.get("request_rate")
    return f"{rate:g} req/s" if rate is not None else f"concurrency {row['concurrency']}"
