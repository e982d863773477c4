"""``tokecon check budget.toml``: named scenarios, each one analysis command with its options and
thresholds, one line each.

A budget file::

    [defaults]                     # optional: options every scenario starts from
    engine = "vllm"

    [scenarios.chat-70b]
    command = "decode"             # any analysis command: compare, decode, prefill, embed, serve, ...
    model = "llama3-70b"
    gpus = "4xH100"                # or a list, as --gpus repeated
    batch = [64]
    context = 4096
    max_usd_per_mtok = 1.00        # thresholds: the command's threshold flags
    max_tpot_ms = 50

Keys are the command's options as declared once for the CLI and the Python API
(tokecon.api.commands), with ``_`` or ``-``: ``pp = 2`` works wherever ``--pp 2`` does. A
threshold the command does not compute is an error, never a silent pass; each threshold is checked
on every row the command produces, and a scenario passes when no row crosses any. Relative paths
(``catalog``, ``cost_file``, ``baseline``, a ``model`` config.json) are relative to the budget file.
Raises :class:`TokeconError` (exit 2) naming the file, the scenario and the key for a bad file.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from tokecon.api import declare
from tokecon.api.commands import ANALYSES
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.records import record
from tokecon.results import METRICS, Column, Result, Thresholds

META_KEYS = ("command", "description")
BY_NAME = {c.name: c for c in ANALYSES}


@record(frozen=False)
class BudgetScenario:
    """One ``[scenarios.NAME]`` table: its command, the options and the thresholds it gives."""

    name: str
    command: str
    description: str
    raw: dict[str, Any]
    thresholds: dict[str, float]


def _hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_budget(data: dict[str, Any], path: Path) -> list[BudgetScenario]:
    """Scenarios from a parsed budget file; one-line errors naming the file, scenario and key."""
    unknown = [k for k in data if k not in ("defaults", "scenarios")]
    if unknown:
        raise TokeconError(f"{path}: unknown top-level key '{unknown[0]}'{_hint(unknown[0], ['defaults', 'scenarios'])} "
                           "(expected [defaults] and [scenarios.NAME] tables)")
    defaults, scenarios = data.get("defaults", {}), data.get("scenarios")
    if not isinstance(defaults, dict):
        raise TokeconError(f"{path}: [defaults] must be a table")
    if not isinstance(scenarios, dict) or not scenarios:
        raise TokeconError(f"{path}: no scenarios; add at least one [scenarios.NAME] table")
    out = []
    for name, table in scenarios.items():
        where = f"{path}: [scenarios.{name}]"
        if not isinstance(table, dict):
            raise TokeconError(f"{where}: must be a table of options and thresholds")
        merged = {**{k.replace("-", "_"): v for k, v in defaults.items()}, **{k.replace("-", "_"): v for k, v in table.items()}}
        command = merged.pop("command", None)
        if not isinstance(command, str) or command not in BY_NAME:
            raise TokeconError(f"{where}: 'command' must be one of {', '.join(BY_NAME)}, got {command!r}")
        description = merged.pop("description", "")
        if not isinstance(description, str):
            raise TokeconError(f"{where}: 'description' must be a string")
        cmd = BY_NAME[command]
        try:
            declare.parse(cmd, merged, "budget", path.parent)  # every key and type checked before anything runs
        except TokeconError as exc:
            raise TokeconError(f"{where}: {exc}") from None
        limits = {k: v for k, v in merged.items() if k in cmd.thresholds}
        if not limits:
            raise TokeconError(f"{where}: no thresholds; add one of {', '.join(cmd.thresholds)}")
        out.append(BudgetScenario(str(name), command, description, merged, {k: float(v) for k, v in limits.items()}))
    return out


def load_budget(path: Path) -> list[BudgetScenario]:
    from tokecon.catalogs.catalog import read_toml
    from tokecon.errors import CatalogError

    try:
        data = read_toml(path, "budget file")
    except CatalogError as exc:  # same one-line messages (syntax error with line, unreadable file)
        raise TokeconError(str(exc)) from None
    return parse_budget(data, path)


def files_read(scenarios: list[BudgetScenario], path: Path) -> list[Path]:
    """Every file the budget reads: itself, and the paths its scenarios name (catalogs, cost files,
    baselines, model config.json files)."""
    out = [path]
    for scn in scenarios:
        opts, _ = declare.parse(BY_NAME[scn.command], scn.raw, "budget", path.parent)
        for name, opt, _ in BY_NAME[scn.command].option_fields():
            value = getattr(opts, name)
            if opt.kind in ("path", "paths") and value is not None:
                out += list(value) if opt.kind == "paths" else [value]
            elif opt.kind == "model" and str(value).lower().endswith(".json"):
                out.append(Path(value))
    return out


# --- running ---------------------------------------------------------------------------------------

COLUMNS = [
    Column("scenario", "scenario", "str"),
    Column("command", "command", "str"),
    Column("status", "status", "str"),
    Column("summary", "checks (worst value, where)", "str"),
]


def _row_label(row: dict[str, Any]) -> str:
    dep = row.get("device") or (f"{row['n_gpus']}x{row['hardware']}" if row.get("hardware") else str(row.get("deployment", "")))
    for k in ("batch", "concurrency", "year"):
        if row.get(k) is not None:
            return f"{dep} {k} {row[k]}".strip()
    if row.get("request_rate") is not None:
        return f"{dep} {row['request_rate']:g} req/s".strip()
    return dep


def _check(name: str, limit: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One threshold over a command's rows: the worst value, where, and the rows that cross it."""
    m = METRICS[name]
    check = f"{m.label} {'<=' if m.upper else '>='} {limit:g}"
    values = [(r[m.row_key] * m.scale, r) for r in rows if r.get(m.row_key) is not None]
    worst = (max if m.upper else min)(values, key=lambda p: p[0]) if values else (None, None)
    single = Thresholds(**{name: limit})
    violations = [f"{_row_label(r)}: {v[0]}" for r in rows if (v := single.check(r))]
    if not rows:
        violations = ["the command produced no rows"]
    return {"threshold": name, "limit": limit, "check": check, "unit": m.unit, "value": worst[0],
            "where": _row_label(worst[1]) if worst[1] else "", "passed": not violations, "violations": violations}


