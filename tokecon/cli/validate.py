"""``tokecon validate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app


@app.command()
def validate(
    group_by: Annotated[str, typer.Option("--group-by", help="Summarise by hardware (family), device, model, source, metric or engine.")] = "hardware",
    fit: Annotated[bool, typer.Option("--fit", help="Refit the efficiency factors and report held-out error.")] = False,
    write: Annotated[bool, typer.Option("--write", help="With --fit: store the factors in hardware.toml and engines.toml.")] = False,
    measurements: Annotated[Optional[Path], typer.Option("--measurements", help="Another measurements CSV (same columns).")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print only the per-group error table.")] = False,
    catalog: o.Catalogs = None,
    fmt: o.Format = o.OutputFormat.table,
) -> None:
    """Predict every public measurement and state tokecon's error against it."""
    from tokecon.commands.validate import run_fit, run_validate
    from tokecon.render import render

    if write and not fit:
        from tokecon.errors import TokeconError

        raise TokeconError("--write only makes sense with --fit")
    first, second = run_fit(write, measurements) if fit else run_validate(group_by, measurements, tuple(catalog or ()))
    if fmt == o.OutputFormat.json:
        doc = first.to_dict()
        doc["summary"] = second.to_dict()["rows"]
        json.dump(doc, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return
    if not summary:
        render(first, fmt.value, sys.stdout)
    render(second, fmt.value, sys.stdout)
