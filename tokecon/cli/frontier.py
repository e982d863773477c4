"""What ``tokecon frontier`` shows beyond its tables: a text chart on a terminal, and ``--plot FILE``
(a PNG, SVG or PDF drawn with matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tokecon.cli.build import OUTPUT

PARAMETERS = [inspect.Parameter("plot", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
    Optional[Path], typer.Option("--plot", help="Also draw the frontier into this new PNG, SVG or PDF file (needs "
                                                "pip install 'tokecon[plot]').", rich_help_panel=OUTPUT)])]


def before(plot: Path | None = None) -> None:
    """Refuse a --plot path before the sweep runs (a folder that does not exist, a tracked file)."""
    if plot is not None:
        from tokecon.cli.plot import check_plot_path

        check_plot_path(plot)


def present(result: Any, fmt: str, wide: bool, plot: Path | None = None) -> None:
    """Write the picture, then on a terminal table the text chart before the tables."""
    if result.command != "frontier":  # --vary turned it into a sensitivity table
        return
    from tokecon.cli.plot import save_plot, text_chart

    if plot is not None:
        save_plot(result, plot)
        typer.echo(f"tokecon: wrote {plot}", err=True)
    if fmt == "table" and result.rows:
        sys.stdout.write(text_chart(result) + "\n\n")
