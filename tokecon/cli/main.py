"""Entry point: the Typer app, its subcommands, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from tokecon import __version__


class OneLineErrors(TyperGroup):
    """Turns usage errors and :class:`TokeconError` into one line on stderr and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from tokecon.errors import TokeconError

        code = 0
        try:
            rv = super().main(args=args, prog_name=prog_name or "tokecon", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except TokeconError as exc:
            code = _fail(str(exc), exc.exit_code)
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            code = _fail("aborted", 1)
        except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing option
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            code = _fail(message, getattr(exc, "exit_code", 2) or 2)
        except Exception as exc:  # never a traceback for the user; TOKECON_DEBUG=1 shows it
            if os.environ.get("TOKECON_DEBUG"):
                raise
            code = _fail(f"internal error ({type(exc).__name__}: {exc}); please report it", 2)
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, code: int) -> int:
    line = " ".join(str(message).split())
    typer.echo(f"tokecon: error: {line}", err=True)
    return code


app = typer.Typer(
    cls=OneLineErrors,
    help="The economics of LLM inference: roofline time, throughput, memory and USD per million tokens.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tokecon {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
) -> None:
    """The economics of LLM inference: roofline time, throughput, memory and USD per million tokens."""


from tokecon.cli import decode as _decode  # noqa: E402  (subcommands register themselves on `app`)
from tokecon.cli import prefill as _prefill  # noqa: E402,F401

_ = _decode


def run() -> None:
    app()