def check_scenario(scn: BudgetScenario, base: Path) -> dict[str, Any]:
    """One scenario run through its command's declaration (the thresholds go to the command, so one it
    cannot compute is refused there): a row with every threshold's check. A deployment that cannot
    hold the model fails every threshold."""
    try:
        result = declare.call(BY_NAME[scn.command], scn.raw, "budget", base)
        checks = [_check(name, limit, result.rows) for name, limit in scn.thresholds.items()]
        sources = dict(result.sources)
    except DoesNotFitError as exc:
        checks = [{"threshold": n, "limit": v, "check": n, "value": None, "where": "", "passed": False,
                   "violations": [f"does not fit: {exc}"]} for n, v in scn.thresholds.items()]
        sources = {}
    failed = [c for c in checks if not c["passed"]]
    shown = failed[0] if failed else checks[0]
    value = "—" if shown["value"] is None else f"{shown['value']:,.4g} {shown.get('unit', '')}".strip()
    summary = (f"{shown['check']}: {value}" + (f" at {shown['where']}" if shown["where"] else "")
               + (f"; {len(checks) - 1} more pass" if not failed and len(checks) > 1 else "")
               + (f"; {len(failed)} of {len(checks)} checks fail" if failed and len(checks) > 1 else ""))
    if failed and shown["value"] is None:
        summary = f"{shown['check']}: {shown['violations'][0]}"
    return {"scenario": scn.name, "command": scn.command, "description": scn.description, "model": scn.raw.get("model"),
            "passed": not failed, "status": "pass" if not failed else "FAIL", "summary": summary, "checks": checks,
            "violations": [f"{c['check']}: {v}" for c in failed for v in c["violations"][:1]], "sources": sources}


