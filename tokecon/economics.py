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


def split_by_time(
    usd_per_hour: float, input_tok_s: np.ndarray, output_tok_s: np.ndarray, prefill_fraction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """USD/Mtok of input and of output tokens when GPU time is attributed to the phase that used it.

        input  = USD/h x f       / (input tok/s x 3600) x 1e6       f: share of GPU time spent on prefill
        output = USD/h x (1 - f) / (output tok/s x 3600) x 1e6

    The two charges add up to the hourly price: input x in_tok + output x out_tok = cost.
    """
    f = np.asarray(prefill_fraction, dtype=float)
    return usd_per_mtok(usd_per_hour * f, input_tok_s), usd_per_mtok(usd_per_hour * (1.0 - f), output_tok_s)


def split_by_ratio(
    usd_per_hour: float, input_tok_s: np.ndarray, output_tok_s: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Economics' fixed price ratio: an input token costs ``gamma`` output tokens.

        beta (output USD/tok) = USD/s / (gamma x input tok/s + output tok/s),   input = gamma x beta

    Worked number (Tensor Economics, Llama 3.3 70B, 4 GPUs at 2.5 USD/h, batch 16 of 2035 in / 300 out
    in 8.96 s): beta = 0.00278 x 8.96 / (16 x (0.3 x 2035 + 300)) -> 1.71 USD/Mtok out, 0.51 in.
    """
    weighted = gamma * np.asarray(input_tok_s, dtype=float) + np.asarray(output_tok_s, dtype=float)
    out = usd_per_mtok(usd_per_hour, weighted)
    return gamma * out, out
