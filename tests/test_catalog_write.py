"""Writing a user catalog never loses data: comments and untouched entries stay byte for byte,
no silent overwrite, atomic replace, the old file intact when anything fails."""

from __future__ import annotations

import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokecon.catalogs import write as catalog_write
from tokecon.catalogs.catalog import load_catalog
from tokecon.catalogs.write import _header_path, _regions, render_entry, save_entry
from tokecon.errors import CatalogError

EXISTING = """# my devices -- hand-written, keep this comment
[old-gpu]   # trailing comment on the header
name = "Old GPU"
vendor = "ACME"
family = "x"
memory_gb = 24.0
memory_bw_tb_s = 1.0
bf16_tflop_s = 100.0
scaleup_link = "PCIe"
scaleup_bw_gb_s = 32.0
scaleup_domain = 1
scaleout_bw_gb_s = 12.5
power_w = 300
rental_usd_per_hour = 0.5
source = "me"  # inline comment

[old-gpu.efficiency]
compute = 0.6
memory_bw = 0.8
link = 0.8
collective_latency_us = 8.0

# ---- section comment that introduces the next table
["dotted.key"]
name = "Dotted"
vendor = "ACME"
family = "x"
memory_gb = 48.0
memory_bw_tb_s = 2.0
bf16_tflop_s = 200.0
scaleup_link = "PCIe"
scaleup_bw_gb_s = 32.0
scaleup_domain = 1
scaleout_bw_gb_s = 12.5
power_w = 300
rental_usd_per_hour = 1.0
source = "me"
efficiency = { compute = 0.6, memory_bw = 0.8, link = 0.8, collective_latency_us = 8.0 }
"""


def new_gpu(memory_gb: float = 96.0, aliases=None) -> dict:
    e = {
        "name": "New GPU", "vendor": "ACME", "family": "y", "memory_gb": memory_gb, "memory_bw_tb_s": 4.0,
        "bf16_tflop_s": 1000.0, "scaleup_link": "NVLink", "scaleup_bw_gb_s": 450.0, "scaleup_domain": 8,
        "scaleout_bw_gb_s": 50.0, "power_w": 700.0, "rental_usd_per_hour": 2.0, "source": "test",
        "efficiency": {"compute": 0.7, "memory_bw": 0.8, "link": 0.8, "collective_latency_us": 8.0},
    }  # fmt: skip
    if aliases:
        e["aliases"] = aliases
    return e


@pytest.fixture
def catalog_file(isolated_home):
    path = isolated_home / "hardware.toml"
    path.write_text(EXISTING)
    return path


def test_append_keeps_every_byte_and_loads(catalog_file):
    report = save_entry(catalog_file, "new-gpu", new_gpu(), comment="added by a test")
    text = catalog_file.read_text()
    assert text.startswith(EXISTING) and not report.replaced
    assert "# added by a test\n[new-gpu]" in text
    cat = load_catalog()
    assert cat.hardware.get("new-gpu").memory_bytes == 96e9
    assert cat.hardware.get("old-gpu").origin == str(catalog_file)
    assert list(catalog_file.parent.glob(".*.tmp")) == []


def test_creates_missing_file_and_folder(tmp_path):
    path = tmp_path / "a" / "b" / "models.toml"
    save_entry(path, "x", {"name": "X"})
    assert tomllib.loads(path.read_text()) == {"x": {"name": "X"}}


def test_refuses_overwrite_without_force(catalog_file):
    before = catalog_file.read_bytes()
    with pytest.raises(CatalogError, match=r"already has an entry \[old-gpu\]; pass --force"):
        save_entry(catalog_file, "old-gpu", new_gpu())
    with pytest.raises(CatalogError, match="already has an entry"):
        save_entry(catalog_file, "OLD-GPU", new_gpu())  # names are case-insensitive
    assert catalog_file.read_bytes() == before


def test_force_replaces_only_that_table(catalog_file):
    report = save_entry(catalog_file, "old-gpu", new_gpu(memory_gb=141.0), force=True)
    text = catalog_file.read_text()
    assert report.replaced
    assert text.startswith("# my devices -- hand-written, keep this comment\n")
    assert "# ---- section comment that introduces the next table\n[\"dotted.key\"]" in text
    assert text.count("[old-gpu]") == 1 and "trailing comment on the header" not in text
    data = tomllib.loads(text)
    assert data["old-gpu"]["memory_gb"] == 141.0 and data["old-gpu"]["efficiency"]["compute"] == 0.7
    assert data["dotted.key"] == tomllib.loads(EXISTING)["dotted.key"]
    assert load_catalog().hardware.get("old-gpu").memory_bytes == 141e9


def test_force_replaces_quoted_key(catalog_file):
    save_entry(catalog_file, "dotted.key", new_gpu(memory_gb=80.0), force=True)
    data = tomllib.loads(catalog_file.read_text())
    assert data["dotted.key"]["memory_gb"] == 80.0 and data["old-gpu"]["memory_gb"] == 24.0


def test_alias_clash_in_same_file_refused(catalog_file):
    before = catalog_file.read_bytes()
    with pytest.raises(CatalogError, match="already used by \\[old-gpu\\]"):
        save_entry(catalog_file, "another", new_gpu(aliases=["Old-GPU"]))
    assert catalog_file.read_bytes() == before


