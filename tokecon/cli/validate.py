"""``tokecon validate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


@app.command(short_help="Predict every public measurement and state the error.",
             epilog="Examples:\n\n\b\n  tokecon validate --group-by metric --summary\n  tokecon validate --group-by engine --summary")
def validate(
    group_by: Annotated[str, typer.Option("--group-by", help="Summarise by hardware (family), device, model, source, metric, engine (generation) or kind (dense/moe).")] = "hardware",
    fit: Annotated[bool, typer.Option("--fit", help="Refit the efficiency factors and report held-out error.")] = False,
    held_out: Annotated[bool, typer.Option("--held-out", help="With --fit: leave-one-source-out error and the 80% intervals (minutes).")] = False,
    write: Annotated[bool, typer.Option("--write", help="With --fit: store the factors in hardware.toml and engines.toml (and with --held-out the intervals).")] = False,
    measurements: Annotated[Optional[Path], typer.Option("--measurements", help="Another measurements CSV (same columns).")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print only the per-group error table.")] = False,
    catalog: o.Catalogs = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
) -> None:
    """Predict every public measurement and state tokecon's error against it."""
    from tokecon.commands.validate import run_fit, run_validate
    from tokecon.cli.render import render

    if write and not fit:
        from tokecon.errors import TokeconError

        raise TokeconError("--write only makes sense with --fit")
    if held_out and not fit:
        from tokecon.errors import TokeconError

        raise TokeconError("--held-out only makes sense with --fit")
    if fit:
        with _progress() as report:
            first, second = run_fit(write, measurements, held_out, report)
    else:
        first, second = run_validate(group_by, measurements, tuple(catalog or ()))
    if fmt == o.OutputFormat.json:
        doc = first.to_dict()
        doc["summary"] = second.to_dict()["rows"]
        json.dump(doc, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return
    if not summary:
        render(first, fmt.value, sys.stdout, wide=wide)
    render(second, fmt.value, sys.stdout, wide=wide)


class _progress:
    """A Rich progress bar on stderr (with the time left) for the fit and the held-out refits."""

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.bar.__enter__()
        self.tasks: dict[str, int] = {}
        return self.report

    def report(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            label = {"fit": "fitting the factors", "held out": "refitting without each source"}.get(stage, stage)
            self.tasks[stage] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[stage], completed=done)

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)
