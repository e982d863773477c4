"""Write one entry into a user catalog file without ever losing data.

    1. read the file as text (it may not exist yet) and parse it; a broken file is left alone
    2. a new entry is rendered with tomli-w and appended after the existing text, so comments
       and every other entry stay byte for byte; an existing entry is replaced only with
       ``force``, and then only the text region of its own table(s) is swapped
    3. the new text is parsed again and checked: the written entry reads back equal, every
       other entry is unchanged, nothing else clashes (keys, aliases)
    4. it goes to a temporary file in the same folder (flushed and fsynced) that atomically
       replaces the old one with ``os.replace``; on any failure the temporary file is removed
       and the old file is untouched. The temporary file's name holds the writer's pid and host,
       so a later write removes what a killed writer left (never a live writer's file)

User catalogs (``$TOKECON_HOME/hardware.toml``, ``models.toml``) hold bare ``[key]`` tables (a
pasted ``[KIND.key]`` snippet reads too); a save appends a bare table.
Raises :class:`tokecon.errors.CatalogError` with one line naming the file and the entry.
"""

from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tokecon.errors import CatalogError
from tokecon.records import record

_BARE = re.compile(r"[A-Za-z0-9_-]+")


@record
class SaveReport:
    path: Path
    key: str
    replaced: bool  # an entry of that key was there and was replaced (with force)


