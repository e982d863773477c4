"""How a command's result reaches the terminal: its tables, its notes, the method behind
``--explain``, a new catalog entry, and the exit code (1 when a row crossed a threshold)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import typer

from tokecon.cli.render import render


def show(result: Any, fmt: str, wide: bool = False, explain: bool = False, presenter: Any = None,
         extra: dict[str, Any] | None = None) -> None:
    """Render ``result`` to stdout; with ``explain`` its method notes and detail tables after it
    (JSON rows then carry the step breakdown). Exit 1, saying why on stderr, when rows crossed a
    threshold or offered more than the deployment sustains."""
    if hasattr(result, "saved"):  # hardware add, models import: a catalog entry
        _new_entry(result, fmt)
        return
    for part in result.preface if fmt in ("table", "markdown") else ():
        render(part, fmt, sys.stdout, wide=wide)
        typer.echo()
    if presenter is not None:
        presenter.present(result, fmt, wide, **(extra or {}))
    shown = result.view if result.view is not None and fmt in ("table", "markdown") else result
    render(shown, fmt, sys.stdout, wide=wide, explain=explain)
    if explain and fmt != "json":
        for part in result.details:
            render(part, fmt, sys.stdout, wide=wide)
    failed = result.failed_rows
    if failed:
        typer.echo(f"tokecon: {result.failure or _failure(result, failed)}", err=True)
        raise typer.Exit(1)


def _failure(result: Any, failed: list[dict[str, Any]]) -> str:
    first = failed[0]
    where = f"{first.get('n_gpus', '')}x{first.get('hardware', '')}" if first.get("hardware") else first.get("name", "")
    rate = first.get("request_rate")
    point = f"{rate:g} req/s" if rate is not None else f"batch {first.get('batch', first.get('concurrency', '?'))}"
    what = ("offer more requests per second than the deployment sustains" if all(r.get("stable") is False for r in failed)
            else "cross a threshold")
    return f"{len(failed)} of {len(result.rows)} rows {what} (first: {where} {point}: {first['violations'][0]})"


def _new_entry(new: Any, fmt: str) -> None:
    """``hardware add`` / ``models import``: the TOML entry on stdout, or where it was saved; with
    ``--format json`` the entry and where it went as JSON."""
    if fmt == "json":
        import json

        typer.echo(json.dumps(new.to_dict(), indent=2))
        return
    if new.saved is None:
        typer.echo(new.text, nl=False)
        hint = f"not saved; add --save to write [{new.key}] to $TOKECON_HOME/{new.kind}.toml"
        typer.echo(f"tokecon: {hint}" + (f" ({new.note})" if new.note else ""), err=True)
        return
    verb = "replaced" if new.saved.replaced else "saved"
    typer.echo(f"{verb} [{new.key}] in {new.saved.path}" + (f" ({new.note})" if new.note else ""))
    if new.summary:
        typer.echo(new.summary)


class progress:
    """A Rich progress bar on stderr (with the time left) for the fit, the held-out refits and sweeps
    over many devices. It appears only once the work has run ``after_s`` seconds: a quick answer
    never draws one."""

    LABELS = {"fit": "fitting the factors", "held out": "refitting without each source", "devices": "sweeping the devices"}

    def __init__(self, after_s: float = 1.0):
        self.after_s = after_s

    def __enter__(self):
        self.start = time.monotonic()
        self.bar = None
        self.tasks: dict[str, int] = {}
        return self.report

    def report(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.start < self.after_s:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            console = Console(stderr=True)
            if not console.is_terminal:  # a log or a pipe gets no bar
                self.after_s = math.inf
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TimeRemainingColumn(), console=console, transient=True)
            self.bar.__enter__()
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(self.LABELS.get(stage, stage), total=total)
        self.bar.update(self.tasks[stage], completed=done)

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc) if self.bar is not None else None