def run(o: Any, limits: Thresholds) -> Result:
    """``tokecon check``: tokecon.api.commands.CheckOptions."""
    path = Path(o.budget)
    scenarios = load_budget(path)
    if o.junit is not None:
        refuse_junit(Path(o.junit), files_read(scenarios, path))
    rows, sources = [], {}
    for scn in scenarios:
        try:
            row = check_scenario(scn, path.parent)
        except TokeconError as exc:
            raise TokeconError(f"{path}: [scenarios.{scn.name}]: {exc}") from None
        sources.update(row.pop("sources"))
        rows.append(row)
    failed = [r for r in rows if not r["passed"]]
    checks = sum(len(r["checks"]) for r in rows)
    bad = sum(not c["passed"] for r in rows for c in r["checks"])
    summary = (f"{len(rows) - len(failed)} of {len(rows)} scenarios pass ({checks - bad} of {checks} checks)"
               + (f"; failing: {', '.join(r['scenario'] for r in failed)}" if failed else "") + ".")
    inputs = {"budget_file": str(path), "passed": not failed, "scenarios": len(rows), "checks": checks, "failed": bad}
    result = Result("check", inputs, rows, COLUMNS, group_key=None, notes=[summary], sources=sources,
                    failure=(f"{len(failed)} of {len(rows)} budget scenarios failed (first: {failed[0]['scenario']}: "
                             f"{failed[0]['violations'][0]})") if failed else "")
    if o.junit is not None:
        from tokecon.catalogs.write import atomic_write_text

        try:
            atomic_write_text(Path(o.junit), junit_xml(result))
        except OSError as exc:
            raise TokeconError(f"--junit {o.junit}: cannot write ({exc.strerror or exc})") from None
    return result


def refuse_junit(junit: Path, read: list[Path]) -> None:
    """``--junit`` never replaces a file the budget reads, nor anything that is not a regular file."""
    try:
        if junit.exists() and not junit.is_file():
            raise TokeconError(f"--junit {junit}: not a regular file; name a new report file")
        target = junit.resolve()
        clash = next((p for p in read if Path(p).exists() and Path(p).resolve() == target), None)
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise TokeconError(f"--junit {junit}: unusable path ({getattr(exc, 'strerror', None) or exc})") from None
    if clash is not None:
        what = "the budget file itself" if clash == read[0] else "a file the budget reads"
        raise TokeconError(f"--junit {junit}: is {what}; name a new report file")


# --- JUnit XML --------------------------------------------------------------------------------------

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: Any) -> str:
    from xml.sax.saxutils import escape

    return escape(_XML_BAD.sub("?", str(text)), {'"': "&quot;"})


def junit_xml(result: Result) -> str:
    """A JUnit report: one test case per (scenario, threshold), failures with their violations."""
    cases = [(r, c) for r in result.rows for c in r["checks"]]
    failures = sum(1 for _, c in cases if not c["passed"])
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="tokecon check" tests="{len(cases)}" failures="{failures}">',
           f'  <testsuite name="{_xml(result.inputs.get("budget_file", "budget"))}" tests="{len(cases)}" '
           f'failures="{failures}" errors="0" skipped="0">']
    for r, c in cases:
        out.append(f'    <testcase classname="tokecon.check.{_xml(r["scenario"])}" name="{_xml(c["threshold"] + " (" + c["check"] + ")")}" time="0">')
        if not c["passed"]:
            message = "; ".join(c["violations"])
            out.append(f'      <failure message="{_xml(message)}" type="threshold">{_xml(message)}</failure>')
        shown = "—" if c["value"] is None else f"{c['value']:,.4g} {c.get('unit', '')}".strip()
        out.append(f'      <system-out>{_xml(shown)} at {_xml(c["where"])}</system-out>')
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(out)