def ordered(entry: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its fields in schema order (how the built-in catalogs read), extras last."""
    out = {k: entry[k] for k in schema if k in entry}
    out.update({k: v for k, v in entry.items() if k not in out})
    return out


def render_entry(key: str, entry: dict[str, Any], comment: str | None = None, kind: str | None = None) -> str:
    """The TOML text of one ``[key]`` table (``[kind.key]`` with ``kind``, the form ``--catalog`` files
    use) and its sub-tables, with an optional comment line."""
    import tomli_w

    try:
        body = tomli_w.dumps({kind: {key: entry}} if kind else {key: entry})
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"[{key}]: cannot be written as TOML: {exc}") from None
    head = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    return head + body


def added_comment(command: str) -> str:
    import datetime

    return f"added by `tokecon {command}` on {datetime.date.today().isoformat()}"


# --- locating a table's text ------------------------------------------------------------------


def _header_path(line: str) -> list[str] | None:
    """The dotted key path of a ``[table]`` or ``[[array]]`` header line, or None."""
    s = line.strip()
    if not s.startswith("["):
        return None
    double = s.startswith("[[")
    i = 2 if double else 1
    parts: list[str] = []
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if i >= len(s):
            return None
        if s[i] == '"':
            j, buf = i + 1, []
            while j < len(s) and s[j] != '"':
                if s[j] == "\\" and j + 1 < len(s):
                    nxt = s[j + 1]
                    buf.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt, nxt))
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            if j >= len(s):
                return None
            parts.append("".join(buf))
            i = j + 1
        elif s[i] == "'":
            j = s.find("'", i + 1)
            if j < 0:
                return None
            parts.append(s[i + 1 : j])
            i = j + 1
        else:
            m = _BARE.match(s, i)
            if not m:
                return None
            parts.append(m.group(0))
            i = m.end()
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == ".":
            i += 1
            continue
        close = "]]" if double else "]"
        if not s.startswith(close, i):
            return None
        rest = s[i + len(close) :].strip()
        return parts if (not rest or rest.startswith("#")) else None


def _regions(lines: list[str], prefix: tuple[str, ...]) -> list[tuple[int, int]]:
    """Line ranges [start, end) of the tables whose key path starts with ``prefix`` (``("mine",)``
    or ``("models", "mine")``); trailing blank and comment lines are left outside (they usually
    introduce the next table)."""
    headers = [(i, p) for i, line in enumerate(lines) if (p := _header_path(line)) is not None]
    out: list[tuple[int, int]] = []
    for n, (i, path) in enumerate(headers):
        if tuple(path[:len(prefix)]) != prefix:
            continue
        end = headers[n + 1][0] if n + 1 < len(headers) else len(lines)
        while end > i + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        if out and all(not lines[k].strip() or lines[k].lstrip().startswith("#") for k in range(out[-1][1], i)):
            out[-1] = (out[-1][0], end)  # contiguous: [key] followed by [key.efficiency]
        else:
            out.append((i, end))
    return out


# --- the write ----------------------------------------------------------------------------------


def _parse(text: str, path: Path, what: str) -> dict[str, Any]:
    from tokecon.catalogs.inputs import parse_toml

    return parse_toml(text, f"{path}: {what}", "a catalog", CatalogError)


def _clashes(data: dict[str, Any], key: str, entry: dict[str, Any], path: Path) -> None:
    """The new entry's key and aliases must not name another entry of the same file."""
    def aliases(fields: Any) -> set[str]:
        found = fields.get("aliases", ()) if isinstance(fields, dict) else ()
        return {a.lower() for a in found if isinstance(a, str)} if isinstance(found, list) else set()

    names = {key.lower()} | aliases(entry)
    for other, fields in data.items():
        if other.lower() == key.lower():  # the entry being replaced (refused earlier unless forced)
            continue
        taken = {other.lower()} | aliases(fields)
        both = sorted(names & taken)
        if both:
            raise CatalogError(f"{path}: [{key}]: name or alias '{both[0]}' is already used by [{other}] in this file")


#: a temporary file whose writer cannot be asked (another host, or no pid in its name) is left over
#: from a writer that died once older than this (a write takes milliseconds)
STALE_TEMP_SECONDS = 10 * 60
#: ... and one whose pid runs here is another process that reuses a dead writer's pid once this old
STALE_LIVE_PID_SECONDS = 24 * 3600


def _host_tag() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def _temp_prefix(path: Path) -> str:
    """``.NAME.PID.HOST.``: the temporary file names its writer, so that a later writer can tell a
    dead one's leftovers from a live one's file."""
    return f".{path.name}.{os.getpid()}.{_host_tag()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError, ValueError):  # another user's process, or cannot tell
        return True
    return True


def remove_stale_temps(path: Path, now: float | None = None) -> int:
    """Remove the temporary files that earlier writes of ``path`` left behind when killed mid-write:
    ``.NAME.PID.HOST.XXXXXXXX.tmp`` of this host whose process is gone, those of another host (a
    shared folder) and the pid-less ``.NAME.XXXXXXXX.tmp`` of older versions once older than
    :data:`STALE_TEMP_SECONDS`. A live writer's file (its pid runs here) is left alone (until a day
    old: then its pid is a later process's). Returns the count removed."""
    import time

    now = time.time() if now is None else now
    name = re.escape(path.name)
    ours = re.compile(rf"^\.{name}\.(\d+)\.([A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.tmp$")
    legacy = re.compile(rf"^\.{name}\.[A-Za-z0-9_]{{8}}\.tmp$")
    host = _host_tag()
    removed = 0
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    for entry in names:
        m = ours.match(entry)
        if m is None and not legacy.match(entry):
            continue
        candidate = path.parent / entry
        try:
            st = candidate.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        age = now - st.st_mtime
        if m is not None and m.group(2) == host:  # a writer on this machine: ask whether it still runs
            pid = int(m.group(1))
            stale = (pid != os.getpid() and not _pid_alive(pid)) or age > STALE_LIVE_PID_SECONDS
        else:  # another machine sharing the folder, or a name without a pid: only its age tells
            stale = age > STALE_TEMP_SECONDS
        if stale:
            try:
                candidate.unlink()
                removed += 1
            except OSError:  # another cleaner got there first, or no permission: leave it
                pass
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and atomically replace ``path``; first remove
    the temporary files that writers of ``path`` killed mid-write left (:func:`remove_stale_temps`)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``.NAME.lock`` beside ``path`` for a read-modify-write, so that concurrent
    ``--save`` calls queue instead of losing each other's entries (POSIX flock; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CatalogError(f"{lock}: cannot lock the catalog for writing ({exc.strerror or exc}); nothing was written") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def user_tables(data: dict[str, Any], kind: str, path: Path | str) -> dict[str, Any]:
    """The entries of a user ``KIND.toml``: its bare ``[NAME]`` tables and any ``[KIND.NAME]`` ones
    (the form ``models import`` and ``hardware add`` print, so a pasted snippet works as written).
    A name given in both forms is an error naming it."""
    wrapped = data.get(kind)
    if not (isinstance(wrapped, dict) and wrapped and "name" not in wrapped
            and all(isinstance(v, dict) for v in wrapped.values())):
        return data
    bare = {k: v for k, v in data.items() if k != kind}
    both = next((k for k in wrapped if k.lower() in {b.lower() for b in bare}), None)
    if both is not None:
        raise CatalogError(f"{path}: [{both}] and [{kind}.{both}] both define '{both}'; keep one")
    return {**bare, **wrapped}


def save_entry(
    path: Path, key: str, entry: dict[str, Any], force: bool = False, comment: str | None = None
) -> SaveReport:
    """Add ``[key]`` to the catalog file ``path`` (created if missing); replace it only with ``force``.
    The read-modify-write holds a lock on the file, so concurrent saves all land."""
    path = Path(path)
    if path.is_symlink():  # write through the link, but only to a file that exists: never create folders elsewhere
        try:
            path = path.resolve(strict=True)
        except FileNotFoundError:
            raise CatalogError(f"{path}: a symlink to {os.readlink(path)}, which does not exist; refusing to create it "
                               "(create the target or remove the link)") from None
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise CatalogError(f"{path}: unusable symlink ({getattr(exc, 'strerror', None) or exc}); refusing to write") from None
    _ensure_folder(path)
    with _locked(path):
        return _save_locked(path, key, entry, force, comment)


def _ensure_folder(path: Path) -> None:
    """The folder of the catalog ``path``, created if missing; one line naming it where that cannot be
    (``TOKECON_HOME`` naming a regular file, a file where a parent folder should be, no permission)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CatalogError(f"{folder}: not a folder, so {path.name} cannot be saved in it (is TOKECON_HOME a file? "
                           "point it at a folder)") from None
    except OSError as exc:
        raise CatalogError(f"{folder}: cannot create the catalog folder ({exc.strerror or exc}); nothing was written") from None


def _save_locked(path: Path, key: str, entry: dict[str, Any], force: bool, comment: str | None) -> SaveReport:
    if path.exists() and not path.is_file():
        raise CatalogError(f"{path}: not a regular file; refusing to write the catalog there")
    try:
        old_bytes = path.read_bytes() if path.exists() else b""
        old = old_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not a UTF-8 text file; refusing to rewrite it") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror or exc}") from None
    data = _parse(old, path, "existing file") if old.strip() else {}
    kind = path.stem  # a user catalog's kind is its file's stem
    entries = user_tables(data, kind, path)
    existing = next((k for k in entries if k.lower() == key.lower()), None)
    replaced = existing is not None
    if replaced and not force:
        raise CatalogError(f"{path}: already has an entry [{existing}]; pass --force to replace it")
    _clashes(entries, key, entry, path)
    wrapped = replaced and existing not in data  # a pasted [KIND.NAME] table is replaced in its own form
    newline = "\r\n" if "\r\n" in old else "\n"
    block = render_entry(key, entry, comment, kind if wrapped else None).replace("\n", newline)

    if replaced:
        lines = old.splitlines(keepends=True)
        regions = _regions(lines, (kind, existing) if wrapped else (existing,))
        if len(regions) != 1:
            raise CatalogError(
                f"{path}: [{existing}] is not one contiguous table (dotted keys, inline table or split "
                "sub-tables); edit it by hand"
            )
        start, end = regions[0]
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + block + (newline if tail and not block.endswith(newline) else "") + tail
    else:
        new = old + ("" if old.endswith("\n") else newline) + newline + block if old else block

    parsed = user_tables(_parse(new, path, f"after writing [{key}] (nothing was written)"), kind, path)
    want_others = {k: v for k, v in entries.items() if k != existing}
    got_others = {k: v for k, v in parsed.items() if k != key}
    if parsed.get(key) != entry or got_others != want_others:
        raise CatalogError(f"{path}: [{key}]: the rewritten file would not read back as intended; nothing was written")
    try:
        atomic_write_text(path, new)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot write the catalog ({exc.strerror or exc}); the old file is unchanged") from None
    return SaveReport(path, key, replaced)
