"""Check tokecon's error against its accuracy targets (a benchmark script, not a unit test).

    python bench/validation_targets.py

Targets (issue 5): median |error| <= 15% overall and within every hardware family with five rows
or more; 90th percentile <= 35% overall. Prints each figure with ok / MISSED and exits 1 when a
target is missed, so it can gate a release without making the unit tests flaky.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from tokecon import validation
from tokecon.catalog import load_catalog

MEDIAN_TARGET, P90_TARGET, FAMILY_MIN_ROWS = 0.15, 0.35, 5


def main() -> int:
    t0 = time.perf_counter()
    outcomes = validation.evaluate(validation.load_measurements(), load_catalog(use_user_home=False))
    elapsed = time.perf_counter() - t0
    errors = np.abs([o.error for o in outcomes if o.error is not None])
    missed = 0

    def line(label: str, value: float, target: float) -> None:
        nonlocal missed
        ok = value <= target
        missed += not ok
        print(f"{label:<40} {value:6.1%}  (target <= {target:.0%})  {'ok' if ok else 'MISSED'}")

    print(f"{len(errors)} of {len(outcomes)} measurements predicted in {elapsed * 1e3:.0f} ms")
    line("overall median |error|", float(np.median(errors)), MEDIAN_TARGET)
    line("overall p90 |error|", float(np.percentile(errors, 90)), P90_TARGET)
    for s in validation.summarise(outcomes, validation.GROUP_KEYS["hardware"]):
        if s.n >= FAMILY_MIN_ROWS:
            line(f"{s.group} ({s.n} rows) median |error|", s.median_ape, MEDIAN_TARGET)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