def test_broken_existing_file_is_left_alone(catalog_file):
    catalog_file.write_text(EXISTING + "\nthis is = = not toml\n")
    before = catalog_file.read_bytes()
    with pytest.raises(CatalogError, match="TOML syntax error"):
        save_entry(catalog_file, "new-gpu", new_gpu())
    assert catalog_file.read_bytes() == before
    catalog_file.write_bytes(b"\xff\xfe binary")
    with pytest.raises(CatalogError, match="not a UTF-8"):
        save_entry(catalog_file, "new-gpu", new_gpu())
    assert catalog_file.read_bytes() == b"\xff\xfe binary"


def test_failure_during_replace_leaves_old_file(catalog_file, monkeypatch):
    before = catalog_file.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(catalog_write.os, "replace", boom)
    with pytest.raises(CatalogError, match="old file is unchanged"):
        save_entry(catalog_file, "new-gpu", new_gpu())
    assert catalog_file.read_bytes() == before
    assert [p.name for p in catalog_file.parent.iterdir() if p.name != ".hardware.toml.lock"] == ["hardware.toml"]  # temp file removed


def test_interrupted_write_leaves_old_file(catalog_file, monkeypatch):
    before = catalog_file.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog_write.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_entry(catalog_file, "new-gpu", new_gpu())
    assert catalog_file.read_bytes() == before
    assert [p.name for p in catalog_file.parent.iterdir() if p.name != ".hardware.toml.lock"] == ["hardware.toml"]


def test_keeps_permissions_and_writes_through_symlink(catalog_file, tmp_path):
    os.chmod(catalog_file, 0o640)
    link = tmp_path / "link.toml"
    link.symlink_to(catalog_file)
    save_entry(link, "new-gpu", new_gpu())
    assert link.is_symlink() and "[new-gpu]" in catalog_file.read_text()
    assert oct(catalog_file.stat().st_mode & 0o777) == oct(0o640)


def test_crlf_file_stays_crlf(isolated_home):
    path = isolated_home / "models.toml"
    path.write_bytes(b"# windows\r\n[a]\r\nname = \"A\"\r\n")
    save_entry(path, "b", {"name": "B"})
    raw = path.read_bytes()
    assert raw.startswith(b"# windows\r\n[a]\r\n") and b"\n[b]\r\nname" in raw and b"\r\r" not in raw


def test_inline_table_entry_cannot_be_replaced_silently(isolated_home):
    path = isolated_home / "models.toml"
    path.write_text('a = { name = "A" }\n')
    with pytest.raises(CatalogError, match="edit it by hand"):
        save_entry(path, "a", {"name": "B"}, force=True)
    assert path.read_text() == 'a = { name = "A" }\n'


def test_header_parser():
    assert _header_path("[a]") == ["a"]
    assert _header_path('  [ "a.b" . efficiency ]  # c') == ["a.b", "efficiency"]
    assert _header_path("[[arr]]") == ["arr"]
    assert _header_path("['lit']") == ["lit"]
    assert _header_path('x = "[a]"') is None and _header_path("[a") is None and _header_path("[a] junk") is None


def test_regions_group_subtables():
    lines = EXISTING.splitlines(keepends=True)
    (start, end), = _regions(lines, ("old-gpu",))
    assert lines[start].startswith("[old-gpu]") and "section comment" not in "".join(lines[start:end])
    assert "[old-gpu.efficiency]" in "".join(lines[start:end])


def test_render_entry_round_trips():
    text = render_entry("k.with.dots", new_gpu(aliases=["x", "y"]), comment="two\nlines")
    assert text.startswith("# two\n# lines\n")
    assert tomllib.loads(text)["k.with.dots"] == new_gpu(aliases=["x", "y"])


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                   names, st.lists(names, max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=st.dictionaries(names, st.dictionaries(names, values, max_size=4), max_size=4),
       key=names, entry=st.dictionaries(names, values, min_size=1, max_size=5), force=st.booleans())
def test_save_never_loses_data(tmp_path_factory, existing, key, entry, force):
    """Whatever the file and the entry: either the write happens and every other entry reads back
    unchanged with the new one, or it raises CatalogError and the file is byte-identical."""
    import tomli_w

    path = tmp_path_factory.mktemp("prop") / "models.toml"
    path.write_text("# keep me\n" + tomli_w.dumps(existing))
    before = path.read_bytes()
    try:
        save_entry(path, key, entry, force=force)
    except CatalogError:
        assert path.read_bytes() == before
        return
    data = tomllib.loads(path.read_text())
    assert data[key] == entry
    assert {k: v for k, v in data.items() if k != key} == {k: v for k, v in existing.items() if k.lower() != key.lower()}
    assert path.read_text().startswith("# keep me\n")


def test_concurrent_saves_all_land(tmp_path):
    """Twelve processes saving into one user catalog at once: every entry is there (the
    read-modify-write is locked; before, most were lost while each said "saved")."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TOKECON_HOME": str(tmp_path)}
    code = "from tokecon.cli.main import run; run()"
    procs = [subprocess.Popen([sys.executable, "-c", code, "hardware", "add", f"c{i}", "--like", "h100", "--save"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(12)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    import tomllib

    data = tomllib.loads((tmp_path / "hardware.toml").read_text())
    assert {f"c{i}" for i in range(12)} <= set(data)
