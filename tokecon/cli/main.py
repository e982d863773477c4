"""Entry point: the Typer app, its subcommands, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from tokecon import __version__
from tokecon.cli.coercion import install as _install_fast_coercion

_install_fast_coercion()


class OneLineErrors(TyperGroup):
    """Turns usage errors and :class:`TokeconError` into one line on stderr and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from tokecon.errors import TokeconError

        code = 0
        try:
            rv = super().main(args=args, prog_name=prog_name or "tokecon", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
            sys.stdout.flush()  # a reader that left shows here, not at exit (where Python would exit 1)
        except TokeconError as exc:
            code = _fail(str(exc), exc.exit_code)
        except typer.Exit as exc:
            code = exc.exit_code
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                code = _closed_pipe()
        except typer.Abort:
            code = _fail("aborted", 1)
        except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing option
            if type(exc).__name__ == "NoArgsIsHelpError":  # `tokecon` or `tokecon hardware` alone: the help
                typer.echo(exc.format_message(), err=True)
                code = 2
            else:
                message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
                code = _fail(message, getattr(exc, "exit_code", 2) or 2)
        except BrokenPipeError:  # `tokecon models list | head -1`: the reader left; stop quietly
            code = _closed_pipe()
        except SystemExit:  # click turns EPIPE into sys.exit(1) behind a PacifyFlushWrapper
            if type(sys.stdout).__name__ != "PacifyFlushWrapper":
                raise
            code = _closed_pipe()
        except Exception as exc:  # never a traceback for the user; TOKECON_DEBUG=1 shows it
            if os.environ.get("TOKECON_DEBUG"):
                raise
            code = _fail(f"internal error ({type(exc).__name__}: {exc}); please report it", 2)
        if standalone_mode:
            sys.exit(code)
        return code


def _closed_pipe() -> int:
    """The reader of stdout left (``| head -c1``): silence the rest and exit as a shell reports a
    pipeline member killed by SIGPIPE (128 + 13), never 1, which means "threshold crossed"."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 141


def _fail(message: str, code: int) -> int:
    line = " ".join(str(message).split())
    typer.echo(f"tokecon: error: {line}", err=True)
    return code




_app = typer.Typer(
    cls=OneLineErrors,
    help="The economics of LLM inference: roofline time, throughput, memory and USD per million tokens. "
         "Which hardware is cheapest for your workload: tokecon compare.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tokecon {__version__}")
        raise typer.Exit()


@_app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
) -> None:
    """The economics of LLM inference: roofline time, throughput, memory and USD per million tokens."""


def build(only: str | None = None) -> typer.Typer:
    """The app with every declared command (tokecon.api.commands), or only the command or group
    named ``only`` (what one run needs: Typer inspects every registered signature before parsing)."""
    from tokecon.api.commands import COMMANDS, GROUPS
    from tokecon.cli.build import register

    _app.registered_commands, _app.registered_groups = [], []
    groups = {}
    for name, text in GROUPS.items():
        if only in (None, name):
            groups[name] = typer.Typer(help=text, no_args_is_help=True, rich_markup_mode=None)
            _app.add_typer(groups[name], name=name, short_help=text, help=text)
    for cmd in COMMANDS:
        top = cmd.name.split(" ")[0]
        if only in (None, top):
            register(_app, cmd, groups)
    return _app


def run() -> None:
    """Console entry point. Typer introspects the signature of every subcommand before it parses
    anything; building only the one named on the command line saves most of that on each run.
    ``--help``, shell completion and unknown names go through the full app (same output)."""
    from tokecon.api.commands import BY_NAME, GROUPS

    args = sys.argv[1:]
    first = args[0] if args and not args[0].startswith("-") and "_TOKECON_COMPLETE" not in os.environ else None
    known = first in GROUPS or first in BY_NAME
    build(first if known else None)()


def __getattr__(name: str) -> typer.Typer:
    """``app``: the Typer app with every command (``from tokecon.cli.main import app``: tests, docs);
    the console entry point builds only the command it runs."""
    if name != "app":
        raise AttributeError(f"module 'tokecon.cli.main' has no attribute {name!r}")
    return build()
