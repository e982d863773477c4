"""Energy per token, tokens per megawatt, and the energy share of the price of a token, on two powers.

Two powers per GPU, each named where it is used:
    board power    W = power_w: the accelerator board's rated power (TDP/TBP), what its vendor provisions for
    all-in power   W = all_in_power_w: the GPU with its share of host CPUs, memory, NICs and switches, before
                       facility overhead. Published per GPU by the SemiAnalysis AI Cloud TCO Model ("All-In (W)",
                       github.com/SemiAnalysisAI/InferenceX-app packages/constants/src/gpu-keys.ts: H100 1,370 W
                       beside a 700 W board); where no figure is published, board x 1.70, the median published
                       ratio (tokecon.physics.specs.ALL_IN_OVER_BOARD). Electricity is paid on all-in power.

    J/token                = all-in W / tok/s                 (J/output token: / output tok/s)
    facility W             = all-in W x PUE
    tok/s per MW           = tok/s / (facility W / 1e6)       (InferenceMAX's "tokens per all-in MW")
    energy USD/Mtok        = facility kW x USD/kWh / (tok/s x 3600) x 1e6
    energy share           = facility kW x USD/kWh / USD/h of the deployment
    *_board                = the same figures on board power (joules_per_token_board, tok_s_per_mw_board, ...)

The unsuffixed fields are all-in: what a site pays for and what its power limit counts. The ``*_board`` fields
compare accelerators alone. A caller that knows the devices passes their all-in power (``Scenario.all_in_power_w``);
given board power alone, all-in is estimated as board x 1.70.

Assumes: a busy GPU draws its full rated power. That is an upper bound on energy and a lower bound on tok/s per
MW: measured LLM inference often draws less (Patel et al., "Characterizing Power Management Opportunities for LLMs in
the Cloud", ASPLOS 2024; the ML.ENERGY leaderboard, ml.energy/leaderboard, measures GPU energy model by model).
PUE covers cooling and power conversion.

Worked number: 8x H100 SXM (all-in 1,370 W, board 700 W) at 10,000 tok/s, PUE 1.3, 0.10 USD/kWh: 10,960 W /
10,000 = 1.096 J/token (0.56 at the board); facility 14.25 kW -> 10,000 / 0.014248 = 0.702 Mtok/s per MW (1.374 at
the board); energy 1.425 USD/h / 3.6e7 tok/h x 1e6 = 0.0396 USD/Mtok.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tokecon.physics.specs import ALL_IN_OVER_BOARD
from tokecon.units import MTOK, SECONDS_PER_HOUR


def _per_power(power_w: np.ndarray, pue: float, total: np.ndarray, out: np.ndarray) -> dict[str, np.ndarray]:
    facility_w = power_w * pue
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "joules_per_token": np.where(total > 0, power_w / total, np.inf),
            "joules_per_output_token": np.where(out > 0, power_w / out, np.inf),
            "facility_power_w": facility_w,
            "tok_s_per_mw": total / (facility_w / 1e6),
            "output_tok_s_per_mw": out / (facility_w / 1e6),
        }


def energy_fields(board_w: Any, pue: float, usd_per_kwh: float, total_tok_s: Any, output_tok_s: Any,
                  usd_per_hour: Any, all_in_w: Any = None) -> dict[str, np.ndarray]:
    """The energy figures of a deployment of ``board_w`` board power and ``all_in_w`` all-in power (default
    board x ALL_IN_OVER_BOARD) at the given rates: all-in figures unsuffixed, ``*_board`` beside. Arrays
    broadcast: a disaggregated deployment's power and price vary with its workers."""
    total = np.asarray(total_tok_s, dtype=float)
    out = np.asarray(output_tok_s, dtype=float)
    board = np.broadcast_to(np.asarray(board_w, dtype=float), total.shape)
    all_in = board * ALL_IN_OVER_BOARD if all_in_w is None else np.broadcast_to(np.asarray(all_in_w, dtype=float), total.shape)
    usd_h = np.broadcast_to(np.asarray(usd_per_hour, dtype=float), total.shape)
    energy_usd_h = all_in * pue / 1000.0 * usd_per_kwh
    with np.errstate(divide="ignore", invalid="ignore"):
        money = {
            "energy_usd_per_mtok": np.where(total > 0, energy_usd_h / (total * SECONDS_PER_HOUR) * MTOK, np.inf),
            "energy_share": np.where(usd_h > 0, energy_usd_h / usd_h, np.nan),
        }
    board_figures = {f"{k}_board": v for k, v in _per_power(board, pue, total, out).items()}
    return {**_per_power(all_in, pue, total, out), **money, "all_in_power_w": all_in, "board_power_w": board, **board_figures}


NOTE = ("Energy: all-in power per GPU (with its share of host, NICs and switches: the device's published figure, "
        f"else board x {ALL_IN_OVER_BOARD:g}) at full draw while serving, an upper bound (measured inference often draws "
        "less: Patel et al. ASPLOS 2024, ML.ENERGY leaderboard); J/token on that power, tok/s per MW of facility power "
        "(all-in x PUE), *_board fields on board power alone; energy share = electricity (facility kW x USD/kWh) / the "
        "hourly price.")
