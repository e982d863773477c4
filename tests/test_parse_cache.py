"""The parsed-catalog cache (tokecon.catalogs.parse_cache): used only while the file is unchanged,
never for a file modified within the racy window, and never able to change an answer."""

from __future__ import annotations

import os
import time

from tokecon.catalogs import parse_cache
from tokecon.catalogs.catalog import read_toml


def _age(path, seconds=60):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_an_unchanged_catalog_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKECON_CACHE", str(tmp_path / "cache"))
    cat = tmp_path / "c.toml"
    cat.write_text('[hardware.x]\nname = "X"\nmemory_gb = 80\n')
    _age(cat)
    first = read_toml(cat, check_numbers=False)
    assert parse_cache.load(cat, "catalog:False") == first == {"hardware": {"x": {"name": "X", "memory_gb": 80}}}
    monkeypatch.setattr("tokecon.catalogs.inputs.parse_toml", lambda *a, **k: 1 / 0)  # a hit parses nothing
    assert read_toml(cat, check_numbers=False) == first


def test_a_changed_file_is_parsed_again_even_at_the_same_size_and_time(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKECON_CACHE", str(tmp_path / "cache"))
    cat = tmp_path / "c.toml"
    cat.write_text("a = 1\n")
    _age(cat)
    assert read_toml(cat) == {"a": 1}
    st = os.stat(cat)
    cat.write_text("a = 2\n")  # same size; put the old times back: the change time still differs
    os.utime(cat, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_toml(cat) == {"a": 2}


def test_a_file_just_written_is_not_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKECON_CACHE", str(tmp_path / "cache"))
    cat = tmp_path / "c.toml"
    cat.write_text("a = 1\n")
    assert read_toml(cat) == {"a": 1} and parse_cache.load(cat) is None
    assert not (tmp_path / "cache").exists()


def test_a_broken_or_foreign_cache_entry_is_ignored_and_off_means_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKECON_CACHE", str(tmp_path / "cache"))
    cat = tmp_path / "c.toml"
    cat.write_text("a = 1\n")
    _age(cat)
    read_toml(cat)
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(b"\x00garbage")
    assert read_toml(cat) == {"a": 1}
    monkeypatch.setenv("TOKECON_CACHE", "off")
    assert parse_cache.cache_dir() is None and read_toml(cat) == {"a": 1}


def test_an_unwritable_cache_folder_costs_only_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TOKECON_CACHE", str(blocker / "cache"))  # a file where the folder should be
    cat = tmp_path / "c.toml"
    cat.write_text("a = 1\n")
    _age(cat)
    assert read_toml(cat) == {"a": 1}
