"""Where two devices' cost curves cross: above which interactivity one of them is the cheaper.

Each device's frontier is a curve of USD/Mtok against tok/s per user (faster service costs more). Over the speeds
both curves cover, each is interpolated linearly between its points and the difference

    d(v) = cost_a(v) - cost_b(v)

is taken at every speed where either curve has a point; where d changes sign between two such speeds, the crossing
is the root of the straight line through them. The answer is the last crossing (the fastest): above it the same
device stays cheaper up to the end of the overlap, which is what "B200 cheaper above N tok/s per user" claims.

Assumes: the points are on each device's frontier (for a speed, the cheapest point; repeated speeds keep the
cheapest), and nothing is claimed outside the speeds both devices reach.

Worked number (tests/test_crossover.py): a = (10, 1.0), (50, 3.0); b = (10, 2.0), (50, 2.0): d runs from -1.0 to
+1.0, zero at 30 tok/s per user, b cheaper above.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np


class Crossover(NamedTuple):
    """The speed (tok/s per user) where the curves cross, the cost there (USD/Mtok), and which curve ("a" or "b")
    is cheaper above it."""

    tok_s_per_user: float
    usd_per_mtok: float
    cheaper_above: str


def _curve(points: Iterable[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Speeds ascending, each with its cheapest cost."""
    best: dict[float, float] = {}
    for speed, cost in points:
        if np.isfinite(speed) and np.isfinite(cost):
            best[float(speed)] = min(float(cost), best.get(float(speed), np.inf))
    speeds = np.array(sorted(best))
    return speeds, np.array([best[s] for s in speeds])


def crossover(points_a: Iterable[tuple[float, float]], points_b: Iterable[tuple[float, float]]) -> Crossover | None:
    """The last crossing of two frontiers given as (tok/s per user, USD/Mtok) points; None when the curves share
    fewer than two speeds or do not cross where both are defined (one is cheaper, or equal, throughout)."""
    va, ca = _curve(points_a)
    vb, cb = _curve(points_b)
    if va.size < 2 or vb.size < 2:
        return None
    lo, hi = max(va[0], vb[0]), min(va[-1], vb[-1])
    grid = np.unique(np.concatenate([va, vb]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    if grid.size < 2:
        return None
    d = np.interp(grid, va, ca) - np.interp(grid, vb, cb)
    nonzero = np.flatnonzero(d != 0)
    if nonzero.size < 2:
        return None
    signs = np.sign(d[nonzero])
    flips = np.flatnonzero(signs[1:] != signs[:-1])
    if flips.size == 0:
        return None
    i, j = nonzero[flips[-1]], nonzero[flips[-1] + 1]  # d[i] and d[j] have opposite signs, zeros between them
    root = grid[i] - d[i] * (grid[j] - grid[i]) / (d[j] - d[i])
    return Crossover(float(root), float(np.interp(root, va, ca)), "a" if d[j] < 0 else "b")
