"""Commands declared once: each command's options are a class (:class:`Options`) whose options carry
their flags, help and kind; a :class:`Command` names the dataclass, its thresholds and its run function.

Three front ends read the same declaration (tokecon.api.commands): the CLI builds its Typer
command from it (tokecon.cli.build), ``tokecon check`` reads budget files by it
(tokecon.commands.check), and the Python API (``import tokecon``) takes it as keyword arguments.
:func:`parse` turns raw values from any of them into the options instance and the thresholds,
with one set of rules (:mod:`tokecon.values`), so a value means the same wherever it is written.
Importing this module costs nothing heavy: run functions are imported by name when called.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any, Callable, Mapping

from tokecon import values
from tokecon.errors import TokeconError
from tokecon.records import record

#: option kinds: how a raw value becomes the field's value
KINDS = ("str", "model", "int", "float", "bool", "path", "paths", "ints", "strs", "gpus", "concurrency", "rates", "choice")
REQUIRED = MISSING


@record
class Opt:
    """How one option is written: its flags (the first is the long name), help, kind and metavar;
    ``complete``: the catalog whose names complete it (models, hardware, engines, gpus);
    ``argument``: a positional argument on the command line."""

    flags: tuple[str, ...]
    help: str
    kind: str
    metavar: str = ""
    choices: tuple[str, ...] = ()
    complete: str = ""
    panel: str = ""
    argument: bool = False

    @property
    def flag(self) -> str:
        """The long flag without a ``/--no-x`` half."""
        return self.flags[0].split("/")[0]

    def cli_name(self, name: str) -> str:
        """How the command line shows the option called ``name``: its long flag, or for an argument its
        metavar (its NAME when none is declared), in the usage line and in errors alike."""
        return self.flag if self.flags else self.metavar or name.upper()


@record
class Declared:
    """An option as a command's options class declares it: its default and how it is written."""

    default: Any
    opt: Opt


def option(default: Any, *flags: str, help: str, kind: str = "", **more: Any) -> Any:
    """Declare an option (``default`` :data:`REQUIRED` for a required one)."""
    kind = kind or {bool: "bool", int: "int", float: "float", str: "str"}.get(type(default), "")
    if kind not in KINDS:
        raise AssertionError(f"option {flags}: give its kind")
    return Declared(default, Opt(tuple(flags), help, kind, **more))


def argument(help: str, kind: str = "str", **more: Any) -> Any:
    """Declare a required positional argument."""
    return Declared(REQUIRED, Opt((), help, kind, argument=True, **more))


class Options:
    """Base of every command's options: the class lists its options (:func:`option`) and its groups
    (base classes); an instance holds their values, read-only. Plain classes rather than dataclasses:
    the declarations are read at every start, and making forty dataclasses costs 0.1 s."""

    __options__: dict[str, Declared] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Declared] = {}
        for klass in cls.__mro__:  # the class's own first, then its groups in the order it lists them
            for name, value in vars(klass).items():
                if isinstance(value, Declared) and name not in found:
                    found[name] = value
        cls.__options__ = found

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.__options__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {sorted(unknown)[0]!r}")
        for name, declared in self.__options__.items():
            if name not in values and declared.default is REQUIRED:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            object.__setattr__(self, name, values.get(name, declared.default))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__options__)})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, k) == getattr(other, k) for k in self.__options__)

    __hash__ = None  # type: ignore[assignment]


@record
class Command:
    """A command as every front end sees it.

    ``run``: ``"module:function"`` taking (options, thresholds) and returning a
    :class:`tokecon.results.Result`. ``thresholds``: the limits it checks (flags and budget keys,
    :data:`tokecon.results.METRICS`); ``slo``: their defaults where it has an SLO. ``analysis``:
    it runs in budget files and takes ``--explain``. ``present``: the CLI module that shows more than
    the result's table (frontier's chart and --plot)."""

    name: str
    options: type
    run: str
    summary: str
    description: str
    examples: tuple[str, ...] = ()
    thresholds: tuple[str, ...] = ()
    slo: Mapping[str, float] = field(default_factory=dict)
    analysis: bool = True
    progress: bool = False
    present: str = ""
    listing: tuple[str, ...] = ()  # lines shown as they are under the help, before the examples

    @property
    def python_name(self) -> str:
        """``hardware list`` -> ``hardware_list``: the API function's name."""
        return self.name.replace(" ", "_")

    def option_fields(self) -> list[tuple[str, Opt, Any]]:
        """(name, declaration, default) of each option: the required ones, then the command's own, then
        its groups' in the order its declaration lists them."""
        every = self.options.__options__
        order = sorted(every, key=lambda n: every[n].default is not MISSING)  # stable: required first
        return [(n, every[n].opt, every[n].default) for n in order]


