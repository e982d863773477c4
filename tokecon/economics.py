"""Dollars: the hourly price of a deployment and what a million tokens cost.

    USD/Mtok = USD/h / (tok/s * 3600 s/h) * 1e6

Worked number: 4x H100 at 2.99 USD/GPU-h = 11.96 USD/h; at 1000 tok/s that is
11.96 / 3.6e6 * 1e6 = 3.32 USD per million tokens.
"""

from __future__ import annotations

import numpy as np

from tokecon.units import MTOK, SECONDS_PER_HOUR


def usd_per_mtok(usd_per_hour: float, tok_s: np.ndarray | float) -> np.ndarray | float:
    """Cost of one million tokens produced at ``tok_s`` by devices costing ``usd_per_hour``."""
    tok_s = np.asarray(tok_s, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(tok_s > 0, usd_per_hour / (tok_s * SECONDS_PER_HOUR) * MTOK, np.inf)
