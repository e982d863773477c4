"""Issue #20: no internal error, no negative price, no stale file. Numbers read from files (catalogs,
the user's catalogs, budget and cost files) of any size or sign give one line naming file, entry and
key, exit 2; a user catalog that is broken stops only the commands that read its kind; saves into a
TOKECON_HOME that is not a folder, and saves killed mid-write, leave no mess and no traceback."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w
from typer.testing import CliRunner

from tokecon.catalogs.catalog import builtin_paths, load_catalog, validate_entry
from tokecon.catalogs.inputs import parse_toml
from tokecon.cli.main import app
from tokecon.errors import CatalogError, TokeconError

runner = CliRunner()
HUGE = "1" + "0" * 400  # beyond a float: int(HUGE) > sys.float_info.max
BIG = "1" + "0" * 300  # a float can hold it, no field can


def invoke(*args: str):
    return runner.invoke(app, list(args))


def builtin_entry(kind: str, key: str) -> dict:
    with open(builtin_paths()[kind], "rb") as fh:
        return tomllib.load(fh)[key]


H100 = {k: v for k, v in builtin_entry("hardware", "h100-sxm").items() if k != "aliases"}
LLAMA = {k: v for k, v in builtin_entry("models", "llama3-8b").items() if k != "aliases"}


def one_line_error(r, *expected: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.output
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    for text in expected:
        assert text in r.stderr, r.stderr


def catalog_with(tmp_path, kind: str, entry: dict, field: str, literal: str, name: str = "cat.toml"):
    """A --catalog file holding ``[kind.x]`` = ``entry`` with ``field = literal`` written verbatim
    (tomli-w cannot write 1e400 or an integer beyond a float)."""
    text = tomli_w.dumps({kind: {"x": {**entry, field: 1234567}}})
    assert text.count("= 1234567\n") == 1
    path = tmp_path / name
    path.write_text(text.replace("= 1234567\n", f"= {literal}\n"))
    return path


# --- item 1: huge integers, infinities, NaN, signs -------------------------------------------------


@pytest.mark.parametrize(
    "kind,entry,field,literal,expected",
    [
        ("hardware", H100, "memory_gb", HUGE, "[x]: field 'memory_gb' = an integer of 401 digits is implausibly large"),
        ("hardware", H100, "scaleup_domain", HUGE, "[x]: field 'scaleup_domain' = an integer of 401 digits is implausibly large"),
        ("hardware", H100, "memory_gb", "-" + HUGE, "[x]: field 'memory_gb' must be > 0, got an integer of 401 digits"),
        ("hardware", H100, "source", HUGE, "[x]: field 'source' must be a string, got an integer of 401 digits"),
        ("hardware", H100, "memory_gb", BIG, "[x]: field 'memory_gb' = 1.000e+300 (an integer of 301 digits) is implausibly large"),
        ("hardware", H100, "memory_gb", "-" + BIG, "[x]: field 'memory_gb' must be > 0"),
        ("hardware", H100, "memory_gb", "1e400", "[x]: field 'memory_gb' must be finite, got inf"),
        ("hardware", H100, "memory_gb", "-1e400", "[x]: field 'memory_gb' must be finite, got -inf"),
        ("hardware", H100, "memory_gb", "nan", "[x]: field 'memory_gb' must be finite, got nan"),
        ("hardware", H100, "memory_gb", "0", "[x]: field 'memory_gb' must be > 0"),
        ("hardware", H100, "rental_usd_per_hour", "-1.5", "[x]: field 'rental_usd_per_hour' must be > 0"),
        ("hardware", H100, "rental_usd_per_hour", "0.0", "[x]: field 'rental_usd_per_hour' must be > 0"),
        ("hardware", H100, "power_w", "'nan'", "[x]: field 'power_w' must be a number, got 'nan'"),
        ("hardware", H100, "name", BIG, "[x]: field 'name' must be a string, got 1.000e+300"),
        ("models", LLAMA, "layers", HUGE, "[x]: field 'layers' = an integer of 401 digits is implausibly large"),
        ("models", LLAMA, "layers", BIG, "[x]: field 'layers' = 1.000e+300 (an integer of 301 digits) is implausibly large"),
        ("models", LLAMA, "layers", "0", "[x]: field 'layers' must be > 0"),
        ("models", LLAMA, "experts", "-1", "[x]: field 'experts' must be >= 0"),
        ("models", LLAMA, "layers", "1e400", "[x]: field 'layers' must be an integer, got inf"),
    ],
)
def test_catalog_numbers_of_any_size_are_one_line_errors(tmp_path, kind, entry, field, literal, expected):
    path = catalog_with(tmp_path, kind, entry, field, literal)
    with pytest.raises(CatalogError) as err:
        load_catalog([path], use_user_home=False)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)
    one_line_error(invoke("hardware", "list", "--catalog", str(path)), str(path), expected)


def test_huge_integers_deep_in_a_catalog_name_their_table(tmp_path):
    prov = {"source_class": "primary", "tier": "neocloud", "unit": "per_gpu", "source": "s"}
    points = [{"date": "2025-01", "kind": "rental", "usd_per_hour": 2.0, "scope": "card", "rental_kind": "on_demand", **prov},
              {"date": "2025-02", "kind": "purchase", "usd": 1234567, "scope": "card", **prov}]
    path = tmp_path / "cat.toml"
    path.write_text(tomli_w.dumps({"hardware": {"x": {**H100, "price_points": points}}}).replace("1234567", HUGE))
    one_line_error(invoke("hardware", "list", "--catalog", str(path)),
                   f"{path}: [x.price_points[1]]: field 'usd' = an integer of 401 digits is implausibly large")
    # a hexadecimal integer of 300 digits is just as large
    path.write_text(tomli_w.dumps({"hardware": {"x": {**H100, "memory_gb": 1234567}}}).replace("1234567", "0x" + "f" * 300))
    one_line_error(invoke("hardware", "list", "--catalog", str(path)), "field 'memory_gb' = an integer of 362 digits")


def test_validate_entry_takes_integers_beyond_a_float():
    """The catalog loader leaves every number to validate_entry (no walk over the parsed document), and
    entries built in code (``hardware add`` flags) come to it directly."""
    with pytest.raises(CatalogError, match=r"\[x\]: field 'memory_gb' = an integer of 401 digits is implausibly large"):
        validate_entry("hardware", "x", {**H100, "memory_gb": int(HUGE)}, "flags")
    with pytest.raises(CatalogError, match=r"field 'memory_gb' must be > 0, got an integer of 401 digits"):
        validate_entry("hardware", "x", {**H100, "memory_gb": -int(HUGE)}, "flags")


def test_parse_toml_leaves_ordinary_long_strings_alone():
    text = f'key = "{"a" * 5000}"\nhex = "{"f" * 400}"\nn = 123\n'
    assert parse_toml(text, "x.toml", "a catalog")["n"] == 123


def test_huge_integer_in_the_user_catalog_names_file_entry_and_key(isolated_home):
    path = isolated_home / "hardware.toml"
    path.write_text(tomli_w.dumps({"mine": {**H100, "memory_gb": 1234567}}).replace("1234567", HUGE))
    one_line_error(invoke("hardware", "list"), f"{path}: [mine]: field 'memory_gb' = an integer of 401 digits is implausibly large")


@pytest.mark.parametrize(
    "table,expected",
    [
        (f"[cost]\npue = {HUGE}\n", "[cost]: field 'pue': an integer of 401 digits, too large to be a number"),
        (f"[cost]\npurchase_usd = {{ h100 = {HUGE} }}\n", "[cost.purchase_usd]: field 'h100': an integer of 401 digits"),
        ("[cost]\npue = 1e400\n", "pue must be a number, got inf"),
        ("[cost]\nusd_per_kwh = nan\n", "usd_per_kwh must be a number, got nan"),
        ("[cost]\nusd_per_kwh = -0.1\n", "usd_per_kwh must be >= 0"),
    ],
)
def test_cost_file_numbers(tmp_path, table, expected):
    path = tmp_path / "cost.toml"
    path.write_text(table)
    one_line_error(invoke("serve", "-m", "llama3-8b", "-g", "1xh100", "-c", "1", "--cost-file", str(path)), str(path), expected)


@pytest.mark.parametrize(
    "line,expected",
    [
        (f"max_usd_per_mtok = {HUGE}", "[scenarios.a]: field 'max_usd_per_mtok': an integer of 401 digits"),
        (f"context = {HUGE}", "[scenarios.a]: field 'context': an integer of 401 digits"),
        (f"batch = [1, {HUGE}]", "[scenarios.a.batch]: item 1: an integer of 401 digits"),
        (f"context = {BIG}", "'context' value 1.000e+300 (an integer of 301 digits) is implausibly large"),
        ("max_usd_per_mtok = 1e400", "'max_usd_per_mtok' must be a finite number, got inf"),
        ("max_usd_per_mtok = nan", "'max_usd_per_mtok' must be a finite number, got nan"),
        ("context = -5", "--context must be a positive integer, got -5"),
    ],
)
def test_budget_file_numbers(tmp_path, line, expected):
    path = tmp_path / "budget.toml"
    path.write_text(f'[scenarios.a]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_tpot_ms = 60\n{line}\n'
                    .replace("max_tpot_ms = 60\nmax_", "max_"))
    one_line_error(invoke("check", str(path)), str(path), expected)


def test_errors_are_tokecon_errors_for_every_toml_reader(tmp_path):
    with pytest.raises(TokeconError, match="an integer of 401 digits"):
        parse_toml(f"a = [[{HUGE}]]\n", "f.toml", "a budget file")


# --- item 2: TOKECON_HOME that is not a folder ------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "below-a-file"])
def test_save_into_a_home_that_is_a_file_is_one_line(tmp_path, monkeypatch, where):
    home_file = tmp_path / "home"
    home_file.write_text("not a folder\n")
    home = home_file if where == "file" else home_file / "sub"
    monkeypatch.setenv("TOKECON_HOME", str(home))
    r = invoke("hardware", "add", "my-gpu", "--like", "h100", "--save")
    one_line_error(r, str(home), "not a folder" if where == "file" else "Not a directory")
    assert home_file.read_text() == "not a folder\n"
    assert invoke("hardware", "list").exit_code == 0  # reading finds no user catalog there, as before


# --- item 1: a broken user catalog stops only the commands that read its kind -----------------------


@pytest.mark.parametrize("broken", ["huge", "syntax", "negative"])
def test_broken_user_hardware_catalog_stops_only_hardware_commands(isolated_home, broken):
    path = isolated_home / "hardware.toml"
    text = tomli_w.dumps({"mine": {**H100, "power_w": 1234567}})
    path.write_text({"huge": text.replace("1234567", HUGE), "syntax": "[mine\n", "negative": text.replace("1234567", "-700")}[broken])
    expected = {"huge": "[mine]: field 'power_w' = an integer of 401 digits", "syntax": "TOML syntax error",
                "negative": "[mine]: field 'power_w' must be > 0"}[broken]
    for args in (["engines", "list"], ["engines", "show", "vllm"], ["models", "list"], ["models", "show", "llama3-8b"]):
        r = invoke(*args)
        assert r.exit_code == 0, (args, r.output)
    for args in (["hardware", "list"], ["hardware", "show", "h100"], ["decode", "-m", "llama3-8b", "-g", "1xh100"]):
        one_line_error(invoke(*args), str(path), expected)


def test_broken_user_models_catalog_does_not_stop_hardware_list(isolated_home):
    (isolated_home / "models.toml").write_text(tomli_w.dumps({"mine": {**LLAMA, "layers": 0}}))
    assert invoke("hardware", "list").exit_code == 0
    one_line_error(invoke("models", "list"), str(isolated_home / "models.toml"), "[mine]: field 'layers' must be > 0")


def test_catalog_reads_each_kind_once_and_names_its_files(isolated_home, tmp_path):
    (isolated_home / "hardware.toml").write_text(tomli_w.dumps({"mine": {**H100, "name": "Mine"}}))
    extra = tmp_path / "extra.toml"
    extra.write_text(tomli_w.dumps({"models": {"m": LLAMA}}))
    cat = load_catalog([extra])
    assert cat.files_for("hardware") == [str(builtin_paths()["hardware"]), str(isolated_home / "hardware.toml")]
    assert cat.files_for("models") == [str(builtin_paths()["models"]), str(extra)]
    assert cat.files == [*map(str, builtin_paths().values()), str(isolated_home / "hardware.toml"), str(extra)]
    assert cat.hardware is cat.hardware and cat.hardware.get("mine").name == "Mine" and cat.models.get("m").layers == 32


def test_a_catalog_flag_file_is_checked_whole(tmp_path):
    """A --catalog file is an input of this command: a broken device in it stops engines list too."""
    path = catalog_with(tmp_path, "hardware", H100, "power_w", "-1")
    one_line_error(invoke("engines", "list", "--catalog", str(path)), "[x]: field 'power_w' must be > 0")


def test_case_variant_overrides_keep_every_alias(isolated_home):
    (isolated_home / "models.toml").write_text(tomli_w.dumps({"LLAMA3-8B": {**LLAMA, "name": "mine"}}))
    models = load_catalog().models
    builtin_aliases = builtin_entry("models", "llama3-8b")["aliases"]
    assert all(models.get(a).name == "mine" for a in builtin_aliases) and models.get("llama3-8b").name == "mine"
    assert "llama3-8b" not in models.entries and "LLAMA3-8B" in models.entries


# --- item 8: temporary files of killed saves are removed by a later save -----------------------------


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_save_removes_stale_temporary_files_and_only_those(isolated_home):
    import os
    import subprocess
    import sys
    import time

    from tokecon.catalogs.write import STALE_TEMP_SECONDS, _host_tag

    folder, host = isolated_home, _host_tag()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        an_hour_ago = time.time() - 3600
        files = {
            f".hardware.toml.{_dead_pid()}.{host}.abcd1234.tmp": (None, False),  # its writer is gone
            f".hardware.toml.{live.pid}.{host}.abcd1234.tmp": (an_hour_ago, True),  # a live writer: kept, even if old
            f".hardware.toml.{os.getpid()}.{host}.zzzz9999.tmp": (None, True),  # this very process: kept
            ".hardware.toml.12345.other-host.abcd1234.tmp": (None, True),  # another machine, young: kept
            ".hardware.toml.12346.other-host.abcd1234.tmp": (an_hour_ago, False),  # another machine, old
            ".hardware.toml.k2j4_x9q.tmp": (None, True),  # an older version's name, young: kept
            ".hardware.toml.k2j4_x9r.tmp": (an_hour_ago, False),  # an older version's name, old
            ".models.toml.k2j4_x9r.tmp": (an_hour_ago, True),  # another catalog's
            "hardware.toml.bak.tmp": (an_hour_ago, True),  # not ours at all
        }
        for name, (mtime, _) in files.items():
            (folder / name).write_text("partial")
            if mtime is not None:
                os.utime(folder / name, (mtime, mtime))
        assert an_hour_ago < time.time() - STALE_TEMP_SECONDS
        r = invoke("hardware", "add", "my-gpu", "--like", "h100", "--save")
        assert r.exit_code == 0, r.output
        left = {p.name for p in folder.iterdir()}
        assert {n for n, (_, kept) in files.items() if kept} <= left
        assert not {n for n, (_, kept) in files.items() if not kept} & left
        assert "hardware.toml" in left and load_catalog().hardware.get("my-gpu")
    finally:
        live.kill()
        live.wait()


def test_saves_killed_mid_write_leave_nothing_after_the_next_save(isolated_home):
    """A writer killed between its temporary file and the replace leaves ``.hardware.toml.PID.HOST.*.tmp``;
    the next save removes them."""
    import signal
    import subprocess
    import sys
    import time

    path = isolated_home / "hardware.toml"
    script = (
        "import sys, pathlib\n"
        "from tokecon.catalogs.write import atomic_write_text\n"
        "text = 'x = 1\\n' * 2_000_000\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    atomic_write_text(pathlib.Path(sys.argv[1]), text)\n"
    )
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.15)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
    path.unlink(missing_ok=True)
    r = invoke("hardware", "add", "my-gpu", "--like", "h100", "--save")
    assert r.exit_code == 0, r.output
    assert list(isolated_home.glob(".hardware.toml.*.tmp")) == []
    assert load_catalog().hardware.get("my-gpu")


@pytest.mark.parametrize("command, label", [(("hardware", "show"), "NAME"), (("models", "show"), "NAME"),
                                            (("engines", "show"), "NAME[@VERSION]")])
def test_an_empty_argument_is_named_as_the_usage_line_names_it(command, label):
    """A blank positional argument is named as `--help`'s usage line names it, not as the API's ``name=``."""
    r = invoke(*command, " ")
    one_line_error(r, f"{label} must be a non-empty string")
    assert "name=" not in r.stderr
    assert "{" + label + "}" in invoke(*command, "--help").stdout
