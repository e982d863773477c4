"""Shared fixtures. Every test runs with TOKECON_HOME pointed at an empty temporary folder, so no
test can read or write the user's own catalogs, and TOKECON_CACHE at one folder for the session."""

from __future__ import annotations

import pytest

from tokecon.catalogs.catalog import load_catalog


@pytest.fixture(scope="session")
def parse_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tokecon-cache")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, parse_cache_dir):
    home = tmp_path / "tokecon-home"
    home.mkdir()
    monkeypatch.setenv("TOKECON_HOME", str(home))
    monkeypatch.setenv("TOKECON_CACHE", str(parse_cache_dir))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return home


@pytest.fixture(scope="session")
def catalog():
    return load_catalog(use_user_home=False)