def threshold_opt(name: str) -> Opt:
    """The declaration of a threshold: its flag is its name with dashes (``--max-tpot-ms``)."""
    from tokecon.results import METRICS

    m = METRICS[name]
    verb = "exceeds" if m.upper else "falls below"
    return Opt(("--" + name.replace("_", "-"),), f"Fail (exit 1) when a row's {m.label} {verb} this.", "float",
               panel="Thresholds")


def _label(name: str, opt: Opt, style: str) -> str:
    """How an error names the option: its flag (or, for an argument, its NAME as the usage line shows it)
    on the command line, its key in a budget file, ``name=`` in the Python API."""
    if style == "cli":
        return opt.cli_name(name)
    return f"'{name}'" if style == "budget" else f"{name}="


def coerce(name: str, opt: Opt, value: Any, style: str = "api", base: Path | None = None) -> Any:
    """``value`` as option ``name`` holds it (tokecon.values rules); ``base``: the folder relative
    paths in a budget file start from."""
    label = _label(name, opt, style)
    kind = opt.kind

    def bad(expected: str) -> TokeconError:
        return TokeconError(f"{label} must be {expected}, got {value!r}")

    if kind in ("str", "model", "choice"):
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        if kind == "choice":
            low = value.strip().lower()
            if low not in opt.choices:
                raise TokeconError(f"{label} must be one of {', '.join(opt.choices)}, got {value!r}")
            return low
        if kind == "model" and base is not None and value.strip().lower().endswith(".json") and not Path(value).is_absolute():
            candidate = base / value
            return str(candidate) if candidate.is_file() else value
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if abs(value) > values.MAX_COUNT:
            raise TokeconError(f"{label} value {values.describe_number(value)} is implausibly large (limit {values.MAX_COUNT:,})")
        return value
    if kind == "float":
        return values.finite(value, label)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind in ("path", "paths"):
        items = value if kind == "paths" and isinstance(value, (list, tuple)) else [value]
        if not items or not all(isinstance(v, (str, Path)) and str(v).strip() for v in items):
            raise bad("a file path" if kind == "path" else "a file path or a list of them")
        paths = tuple(Path(v) if base is None or Path(v).is_absolute() else base / v for v in items)
        return paths[0] if kind == "path" else paths
    if kind in ("strs", "gpus"):
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or not all(isinstance(v, str) and v.strip() for v in items):
            raise bad("a string or a non-empty list of strings")
        return tuple(items)
    if kind == "ints":
        return tuple(values.int_list(value, label))
    if kind == "concurrency":
        return tuple(values.concurrency_list(value, label))
    if kind == "rates":
        return tuple(values.rate_list(value, label))
    raise AssertionError(kind)


def _hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse(cmd: Command, raw: Mapping[str, Any], style: str = "api", base: Path | None = None) -> tuple[Any, Any]:
    """(options, thresholds) from raw values keyed by option name (``-`` or ``_``); a value of None
    means "not given". Unknown names, wrong types and missing required options are one-line errors."""
    from tokecon.results import Thresholds

    given = {str(k).replace("-", "_"): v for k, v in raw.items()}
    fields = {name: (opt, default) for name, opt, default in cmd.option_fields()}
    unknown = [k for k in given if k not in fields and k not in cmd.thresholds]
    if unknown:
        known = [*fields, *cmd.thresholds]
        from tokecon.results import METRICS

        if unknown[0] in METRICS:
            raise TokeconError(f"threshold '{unknown[0]}' does not apply to command {cmd.name} "
                               f"(its thresholds: {', '.join(cmd.thresholds) or 'none'})")
        raise TokeconError(f"unknown option '{unknown[0]}' for {cmd.name}{_hint(unknown[0], known)}")
    kwargs = {}
    for name, (opt, default) in fields.items():
        value = given.get(name)
        if value is None:
            if default is MISSING:
                where = opt.flag if style == "cli" and opt.flags else f"'{name}'"
                raise TokeconError(f"{cmd.name} needs {where}")
            continue
        kwargs[name] = coerce(name, opt, value, style, base)
    limits = {}
    for name in cmd.thresholds:
        value = given.get(name)
        value = cmd.slo.get(name) if value is None else value
        if value is not None:
            label = "--" + name.replace("_", "-") if style == "cli" else f"'{name}'"
            limits[name] = values.finite(value, label)
    return cmd.options(**kwargs), Thresholds(**limits)


def runner(cmd: Command) -> Callable[..., Any]:
    """The command's run function, imported when first needed."""
    module, _, function = cmd.run.partition(":")
    return getattr(importlib.import_module(module), function)


def call(cmd: Command, raw: Mapping[str, Any], style: str = "api", base: Path | None = None, **context: Any) -> Any:
    """Parse ``raw`` and run the command: its :class:`tokecon.results.Result`. ``context`` reaches
    run functions that take it (``progress(stage, done, total)``: a callback for long fits and sweeps)."""
    opts, limits = parse(cmd, raw, style, base)
    return runner(cmd)(opts, limits, **context)
