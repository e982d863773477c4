"""Result tables: plain data that every renderer (Rich, JSON, CSV, Markdown) views the same way.

A :class:`Result` holds rows (dicts of SI values, keys carrying their unit), the columns a
person sees, footnotes, and which rows crossed a threshold. Thresholds given on the command
line are checked here, once, for every command.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any, Callable, Mapping

from tokecon.errors import TokeconError
from tokecon.records import record

#: ``progress(stage, done, total)``: what a long command reports as it goes (the CLI draws a bar)
Progress = Callable[[str, int, int], None]


@record
class Column:
    """A column of the human table: ``key`` into the row, a header with its unit, a format, and how
    early a narrow terminal hides it (``--wide`` and files show every column)."""

    key: str
    header: str
    fmt: str = "num"  # num | int | str | time | bytes | usd | rate | flop | pct | signed_pct | bool
    hide: int = 0  # a terminal too narrow for every column hides the highest first; 0 = always shown


@record(frozen=False)
class Result:
    """What a command answers, as data. ``notes`` follow the table: the answer and why, then the
    assumptions that change it (a handful of lines); ``method`` says how the figures were computed
    and ``details`` holds tables behind it (a step's operations): both shown with ``--explain``.
    ``preface`` tables come before the main one (frontier's answer per device). ``failure`` is the
    one line said when rows cross a threshold (a generic one when empty). ``view``: the table a person
    sees in place of the rows (validate's summary); JSON and CSV keep every row."""

    command: str
    inputs: dict[str, Any]
    rows: list[dict[str, Any]]
    columns: list[Column]
    group_key: str | None = "deployment"
    notes: list[str] = field(default_factory=list)
    highlight: set[int] = field(default_factory=set)
    highlight_reason: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    method: list[str] = field(default_factory=list)
    details: list[Result] = field(default_factory=list)
    preface: list[Result] = field(default_factory=list)
    failure: str = ""
    view: Result | None = None  # what a person sees instead, in tables (a summary of thousands of rows)

    @property
    def failed_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("violations")]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: command, model and resolved inputs, rows, notes (the answer and its
        assumptions), method notes, catalog sources."""
        return {
            "command": self.command,
            **{k: v for k, v in self.inputs.items()},
            "rows": [_clean(r) for r in self.rows],
            "notes": list(self.notes),
            "method_notes": list(self.method),
            "sources": dict(self.sources),
        }


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@record
class Metric:
    """What a threshold measures: the row key, the scale to the threshold's unit, the direction, how a
    table (``label``) and a violation (``said``) name it, and the row key that shows a command computes
    it when that is another (``computed_key``)."""

    row_key: str
    scale: float
    unit: str
    upper: bool  # True: the value must stay at or below the limit
    label: str
    said: str
    computed_key: str = ""


#: threshold (flag and budget key) -> what it measures; the one table of them
METRICS: dict[str, Metric] = {
    "max_usd_per_mtok": Metric("usd_per_mtok", 1.0, "USD/Mtok", True, "USD/Mtok", "USD/Mtok"),
    "min_tok_s_per_gpu": Metric("tok_s_per_gpu", 1.0, "tok/s", False, "tok/s per GPU", "tok/s per GPU"),
    "max_ttft_ms": Metric("ttft_s", 1e3, "ms", True, "TTFT [ms]", "ms TTFT"),
    "max_tpot_ms": Metric("tpot_s", 1e3, "ms", True, "TPOT [ms]", "ms TPOT"),
    "min_tok_s_per_user": Metric("tok_s_per_user", 1.0, "tok/s", False, "tok/s per user", "tok/s per user"),
    "max_ttft_p99_ms": Metric("ttft_p99_s", 1e3, "ms", True, "TTFT p99 [ms]", "ms TTFT p99"),
    "max_tpot_p99_ms": Metric("tpot_p99_s", 1e3, "ms", True, "TPOT p99 [ms]", "ms TPOT p99"),
    "max_usd_per_mtok_in": Metric("usd_per_mtok_input", 1.0, "USD/Mtok", True, "USD/Mtok in", "USD/Mtok in"),
    "max_usd_per_mtok_out": Metric("usd_per_mtok_output", 1.0, "USD/Mtok", True, "USD/Mtok out", "USD/Mtok out"),
    # blended only where the price has two sides
    "max_usd_per_mtok_blended": Metric("usd_per_mtok", 1.0, "USD/Mtok", True, "USD/Mtok blended", "USD/Mtok blended",
                                       "usd_per_mtok_output"),
}


@record
class Thresholds:
    """Limits from the command line; a row that crosses one is marked and the CLI exits 1."""

    max_usd_per_mtok: float | None = None
    min_tok_s_per_gpu: float | None = None
    max_ttft_ms: float | None = None
    max_tpot_ms: float | None = None
    min_tok_s_per_user: float | None = None
    max_ttft_p99_ms: float | None = None  # open-loop arrivals (--request-rate): the 99th percentile
    max_tpot_p99_ms: float | None = None
    max_usd_per_mtok_in: float | None = None  # serving rows: the input tokens' share of the cost
    max_usd_per_mtok_out: float | None = None  # serving rows: the output tokens' share
    max_usd_per_mtok_blended: float | None = None  # serving rows: GPU cost over input + output tokens

    def __post_init__(self) -> None:
        """A threshold that is not a finite number >= 0 could never fail (or always): bad input (exit 2), not a pass."""
        for name, value in self.__dict__.items():
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                flag = "--" + name.replace("_", "-")
                raise TokeconError(f"{flag} must be a finite number, got {value!r}")
            if value is not None and value < 0:  # a negative maximum fails every row, a negative minimum none
                raise TokeconError(f"--{name.replace('_', '-')} must be >= 0, got {value:g}")

    def check(self, row: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if row.get("stable") is False:  # offered more requests than it can serve: no latency is finite
            return [f"unstable: {row['request_rate']:.4g} req/s offered, at most {row['max_request_rate']:.4g} sustained"]
        if not row.get("fits", True):
            return ["does not fit in memory"] if any(v is not None for v in self.__dict__.values()) else []
        for name, m in METRICS.items():
            limit = getattr(self, name)
            if limit is None or row.get(m.row_key) is None:
                continue
            value = row[m.row_key] * m.scale
            if value > limit if m.upper else value < limit:
                out.append(f"{value:.4g} {m.said} {'above' if m.upper else 'below'} {limit:g}")
        return out

    def may_pass(self, figures: Mapping[str, Any], size: int) -> Any:
        """Which of ``size`` points (a boolean array) no limit rules out from ``figures`` alone (arrays
        by row key): a cheap screen before rows are built, exact for the keys it has (a NaN passes);
        :meth:`check` on the built rows decides. (numpy imported here: catalog commands load this
        module and need no numpy.)"""
        import numpy as np

        ok = np.ones(size, dtype=bool)
        for name, m in METRICS.items():
            limit, a = getattr(self, name), figures.get(m.row_key)
            if limit is None or a is None:
                continue
            value = np.broadcast_to(np.asarray(a, dtype=float), (size,)) * m.scale
            ok &= ~((value > limit) if m.upper else (value < limit))  # NaN compares False: kept
        return ok

    def apply(self, result: Result) -> Result:
        """Mark every row; a threshold on a figure the command does not compute is bad input, never a
        silent pass (the error names the thresholds that do apply)."""
        fitting = [row for row in result.rows if row.get("fits", True)] or result.rows
        keys = {k for row in fitting for k, v in row.items() if v is not None} if fitting is not result.rows else {
            k for row in result.rows for k in row}
        flags = {name: m.computed_key or m.row_key for name, m in METRICS.items()}
        unused = [name for name, key in flags.items() if getattr(self, name) is not None and key not in keys]
        if unused and result.rows:
            usable = ", ".join("--" + n.replace("_", "-") for n, k in flags.items() if k in keys)
            raise TokeconError(f"--{unused[0].replace('_', '-')} does not apply to `{result.command}` "
                               f"(its thresholds: {usable or 'none'})")
        for row in result.rows:
            row["violations"] = self.check(row)
        if "usd_per_mtok_output" in keys:
            result.notes.extend(self.blended_note())
        return result

    def blended_note(self) -> list[str]:
        """Where a price has an input and an output side (serve, frontier, capacity), say which one the
        plain --max-usd-per-mtok checks."""
        if self.max_usd_per_mtok is None:
            return []
        return ["--max-usd-per-mtok checks the blended price (the GPUs' cost over input and output tokens together, "
                "the USD/Mtok blended column); --max-usd-per-mtok-in / -out check one side."]
