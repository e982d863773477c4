"""Plain option types coerced without pydantic.

Recent typer releases validate every option through a pydantic ``TypeAdapter``: importing pydantic
and building the adapters costs 60-100 ms on each run, most of a ``tokecon decode``. tokecon's
options are plain ``str``, ``int``, ``float``, ``bool``, ``Path``, ``Enum`` and lists of them; this
converts those directly (same one-line messages, exit code 2) and hands anything else (ranges,
custom parsers, file types, path checks) back to typer. Older typer releases, which have no such
hook, are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


_PLAIN = (str, int, float, bool, Path)


def one(value: Any, kind: type, param: Any, ctx: Any, bad: type) -> Any:
    """``value`` (a string from the command line) as ``kind``; ``bad``: click's BadParameter."""
    if isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool)):
        return value
    if not isinstance(value, str):
        raise bad(f"{value!r} is not a valid {kind.__name__}.", ctx=ctx, param=param)
    if kind is str:
        return value
    if kind is Path:
        return Path(value)
    if kind in (int, float):
        try:
            if not value.strip().isascii():
                raise ValueError
            return int(value.strip(), 10) if kind is int else float(value)
        except ValueError:
            what = "integer" if kind is int else "number"
            raise bad(f"'{value}' is not a valid {what}.", ctx=ctx, param=param) from None
    if issubclass(kind, Enum):
        for member in kind:
            if member.value == value:
                return member
        choices = ", ".join(repr(m.value) for m in kind)
        raise bad(f"'{value}' is not one of {choices}.", ctx=ctx, param=param)
    raise bad(f"'{value}' is not a valid {kind.__name__}.", ctx=ctx, param=param)


def plain_kind(annotation: Any) -> tuple[type | None, bool]:
    """(the element type, whether it is a list) of a plain annotation; (None, False) otherwise."""
    many = getattr(annotation, "__origin__", None) is list
    if many:
        args = getattr(annotation, "__args__", ())
        annotation = args[0] if len(args) == 1 else None
    ok = annotation in _PLAIN or (isinstance(annotation, type) and issubclass(annotation, Enum))
    return (annotation, many) if ok else (None, False)


def _is_plain(descriptor: Any, kind: type | None) -> bool:
    info = descriptor.parameter_info
    checked_path = kind is Path and (getattr(info, "exists", False) or getattr(info, "resolve_path", False)
                                     or not getattr(info, "file_okay", True) or not getattr(info, "dir_okay", True)
                                     or getattr(info, "writable", False) or getattr(info, "path_type", None))
    return (kind is not None and descriptor.file_annotation is None and getattr(info, "parser", None) is None
            and getattr(info, "click_type", None) is None and getattr(info, "min", None) is None
            and getattr(info, "max", None) is None and getattr(info, "case_sensitive", True) and not checked_path)


def install() -> None:
    """Replace typer's runtime-parameter builder with one that coerces plain types directly."""
    try:
        from typer import core as typer_core
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except ImportError:
        return
    original = getattr(typer_core, "build_runtime_param", None)
    if original is None or getattr(original, "_tokecon_fast", False):
        return

    @dataclass(frozen=True)  # a real frozen dataclass: it extends typer's
    class PlainRuntimeParam(RuntimeParam):
        kind: type = str
        many: bool = False

        def _coerce_value(self, value, param, ctx):
            if self.many:
                return [one(v, self.kind, param, ctx, BadParameter) for v in value]
            return one(value, self.kind, param, ctx, BadParameter)

    def fast(descriptor):
        kind, many = plain_kind(descriptor.annotation)
        if not _is_plain(descriptor, kind):
            return original(descriptor)
        return PlainRuntimeParam(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, kind=kind, many=many)

    fast._tokecon_fast = True  # type: ignore[attr-defined]
    typer_core.build_runtime_param = fast
