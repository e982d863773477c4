"""``tokecon models list|show|import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app

models_app = typer.Typer(help="Models in the catalogs: list, show (with derived figures), import a Hugging Face config.json.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models", short_help="Models in the catalogs: list, show, import a config.json.")

ModelName = Annotated[str, typer.Argument(help="Model name or alias, or a path to a config.json.",
                                          autocompletion=o.complete_names("models"))]


@models_app.command("list")
def models_list(catalog: o.Catalogs = None, fmt: o.Format = o.OutputFormat.table, wide: o.Wide = False) -> None:
    """Every model of the merged catalogs, with parameter counts, and which file each came from."""
    from tokecon.commands.catalog_cmds import models_list as run

    o.emit(run(tuple(catalog or ())), fmt, wide=wide)


@models_app.command("show")
def models_show(name: ModelName, catalog: o.Catalogs = None, fmt: o.Format = o.OutputFormat.table) -> None:
    """One model: parameters, active parameters, weight bytes per type, KV bytes per token, its file."""
    from tokecon.commands.catalog_cmds import models_show as run

    o.emit(run(name, tuple(catalog or ())), fmt)


@models_app.command("import")
def models_import(
    config: Annotated[Path, typer.Argument(help="A Hugging Face config.json.")],
    name: Annotated[Optional[str], typer.Option("--name", help="Catalog key (default: from _name_or_path or the file name).")] = None,
    save: Annotated[bool, typer.Option("--save", help="Write it to $TOKECON_HOME/models.toml (default: print the TOML).")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --save: replace an entry of the same name.")] = False,
    catalog: o.Catalogs = None,
) -> None:
    """Read a Hugging Face config.json into a models.toml entry (Llama, Qwen, Mixtral, DeepSeek/Kimi MLA,
    gpt-oss, Gemma 3, Llama 4, BERT). Without --save, prints the entry."""
    from tokecon.commands.catalog_cmds import import_model

    o.report_new_entry(import_model(config, name, tuple(catalog or ()), save, force))
