"""Reading files the user names: regular files of bounded size only.

``--catalog /dev/zero`` would read until memory runs out and a FIFO would block forever; a file
tokecon reads (catalogs, budgets, cost files, baselines, measurements, config.json) must be a
regular file of at most ``MAX_INPUT_BYTES`` (the largest shipped one, the external measurements,
is under 5 MB). Errors are one line, exit code 2.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

from tokecon.errors import TokeconError

MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_input_text(path: Path | str, what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of ``path``; :class:`TokeconError` for a missing, special, oversized or non-UTF-8 file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TokeconError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise TokeconError(f"{path}: {kind}; {what} must be a regular file")
    if st.st_size > limit:
        raise TokeconError(f"{path}: {st.st_size:,} bytes is too large for {what} (limit {limit:,})")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise TokeconError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise TokeconError(f"{path}: too large for {what} (limit {limit:,} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TokeconError(f"{path}: not a UTF-8 text file") from None


def parse_toml(text: str, where: str, what: str, error: type[TokeconError] = TokeconError,
               check_numbers: bool = True) -> dict[str, Any]:
    """``text`` as TOML; one line naming ``where`` for a syntax error, nesting deep enough to exhaust the
    stack, an integer too long for Python to convert (more than 4,300 digits), or (``check_numbers``)
    an integer beyond the range of a float (``1`` and 400 zeros), which no number tokecon reads can be:
    the message names the table and key, so every reader of a TOML input (budget and cost files) gets
    numbers that convert to float. A reader that validates every number itself, as the catalog loader
    does, passes ``check_numbers=False`` and saves a walk over a large document."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply to be {what}") from None
    except ValueError:  # int("9" * 5000): Python converts at most 4,300 digits
        raise error(f"{where}: not usable as {what} (an integer of more than 4,300 digits)") from None
    if check_numbers and _LONG_DIGITS.search(text):  # only such a run spells an integer beyond a float
        found = _huge_int(data, [])
        if found is not None:
            keys, value = found
            raise error(f"{where}: {_key_path(keys)}: an integer of {len(str(abs(value)))} digits, too large to be "
                        "a number") from None
    return data


# An integer above sys.float_info.max (~1.8e308) needs at least 309 decimal digits, 256 hex, 342 octal
# or 1,024 binary ones; underscores may separate them.
_LONG_DIGITS = re.compile(r"[0-9A-Fa-f_]{256,}")


def _huge_int(value: Any, keys: list) -> tuple[list, int] | None:
    """The key path and value of the first integer in ``value`` that does not convert to float."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (keys, value) if abs(value) > sys.float_info.max else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _huge_int(v, [*keys, k])
        if found is not None:
            return found
    return None


def _key_path(keys: list) -> str:
    """``['hardware', 'x', 'price_points', 0, 'usd']`` -> ``[hardware.x.price_points[0]]: field 'usd'``."""
    table = ""
    for k in keys[:-1]:
        table += f"[{k}]" if isinstance(k, int) else (f".{k}" if table else str(k))
    last = keys[-1] if keys else "?"
    leaf = f"item {last}" if isinstance(last, int) else f"field '{last}'"
    return f"[{table}]: {leaf}" if table else leaf


