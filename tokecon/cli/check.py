"""``tokecon check``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app
from tokecon.budget_thresholds import help_text as thresholds_help


@app.command(short_help="Run a budget file of scenarios and thresholds (for CI).",
             epilog="Thresholds per command (budget keys; the same as each command's flags, --max-usd-per-mtok for "
                    "max_usd_per_mtok):\n\n\b\n" + thresholds_help() +
                    "\n\nExamples:\n\n\b\n  tokecon check examples/budget.toml\n  tokecon check examples/budget.toml --format markdown --junit report.xml")
def check(
    budget: Annotated[Path, typer.Argument(metavar="BUDGET.toml", help="Budget file: [scenarios.NAME] tables of command options and thresholds.")],
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write a JUnit XML report to this file.")] = None,
) -> None:
    """Run every scenario of a budget file; exit 1 if any crosses a threshold, 2 on a bad file."""
    from tokecon.commands.check import junit_xml, run_check
    from tokecon.errors import TokeconError
    from tokecon.cli.render import render

    try:
        clash = junit is not None and junit.exists() and (not junit.is_file() or junit.resolve() == budget.resolve())
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise TokeconError(f"--junit {junit}: unusable path ({getattr(exc, 'strerror', None) or exc})") from None
    if clash:
        raise TokeconError(f"--junit {junit}: " + ("is the budget file itself" if junit.is_file() else "not a regular file")
                           + "; name a new report file")
    result = run_check(budget)
    if junit is not None:
        from tokecon.catalogs.write import atomic_write_text

        try:
            atomic_write_text(junit, junit_xml(result))
        except OSError as exc:
            raise TokeconError(f"--junit {junit}: cannot write ({exc.strerror or exc})") from None
    render(result, fmt.value, sys.stdout, wide=wide)
    failed = [r for r in result.rows if not r["passed"]]
    if failed:
        first = failed[0]
        typer.echo(f"tokecon: {len(failed)} of {len(result.rows)} budget checks failed "
                   f"(first: {first['scenario']}: {first['violations'][0]})", err=True)
        raise typer.Exit(1)
