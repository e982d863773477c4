"""``tokecon engines list|show``."""

from __future__ import annotations

from typing import Annotated

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app

engines_app = typer.Typer(help="Serving-engine generations: version ranges, fitted efficiency, scheduling defaults.",
                          no_args_is_help=True)
app.add_typer(engines_app, name="engines", short_help="Serving-engine generations: versions, fitted efficiency.")


@engines_app.command("list")
def engines_list(catalog: o.Catalogs = None, fmt: o.Format = o.OutputFormat.table, wide: o.Wide = False) -> None:
    """Every engine profile with the versions it covers and what it was fitted on."""
    from tokecon.commands.catalog_cmds import engines_list as run

    o.emit(run(tuple(catalog or ())), fmt, wide=wide)


@engines_app.command("show", epilog="Examples:\n\n\b\n  tokecon engines show vllm\n  tokecon engines show sglang@0.4.6")
def engines_show(
    name: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="Engine profile, or an engine at a version.",
                                        autocompletion=o.complete_names("engines"))],
    catalog: o.Catalogs = None,
    fmt: o.Format = o.OutputFormat.table,
) -> None:
    """One engine profile: the versions it covers, its fitted scales and overheads, its scheduling defaults."""
    from tokecon.commands.catalog_cmds import engines_show as run

    o.emit(run(name, tuple(catalog or ())), fmt)
