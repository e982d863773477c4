"""Typer commands built from the declarations (tokecon.api.commands): the CLI never lists an option
of its own beyond how to show a result (``--format``, ``--wide``, ``--explain``).

Each declared option becomes a Typer parameter with its flags, help, metavar and completion; each
threshold a ``--max-...``/``--min-...`` option; the callback hands the raw values to
:func:`tokecon.api.declare.call` (the same parsing as budget files and the Python API) and shows
the result (:mod:`tokecon.cli.show`).
"""

from __future__ import annotations

import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tokecon.api.declare import MISSING, Command, Opt, threshold_opt


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


OUTPUT = "Output"
_LISTS = ("paths", "ints", "strs", "gpus", "concurrency", "rates")
_PLAIN = {"str": str, "model": str, "int": int, "float": float, "bool": bool, "path": Path}


def complete(kind: str):
    """Shell completion of catalog names of ``kind`` (models, hardware, engines) or of ``COUNTxDEVICE``."""
    from tokecon.cli.completion import complete_gpus, complete_names

    return complete_gpus if kind == "gpus" else complete_names(kind)


def _cli_type(name: str, opt: Opt) -> Any:
    if opt.kind in _LISTS:
        return Optional[list[str]]
    if opt.kind == "choice":
        choices = Enum(f"{name.title()}Choice", {c: c for c in opt.choices}, type=str)  # typer lists them in --help
        return Optional[choices]
    kind = _PLAIN[opt.kind]
    return kind if opt.kind == "bool" else Optional[kind]


def _help(opt: Opt, default: Any) -> str:
    """The option's help, with its default when it has a plain one the help does not already state."""
    plain = default not in (MISSING, None, False, ()) and "default" not in opt.help
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return opt.help + (f" [default: {shown}]" if plain else "")


def _parameter(name: str, opt: Opt, default: Any) -> inspect.Parameter:
    extra: dict[str, Any] = {"help": _help(opt, default)}
    if opt.metavar or opt.argument:
        extra["metavar"] = opt.metavar if opt.flags else opt.cli_name(name)  # an argument: as errors name it
    if opt.complete:
        extra["autocompletion"] = complete(opt.complete)
    if opt.argument:
        info = typer.Argument(**extra)
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[_cli_type(name, opt), info])
    if opt.panel:
        extra["rich_help_panel"] = opt.panel
    info = typer.Option(*opt.flags, **extra)
    if opt.kind == "bool":
        value = bool(default) if default is not MISSING else False
    else:
        value = inspect.Parameter.empty if default is MISSING and opt.kind != "gpus" else None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=Annotated[_cli_type(name, opt), info])


def _output_parameters(cmd: Command) -> list[inspect.Parameter]:
    params = [
        inspect.Parameter("fmt", inspect.Parameter.KEYWORD_ONLY, default=OutputFormat.table, annotation=Annotated[
            OutputFormat, typer.Option("--format", "-f", help="Output format.", rich_help_panel=OUTPUT)]),
        inspect.Parameter("wide", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--wide", help="On a terminal, every column however narrow it is (files and pipes always "
                                              "get every column).", rich_help_panel=OUTPUT)]),
    ]
    if cmd.analysis:
        params.append(inspect.Parameter("explain", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--explain", help="Also show how the figures were computed: the method notes and, for "
                                                 "decode and prefill, each operation of the cheapest step.",
                               rich_help_panel=OUTPUT)]))
    return params


def signature(cmd: Command, extra: list[inspect.Parameter] | tuple = ()) -> inspect.Signature:
    """The Typer signature of ``cmd``: its options, its thresholds (with the SLO defaults in the
    help), ``extra`` CLI-only options of its presenter, then how to show the result."""
    params = [_parameter(name, opt, default) for name, opt, default in cmd.option_fields()]
    for name in cmd.thresholds:
        opt = threshold_opt(name)
        slo = cmd.slo.get(name)
        help_text = opt.help + (f" Default {slo:g} (the SLO ranked under)." if slo is not None else "")
        info = typer.Option(*opt.flags, help=help_text, rich_help_panel=opt.panel)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[float], info]))
    return inspect.Signature(params + list(extra) + _output_parameters(cmd))


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def presenter(cmd: Command) -> Any:
    """The CLI module that shows more than ``cmd``'s table (frontier's chart and --plot), or None."""
    if not cmd.present:
        return None
    import importlib

    return importlib.import_module(cmd.present)


def callback(cmd: Command):
    """The function Typer calls: parse and run through the declaration, then show the result."""
    extra_params = getattr(presenter(cmd), "PARAMETERS", []) if cmd.present else []

    def command(**kwargs: Any) -> None:
        from tokecon.api.declare import call
        from tokecon.cli.show import progress, show

        fmt, wide, explain = kwargs.pop("fmt"), kwargs.pop("wide"), kwargs.pop("explain", False)
        extra = {p.name: kwargs.pop(p.name) for p in extra_params}
        shower = presenter(cmd)
        if shower is not None:
            shower.before(**extra)
        raw = {k: _plain(v) for k, v in kwargs.items()}
        if cmd.progress:
            with progress() as report:
                result = call(cmd, raw, style="cli", progress=report)
        else:
            result = call(cmd, raw, style="cli")
        show(result, fmt.value, wide=wide, explain=explain, presenter=shower, extra=extra)

    command.__signature__ = signature(cmd, extra_params)  # type: ignore[attr-defined]
    command.__name__ = cmd.python_name
    command.__doc__ = cmd.description
    return command


def epilog(cmd: Command) -> str:
    """The listing and the examples under a command's help, one per line (click's \\b keeps the lines)."""
    listing = "\b\n" + "\n".join(cmd.listing) + "\n\n" if cmd.listing else ""
    return listing + ("Examples:\n\n\b\n" + "\n".join(f"  {e}" for e in cmd.examples) if cmd.examples else "")


def register(app: typer.Typer, cmd: Command, groups: dict[str, typer.Typer]) -> None:
    """Add ``cmd`` to ``app`` (or to its group's sub-app, ``hardware list`` under ``hardware``)."""
    group, _, leaf = cmd.name.rpartition(" ")
    target = groups[group] if group else app
    target.command(leaf, help=cmd.description, short_help=cmd.summary, epilog=epilog(cmd))(callback(cmd))
