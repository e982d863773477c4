"""``tokecon check budget.toml``: named scenarios, each one command with its options and thresholds.

A budget file::

    [defaults]                     # optional: options every scenario starts from
    engine = "vllm"

    [scenarios.chat-70b]
    command = "decode"             # any command in COMMANDS
    model = "llama3-70b"
    gpus = "4xH100"                # or a list, as --gpus repeated
    batch = [64]
    context = 4096
    max_usd_per_mtok = 1.00        # thresholds: the fields of tokecon.results.Thresholds
    max_tpot_ms = 50

Each command takes the thresholds its CLI flags name (:attr:`CheckCommand.thresholds`, listed by
``tokecon check --help``); one it does not compute is an error, never a silent pass. Each threshold is checked on every row the command produces; a scenario passes when no row
crosses any of its thresholds. Option names are the command's long flags with ``_`` or ``-``.
Relative paths (``catalog``, a ``model`` config.json) are relative to the budget file.

Adding a command is one entry in :data:`COMMANDS`: its option names and types, and a function
``(CommonOptions, options dict, Thresholds) -> Result`` that calls the command's ``run_*``.
Raises :class:`TokeconError` (exit 2) naming the file, the scenario and the key for a bad file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tokecon.budget_thresholds import BY_COMMAND
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.results import METRICS, Column, Result, Thresholds

# option types
INT, FLOAT, STR, BOOL, INT_LIST, STR_LIST, PATH = "int", "float", "str", "bool", "int_list", "str_list", "path"


@dataclass(frozen=True)
class CheckCommand:
    """How ``check`` runs one command: its own options (beyond the common ones) and a runner."""

    run: Callable[[Any, dict[str, Any], Thresholds], Result]
    options: dict[str, str] = field(default_factory=dict)
    thresholds: tuple[str, ...] = ()  # the command's thresholds: its CLI flags, the same names (tests/test_check.py)
    required: tuple[str, ...] = ("model", "gpus")


def _decode(common, o: dict[str, Any], t: Thresholds) -> Result:
    from tokecon.commands.decode import run_decode

    return run_decode(common, o.get("batch"), o.get("context", 2048), t)


def _prefill(common, o: dict[str, Any], t: Thresholds) -> Result:
    from tokecon.commands.prefill import run_prefill

    return run_prefill(common, o.get("batch"), o.get("input_len", 2048), t)


def _embed(common, o: dict[str, Any], t: Thresholds) -> Result:
    from tokecon.commands.embed import run_embed

    return run_embed(common, o.get("batch"), o.get("seq_len"), t, o.get("utilization"))


def _serve(common, o: dict[str, Any], t: Thresholds) -> Result:
    from dataclasses import replace

    from tokecon.commands.arrivals import parse_rates
    from tokecon.commands.disagg import DisaggSpec
    from tokecon.commands.serve import ModeOptions, ServeOptions, list_prices, parse_concurrency, run_serve
    from tokecon.economics.costs import resolve_cost_model

    flags = {"method": o.get("cost"), "usd_per_gpu_hour": common.usd_per_gpu_hour, **{k: o.get(k) for k in _COST_KEYS}}
    costs = resolve_cost_model(Path(o["cost_file"]) if o.get("cost_file") else None, flags)
    modes = ModeOptions(o.get("speculative"), o.get("draft_tokens"), o.get("acceptance"), o.get("prefix_hit", 0.0),
                        list_prices(o.get("price_in"), o.get("price_in_cached"), o.get("price_out")), o.get("range_ratio", 1.0))
    pools = DisaggSpec.given(**{k: o.get(k) for k in _POOL_KEYS})
    opts = ServeOptions(replace(common, usd_per_gpu_hour=None), o.get("ep"), o.get("attention_dp", False),
                        o.get("chunked_prefill"), costs, modes=modes, disagg=pools)
    return run_serve(opts, parse_concurrency(o.get("concurrency")), o.get("input_len", 1024), o.get("output_len", 1024), t,
                     parse_rates(o.get("request_rate")))


_POOL_KEYS = {"prefill_gpus": STR, "prefill_workers": INT, "prefill_layout": STR, "prefill_batch": INT,
              "decode_gpus": STR, "decode_workers": INT, "decode_layout": STR}
_COST_KEYS = ("purchase_usd", "other_capital_ratio", "depreciation_years", "interest_rate", "pue", "usd_per_kwh", "utilisation")

#: command name -> how to run it. Defaults match the CLI's (tests/test_check.py compares them).
COMMANDS: dict[str, CheckCommand] = {
    "decode": CheckCommand(_decode, {"batch": INT_LIST, "context": INT}, BY_COMMAND["decode"]),
    "prefill": CheckCommand(_prefill, {"batch": INT_LIST, "input_len": INT}, BY_COMMAND["prefill"]),
    "embed": CheckCommand(_embed, {"batch": INT_LIST, "seq_len": INT, "utilization": FLOAT}, BY_COMMAND["embed"]),
    "serve": CheckCommand(_serve, {
        "concurrency": STR_LIST, "request_rate": STR_LIST, "input_len": INT, "output_len": INT, "ep": INT, "attention_dp": BOOL,
        "chunked_prefill": INT, "cost": STR, "cost_file": PATH, **{k: FLOAT for k in _COST_KEYS},
        "speculative": STR, "draft_tokens": INT, "acceptance": FLOAT, "prefix_hit": FLOAT, "range_ratio": FLOAT,
        "price_in": FLOAT, "price_in_cached": FLOAT, "price_out": FLOAT, **_POOL_KEYS,
    }, BY_COMMAND["serve"], required=("model",)),  # and gpus, or the prefill and decode pools (run_serve says which)
}


COMMON_OPTIONS: dict[str, str] = {
    "model": STR,
    "gpus": STR_LIST,
    "tp": INT,
    "dtype": STR,
    "kv_dtype": STR,
    "engine": STR,
    "ideal": BOOL,
    "usd_per_gpu_hour": FLOAT,
    "catalog": STR_LIST,
}
META_KEYS = ("command", "description")


def threshold_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Thresholds)]


@dataclass
class Scenario:
    name: str
    command: str
    description: str
    options: dict[str, Any]
    thresholds: dict[str, float]


# --- reading the budget file ----------------------------------------------------------------------


def _coerce(value: Any, kind: str, where: str, key: str, base: Path) -> Any:
    def bad(expected: str) -> TokeconError:
        return TokeconError(f"{where}: '{key}' must be {expected}, got {value!r}")

    if kind == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind == FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if kind == BOOL:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == STR:
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        if key == "model" and value.strip().lower().endswith(".json") and not Path(value).is_absolute():
            candidate = base / value
            return str(candidate) if candidate.is_file() else value
        return value
    if kind == PATH:
        if not isinstance(value, str) or not value.strip():
            raise bad("a file path")
        return str(value if Path(value).is_absolute() else base / value)
    if kind == STR_LIST:
        numbers = {"concurrency": (int,), "request_rate": (int, float)}.get(key, ())  # also "max", "1,2" strings
        items = [value] if isinstance(value, (str, *numbers)) and not isinstance(value, bool) else value
        if isinstance(items, list) and numbers:
            items = [str(v) if isinstance(v, numbers) and not isinstance(v, bool) else v for v in items]
        if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
            raise bad("a string or a non-empty list of strings")
        if key == "catalog":
            return [str(p if Path(p).is_absolute() else base / p) for p in items]
        return items
    if kind == INT_LIST:
        if isinstance(value, str):
            from tokecon.serving.deploy import parse_int_list

            try:
                return parse_int_list(value, key)
            except TokeconError as exc:
                raise TokeconError(f"{where}: {exc}") from None
        items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, list) or not items or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            raise bad("an integer or a non-empty list of integers")
        return items
    raise AssertionError(kind)


def _hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_budget(data: dict[str, Any], path: Path) -> list[Scenario]:
    """Scenarios from a parsed budget file; one-line errors naming the file, scenario and key."""
    unknown = [k for k in data if k not in ("defaults", "scenarios")]
    if unknown:
        raise TokeconError(f"{path}: unknown top-level key '{unknown[0]}'{_hint(unknown[0], ['defaults', 'scenarios'])} "
                           "(expected [defaults] and [scenarios.NAME] tables)")
    defaults = data.get("defaults", {})
    scenarios = data.get("scenarios")
    if not isinstance(defaults, dict):
        raise TokeconError(f"{path}: [defaults] must be a table")
    if not isinstance(scenarios, dict) or not scenarios:
        raise TokeconError(f"{path}: no scenarios; add at least one [scenarios.NAME] table")
    base = path.parent
    out: list[Scenario] = []
    thresholds = threshold_names()
    for name, table in scenarios.items():
        where = f"{path}: [scenarios.{name}]"
        if not isinstance(table, dict):
            raise TokeconError(f"{where}: must be a table of options and thresholds")
        merged = {**{k.replace("-", "_"): v for k, v in defaults.items()}, **{k.replace("-", "_"): v for k, v in table.items()}}
        command = merged.pop("command", None)
        if not isinstance(command, str) or command not in COMMANDS:
            known = ", ".join(sorted(COMMANDS))
            raise TokeconError(f"{where}: 'command' must be one of {known}, got {command!r}")
        spec = COMMANDS[command]
        description = merged.pop("description", "")
        if not isinstance(description, str):
            raise TokeconError(f"{where}: 'description' must be a string")
        allowed = {**COMMON_OPTIONS, **spec.options}
        opts: dict[str, Any] = {}
        limits: dict[str, float] = {}
        for key, value in merged.items():
            if key in thresholds and key not in spec.thresholds:
                raise TokeconError(f"{where}: threshold '{key}' does not apply to command {command} "
                                   f"(its thresholds: {', '.join(spec.thresholds)})")
            if key in thresholds:
                limits[key] = _coerce(value, FLOAT, where, key, base)
            elif key in allowed:
                opts[key] = _coerce(value, allowed[key], where, key, base)
            else:
                raise TokeconError(f"{where}: unknown key '{key}' for command {command}"
                                   f"{_hint(key, [*allowed, *thresholds, *META_KEYS])}")
        for req in spec.required:
            if req not in opts:
                raise TokeconError(f"{where}: missing '{req}'")
        if not limits:
            raise TokeconError(f"{where}: no thresholds; add one of {', '.join(spec.thresholds)}")
        out.append(Scenario(str(name), command, description, opts, limits))
    return out


def load_budget(path: Path) -> list[Scenario]:
    from tokecon.catalogs.catalog import read_toml
    from tokecon.errors import CatalogError

    path = Path(path)
    try:
        data = read_toml(path, "budget file")
    except CatalogError as exc:  # same one-line messages (syntax error with line, unreadable file)
        raise TokeconError(str(exc)) from None
    return parse_budget(data, path)


# --- running ---------------------------------------------------------------------------------------

COLUMNS = [
    Column("scenario", "scenario", "str"),
    Column("command", "command", "str"),
    Column("check", "check", "str"),
    Column("value_display", "worst value", "str"),
    Column("where", "worst at", "str"),
    Column("status", "status", "str"),
]


def _common(opts: dict[str, Any]):
    from tokecon.commands.common import CommonOptions

    return CommonOptions(
        model=opts["model"],
        gpus=tuple(opts.get("gpus", ())),
        tp=opts.get("tp"),
        dtype=opts.get("dtype"),
        kv_dtype=opts.get("kv_dtype"),
        engine=opts.get("engine"),
        ideal=opts.get("ideal", False),
        usd_per_gpu_hour=opts.get("usd_per_gpu_hour"),
        catalogs=tuple(Path(p) for p in opts.get("catalog", ())),
    )


def _row_label(row: dict[str, Any]) -> str:
    dep = f"{row['n_gpus']}x{row['hardware']}" if row.get("hardware") else str(row.get("deployment", ""))
    for k in ("batch", "concurrency"):
        if row.get(k) is not None:
            return f"{dep} {k} {row[k]}".strip()
    if row.get("request_rate") is not None:
        return f"{dep} {row['request_rate']:g} req/s".strip()
    return dep


def _limit_text(name: str, limit: float) -> str:
    m = METRICS.get(name)
    if m is None:
        return f"{name} {limit:g}"
    return f"{m.label} {'<=' if m.upper else '>='} {limit:g}"


def check_scenario(scn: Scenario) -> list[dict[str, Any]]:
    """One row per threshold of the scenario: its limit, the worst value over the command's rows,
    and pass/fail. A deployment that cannot hold the model fails every threshold."""
    spec = COMMANDS[scn.command]
    base = {"scenario": scn.name, "command": scn.command, "description": scn.description,
            "model": scn.options.get("model"), "gpus": list(scn.options.get("gpus", []))}
    try:
        # the scenario's thresholds go to the command, so one it cannot compute is refused there (exit 2)
        result = spec.run(_common(scn.options), scn.options, Thresholds(**scn.thresholds))
        error = None
    except DoesNotFitError as exc:
        result, error = None, str(exc)
    out = []
    for name, limit in scn.thresholds.items():
        row = {**base, "threshold": name, "limit": limit, "check": _limit_text(name, limit)}
        metric = METRICS.get(name)
        row["unit"] = metric.unit if metric else ""
        if result is None:
            out.append({**row, "value": None, "value_display": "—", "where": "", "passed": False,
                        "status": "FAIL", "violations": [f"does not fit: {error}"]})
            continue
        single = Thresholds(**{name: limit})
        crossed = [(r, single.check(r)) for r in result.rows]
        crossed = [(r, v) for r, v in crossed if v]
        worst_row, value = None, None
        if metric:
            values = [(r[metric.row_key] * metric.scale, r) for r in result.rows if r.get(metric.row_key) is not None]
            if values:
                value, worst_row = (max if metric.upper else min)(values, key=lambda p: p[0])
        if crossed and worst_row is None:
            worst_row = crossed[0][0]
        if not result.rows:
            crossed = [({}, ["the command produced no rows"])]
        violations = [f"{_row_label(r)}: {v[0]}" if r else v[0] for r, v in crossed]
        passed = not violations
        out.append({
            **row, "value": value,
            "value_display": "—" if value is None else f"{value:,.4g} {row['unit']}".strip(),
            "where": _row_label(worst_row) if worst_row else "",
            "passed": passed, "status": "pass" if passed else "FAIL", "violations": violations,
            "sources": dict(result.sources),
        })  # fmt: skip
    return out


def run_check(path: Path) -> Result:
    """Run every scenario of the budget file; a TokeconError inside a scenario names it (exit 2)."""
    path = Path(path)
    scenarios = load_budget(path)
    rows: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    for scn in scenarios:
        try:
            these = check_scenario(scn)
        except TokeconError as exc:
            raise TokeconError(f"{path}: [scenarios.{scn.name}]: {exc}") from None
        for r in these:
            sources.update(r.pop("sources", {}))
        rows.extend(these)
    failed = [r for r in rows if not r["passed"]]
    summary = (f"{len(rows) - len(failed)} of {len(rows)} budget checks pass"
               + (f"; failing: {', '.join(sorted({r['scenario'] for r in failed}))}" if failed else ""))
    inputs = {"budget_file": str(path), "passed": not failed, "checks": len(rows), "failed": len(failed),
              "scenarios": [s.name for s in scenarios]}
    return Result("check", inputs, rows, COLUMNS, group_key=None, notes=[summary], sources=sources)


# --- JUnit XML --------------------------------------------------------------------------------------

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: Any) -> str:
    from xml.sax.saxutils import escape

    return escape(_XML_BAD.sub("?", str(text)), {'"': "&quot;"})


def junit_xml(result: Result) -> str:
    """A JUnit report: one test case per (scenario, threshold), failures with their violations."""
    rows = result.rows
    failures = sum(1 for r in rows if not r["passed"])
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="tokecon check" tests="{len(rows)}" failures="{failures}">',
           f'  <testsuite name="{_xml(result.inputs.get("budget_file", "budget"))}" tests="{len(rows)}" '
           f'failures="{failures}" errors="0" skipped="0">']
    for r in rows:
        name = f'{r["threshold"]} ({r["check"]})'
        out.append(f'    <testcase classname="tokecon.check.{_xml(r["scenario"])}" name="{_xml(name)}" time="0">')
        if not r["passed"]:
            message = "; ".join(r["violations"])
            out.append(f'      <failure message="{_xml(message)}" type="threshold">{_xml(message)}</failure>')
        out.append(f'      <system-out>{_xml(r["value_display"])} at {_xml(r["where"])}</system-out>')
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(out)
