"""How fast tokecon answers, measured on this machine (a script, not a timed test).

    python bench/bench.py [--runs 21]

Prints the median (and min) wall time of, side by side with ``python -c pass``:
  1. ``tokecon decode --model llama3-70b --gpus 4xH100``, end to end in a fresh process (target: at most
     1.3x ``python -c "import typer, numpy"``, the imports no answer can avoid)
  2. ``tokecon --help``                                                            (target <= 1.1x that)
  3. a core sweep of one million (device x batch x context x TP) decode points     (target <= 1 s)
     through the vectorised core: every catalog device, TP 1/2/4/8, 100 batch sizes x 100 context
     lengths per (device, TP) in one ``decode_step`` call each, plus the memory fit of every point.
  4. in-process answers after a warm-up: ``compare`` over the whole catalog at its SLO (target <= 1 s) and
     ``validate`` over every measured row (target <= 3 s); the widest frontier search is timed by
     bench/frontier_speed.py.
The import cost of numpy, typer and rich alone is printed for context.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median and min wall time of ``cmd`` in a fresh process, after one warm-up run."""
    env = {**os.environ, "NO_COLOR": "1"}
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return statistics.median(times), min(times)


def sweep(repeats: int) -> tuple[float, float, int]:
    """(median, min) seconds and the number of points of the one-million-point core sweep."""
    import numpy as np

    from tokecon.catalogs.catalog import load_catalog
    from tokecon.physics.memory import max_batch
    from tokecon.physics.phases import decode_step
    from tokecon.serving.resolve import GpuSpec, build_scenario

    catalog = load_catalog(use_user_home=False)
    devices = sorted(catalog.hardware, key=lambda h: h.key)
    tps = (1, 2, 4, 8)
    batch = np.arange(1, 101, dtype=float)[:, None]  # 100 batch sizes
    context = np.geomspace(128, 131072, 100)[None, :]  # 100 context lengths
    B, C = np.broadcast_arrays(batch, context)
    times, points = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        points = 0
        for hw in devices:
            for tp in tps:
                scn = build_scenario(catalog, "llama3-70b", GpuSpec(tp, hw), tp=tp)
                step = decode_step(scn, B, C).step_time_s
                fits = B <= max_batch(scn, C)
                tok_s = np.where(fits, scn.deployment.replicas * B / step, 0.0)
                points += tok_s.size
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), points


def in_process(repeats: int) -> list[tuple[str, float, float, float]]:
    """(label, median s, min s, target s) of whole answers computed in this process, after a warm-up."""
    from typer.testing import CliRunner

    from tokecon.catalogs.catalog import load_catalog
    from tokecon.cli.main import app
    from tokecon.fidelity.validation import evaluate, load_measurements

    runner = CliRunner()
    catalog = load_catalog(use_user_home=False)
    rows = load_measurements()
    cases = [
        ("compare, whole catalog, llama3-70b at its SLO", 1.0,
         lambda: runner.invoke(app, ["compare", "-m", "llama3-70b", "-f", "json"])),
        (f"validate, {len(rows):,} measured rows", 3.0, lambda: evaluate(rows, catalog)),
    ]
    out = []
    for label, target, fn in cases:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out.append((label, statistics.median(times), min(times), target))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="fresh processes per command (default 21)")
    args = parser.parse_args()
    py = sys.executable
    exe = shutil.which("tokecon") or shutil.which("tokecon", path=os.path.dirname(sys.executable))
    tokecon = [exe] if exe else [py, "-m", "tokecon"]

    # An installed wheel has its bytecode compiled by pip; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would recompile every module on every run. Measure the installed case.
    import compileall

    import tokecon as package

    compiled = compileall.compile_dir(os.path.dirname(package.__file__), quiet=1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
    print(f"bytecode of {os.path.dirname(package.__file__)} compiled: {bool(compiled)} (as pip does on install)")
    print(f"tokecon: {' '.join(tokecon)}; {args.runs} runs each, median (min)\n")
    rows = [
        ("python -c pass", [py, "-c", "pass"], None),
        ("python -c 'import numpy'", [py, "-c", "import numpy"], None),
        ("python -c 'import typer'", [py, "-c", "import typer"], None),
        ("python -c 'import rich.table'", [py, "-c", "import rich.console, rich.table"], None),
        ("python -c 'import typer, numpy'", [py, "-c", "import typer, numpy"], None),
        ("tokecon --help", [*tokecon, "--help"], 1.1),
        ("tokecon decode --model llama3-70b --gpus 4xH100", [*tokecon, "decode", "--model", "llama3-70b", "--gpus", "4xH100"], 1.3),
        ("  the same with --format json (no Rich table)", [*tokecon, "decode", "--model", "llama3-70b", "--gpus", "4xH100", "--format", "json"], None),
    ]
    width = max(len(r[0]) for r in rows) + 2
    base = floor = None
    for label, cmd, target in rows:
        med, low = wall(cmd, args.runs)
        base = med if base is None else base
        floor = med if "typer, numpy" in label else floor
        verdict = "" if target is None else (("  ok" if med <= target * floor else "  OVER")
                                             + f" (target <= {target:g}x typer + numpy = {target * floor * 1e3:.0f} ms)")
        extra = "" if label.startswith("python") else f"  = python + {(med - base) * 1e3:.0f} ms"
        if label.startswith("python -c 'import"):
            extra = f"  (import alone: {(med - base) * 1e3:.0f} ms)"
        print(f"{label:<{width}} {med * 1e3:7.1f} ms ({low * 1e3:6.1f}){extra}{verdict}")
    med, low, points = sweep(repeats=5)
    verdict = ("  ok" if med <= 1.0 else "  OVER") + " (target <= 1000 ms)"
    print(f"{'core sweep, ' + f'{points:,} points':<{width}} {med * 1e3:7.1f} ms ({low * 1e3:6.1f})"
          f"  = {points / med / 1e6:.1f} M points/s{verdict}")
    for label, med, low, target in in_process(repeats=5):
        verdict = ("  ok" if med <= target else "  OVER") + f" (target <= {target * 1e3:.0f} ms)"
        print(f"{label:<{width}} {med * 1e3:7.1f} ms ({low * 1e3:6.1f}){verdict}")


if __name__ == "__main__":
    main()
