"""Energy per token, tokens per megawatt, and the energy share of the price of a token.

    board power     W  = GPUs x power_w                    (full board power while serving)
    J/token            = board W / tok/s                    (J/output token: / output tok/s)
    facility W         = board W x PUE
    tok/s per MW       = tok/s / (facility W / 1e6)        (InferenceMAX's "tokens per MW")
    energy USD/Mtok    = facility kW x USD/kWh / (tok/s x 3600) x 1e6
    energy share       = facility kW x USD/kWh / USD/h of the deployment

Assumes: a busy accelerator draws its full rated board power (TDP/TBP), the figure its vendor
provisions for. That is an upper bound on energy and a lower bound on tok/s per MW: measured LLM
inference often draws less (Patel et al., "Characterizing Power Management Opportunities for LLMs in
the Cloud", ASPLOS 2024, find enough headroom in inference clusters to oversubscribe their power; the
ML.ENERGY leaderboard, ml.energy/leaderboard, measures GPU energy per request model by model). Host
CPUs, NICs and switches are not counted (PUE covers cooling and power conversion only).

Worked number: 8x H100 SXM (700 W) at 10,000 tok/s, PUE 1.3, 0.10 USD/kWh: 5,600 W / 10,000 = 0.56 J/token;
facility 7.28 kW -> 10,000 / 0.00728 = 1.374 Mtok/s per MW; energy 0.728 USD/h / 3.6e7 tok/h x 1e6 =
0.0202 USD/Mtok.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.units import MTOK, SECONDS_PER_HOUR


def energy_fields(board_w: Any, pue: float, usd_per_kwh: float, total_tok_s: Any, output_tok_s: Any,
                  usd_per_hour: Any) -> dict[str, np.ndarray]:
    """The energy figures of a deployment drawing ``board_w`` at the given rates (arrays broadcast:
    a disaggregated deployment's power and price vary with its workers)."""
    total = np.asarray(total_tok_s, dtype=float)
    out = np.asarray(output_tok_s, dtype=float)
    board = np.broadcast_to(np.asarray(board_w, dtype=float), total.shape)
    usd_h = np.broadcast_to(np.asarray(usd_per_hour, dtype=float), total.shape)
    facility_w = board * pue
    energy_usd_h = facility_w / 1000.0 * usd_per_kwh
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "joules_per_token": np.where(total > 0, board / total, np.inf),
            "joules_per_output_token": np.where(out > 0, board / out, np.inf),
            "facility_power_w": facility_w,
            "tok_s_per_mw": total / (facility_w / 1e6),
            "output_tok_s_per_mw": out / (facility_w / 1e6),
            "energy_usd_per_mtok": np.where(total > 0, energy_usd_h / (total * SECONDS_PER_HOUR) * MTOK, np.inf),
            "energy_share": np.where(usd_h > 0, energy_usd_h / usd_h, np.nan),
        }


NOTE = ("Energy: full board power while serving (an upper bound: measured inference often draws less, Patel et al. "
        "ASPLOS 2024, ML.ENERGY leaderboard); J/token at the board, "
        "tok/s per MW of facility power (board x PUE); energy share = electricity (facility kW x USD/kWh) / the hourly price.")
