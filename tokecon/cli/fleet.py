"""``tokecon fleet``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli import serve as s
from tokecon.cli.main import app

Old = Annotated[str, typer.Option("--old", metavar="COUNTxDEVICE", help="The fleet in service, e.g. 8xA100.",
                                  autocompletion=o._complete_gpus)]
New = Annotated[str, typer.Option("--new", metavar="COUNTxDEVICE", help="The fleet that might replace it, e.g. 8xH100.",
                                  autocompletion=o._complete_gpus)]
Start = Annotated[int, typer.Option("--from", help="First year of the table.")]
Years = Annotated[int, typer.Option("--years", help="Years in the table (the horizon of the old fleet's value).")]
Floor = Annotated[Optional[float], typer.Option("--min-tok-s-per-user", help="Operating point: the most tokens per GPU that still serves each user this fast (default: max throughput).")]


@app.command(short_help="Old fleet vs new: cost per Mtok by year, when replacing pays.",
             epilog="Examples:\n\n\b\n  tokecon fleet -m llama3-70b --old 8xA100 --new 8xH100\n  tokecon fleet -m llama3-70b --old 8xMI300X --new 8xMI355X --min-tok-s-per-user 30 --interest-rate 0.05")
@o.with_groups(numerics=o.numerics)
def fleet(
    model: o.Model,
    old: Old,
    new: New,
    input_len: s.InputLen = 1024,
    output_len: s.OutputLen = 1024,
    min_tok_s_per_user: Floor = None,
    start: Start = 2026,
    years: Years = 5,
    cost_file: s.CostFile = None,
    other_capital_ratio: s.OtherCapital = None,
    depreciation_years: s.Years = None,
    interest_rate: s.Interest = None,
    pue: s.Pue = None,
    usd_per_kwh: s.UsdKwh = None,
    utilisation: s.Utilisation = None,
    fmt: o.Format = o.OutputFormat.table,
    wide: o.Wide = False,
    *,
    numerics,
) -> None:
    """Compare a fleet of an older device with a newer one on one workload, year by year: cost per Mtok of
    each (TCO at that year's purchase price), the market price of a token (the newer device's rental
    price), the old GPUs' remaining value, and the NPV and payback of replacing them on the same power."""
    from tokecon.commands.common import CommonOptions
    from tokecon.commands.fleet import run_fleet
    from tokecon.commands.serve import ServeOptions

    costs = s.costs(cost=s.CostMethod.tco, cost_file=cost_file, other_capital_ratio=other_capital_ratio,
                    depreciation_years=depreciation_years, interest_rate=interest_rate, pue=pue, usd_per_kwh=usd_per_kwh,
                    utilisation=utilisation)
    common = CommonOptions(model, (old, new), **numerics)
    opts = ServeOptions(common, cost=costs)
    o.emit(run_fleet(opts, old, new, input_len, output_len, min_tok_s_per_user, start, years), fmt, wide=wide)
