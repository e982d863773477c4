"""Views of a :class:`Result`: a Rich table for people; JSON, CSV and Markdown for machines.

Human formatting (ms, GB, USD) lives here and only here. Rich is imported lazily so that
``--format json`` never pays for it.
"""

from __future__ import annotations

import io
import json
import math
import os
from typing import Any, TextIO

from tokecon.results import Column, Result

def fmt_value(value: Any, fmt: str) -> str:
    """One cell, human-readable; the unit is in the column header."""
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "∞"
    if fmt == "time":  # seconds -> ms
        ms = value * 1e3
        return f"{ms:,.3f}" if ms < 1 else f"{ms:,.2f}" if ms < 100 else f"{ms:,.0f}"
    if fmt == "bytes":  # B -> GB
        return f"{value / 1e9:,.1f}"
    if fmt == "usd":
        return f"{value:,.4f}" if value < 0.1 else f"{value:,.3f}" if value < 10 else f"{value:,.2f}"
    if fmt == "rate":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if fmt == "flop":  # FLOP/s -> TFLOP/s
        return f"{value / 1e12:,.1f}"
    if fmt == "gflop":  # FLOP -> GFLOP
        return f"{value / 1e9:,.2f}"
    if fmt == "mbytes":  # B -> MB
        return f"{value / 1e6:,.1f}"
    if fmt == "pct":
        return f"{value:.0%}"
    if fmt == "signed_pct":  # a relative change, e.g. against a baseline
        return f"{value:+.1%}"
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "bool":
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def cell(row: dict[str, Any], column: Column) -> str:
    """One cell; a ``*_range`` column shows the 80% interval ``<key>_p10..<key>_p90`` of its key."""
    if column.fmt.endswith("_range"):
        lo, hi = row.get(f"{column.key}_p10"), row.get(f"{column.key}_p90")
        if lo is None or hi is None:
            return "—"
        fmt = column.fmt[: -len("_range")]
        return f"{fmt_value(lo, fmt)}..{fmt_value(hi, fmt)}"
    return fmt_value(row.get(column.key), column.fmt)


def _groups(result: Result) -> list[tuple[str, list[tuple[int, dict]]]]:
    groups: dict[str, list[tuple[int, dict]]] = {}
    for i, row in enumerate(result.rows):
        key = str(row.get(result.group_key, "")) if result.group_key else ""
        groups.setdefault(key, []).append((i, row))
    return list(groups.items())


def _table_parts(result: Result) -> list[tuple[str, list[str], list[bool], list[tuple[list[str], str | None]]]]:
    """Per group: title, headers, right-justified flags, and (cells, style) per row. The cheapest
    row is starred; rows that cross a threshold get a column saying which."""
    parts = []
    for title, rows in _groups(result):
        head = f"{result.command}: {result.inputs.get('model', '')} on {title}" if title else result.command
        headers = [c.header for c in result.columns]
        right = [c.fmt != "str" for c in result.columns]
        marks = any(r.get("violations") for _, r in rows)
        if marks:
            headers.append("threshold")
            right.append(False)
        body = []
        for i, row in rows:
            cells = [cell(row, c) for c in result.columns]
            if not row.get("fits", True):
                cells[-1] = "does not fit"
            if i in result.highlight:
                cells[0] = f"{cells[0]} *"
            if marks:
                cells.append("; ".join(row.get("violations", [])) or "ok")
            style = "bold green" if i in result.highlight else ("red" if row.get("violations") else None)
            body.append((cells, style))
        parts.append((head, headers, right, body))
    return parts


def _footer(result: Result) -> list[str]:
    lines = [f"  {note}" for note in result.notes]
    if result.highlight:
        lines.append(f"  * {result.highlight_reason or 'cheapest row'}")
    return lines


def render_ascii(result: Result, file: TextIO) -> None:
    """Plain ASCII tables for files and pipes: no colour, no wrapping, no Rich import."""
    out = []
    for head, headers, right, body in _table_parts(result):
        widths = [max([len(h)] + [len(cells[j]) for cells, _ in body]) for j, h in enumerate(headers)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"

        out += [head, rule, line(headers), rule, *(line(cells) for cells, _ in body), rule]
    out += _footer(result)
    file.write("\n".join(out) + "\n")


def render_table(result: Result, file: TextIO, color: bool | None = None, width: int | None = None) -> None:
    """Tables for people, one per group (device configuration): Rich with colour on a terminal
    (``NO_COLOR`` honoured), plain ASCII when the output is a file or a pipe."""
    if color is not True and not (hasattr(file, "isatty") and file.isatty()):
        render_ascii(result, file)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    no_color = "NO_COLOR" in os.environ or color is False
    console = Console(file=file, no_color=no_color, force_terminal=color, width=width, highlight=False, emoji=False)
    for head, headers, right, body in _table_parts(result):
        table = Table(title=head, box=box.SIMPLE_HEAVY, title_justify="left")
        for h, r in zip(headers, right):
            table.add_column(Text(h), justify="right" if r else "left")
        for cells, style in body:
            table.add_row(*(Text(c) for c in cells), style=style)
        console.print(table)
    for line in _footer(result):
        console.print(Text(line))


def render_json(result: Result, file: TextIO) -> None:
    json.dump(result.to_dict(), file, indent=2, allow_nan=False)
    file.write("\n")


def _all_keys(rows: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def render_csv(result: Result, file: TextIO) -> None:
    """Every row field, SI units (the unit is in the column name)."""
    import csv  # only this view needs it

    data = result.to_dict()["rows"]
    writer = csv.DictWriter(file, fieldnames=_all_keys(data), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in data:
        writer.writerow({k: ("; ".join(v) if isinstance(v, list) else v) for k, v in row.items()})


def render_markdown(result: Result, file: TextIO) -> None:
    """A GitHub table for pull-request comments; the cheapest row in bold."""
    cols: list[Column] = ([Column(result.group_key, "deployment", "str")] if result.group_key else []) + result.columns
    out = io.StringIO()
    out.write(f"**tokecon {result.command}** — {result.inputs.get('model', '')}\n\n")
    out.write("| " + " | ".join(c.header for c in cols) + " | threshold |\n")
    out.write("|" + "|".join("---" for _ in cols) + "|---|\n")
    for i, row in enumerate(result.rows):
        cells = [cell(row, c).replace("|", "/") for c in cols]
        if i in result.highlight:
            cells = [f"**{c}**" for c in cells]
        verdict = "; ".join(row.get("violations", [])) or ("does not fit" if not row.get("fits", True) else "ok")
        out.write("| " + " | ".join(cells) + f" | {verdict} |\n")
    for note in result.notes:
        out.write(f"\n> {note}\n")
    file.write(out.getvalue())


def render(result: Result, fmt: str, file: TextIO, color: bool | None = None) -> None:
    {"table": lambda: render_table(result, file, color), "json": lambda: render_json(result, file),
     "csv": lambda: render_csv(result, file), "markdown": lambda: render_markdown(result, file)}[fmt]()
