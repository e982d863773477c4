"""Parsed catalogs kept between runs, so a command does not parse the same TOML every time.

tomllib is pure Python (about 5 MB/s): the built-in hardware.toml alone costs 20-30 ms of every
command, a 30 MB ``--catalog`` several seconds. A parsed catalog is stored with :mod:`marshal`
(plain dicts, lists, strings and numbers; loading it builds data and runs no code) under
``$TOKECON_CACHE`` (default ``$XDG_CACHE_HOME/tokecon``, ``~/.cache/tokecon``); ``TOKECON_CACHE=off``
turns it off. An entry is used only while the file's path, size, modification and change times and
inode all match. A file modified in the last two seconds is not stored: a file system that keeps
coarse times could rewrite it within the same tick at the same size ("racy" timestamps, the rule git
follows). Any failure to read or write the cache falls back to parsing; the cache never changes an
answer, only its speed.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable

FORMAT = 1
RACY_SECONDS = 2.0


def cache_dir() -> Path | None:
    env = os.environ.get("TOKECON_CACHE")
    if env:
        return None if env.lower() in ("off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tokecon"


def _signature(path: Path, flavour: str) -> tuple | None:
    try:
        st = os.stat(path)
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return None
    return (FORMAT, sys.version_info[:2], flavour, real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _entry(folder: Path, sig: tuple) -> Path:
    return folder / f"catalog-{zlib.crc32(repr(sig[:4]).encode()):08x}.marshal"  # one file per catalog path


def load(path: Path, flavour: str = "") -> dict[str, Any] | None:
    """The stored parse of ``path``, or None (no cache, changed file, unreadable or foreign entry)."""
    folder, sig = cache_dir(), _signature(path, flavour)
    if folder is None or sig is None:
        return None
    try:
        stored_sig, data = marshal.loads(_entry(folder, sig).read_bytes())
    except Exception:  # missing, truncated or written by another Python: parse instead
        return None
    return data if stored_sig == sig and isinstance(data, dict) else None


def store(path: Path, data: dict[str, Any], flavour: str = "") -> None:
    """Keep ``data``, the parse of ``path``, for the next run (silently nothing where that cannot be)."""
    folder, sig = cache_dir(), _signature(path, flavour)
    if folder is None or sig is None or time.time() - sig[5] / 1e9 < RACY_SECONDS:
        return
    target = _entry(folder, sig)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        payload = marshal.dumps((sig, data))  # ValueError for a value marshal cannot hold (a TOML date)
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(payload)
        os.replace(tmp, target)
    except (OSError, ValueError):
        try:
            tmp.unlink()
        except OSError:
            pass


def parsed(path: Path, parse: Callable[[], dict[str, Any]], flavour: str = "") -> dict[str, Any]:
    """``parse()`` of ``path``, or its stored result while the file is unchanged."""
    data = load(path, flavour)
    if data is None:
        data = parse()
        store(path, data, flavour)
    return data
