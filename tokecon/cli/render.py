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


def _table_parts(result: Result) -> list[tuple[str, list[str], list[bool], list[int], list[tuple[list[str], str | None]]]]:
    """Per group: title, headers, right-justified flags, hide levels, and (cells, style) per row. The
    cheapest row is starred; rows that cross a threshold get a column saying which."""
    parts = []
    for title, rows in _groups(result):
        head = f"{result.command}: {result.inputs.get('model', '')} on {title}" if title else result.command
        headers = [c.header for c in result.columns]
        right = [c.fmt != "str" for c in result.columns]
        hides = [c.hide for c in result.columns]
        if not all(r.get("fits", True) or r.get("memory_ignored") for _, r in rows):
            hides[-1] = 0  # it says "does not fit"
        marks = any(r.get("violations") for _, r in rows)
        if marks:
            headers.append("threshold")
            right.append(False)
            hides.append(0)
        body = []
        for i, row in rows:
            cells = [cell(row, c) for c in result.columns]
            if not row.get("fits", True) and not row.get("memory_ignored"):
                cells[-1] = "does not fit"
            if i in result.highlight:
                cells[0] = f"{cells[0]} *"
            if marks:
                cells.append("; ".join(row.get("violations", [])) or "ok")
            style = "bold green" if i in result.highlight else ("red" if row.get("violations") else None)
            body.append((cells, style))
        parts.append((head, headers, right, hides, body))
    return parts


NOTE_WIDTH = 80  # notes in files and pipes wrap here; on a terminal at its width


def _footer(result: Result, width: int = NOTE_WIDTH, explain: bool = False) -> list[str]:
    """The notes under the tables, each wrapped to ``width`` with a hanging indent: the answer and
    its assumptions, the star's meaning, and with ``explain`` the method notes."""
    import textwrap

    legend = result.highlight and not any(n.startswith("* ") for n in result.notes)  # an answer note says what * marks
    notes = list(result.notes) + ([f"* {result.highlight_reason or 'cheapest row'}"] if legend else [])
    if explain and result.method:
        notes += ["How these figures are computed:"] + [f"- {m}" for m in result.method]
    lines = []
    for note in notes:
        lines += textwrap.wrap(note, width=max(width, 40), initial_indent="  ", subsequent_indent="    ",
                               break_long_words=False, break_on_hyphens=False) or [""]
    return lines


