"""Tables on a terminal fit its width and never cut a value; files and pipes get every column (issue 11)."""

from __future__ import annotations

import io
import re

import pytest
from typer.testing import CliRunner

import tokecon.cli.render as render_module
import tokecon.cli.show as show_module  # the CLI shows every result through show.render
from tokecon.cli.main import app
from tokecon.cli.render import cell, render_table

CASES = {
    "decode": ["decode", "-m", "llama3-70b", "-g", "4xH100", "-g", "2xH200", "--max-usd-per-mtok", "2"],
    "serve": ["serve", "-m", "llama3-70b", "-g", "4xH100", "-c", "1,8,64,256"],
    "compare": ["compare", "-m", "llama3-70b"],
    "frontier": ["frontier", "-m", "llama3-70b", "-g", "4xH100", "-g", "8xH200", "--min-tok-s-per-user", "30"],
    "capacity": ["capacity", "-m", "deepseek-v3", "-g", "8xH200", "-g", "8xB200", "--tokens-per-day", "1e9"],
    "serve-rate": ["serve", "-m", "llama3-70b", "-g", "4xH100", "--request-rate", "1,4,4.5,9"],
    "capacity-p99": ["capacity", "-m", "llama3-70b", "-g", "4xH100", "-g", "8xH200", "--tokens-per-day", "5e9",
                     "--max-ttft-p99-ms", "500"],
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def results(args: list[str], monkeypatch) -> list:
    """The Results a command renders (its answer table too), captured instead of printed."""
    seen: list = []
    monkeypatch.setattr(show_module, "render", lambda result, *a, **k: seen.append(result))
    CliRunner().invoke(app, args)
    assert seen, args
    return seen


def on_terminal(result, width: int, wide: bool = False) -> str:
    out = io.StringIO()
    render_table(result, out, color=True, width=width, wide=wide)
    return ANSI.sub("", out.getvalue())


@pytest.mark.parametrize("width", [80, 120, 200])
@pytest.mark.parametrize("name", CASES)
def test_no_value_is_cut_at_any_width(name, width, monkeypatch):
    for result in results(CASES[name], monkeypatch):
        text = on_terminal(result, width)
        assert "…" not in text
        assert max(map(len, text.splitlines())) <= width
        for i, row in enumerate(result.rows):
            for column in result.columns:
                if column.hide == 0 and row.get("fits", True):
                    value = cell(row, column) + (" *" if i in result.highlight and column is result.columns[0] else "")
                    for part in value.split() if column.fmt == "str" else [value]:  # long text may wrap at spaces
                        assert part in text, (name, width, column.header, value)


def test_a_narrow_terminal_hides_columns_and_names_them(monkeypatch):
    result = results(CASES["serve"], monkeypatch)[0]
    narrow, wide = on_terminal(result, 80), on_terminal(result, 200)
    req_s = render_module.fmt_value(result.rows[0]["requests_s"], "num")  # req/s at concurrency 1
    assert "Hidden to fit 80 characters" in narrow and "req/s" in narrow.split("Hidden")[1]
    assert req_s not in narrow  # hidden, not cut
    assert "Hidden" not in wide and req_s in wide


def test_wide_shows_every_column_and_too_narrow_gives_records(monkeypatch):
    result = results(CASES["serve"], monkeypatch)[0]
    wide = on_terminal(result, 80, wide=True)
    records = on_terminal(result, 40)
    assert "Hidden" not in wide and "One record per row" in records
    for text in (wide, records):
        assert "…" not in text
        for row in result.rows:
            for column in result.columns:
                assert cell(row, column) in text


def test_pipes_get_plain_ascii_with_every_column(monkeypatch):
    for name in CASES:
        for result in results(CASES[name], monkeypatch):
            out = io.StringIO()  # not a terminal
            render_table(result, out)
            text = out.getvalue()
            assert text.isascii() or "—" in text or "∞" in text
            assert "\x1b[" not in text and "Hidden" not in text
            for column in result.columns:
                assert column.header in text


@pytest.mark.parametrize("kind", ["hardware", "models", "engines"])
def test_catalog_lists_fit_80_columns_and_take_wide(kind, monkeypatch):
    """The list commands hide their least needed columns at 80 columns (a table, not records) and
    accept --wide like every other table."""
    (result,) = results([kind, "list"], monkeypatch)
    text = on_terminal(result, 80)
    assert "One record per row" not in text and "Hidden to fit 80 characters" in text
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    wide = on_terminal(result, 80, wide=True)
    assert all(c.header.split(" [")[0] in wide for c in result.columns)
    seen: list = []
    monkeypatch.setattr(show_module, "render", lambda result, fmt, file, wide=False, **k: seen.append(wide))
    assert CliRunner().invoke(app, [kind, "list", "--wide"]).exit_code == 0 and seen == [True]
