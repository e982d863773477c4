"""What the serving commands (serve, frontier, capacity, compare, fleet) share: their columns, the
workload check, and the notes that say what a serving figure assumes."""

from __future__ import annotations

from typing import Any

from tokecon.economics.money import ListPrices
from tokecon.errors import TokeconError
from tokecon.physics.scenario import Scenario
from tokecon.results import Column, Thresholds
from tokecon.serving import speculative
from tokecon.serving.deploy import Deployed
from tokecon.serving.resolve import check_context
from tokecon.serving.request import ServingRequest
from tokecon.values import positive_ints

ENERGY_COLUMNS = [  # hidden first on a narrow terminal; always in JSON
    Column("joules_per_output_token", "J per out tok", "num", hide=3),
    Column("tok_s_per_mw", "tok/s per MW", "rate", hide=3),
    Column("energy_share", "energy share", "pct", hide=3),
]

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


INTERACTIVE_TOK_S = 10.0  # below this a reader waits on the text


def interactivity_note(label: str, row: dict[str, Any], slo: Thresholds) -> list[str]:
    """A note when no interactivity floor was given and the answer serves each user slower than people read."""
    speed = row.get("tok_s_per_user")
    if slo.min_tok_s_per_user is not None or speed is None or speed >= INTERACTIVE_TOK_S:
        return []
    return [f"{label}: the answer serves {speed:.1f} tok/s per user, below {INTERACTIVE_TOK_S:g} (slower than people read): "
            "cheap but not interactive; --min-tok-s-per-user (e.g. 20) sizes for an interactive service."]


def cost_notes(deployed: list[Deployed], opts: ServingRequest) -> list[str]:
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


def model_note(scn: Scenario, chunk: int | None, budget: int | None = None) -> str:
    """The serving model as the engine profile (or ``--chunked-prefill``, ``--max-num-tokens``) sets it."""
    eng = scn.engine
    source = (f"--chunked-prefill {chunk}" if chunk else f"--max-num-tokens {budget}, {eng.name} scheduling" if budget
              else f"{eng.name} default")
    tokens = chunk or budget or eng.prefill_chunk_tokens
    prefill = (f"prompts in chunks filling {tokens} tokens per step" if chunk or eng.chunked_prefill
               else f"whole prompts batched up to {tokens} tokens per step")
    cap = "no cap on running requests (ideal)" if scn.ideal else f"at most {scn.max_running_requests} running per serving unit"
    admit = ("KV cache admitted at the average footprint (input + output/2); requests the cache cannot carry to "
             "their last token are preempted and re-prefilled" if eng.kv_admission == "average"
             else "KV cache reserved for input + output tokens at admission")
    ahead = ("; the engine prepares each step while the one before runs, so an arriving request also waits for the "
             "step already prepared (one step more of TTFT)" if eng.schedules_ahead else "")
    return (f"Continuous batching at fixed concurrency, steady state: {prefill}, mixed with the decode batch ({source}); "
            f"{cap}; {admit}; TPOT at the running batch with the average context (input + output/2){ahead}; "
            "requests beyond what runs at once queue, and the wait adds to TTFT.")


def disagg_note(decode: Scenario) -> str:
    """The disaggregated serving model (tokecon.serving.disagg), with the decode worker's prepared step
    when its engine schedules ahead."""
    ahead = ("; the decode worker's engine prepares each step while the one before runs, so a request reaching a busy "
             "worker also waits for the step already prepared (one decode step more of TTFT; prefill workers are "
             "modelled without it)" if decode.engine.schedules_ahead else "")
    return ("Disaggregated: TTFT = queue wait + prefill + the KV transfer the layers cannot hide + the decode worker's "
            f"first step{ahead}; TPOT = a pure decode step at the running batch; USD/Mtok in = the prefill pool's cost "
            "over input tokens, out = the decode pool's over output tokens.")


def cost_inputs(deployed: list[Deployed], opts: ServingRequest) -> dict[str, Any]:
    return {"method": opts.cost.method, "per_gpu_hour": {d.cost.hardware: d.cost.as_dict() for d in deployed}}


def check_workload(model: Any, input_len: int, output_len: int) -> None:
    """Input and output lengths a serving command can run: positive, at least two output tokens (the
    prefill gives the first), within the model's context."""
    positive_ints([input_len, output_len], "--input-len/--output-len")
    if output_len < 2:
        raise TokeconError("--output-len must be at least 2 (the prefill gives the first token); use `tokecon prefill` for prompts alone")
    check_context(model, input_len + output_len, "--input-len + --output-len")


def serving_method(deployed: list[Deployed], opts: ServingRequest, aggregated: bool = True) -> list[str]:
    """The method notes of a serving result (for --explain): the batching model (aggregated, or the
    disaggregated pools of ``deployed`` = [prefill, decode]), the modes, how input and output prices
    split, energy, the devices' efficiency and ranges."""
    from tokecon.commands.common import BOUND_NOTE, method_notes
    from tokecon.economics.energy import NOTE as ENERGY_NOTE

    scns = [d.scenario for d in deployed]
    out = [model_note(scns[0], opts.chunked_prefill, opts.max_num_tokens) if aggregated else disagg_note(scns[-1])]
    out += mode_notes(scns[0], opts.modes.prefix_hit, opts.modes.prices) + [split_note(opts.price_split), ENERGY_NOTE]
    return out + method_notes(scns, "decode" if aggregated else "disagg-tpot") + [BOUND_NOTE]


def serving_assumptions(deployed: list[Deployed]) -> list[str]:
    """The engine, efficiency and price each deployment assumes, one line per engine; and when the devices
    are priced from different kinds of price (a chip price with an overhead beside a rack share), that."""
    from tokecon.commands.common import assumptions, cost_label
    from tokecon.economics.costs import scope_note

    lines = assumptions([d.scenario for d in deployed], {d.scenario.hardware.key: cost_label(d) for d in deployed})
    mixed = scope_note([d.scenario.hardware for d in deployed], deployed[0].costs) if len(deployed) > 1 else None
    return lines + ([mixed] if mixed else [])


def crossovers(done: list[Any]) -> list[str]:
    """Where two devices' frontiers (USD/Mtok against tok/s per user) cross: which is cheaper above which
    speed (tokecon.economics.crossover); for each pair of the first four devices."""
    from tokecon.economics.crossover import crossover

    out = []
    for i, a in enumerate(done[:4]):
        for b in done[i + 1:4]:
            cross = crossover(*([(r["tok_s_per_user"], r["usd_per_mtok"]) for r in s.frontier if r.get("usd_per_mtok")]
                                for s in (a, b)))
            if cross is not None:
                above, below = (a, b) if cross.cheaper_above == "a" else (b, a)
                out.append(f"{above.label} cheaper above {cross.tok_s_per_user:,.0f} tok/s per user, {below.label} below "
                           f"(both {cross.usd_per_mtok:.3g} USD/Mtok there).")
    return out
