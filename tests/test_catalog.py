"""Catalogs: loading, merging and errors (one line naming file, entry and field; exit 2); the
``hardware`` and ``models`` commands; completion, --version and colour-free output."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokecon.physics import params
from tokecon.catalogs.catalog import (
    HARDWARE_FIELDS,
    MODEL_FIELDS,
    builtin_paths,
    load_catalog,
    validate_entry,
)
from tokecon.cli.main import app
from tokecon.cli.completion import complete_gpus as _complete_gpus, complete_names
from tokecon.errors import CatalogError

runner = CliRunner()


def invoke(*args: str, **kw):
    return runner.invoke(app, list(args), **kw)


def builtin_entry(kind: str, key: str) -> dict:
    with open(builtin_paths()[kind], "rb") as fh:
        return tomllib.load(fh)[key]


H100 = builtin_entry("hardware", "h100-sxm")
LLAMA = builtin_entry("models", "llama3-8b")


def write(path, data: dict | str):
    path.write_text(data if isinstance(data, str) else tomli_w.dumps(data))
    return path


# --- errors: one line, file + entry + field, exit 2 --------------------------------------------


def _hw(**changes):
    e = {k: v for k, v in H100.items() if k != "aliases"}
    e.update(changes)
    return {k: v for k, v in e.items() if v is not None}


BAD_CATALOGS = {
    "syntax": ("[hardware.x]\nname = \"unterminated\n", "TOML syntax error"),
    "wrong-type": ({"hardware": {"x": _hw(memory_gb="lots")}}, "[x]: field 'memory_gb' must be a number"),
    "negative": ({"hardware": {"x": _hw(memory_bw_tb_s=-3.35)}}, "[x]: field 'memory_bw_tb_s' must be > 0"),
    "zero": ({"hardware": {"x": _hw(bf16_tflop_s=0)}}, "[x]: field 'bf16_tflop_s' must be > 0"),
    "absurd": ({"hardware": {"x": _hw(memory_gb=1e12)}}, "[x]: field 'memory_gb' = 1000000000000.0 is implausibly large"),
    "nan": (tomli_w.dumps({"hardware": {"x": _hw()}}).replace("memory_gb = 80.0", "memory_gb = nan"), "[x]: field 'memory_gb' must be finite"),
    "unknown-key": ({"hardware": {"x": _hw(memory_gbs=80.0)}}, "[x]: unknown field 'memory_gbs' (did you mean 'memory_gb'?)"),
    "missing": ({"hardware": {"x": _hw(vendor=None)}}, "[x]: missing required field 'vendor'"),
    "efficiency": ({"hardware": {"x": _hw(efficiency={**H100["efficiency"], "compute": 1.5})}},
                   "[x.efficiency]: field 'compute' = 1.5 is implausibly large"),
    "bool-as-number": ({"models": {"m": {**LLAMA, "layers": True}}}, "[m]: field 'layers' must be an integer"),
    "float-as-int": ({"models": {"m": {**LLAMA, "layers": 32.5}}}, "[m]: field 'layers' must be an integer"),
    "kv-heads": ({"models": {"m": {**LLAMA, "kv_heads": 7}}}, "[m]: field 'kv_heads' (7) must divide 'heads' (32)"),
    "choice": ({"models": {"m": {**LLAMA, "weight_dtype": "fp6"}}}, "[m]: field 'weight_dtype' must be one of"),
    "dup-alias": ({"models": {"m1": {**LLAMA, "aliases": ["same"]}, "m2": {**LLAMA, "aliases": ["SAME"]}}},
                  "[m2]: alias 'SAME' is already used by [m1] in the same file"),
    "alias-is-other-key": ({"models": {"m1": {**LLAMA, "aliases": []}, "m2": {**LLAMA, "aliases": ["m1"]}}},
                           "[m2]: alias 'm1' is already used by [m1] in the same file"),
    "alias-is-builtin-key": ({"models": {"m2": {**LLAMA, "aliases": ["llama3-70b"]}}},
                             "[m2]: alias 'llama3-70b' is the name of [llama3-70b]"),
    "empty-alias": ({"models": {"m": {**LLAMA, "aliases": [""]}}}, "[m]: field 'aliases' must be a list of non-empty strings"),
    "top-level": ({"gpus": {"x": {}}}, "top-level table 'gpus' is not one of"),
    "not-a-table": ("hardware = 3\n", "[hardware] must be a table of entries"),
    "entry-not-table": ("[hardware]\nx = 3\n", "[x]: expected a table of fields"),
    "binary": (b"\xff\xfe\x00\x01", "not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CATALOGS))
def test_bad_catalog_is_one_line_naming_file_entry_field(case, tmp_path):
    content, expected = BAD_CATALOGS[case]
    path = tmp_path / f"{case}.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write(path, content)
    with pytest.raises(CatalogError) as err:
        load_catalog([path], use_user_home=False)
    assert expected in str(err.value) and str(err.value).startswith(str(path))
    r = invoke("decode", "--model", "llama3-8b", "--gpus", "1xH100", "--catalog", str(path))
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and expected in r.stderr and "Traceback" not in r.stderr


def test_missing_and_directory_catalogs(tmp_path):
    for path, msg in ((tmp_path / "nope.toml", "No such file"), (tmp_path, "a directory")):
        r = invoke("hardware", "list", "--catalog", str(path))
        assert r.exit_code == 2 and msg in r.stderr and r.stderr.count("\n") == 1


def test_user_file_errors_name_the_user_file(isolated_home):
    write(isolated_home / "hardware.toml", {"mine": _hw(power_w=-1)})
    r = invoke("hardware", "list")
    assert r.exit_code == 2 and str(isolated_home / "hardware.toml") in r.stderr and "'power_w' must be > 0" in r.stderr


def test_user_file_reads_bare_and_wrapped_tables(isolated_home):
    """A user models.toml holds [NAME] tables (what --save writes) and [models.NAME] ones (what
    `models import` prints, pasted); one name in both forms is an error naming it."""
    unaliased = {k: v for k, v in LLAMA.items() if k != "aliases"}
    write(isolated_home / "models.toml", {"models": {"mine": unaliased}, "yours": unaliased})
    assert {"mine", "yours"} <= set(load_catalog().models.entries)
    write(isolated_home / "models.toml", {"models": {"mine": LLAMA}, "mine": LLAMA})
    with pytest.raises(CatalogError, match=r"\[mine\] and \[models.mine\] both define 'mine'"):
        load_catalog().models  # the user's catalogs are read when their kind is first used


# --- merging ----------------------------------------------------------------------------------


def test_user_entry_overrides_builtin_and_keeps_its_aliases(isolated_home):
    write(isolated_home / "hardware.toml", {"h100-sxm": _hw(rental_usd_per_hour=1.99)})
    cat = load_catalog()
    hw = cat.hardware.get("H100")  # built-in alias still resolves, to the user's entry
    assert hw.rental_usd_per_hour == 1.99 and hw.origin == str(isolated_home / "hardware.toml")
    r = invoke("decode", "-m", "llama3-8b", "-g", "1xH100", "-b", "1", "-f", "json")
    doc = json.loads(r.stdout)
    assert doc["sources"]["hardware:h100-sxm"] == str(isolated_home / "hardware.toml")
    assert doc["rows"][0]["usd_per_hour"] == 1.99


def test_catalog_flag_overrides_user_file(isolated_home, tmp_path):
    write(isolated_home / "hardware.toml", {"h100-sxm": _hw(rental_usd_per_hour=1.99)})
    extra = write(tmp_path / "extra.toml", {"hardware": {"h100-sxm": _hw(rental_usd_per_hour=0.99)}})
    assert load_catalog([extra]).hardware.get("h100").rental_usd_per_hour == 0.99


def test_case_variant_key_in_user_file_overrides(isolated_home):
    write(isolated_home / "models.toml", {"Llama3-8B": {**LLAMA, "name": "mine"}})
    cat = load_catalog()
    assert cat.models.get("llama3-8b").name == "mine" and "llama3-8b" not in cat.models.entries


# --- property: the loader either loads or raises CatalogError ------------------------------------

_field_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["hardware", "models"]), changes=st.dictionaries(
    st.sampled_from([*HARDWARE_FIELDS, *MODEL_FIELDS, "bogus"]), _field_values, max_size=4))
def test_validate_entry_raises_only_catalog_error(kind, changes):
    entry = dict(H100 if kind == "hardware" else LLAMA)
    for k, v in changes.items():
        if v is None:
            entry.pop(k, None)
        else:
            entry[k] = v
    try:
        validate_entry(kind, "x", entry, "f.toml")
    except CatalogError as exc:
        assert str(exc).startswith("f.toml: [x") and "\n" not in str(exc)


# --- hardware / models commands ------------------------------------------------------------------


def test_hardware_list_table_and_json(isolated_home):
    write(isolated_home / "hardware.toml", {"my-gpu": _hw(name="My GPU")})
    r = invoke("hardware", "list")
    assert r.exit_code == 0
    for header in ("memory [GB]", "bandwidth [GB/s]", "bf16 [TFLOP/s]", "USD/h", "catalog"):
        assert header in r.stdout
    assert "built-in" in r.stdout and str(isolated_home / "hardware.toml") in r.stdout
    doc = json.loads(invoke("hardware", "list", "-f", "json").stdout)
    rows = {row["hardware"]: row for row in doc["rows"]}
    assert rows["my-gpu"]["origin"] == str(isolated_home / "hardware.toml")
    assert rows["h100-sxm"]["memory_bw_b_s"] == 3.35e12 and rows["h100-sxm"]["catalog"] == "built-in"
    assert len(rows) == len(load_catalog().hardware)


def test_hardware_show_derived_figures():
    doc = json.loads(invoke("hardware", "show", "H100", "--format", "json").stdout)
    figs = {f["figure"]: f for f in doc["rows"]}
    assert figs["ridge_point_bf16_flop_per_b"]["value"] == pytest.approx(989.4e12 / 3.35e12)  # 295 FLOP/B
    assert figs["ridge_point_bf16_flop_per_b"]["unit"] == "FLOP/B"
    assert figs["memory_bw_b_s_per_usd_h"]["value"] == pytest.approx(3.35e12 / 2.45)  # H100 rental: Cudo 2025-03
    assert doc["hardware"] == "h100-sxm" and doc["origin"] == str(builtin_paths()["hardware"])
    table = invoke("hardware", "show", "h100").stdout
    assert "295 FLOP/B peak" in table and "catalog file: built-in" in table


def test_models_list_and_show():
    doc = json.loads(invoke("models", "list", "-f", "json").stdout)
    rows = {r["model"]: r for r in doc["rows"]}
    assert rows["llama3-70b"]["params"] == 70_553_706_496
    assert rows["deepseek-v3"]["architecture"].startswith("MLA, MoE 8/256+1")
    doc = json.loads(invoke("models", "show", "deepseek-r1", "-f", "json").stdout)
    figs = {f["figure"]: f["value"] for f in doc["rows"]}
    cat = load_catalog()
    m = cat.models.get("deepseek-v3")
    assert figs["params"] == params.total_params(m) and figs["active_params"] == params.active_params(m)
    assert figs["kv_bytes_per_token_bf16"] == 61 * (512 + 64) * 2  # MLA latent
    # FP8 checkpoint: embeddings, LM head and routers stay BF16, one byte more each (2 V D + 58 E D)
    assert figs["weight_bytes_fp8"] == pytest.approx(params.total_params(m) + 2 * 129280 * 7168 + 58 * 256 * 7168)
    assert figs["weight_bytes"] == figs["weight_bytes_fp8"]  # native FP8
    for dtype in ("bf16", "fp4", "int4", "q4_k_m"):
        assert f"weight_bytes_{dtype}" in figs
    out = invoke("models", "show", "gpt-oss-120b").stdout
    assert "KV cache per token (bf16)" in out and "windowed layers capped" in out and "mxfp4" in out


def test_unknown_names_suggest():
    r = invoke("hardware", "show", "h10")
    assert r.exit_code == 2 and "unknown device 'h10'" in r.stderr and "closest" in r.stderr
    r = invoke("models", "show", "lama3-70b")
    assert r.exit_code == 2 and "llama3-70b" in r.stderr


def test_hardware_add_prints_then_saves(isolated_home):
    args = ["hardware", "add", "my-gpu", "--memory-gb", "96", "--memory-bw-tb-s", "4", "--bf16-tflop-s", "1000",
            "--rental-usd-per-hour", "2.5", "--aliases", "mg, mine"]
    r = invoke(*args)
    assert r.exit_code == 0 and "[hardware.my-gpu]" in r.stdout and "not saved" in r.stderr
    entry = tomllib.loads(r.stdout)["hardware"]["my-gpu"]
    printed = isolated_home.parent / "printed.toml"  # what the tool prints is what --catalog reads (issue 11)
    printed.write_text(r.stdout)
    assert load_catalog([printed]).hardware.get("my-gpu").memory_bytes == 96e9
    assert entry["memory_gb"] == 96.0 and entry["aliases"] == ["mg", "mine"] and "defaults, not measured" in entry["notes"]
    assert not (isolated_home / "hardware.toml").exists()
    r = invoke(*args, "--save")
    assert r.exit_code == 0 and "saved [my-gpu]" in r.stdout
    hw = load_catalog().hardware.get("mg")
    assert hw.memory_bytes == 96e9 and hw.memory_bw_b_s == 4e12 and hw.efficiency.fitted_on == "default (not fitted)"
    r = invoke("decode", "-m", "llama3-8b", "-g", "2xmy-gpu", "-b", "1", "-f", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["sources"]["hardware:my-gpu"] == str(isolated_home / "hardware.toml")
    # no silent overwrite; --force replaces
    before = (isolated_home / "hardware.toml").read_bytes()
    r = invoke(*args[:4], "200", *args[5:], "--save")
    assert r.exit_code == 2 and "--force" in r.stderr and (isolated_home / "hardware.toml").read_bytes() == before
    assert invoke(*args[:4], "200", *args[5:], "--save", "--force").exit_code == 0
    assert load_catalog().hardware.get("my-gpu").memory_bytes == 200e9


def test_hardware_add_like(isolated_home):
    r = invoke("hardware", "add", "h100-141", "--like", "h100", "--memory-gb", "141", "--save")
    assert r.exit_code == 0, r.output
    hw, base = load_catalog().hardware.get("h100-141"), load_catalog().hardware.get("h100")
    assert hw.memory_bytes == 141e9 and hw.memory_bw_b_s == base.memory_bw_b_s and hw.efficiency == base.efficiency
    assert hw.aliases == ()  # aliases are not copied: they belong to the original


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "needs --memory-gb, --memory-bw-tb-s, --bf16-tflop-s, --rental-usd-per-hour"),
        (["--memory-gb", "-1", "--memory-bw-tb-s", "4", "--bf16-tflop-s", "1", "--rental-usd-per-hour", "1"], "--memory-gb must be > 0"),
        (["--memory-gb", "nan", "--memory-bw-tb-s", "4", "--bf16-tflop-s", "1", "--rental-usd-per-hour", "1"], "--memory-gb must be a finite number"),
        (["--memory-gb", "1e9", "--memory-bw-tb-s", "4", "--bf16-tflop-s", "1", "--rental-usd-per-hour", "1"], "--memory-gb = 1000000000.0 is implausibly large"),
        (["--like", "h100", "--compute-efficiency", "2"], "--compute-efficiency = 2.0 is implausibly large"),
        (["--like", "nope"], "unknown device 'nope'"),
        (["--like", "h100", "--aliases", "h200"], "alias 'h200' is the name of [h200]"),
    ],
)
def test_hardware_add_errors(extra, message, isolated_home):
    r = invoke("hardware", "add", "x1", *extra, "--save")
    assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1
    assert not (isolated_home / "hardware.toml").exists()


def test_hardware_add_bad_name():
    r = invoke("hardware", "add", "../etc/passwd", "--like", "h100")
    assert r.exit_code == 2 and "must be 1-64 characters" in r.stderr


# --- completion, version, colour --------------------------------------------------------------------


def test_completion_of_names(isolated_home):
    assert "llama3-70b" in complete_names("models")("llama3-7")
    assert "h100" in complete_names("hardware")("h1") and "H100" in complete_names("hardware")("H1")  # typed case kept
    assert "4xh100" in _complete_gpus("4xh1") and "8xrtx-4090" in _complete_gpus("8xrtx")
    assert all(c.startswith("8x") for c in _complete_gpus("8"))
    write(isolated_home / "hardware.toml", {"zz-mine": _hw()})
    assert complete_names("hardware")("zz") == ["zz-mine"]
    write(isolated_home / "hardware.toml", "broken = = toml")
    assert complete_names("hardware")("h") == []  # never crash the shell


def test_shell_completion_end_to_end():
    env = {"_TOKECON_COMPLETE": "complete_bash", "COMP_WORDS": "tokecon decode --model qwen3-3", "COMP_CWORD": "3"}
    r = runner.invoke(app, [], env=env, prog_name="tokecon")
    assert set(r.stdout.split()) >= {"qwen3-30b-a3b", "qwen3-32b"}
    env = {"_TOKECON_COMPLETE": "complete_bash", "COMP_WORDS": "tokecon hardware show mi3", "COMP_CWORD": "3"}
    assert "mi300x" in runner.invoke(app, [], env=env, prog_name="tokecon").stdout.split()


def test_version():
    from tokecon import __version__

    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"tokecon {__version__}"


@pytest.mark.parametrize("args", [["hardware", "list"], ["models", "show", "llama3-8b"], ["decode", "-m", "llama3-8b", "-g", "1xH100"]])
def test_no_colour_when_not_a_terminal_or_no_color(args, monkeypatch):
    out = invoke(*args).stdout
    assert "\x1b[" not in out and "━" not in out and "│" not in out  # plain ASCII box for pipes and files
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in invoke(*args).stdout


def test_forced_terminal_colour_respects_no_color(monkeypatch):
    import io

    from tokecon.commands.catalog_cmds import hardware_list
    from tokecon.cli.render import render_table

    buf = io.StringIO()
    render_table(hardware_list(), buf, color=True)
    assert "\x1b[" in buf.getvalue()  # a terminal gets styles
    monkeypatch.setenv("NO_COLOR", "1")
    buf = io.StringIO()
    render_table(hardware_list(), buf, color=True)
    assert not re.search(r"\x1b\[[0-9;]*(3[0-8]|9[0-7])[;m]", buf.getvalue())  # no colour (bold/italic may remain)


def test_core_and_catalog_import_neither_typer_nor_rich():
    import subprocess
    import sys

    code = ("import sys; import tokecon.catalogs.catalog, tokecon.catalogs.write, tokecon.catalogs.hf_config, tokecon.commands.catalog_cmds, "
            "tokecon.commands.check; bad = [m for m in ('typer', 'rich', 'numpy') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"  # catalog commands need no numpy either (fast `hardware list`)


def test_json_outputs_are_finite():
    for args in (["hardware", "list"], ["models", "list"], ["hardware", "show", "l4"], ["models", "show", "bge-large"]):
        doc = json.loads(invoke(*args, "-f", "json").stdout)
        text = json.dumps(doc)
        assert "NaN" not in text and "Infinity" not in text
        assert all(not isinstance(v, float) or math.isfinite(v) for r in doc["rows"] for v in r.values())


def test_builtin_catalogs_load_clean():
    cat = load_catalog(use_user_home=False)
    assert len(cat.hardware) >= 20 and len(cat.models) >= 20 and os.path.isfile(cat.files[0])


def test_model_sources_cite_public_configs_not_local_paths(catalog):
    """Users have no shared/fixtures folder: a source names the public config (issue 11)."""
    for m in catalog.models:
        assert "shared/" not in m.source, m.key
    assert catalog.models.get("meta-llama/Llama-3.3-70B-Instruct").key == "llama3-70b"


@pytest.mark.parametrize("kind", ["hardware", "models", "engines"])
def test_every_shipped_entry_validates_and_builds(kind):
    """The shipped catalogs' entries are validated when first used (a command pays only for what it
    uses), so this checks them all: each validates, builds, and is found under its key and aliases."""
    tables = tomllib.loads(builtin_paths()[kind].read_text())
    for key, entry in tables.items():
        validate_entry(kind, key, entry, "built-in")
    registry = load_catalog(use_user_home=False).registry(kind)
    assert len(list(registry)) == len(tables)
    for key, entry in tables.items():
        assert all(registry.get(name).key == key for name in (key, *entry.get("aliases", ())))


def test_a_rental_given_without_its_date_is_called_undated(isolated_home, tmp_path):
    """A user entry with ``rental_usd_per_hour`` and no ``price_date``: the notes say "undated" rather
    than print an empty "(catalog, )"."""
    from typer.testing import CliRunner

    from tokecon.cli.main import app

    entry = {k: v for k, v in _hw(rental_usd_per_hour=1.5).items() if k not in ("price_date", "price_points")}
    cat = write(tmp_path / "mine.toml", {"hardware": {"mygpu": {**entry, "name": "My GPU"}}})
    for args in (["decode", "-m", "llama3-8b", "-g", "1xmygpu"], ["prices", "show", "mygpu"]):
        r = CliRunner().invoke(app, [*args, "--catalog", str(cat)])
        assert r.exit_code == 0, r.output
        assert "undated" in r.output and "()" not in r.output and "(catalog, )" not in r.output