def render_ascii(result: Result, file: TextIO, explain: bool = False) -> None:
    """Plain ASCII tables for files and pipes: every column, no colour, no wrapping, no Rich import."""
    out = []
    for head, headers, right, _, body in _table_parts(result):
        widths = [max([len(h)] + [len(cells[j]) for cells, _ in body]) for j, h in enumerate(headers)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"

        out += [head, rule, line(headers), rule, *(line(cells) for cells, _ in body), rule]
    out += _footer(result, explain=explain)
    file.write("\n".join(out) + "\n")


GAP = 2  # characters between two columns of a Rich table
WRAP = 24  # text longer than this may wrap at spaces to this width; numbers and short labels never wrap


def _span(header: str, cells: list[str], right: bool) -> tuple[int, int, int]:
    """Widths of a column: narrowest (cells whole, long text and the header wrapped at spaces), with every
    cell on one line, and natural (the header on one line too)."""
    longest = max((len(c) for c in cells), default=0)
    whole = longest if right else min(longest, max([WRAP, *(len(w) for c in cells for w in c.split())]))
    narrow = max([whole, *(len(w) for w in header.split())])
    return narrow, max(narrow, longest), max(narrow, longest, len(header))


def _layout(headers: list[str], right: list[bool], hides: list[int], body: list, width: int,
            wide: bool) -> dict[int, int] | None:
    """The columns to show and their widths: all of them at full width with ``wide``; else the never-hidden
    ones and as many others as fit in ``width`` (lowest ``hide`` first), spare width unwrapping values before
    headers; None when not even the never-hidden ones fit."""
    spans = [_span(h, [cells[j] for cells, _ in body], r) for j, (h, r) in enumerate(zip(headers, right))]
    if wide:
        return {j: natural for j, (*_, natural) in enumerate(spans)}
    keep = [j for j, h in enumerate(hides) if h == 0]
    used = sum(spans[j][0] + GAP for j in keep) - GAP
    if used > width:
        return None
    for j in sorted((j for j, h in enumerate(hides) if h), key=lambda j: (hides[j], j)):
        if used + GAP + spans[j][0] <= width:
            keep.append(j)
            used += GAP + spans[j][0]
    widths = {j: spans[j][0] for j in sorted(keep)}
    for level in (1, 2):  # values on one line, then headers; the smallest step first
        for j in sorted(keep, key=lambda j: spans[j][level] - widths[j]):
            grow = min(width - used, spans[j][level] - widths[j])
            widths[j] += grow
            used += grow
    return widths


def render_table(result: Result, file: TextIO, color: bool | None = None, width: int | None = None,
                 wide: bool = False, explain: bool = False) -> None:
    """Tables for people, one per group (device configuration): Rich with colour on a terminal
    (``NO_COLOR`` honoured), plain ASCII when the output is a file or a pipe. A table fits the
    terminal: no cell is ever cut; headers wrap, the columns a narrow terminal cannot hold are hidden
    (and named), and when not even the main ones fit each row becomes a record. ``wide`` shows every column."""
    if color is not True and not (hasattr(file, "isatty") and file.isatty()):
        render_ascii(result, file, explain)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    no_color = "NO_COLOR" in os.environ or color is False
    console = Console(file=file, no_color=no_color, force_terminal=color, width=width, highlight=False, emoji=False)
    width = console.width
    hidden: dict[str, None] = {}
    records = False
    for head, headers, right, hides, body in _table_parts(result):
        table = Table(title=head, box=box.SIMPLE_HEAVY, title_justify="left", show_edge=False, pad_edge=False,
                      collapse_padding=True)
        shown = _layout(headers, right, hides, body, width, wide)
        if shown is None:  # one record per row: field names, then values
            records = True
            value = min(max(len(c) for cells, _ in body for c in cells), width // 2)
            table.show_header = False
            table.add_column(width=min(max(map(len, headers)), width - value - GAP))
            table.add_column(justify="right", width=value)
            for cells, style in body:
                for k, (h, c) in enumerate(zip(headers, cells)):
                    table.add_row(Text(h), Text(c), style=style, end_section=k == len(cells) - 1)
        else:
            hidden.update((headers[j], None) for j in range(len(headers)) if j not in shown)
            for j, w in shown.items():
                table.add_column(Text(headers[j]), justify="right" if right[j] else "left", width=w)
            for cells, style in body:
                table.add_row(*(Text(cells[j]) for j in shown), style=style)
            console.width = max(width, sum(shown.values()) + GAP * (len(shown) - 1))  # wider only with `wide`
        console.print(table)
        console.width = width
    if hidden:
        console.print(Text(f"  Hidden to fit {width} characters: {', '.join(hidden)} (--wide shows every column)."))
    if records:
        console.print(Text(f"  One record per row: {width} characters are too few for the table (--wide draws it)."))
    for line in _footer(result, width, explain):
        console.print(Text(line), overflow="ignore", crop=False)


def render_json(result: Result, file: TextIO, explain: bool = False) -> None:
    """The result's document (:meth:`Result.to_dict`); rows keep their per-operation ``breakdown``
    only with ``explain``."""
    doc = result.to_dict()
    if not explain:
        doc["rows"] = [{k: v for k, v in r.items() if k != "breakdown"} for r in doc["rows"]]
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    for start in range(0, len(text), 1 << 16):  # whole blocks, not one write per token; a reader that left
        file.write(text[start:start + (1 << 16)])  # shows as a broken pipe (one huge write can hide it)


def _all_keys(rows: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def render_csv(result: Result, file: TextIO) -> None:
    """Every row field, SI units (the unit is in the column name)."""
    import csv  # only this view needs it

    data = [{k: v for k, v in r.items() if k != "breakdown"} for r in result.to_dict()["rows"]]
    writer = csv.DictWriter(file, fieldnames=_all_keys(data), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in data:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})


def _csv_cell(value: Any) -> Any:
    """A list of words joined by '; '; anything else nested (a check's details) as JSON."""
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) or v is None for v in value):
        return "; ".join(map(str, value))
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def render_markdown(result: Result, file: TextIO, explain: bool = False) -> None:
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
    for note in result.notes + (result.method if explain else []):
        out.write(f"\n> {note}\n")
    file.write(out.getvalue())


def render(result: Result, fmt: str, file: TextIO, color: bool | None = None, wide: bool = False,
           explain: bool = False) -> None:
    {"table": lambda: render_table(result, file, color, wide=wide, explain=explain),
     "json": lambda: render_json(result, file, explain),
     "csv": lambda: render_csv(result, file), "markdown": lambda: render_markdown(result, file, explain)}[fmt]()
