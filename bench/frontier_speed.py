"""Wall time of the widest frontier search (issue 10: under 1 s on one core): DeepSeek-V3 over three
device types, aggregated and disaggregated layouts, with MTP speculative decoding.

    python bench/frontier_speed.py [REPEATS]

Runs the command in-process (imports and catalog loading included in the first run, reported apart)
and prints the best and median wall seconds of the repeats. Pin one core with `taskset -c 0`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's tokecon, not an installed one

ARGS = ["frontier", "-m", "deepseek-v3", "-g", "8xH200", "-g", "8xB200", "-g", "72xGB200", "--mode", "both", "--speculative", "mtp",
        "-f", "json"]


def main(repeats: int = 5) -> int:
    t0 = time.perf_counter()
    from typer.testing import CliRunner

    from tokecon.cli.main import app

    runner = CliRunner()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = runner.invoke(app, ARGS)
        times.append(time.perf_counter() - t)
        if result.exit_code != 0:
            print(result.output)
            return 1
    first = time.perf_counter() - t0 - sum(times[1:])
    print(f"tokecon {' '.join(ARGS)}")
    print(f"first run (imports, catalogs): {first:.3f} s; repeats: best {min(times):.3f} s, median {statistics.median(times):.3f} s "
          f"(target < 1 s)")
    return 0 if statistics.median(times) < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
