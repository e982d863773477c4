"""tokecon as a Python library: one function per command, taking the command's options as keyword
arguments (the names of its flags with ``_``, or of its budget-file keys) and returning the
:class:`tokecon.results.Result` the CLI prints (``.rows``, ``.notes``, ``.to_dict()``)::

    import tokecon
    result = tokecon.compare(model="llama3-70b", gpus=["8xH100", "8xB200"])
    best = result.rows[0]                       # ranked: the cheapest configuration meeting the SLO
    tokecon.decode(model="llama3-70b", gpus="4xH100", batch=[1, 64], max_tpot_ms=50)

Values follow the same rules as on the command line and in budget files (tokecon.api.declare):
``gpus`` a string or a list, ``batch`` an int, a list or ``"1,8"``. Bad input raises
:class:`tokecon.errors.TokeconError` with the one-line message the CLI would print.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from tokecon.api.commands import COMMANDS, Command
from tokecon.api.declare import MISSING, call, threshold_opt


def _function(cmd: Command) -> Callable[..., Any]:
    def run(**options: Any) -> Any:
        return call(cmd, options)

    fields = sorted(cmd.option_fields(), key=lambda f: f[2] is not MISSING)  # the required ones first
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                default=inspect.Parameter.empty if default is MISSING else default)
              for name, _, default in fields]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=cmd.slo.get(name)) for name in cmd.thresholds]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__ = run.__qualname__ = cmd.python_name
    options = "\n".join(f"    {name}: {opt.help}" for name, opt, _ in cmd.option_fields())
    limits = "\n".join(f"    {name}: {threshold_opt(name).help}" for name in cmd.thresholds)
    run.__doc__ = f"{cmd.description}\n\nOptions:\n{options}" + (f"\n\nThresholds:\n{limits}" if limits else "")
    return run


#: the API's functions, by name (``hardware list`` is ``hardware_list``)
FUNCTIONS: dict[str, Command] = {c.python_name: c for c in COMMANDS}
__all__ = list(FUNCTIONS)


def __getattr__(name: str) -> Callable[..., Any]:
    """Each function is made when first used (the CLI reads the declarations without them)."""
    if name not in FUNCTIONS:
        raise AttributeError(f"module 'tokecon.api' has no attribute {name!r}")
    globals()[name] = function = _function(FUNCTIONS[name])
    return function
