"""Wall time of reading a very large ``--catalog`` (issue #20, item 9: linear, under ~2 s) and of the
SRAM-device refusals (``decode -m llama3-405b -g groq-lpu``: a fast "does not fit").

    python bench/catalog_speed.py [N] [--lean] [--keep DIR]
    python bench/catalog_speed.py --scaling [--lean]

Writes a catalog of N (default 20,000) ``[hardware.hN]`` entries copied from the built-in H100 with
varied names and aliases, and N ``[models.mN]`` entries copied from llama3-8b (``--lean``: without
their notes and dated prices), then runs each
command below as a fresh ``python -m tokecon`` process (imports and catalog loading included, as a
user sees it) and prints its wall seconds and exit code. ``--keep DIR`` leaves the catalog there.
``--scaling`` loads catalogs of 5,000 to 40,000 entries in process: the time per entry stays flat.

Most of a big catalog's time is the TOML parse itself (tomllib, pure Python, about 5 MB/s: the
64 MB catalog of the real H100 and Llama 3 8B entries takes 10 s or more to parse); validating,
building and indexing 40,000 entries takes about 2 s. The first command reads the file; the parse
cache (:mod:`tokecon.catalogs.parse_cache`) serves the later ones. Timings depend on the machine's load: compare
runs made side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tokecon, not an installed one


def write_big_catalog(path: Path, n: int, lean: bool = False) -> Path:
    """N devices and N models; ``lean`` drops the prose (notes, long sources) and the dated prices,
    as a catalog written by a script rather than copied by hand would."""
    import tomli_w

    from tokecon.catalogs.catalog import builtin_paths

    def entry(kind: str, key: str) -> dict:
        with open(builtin_paths()[kind], "rb") as fh:
            e = tomllib.load(fh)[key]
        if lean:
            e = {k: v for k, v in e.items() if k not in ("notes", "price_points", "params_source")} | {"source": "bench"}
        return e

    hw, model = entry("hardware", "h100-sxm"), entry("models", "llama3-8b")
    data: dict = {"hardware": {}, "models": {}}
    for i in range(n):
        data["hardware"][f"h{i}"] = {**hw, "name": f"Bench GPU {i}", "aliases": [f"bench-gpu-{i}", f"bg{i}x"],
                                     "rental_usd_per_hour": 1.0 + (i % 97) / 10}
        data["models"][f"m{i}"] = {**model, "name": f"Bench model {i}", "aliases": [f"bench-model-{i}"],
                                   "layers": 16 + i % 32}
    path.write_text(tomli_w.dumps(data))
    return path


def commands(cat: str) -> list[list[str]]:
    return [
        ["hardware", "list", "--catalog", cat],
        ["hardware", "show", "h19999", "--catalog", cat],
        ["models", "list", "--catalog", cat],
        ["decode", "-m", "llama3-8b", "-g", "1xh123", "--catalog", cat],
        ["compare", "-m", "minimax-m2.5", "--catalog", cat],
        ["engines", "list"],
        ["decode", "-m", "llama3-405b", "-g", "groq-lpu"],
        ["serve", "-m", "kimi-k2", "-g", "groq-lpu"],
        ["decode", "-m", "llama3-8b", "-g", "1xh100"],
    ]


def run(args: list[str], cache: str) -> tuple[float, int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKECON_HOME": tempfile.mkdtemp(prefix="tokecon-bench-home-"),
           "TOKECON_CACHE": cache}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "tokecon", *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - t, p.returncode, (p.stderr.strip().splitlines() or [""])[-1]


def breakdown(cat: Path) -> str:
    """In-process seconds of the TOML parse and of the whole load (parse + validate + build + index),
    first without the parse cache (a first read) and then from it (every later read of the file)."""
    from tokecon.catalogs.catalog import load_catalog, read_toml

    def seconds(call) -> float:
        t = time.perf_counter()
        call()
        return time.perf_counter() - t

    saved = os.environ.get("TOKECON_CACHE")
    os.environ["TOKECON_CACHE"] = "off"
    parse = seconds(lambda: read_toml(cat, check_numbers=False))
    cold = seconds(lambda: load_catalog([cat], use_user_home=False))
    os.environ["TOKECON_CACHE"] = tempfile.mkdtemp(prefix="tokecon-bench-cache-")
    load_catalog([cat], use_user_home=False)  # fills the cache
    warm = seconds(lambda: load_catalog([cat], use_user_home=False))
    if saved is None:
        del os.environ["TOKECON_CACHE"]
    else:
        os.environ["TOKECON_CACHE"] = saved
    return (f"load_catalog {cold:.2f} s on a first read, of which the TOML parse (tomllib) {parse:.2f} s; "
            f"{warm:.2f} s from the parse cache")


def scaling(folder: Path, lean: bool, sizes: tuple[int, ...] = (2_500, 5_000, 10_000, 20_000)) -> None:
    """Load time per entry at growing sizes: flat when loading is linear."""
    for n in sizes:
        cat = write_big_catalog(folder / f"scale-{n}.toml", n, lean)
        print(f"{2 * n:>7,} entries: {breakdown(cat)}")
        cat.unlink()


def main(argv: list[str]) -> int:
    lean = "--lean" in argv
    argv = [a for a in argv if a != "--lean"]
    if "--scaling" in argv:
        scaling(Path(tempfile.mkdtemp(prefix="tokecon-bench-")), lean)
        return 0
    keep = None
    if "--keep" in argv:
        i = argv.index("--keep")
        keep, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    n = int(argv[0]) if argv else 20_000
    folder = keep or Path(tempfile.mkdtemp(prefix="tokecon-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    cat = write_big_catalog(folder / "big.toml", n, lean)
    print(f"wrote {cat} ({cat.stat().st_size / 1e6:.1f} MB, {n:,} devices + {n:,} models) in {time.perf_counter() - t:.1f} s")
    print(f"in process: {breakdown(cat)}")
    cache = tempfile.mkdtemp(prefix="tokecon-bench-cache-")  # empty: the first command parses the file
    for i, args in enumerate(commands(str(cat))):
        seconds, rc, last = run(args, cache)
        shown = " ".join(a if a != str(cat) else "big.toml" for a in args) + ("   (first read)" if i == 0 else "")
        print(f"{seconds:7.2f} s  exit {rc}  tokecon {shown}" + (f"   [{last[:100]}]" if rc else ""))
    if not keep:
        cat.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
