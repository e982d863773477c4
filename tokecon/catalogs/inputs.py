"""Reading files the user names: regular files of bounded size only.

``--catalog /dev/zero`` would read until memory runs out and a FIFO would block forever; a file
tokecon reads (catalogs, budgets, cost files, baselines, measurements, config.json) must be a
regular file of at most ``MAX_INPUT_BYTES`` (the largest shipped one, the external measurements,
is under 5 MB). Errors are one line, exit code 2.
"""

from __future__ import annotations

import os
import stat
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


def parse_toml(text: str, where: str, what: str, error: type[TokeconError] = TokeconError) -> dict[str, Any]:
    """``text`` as TOML; one line naming ``where`` for a syntax error, nesting deep enough to exhaust the
    stack, or an integer too long for Python to convert (more than 4,300 digits)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply to be {what}") from None
    except ValueError:  # int("9" * 5000): Python converts at most 4,300 digits
        raise error(f"{where}: not usable as {what} (an integer of more than 4,300 digits)") from None
