"""Dollars: the hourly price of a deployment and what a million tokens cost.

    USD/Mtok = USD/h / (tok/s * 3600 s/h) * 1e6

Worked number: 4x H100 at 2.99 USD/GPU-h = 11.96 USD/h; at 1000 tok/s that is
11.96 / 3.6e6 * 1e6 = 3.32 USD per million tokens.

Revenue and margin at a provider's list prices: :class:`ListPrices`, :func:`margin`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.records import record
from tokecon.units import MTOK, SECONDS_PER_DAY, SECONDS_PER_HOUR


def usd_per_mtok(usd_per_hour: Any, tok_s: np.ndarray | float) -> np.ndarray | float:
    """Cost of one million tokens produced at ``tok_s`` by devices costing ``usd_per_hour``."""
    tok_s = np.asarray(tok_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tok_s > 0, usd_per_hour / (tok_s * SECONDS_PER_HOUR) * MTOK, np.inf)


def token_prices(input_usd_per_hour: Any, output_usd_per_hour: Any, input_tok_s: Any, output_tok_s: Any,
                 price_split: float | None = None) -> dict[str, np.ndarray]:
    """USD/Mtok of input, output and all tokens, for every way of serving (arrays broadcast).

        input   = input USD/h  / (input tok/s x 3600) x 1e6
        output  = output USD/h / (output tok/s x 3600) x 1e6
        blended = (input + output USD/h) / ((input + output tok/s) x 3600) x 1e6

    The hour splits by who used it: aggregated serving charges input tokens the share f of GPU time
    spent on prompts (input USD/h = f x USD/h); disaggregated serving charges them the prefill pool's
    hour and output tokens the decode pool's. The two charges add up to the hourly price. With
    ``price_split`` the whole hour is split by a fixed price ratio instead (:func:`split_by_ratio`).
    """
    inp_h, out_h = np.asarray(input_usd_per_hour, dtype=float), np.asarray(output_usd_per_hour, dtype=float)
    total = inp_h + out_h
    if price_split is None:
        inp, out = usd_per_mtok(inp_h, input_tok_s), usd_per_mtok(out_h, output_tok_s)
    else:
        inp, out = split_by_ratio(total, input_tok_s, output_tok_s, price_split)
    return {"usd_per_mtok_input": inp, "usd_per_mtok_output": out,
            "usd_per_mtok": usd_per_mtok(total, np.asarray(input_tok_s, dtype=float) + np.asarray(output_tok_s, dtype=float))}


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



@record
class ListPrices:
    """A provider's list prices in USD per million tokens: input missing the prefix cache, input
    found in it (``in_cached``; the miss price when not given), and output."""

    usd_per_mtok_in: float
    usd_per_mtok_out: float
    usd_per_mtok_in_cached: float | None = None

    def revenue_usd_per_day(self, input_tok_s, output_tok_s, prefix_hit: float = 0.0):
        """Revenue of a day at these rates:
            86,400 s x (input tok/s x ((1 - h) p_in + h p_cached) + output tok/s x p_out) / 1e6
        Worked number (DeepSeek open-infra-index day 6, 2025-03-01, R1 prices 0.55 / 0.14 / 2.19):
        266 B missed + 342 B cached input and 168 B output tokens a day -> 146,300 + 47,880 + 367,920
        = 562,100 USD (DeepSeek reports 562,027 from unrounded token counts)."""
        cached = self.usd_per_mtok_in if self.usd_per_mtok_in_cached is None else self.usd_per_mtok_in_cached
        per_s = (np.asarray(input_tok_s, dtype=float) * ((1.0 - prefix_hit) * self.usd_per_mtok_in + prefix_hit * cached)
                 + np.asarray(output_tok_s, dtype=float) * self.usd_per_mtok_out)
        return per_s * SECONDS_PER_DAY / MTOK


def daily_margin(prices: ListPrices, input_tok_s, output_tok_s, prefix_hit: float, cost_usd_per_day) -> dict[str, np.ndarray]:
    """A day at these rates: revenue at list ``prices``, the deployment's cost and the :func:`margin`."""
    revenue = prices.revenue_usd_per_day(input_tok_s, output_tok_s, prefix_hit)
    cost = np.broadcast_to(np.asarray(cost_usd_per_day, dtype=float), np.shape(revenue))
    return {"revenue_usd_per_day": revenue, "cost_usd_per_day": cost, "margin": margin(revenue, cost)}


def margin(revenue_usd: np.ndarray | float, cost_usd: np.ndarray | float) -> np.ndarray:
    """Cost-profit margin, (revenue - cost) / cost, as DeepSeek states it: 562,027 USD of revenue on
    87,072 USD of cost a day is 545%."""
    cost = np.asarray(cost_usd, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cost > 0, np.asarray(revenue_usd, dtype=float) / cost - 1.0, np.nan)
