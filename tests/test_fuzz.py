"""Nothing a user types crashes tokecon.

Thousands of random and hostile argument lists (huge numbers, zero, negative, NaN, unicode, empty
strings, unknown flags, missing values) through every command, and malformed catalog, budget and
config.json files. For every run: the exit code is 0, 1 or 2; no traceback and no "internal
error"; a bad input is one line on stderr; JSON output, when asked for, parses; and no file
outside the temporary folder is opened for writing, replaced or removed (an audit hook watches).

Seeded and bounded so it runs in CI in seconds; set TOKECON_FUZZ_N / TOKECON_FUZZ_SEED to go further.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest
import tomli_w
import typer.main
import typer.testing
from typer.testing import CliRunner

from tokecon.catalogs.catalog import builtin_paths
from tokecon.cli.main import app

SEED = int(os.environ.get("TOKECON_FUZZ_SEED", "20261127"))
N_ARGV = int(os.environ.get("TOKECON_FUZZ_N", "2000"))
N_FILES = max(N_ARGV // 12, 40)
FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"  # copies of public configs: SOURCES.md there

HOSTILE = [
    "", " ", "-", "--", "0", "-0", "-1", "-1e9", "1e309", "-1e309", "nan", "NaN", "inf", "-inf", "1e-320",
    "99999999999999999999999999", "18446744073709551617", "0x10", "1_000", "1.5", ".5", "1,2,,3", ",", "1;2",
    "４", "٤", "🦙", "ünïcødé", "x" * 300, "\t", "a\nb", "\x1b[31m", "../../etc/passwd", "/dev/null", "%s%n",
    "' OR 1=1 --", "${HOME}", "~", "4x", "x4", "4xh100xh100", "-4xH100", "4.5xH100", "0xH100", "1e3xH100",
    "100001xH100", "4x🦙", "4 x H100", "h100,h200", "None", "null", "true", "[]", "{}",
]  # fmt: skip
NUMBERS = ["1", "2", "4", "8", "16", "64", "128", "1024", "2048", "4096", "32768", "0.5", "0.9", "1.0", "3", "7"]
MODELS = ["llama3-70b", "llama3-8b", "LLAMA3-8B", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-20b", "bge-large",
          "mixtral-8x7b", "gemma3-27b", "kimi-k2", "llama4-maverick", "qwen3-embedding-0.6b", "meta-llama/Llama-3.1-8B"]
GPUS = ["1xH100", "4xH100", "8xH200", "2xB200", "1xL4", "64xH100", "1xmi300x", "8xgb200", "1xrtx-4090", "H100", "4xtpu-v5e"]
DTYPES = ["bf16", "fp8", "fp4", "int4", "mxfp4", "nvfp4", "q4_k_m", "FP8", "fp16", "fp32"]
FORMATS = ["json", "table", "csv", "markdown", "json", "json", "JSON", "yaml"]
UNKNOWN_FLAGS = ["--bogus", "-z", "--model=", "--gpus=4xH100", "--format", "--no-such-option=1", "-", "--", "--help", "-h"]
NEVER = {"write", "fit"}  # validate --write writes the calibration by design; --fit is a slow optimisation
RARE = {"validate": 0.02}  # commands that take long by design: picked at this relative weight


# --- watching the file system --------------------------------------------------------------

_WATCH: dict = {"root": None, "violations": []}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _outside(path) -> bool:
    if isinstance(path, int):
        return False
    try:
        p = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return not (p == _WATCH["root"] or p.startswith(_WATCH["root"] + os.sep))


def _audit(event: str, args: tuple) -> None:
    if _WATCH["root"] is None:
        return
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writes and _outside(path):
            _WATCH["violations"].append((event, path, mode))
    elif event in ("os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.truncate",
                   "shutil.rmtree", "os.symlink", "os.link", "os.utime"):
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and _outside(path):
                _WATCH["violations"].append((event, path))


if not getattr(sys, "_tokecon_fuzz_hook", False):
    sys.addaudithook(_audit)
    sys._tokecon_fuzz_hook = True  # type: ignore[attr-defined]


# --- the command tree ------------------------------------------------------------------------


def leaf_commands():
    root = typer.main.get_command(app)

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, [*prefix, name])
            else:
                yield [*prefix, name], cmd

    return root, list(walk(root, []))


def kind_of(param) -> str:
    ann = getattr(getattr(param, "type_descriptor", None), "annotation", str)
    text = repr(ann)
    if "Path" in text:
        return "path"
    if "int" in text:
        return "int"
    if "float" in text:
        return "float"
    if "enum" in text:
        return "enum:" + ",".join(str(m.value) for m in ann)
    return "str"


class Fuzzer:
    def __init__(self, rng: random.Random, files: dict[str, list[str]]):
        self.rng, self.files = rng, files

    hostile = 0.25  # chance that a value is hostile; 0 for a "clean" argument list

    def value(self, name: str, kind: str) -> str:
        r = self.rng
        if r.random() < self.hostile:
            return r.choice(HOSTILE)
        if name == "model" or (name == "name" and r.random() < 0.5):
            return r.choice(MODELS + self.files["configs"][:3])
        if name == "gpus" or name == "like":
            return r.choice(GPUS)
        if name in ("dtype", "kv_dtype", "dispatch_dtype", "combine_dtype"):
            return r.choice(DTYPES)
        if name == "engine":
            return r.choice(["vllm", "VLLM", "sglang", "trtllm", "nope"])
        if name in ("batch", "concurrency", "nodes", "batch_per_gpu"):
            return r.choice(["1", "8", "1,8,64", "256", "1,2,4", "4096"])
        good = not self.hostile and r.random() < 0.7  # clean lists mostly name files that load
        if name == "catalog":
            return "valid.toml" if good else r.choice(self.files["catalogs"])
        if name == "budget":
            return "budget.toml" if good else r.choice(self.files["budgets"])
        if name == "config":
            return r.choice([c for c in self.files["configs"] if c.startswith("ok")] if good else self.files["configs"])
        if name in ("junit", "plot"):
            return r.choice(["out.xml", "sub/dir/out.xml", "nodir/../out.png", ".", "out"])
        if kind == "path":
            return r.choice(self.files["catalogs"] + self.files["configs"] + ["missing.json", "."])
        if kind.startswith("enum:"):
            return r.choice(kind[5:].split(",") + ["json", "nope"])
        if kind in ("int", "float"):
            return r.choice(NUMBERS)
        return r.choice(MODELS + GPUS + ["x", "custom"])

    def argv(self, leaves) -> tuple[list[str], dict[str, str]]:
        r = self.rng
        if r.random() < 0.03:
            return [r.choice(["--version", "--help", "--bogus", "🦙", "", "hardwar", "decode-x"])], {}
        path, cmd = r.choices(leaves, weights=[RARE.get(" ".join(p), 1.0) for p, _ in leaves])[0]
        clean = r.random() < 0.5  # half the lists are plausible, to reach deep into every command
        self.hostile = 0.0 if clean else 0.25
        args: list[str] = list(path)
        takes_value: dict[str, str] = {}
        for p in cmd.params:
            if p.param_type_name == "argument":
                if r.random() < 0.9:
                    args.append(self.value(p.name, kind_of(p)))
                continue
            if p.name in NEVER:
                continue
            flag = r.choice(p.opts)
            if getattr(p, "is_flag", False):
                if r.random() < 0.2:
                    args.append(flag)
                continue
            for o in p.opts:
                takes_value[o] = p.name
            want = 0.9 if p.required else (0.8 if p.name == "fmt" else 0.15)
            repeats = 1 + (r.random() < 0.2 if p.multiple else 0)
            for _ in range(repeats):
                if r.random() < want:
                    value = "json" if p.name == "fmt" and r.random() < 0.6 else self.value(p.name, kind_of(p))
                    args += [flag, value]
        if not clean and r.random() < 0.2:
            args.insert(r.randrange(len(path), len(args) + 1), r.choice(UNKNOWN_FLAGS))
        if not clean and r.random() < 0.1 and len(args) > len(path):
            args.pop()  # an option left without its value
        if not clean and r.random() < 0.1:
            tail = args[len(path):]
            r.shuffle(tail)
            args = args[: len(path)] + tail
        return args, takes_value


def asked_for_json(args: list[str], takes_value: dict[str, str]) -> bool:
    """Whether the parser would see ``--format json`` as the last format (values are skipped)."""
    fmt, i = None, 0
    while i < len(args):
        a = args[i]
        if a in takes_value and i + 1 < len(args):
            if takes_value[a] == "fmt":
                fmt = args[i + 1]
            i += 2
            continue
        i += 1
    return fmt == "json"


# --- hostile files ------------------------------------------------------------------------------


def _valid_catalog_text() -> str:
    import tomllib

    def first(kind, key):
        with open(builtin_paths()[kind], "rb") as fh:
            return tomllib.load(fh)[key]

    hw = {**first("hardware", "h100-sxm"), "aliases": ["fz1"]}
    model = {**first("models", "gpt-oss-20b"), "aliases": ["fz2"]}
    eng = first("engines", "vllm")
    return tomli_w.dumps({"hardware": {"fz-gpu": hw}, "models": {"fz-model": model}, "engines": {"fz-engine": {**eng, "aliases": []}}})


_LITERALS = ["-1", "0", "-0.0", "1e309", "nan", "inf", "-inf", '"str"', "true", "[]", "{}", "100000000000000000000000000000",
             '""', '["fz1", "FZ1"]', '["h100"]', '["llama3-70b"]', "1979-05-27", "0.0000001", '"🦙"']


def mutate_toml(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        i = rng.randrange(len(lines))
        if op < 0.35 and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {rng.choice(_LITERALS)}"
        elif op < 0.5:
            del lines[i]
        elif op < 0.6:
            lines.insert(i, lines[i])  # duplicate key or table
        elif op < 0.7 and "=" in lines[i]:
            lines[i] = rng.choice(["bogus_field", "memory_gbs", "Layers", "efficiency", "aliases"]) + " =" + lines[i].split("=", 1)[1]
        elif op < 0.78:
            lines.insert(i, rng.choice(["[hardware]", "[[hardware.x]]", "[hardware.fz-gpu]", "[models.fz-model.extra]",
                                        "[gpus.x]", "hardware = 3", "[engines.\"a.b\"]", "[models.\"\"]"]))
        elif op < 0.86:
            cut = rng.randrange(len("\n".join(lines)) + 1)
            return "\n".join(lines)[:cut].encode()
        elif op < 0.93:
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rng.choice(['"', "[", "]", "=", "\\", "\x00", "\ufeff", "'''", "#", "\x7f"]) + lines[i][pos:]
        else:
            return rng.choice([b"\xff\xfe\x00h\x00", bytes(rng.randrange(256) for _ in range(64)), "".encode("utf-16"),
                               b"", b"\xef\xbb\xbf" + text.encode()])
    return "\n".join(lines).encode()


def mutate_config(cfg: dict, rng: random.Random) -> bytes:
    cfg = json.loads(json.dumps(cfg))
    target = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(target) or ["x"])
        op = rng.random()
        if op < 0.6:
            target[key] = rng.choice([0, -1, 1, 2, 3, 10**12, 2**63, 1.5, -0.5, None, "12", [], {}, True, float("nan"),
                                      ["sliding_attention"] * 3, {"quant_method": "gptq", "bits": 3}])
        elif op < 0.85:
            target.pop(key, None)
        else:
            target[rng.choice(["layer_types", "quantization_config", "no_rope_layers", "mlp_only_layers", "text_config"])] = \
                rng.choice([None, 3, "x", [1, 0, 1], {"quant_method": "mxfp4"}, [None]])
    try:
        return json.dumps(cfg, allow_nan=True).encode()
    except (TypeError, ValueError):
        return b"{}"


def make_files(root: Path, rng: random.Random) -> dict[str, list[str]]:
    cat_text = _valid_catalog_text()
    (root / "valid.toml").write_text(cat_text)
    catalogs = ["valid.toml", "missing.toml", ".", "/dev/null"]
    for i in range(N_FILES):
        (root / f"cat{i}.toml").write_bytes(mutate_toml(cat_text, rng))
        catalogs.append(f"cat{i}.toml")
    example = (Path(__file__).parents[1] / "examples" / "budget.toml").read_text()
    (root / "budget.toml").write_text(example)
    budgets = ["budget.toml", "missing.toml", "."]
    for i in range(N_FILES // 2):
        (root / f"budget{i}.toml").write_bytes(mutate_toml(example, rng))
        budgets.append(f"budget{i}.toml")
    sources = sorted(FIXTURES.glob("*.json"))
    base_cfgs = [json.loads(p.read_text()) for p in sources]
    configs = []
    for i, cfg in enumerate(base_cfgs):
        (root / f"ok{i}.json").write_text(json.dumps(cfg))
        configs.append(f"ok{i}.json")
    for i in range(N_FILES):
        (root / f"cfg{i}.json").write_bytes(mutate_config(rng.choice(base_cfgs), rng))
        configs.append(f"cfg{i}.json")
    configs += ["missing.json", "valid.toml", "/dev/null"]
    return {"catalogs": catalogs, "budgets": budgets, "configs": configs}


# --- the test -------------------------------------------------------------------------------------

PER_RUN_S = 10


class Hang(BaseException):
    """Raised when one run takes longer than PER_RUN_S (a BaseException: nothing may swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: int, args):
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fire(signum, frame):
        raise Hang(f"{args!r} ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)



@pytest.fixture
def sandbox(tmp_path, monkeypatch, isolated_home):
    """cwd, HOME, TOKECON_HOME and XDG folders (the catalog cache's too) inside tmp_path; no bytecode writes; one click command."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TOKECON_CACHE")  # the parsed-catalog cache goes to XDG_CACHE_HOME, inside too
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    root, leaves = leaf_commands()
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: root)  # build the click tree once
    return tmp_path, leaves


def check_run(args: list[str], result, json_wanted: bool, problems: list[str], stats: dict | None = None) -> None:
    code, out, err = result.exit_code, result.stdout, result.stderr
    if stats is not None:
        stats[code] = stats.get(code, 0) + 1
        stats["json"] = stats.get("json", 0) + (json_wanted and code in (0, 1))
    where = f"{args!r} -> {code}"
    if code not in (0, 1, 2):
        problems.append(f"{where}: exit code {code} ({result.exception!r})")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"{where}: exception {result.exception!r}")
    if "Traceback" in out + err or "internal error" in err:
        problems.append(f"{where}: {err.strip()[-300:]}")
    if code == 2 and not err.startswith("Usage:") and not (err.startswith("tokecon: error: ") and err.count("\n") == 1):
        problems.append(f"{where}: stderr is not one error line: {err[:300]!r}")
    help_asked = any(a in ("--help", "-h") for a in args)
    if json_wanted and code in (0, 1) and not help_asked:
        try:
            json.loads(out)
        except ValueError as exc:
            problems.append(f"{where}: --format json gave unparsable output ({exc}): {out[:200]!r}")


def test_fuzz_cli_arguments_and_files(sandbox):
    tmp, leaves = sandbox
    rng = random.Random(SEED)
    files = make_files(tmp, rng)
    fuzz = Fuzzer(rng, files)
    runner = CliRunner()
    problems: list[str] = []
    stats: dict = {}
    runs: list[list[str]] = [fuzz.argv(leaves) for _ in range(N_ARGV)]
    # every hostile file through the loaders, on its own too
    for name in files["catalogs"]:
        runs.append((["hardware", "list", "--catalog", name, "-f", "json"], {"-f": "fmt", "--catalog": "catalog"}))
        runs.append((["decode", "-m", "fz2", "-g", "1xfz1", "-b", "1", "--catalog", name, "-f", "json"],
                     {"-f": "fmt", "--catalog": "catalog", "-m": "model", "-g": "gpus", "-b": "batch"}))
    for name in files["budgets"]:
        runs.append((["check", name, "-f", "json", "--junit", "report.xml"], {"-f": "fmt", "--junit": "junit"}))
    for name in files["configs"]:
        runs.append((["models", "import", name], {}))
        runs.append((["decode", "-m", name, "-g", "8xH200", "-b", "1", "-f", "json"], {"-f": "fmt", "-m": "model", "-g": "gpus", "-b": "batch"}))
    home = Path(os.environ["TOKECON_HOME"])
    _WATCH["root"], _WATCH["violations"] = os.path.realpath(tmp), []
    try:
        for i, (args, takes_value) in enumerate(runs):
            if i % 50 == 0:  # now and then, a hostile user catalog in TOKECON_HOME
                for f in home.glob("*.toml"):
                    f.unlink()
                if rng.random() < 0.5:
                    (home / rng.choice(["hardware.toml", "models.toml", "engines.toml"])).write_bytes(
                        (tmp / rng.choice(files["catalogs"][4:])).read_bytes())
            with time_limit(PER_RUN_S, args):
                result = runner.invoke(app, args)
            found: list[str] = []
            check_run(args, result, asked_for_json(args, takes_value), found, stats)
            problems += found
    finally:
        _WATCH["root"] = None
    assert not _WATCH["violations"], f"files touched outside {tmp}: {_WATCH['violations'][:5]}"
    assert not problems, f"{len(problems)} of {len(runs)} runs misbehaved (seed {SEED}):\n" + "\n".join(problems[:15])
    # the fuzz reached past the parser: plenty of runs computed something and printed JSON
    assert stats.get(0, 0) > len(runs) // 12 and stats["json"] > len(runs) // 25, stats


def test_audit_hook_catches_writes_outside(tmp_path):
    """The watcher itself works: a write outside the folder is seen, one inside is not."""
    _WATCH["root"], _WATCH["violations"] = os.path.realpath(tmp_path / "inside"), []
    try:
        (tmp_path / "inside").mkdir()
        (tmp_path / "inside" / "ok.txt").write_text("x")
        (tmp_path / "outside.txt").write_text("x")
    finally:
        _WATCH["root"] = None
    assert [str(v[1]) for v in _WATCH["violations"]] == [str(tmp_path / "outside.txt")]


def test_check_as_csv_is_not_an_internal_error(tmp_path):
    budget = tmp_path / "budget.toml"
    budget.write_text('[scenarios.ok]\ncommand = "decode"\nmodel = "llama3-8b"\ngpus = "1xH100"\nmax_tpot_ms = 1000\n')
    result = CliRunner().invoke(app, ["check", str(budget), "-f", "csv"])
    problems: list[str] = []
    check_run(["check", str(budget), "-f", "csv"], result, False, problems)
    assert not problems and result.exit_code == 0, problems
    assert result.stdout.splitlines()[1].startswith("ok,decode,")


@pytest.mark.parametrize("args", [["models", "import", str(FIXTURES / "deepseek-r1.json")], ["hardware", "add", "x1", "--like", "h100"]])
def test_new_catalog_entries_honour_format_json(args):
    result = CliRunner().invoke(app, [*args, "-f", "json"])
    problems: list[str] = []
    check_run([*args, "-f", "json"], result, True, problems)
    assert not problems, problems
