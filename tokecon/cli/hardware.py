"""``tokecon hardware list|show|add``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tokecon.cli import options as o
from tokecon.cli.main import app

hardware_app = typer.Typer(help="Accelerators in the catalogs: list, show (with derived figures), add your own.",
                           no_args_is_help=True)
app.add_typer(hardware_app, name="hardware", short_help="Accelerators in the catalogs: list, show, add your own.")

DeviceName = Annotated[str, typer.Argument(help="Device name or alias.", autocompletion=o.complete_names("hardware"))]


@hardware_app.command("list")
def hardware_list(catalog: o.Catalogs = None, fmt: o.Format = o.OutputFormat.table, wide: o.Wide = False) -> None:
    """Every device of the merged catalogs, and which file each came from."""
    from tokecon.commands.catalog_cmds import hardware_list as run

    o.emit(run(tuple(catalog or ())), fmt, wide=wide)


@hardware_app.command("show")
def hardware_show(name: DeviceName, catalog: o.Catalogs = None, fmt: o.Format = o.OutputFormat.table) -> None:
    """One device: its figures, ridge points (FLOP/B), figures of merit per USD, and its catalog file."""
    from tokecon.commands.catalog_cmds import hardware_show as run

    o.emit(run(name, tuple(catalog or ())), fmt)


def _num(flag: str, text: str) -> object:
    return typer.Option(flag, help=text)


@hardware_app.command("add")
def hardware_add(
    name: Annotated[str, typer.Argument(help="Catalog key of the new device, e.g. my-h100-oc.")],
    memory_gb: Annotated[Optional[float], _num("--memory-gb", "Memory capacity [GB, decimal].")] = None,
    memory_bw_tb_s: Annotated[Optional[float], _num("--memory-bw-tb-s", "Memory bandwidth [TB/s].")] = None,
    bf16_tflop_s: Annotated[Optional[float], _num("--bf16-tflop-s", "Dense BF16 peak [TFLOP/s] (not the sparse figure).")] = None,
    rental_usd_per_hour: Annotated[Optional[float], _num("--rental-usd-per-hour", "Price per device-hour [USD/h].")] = None,
    fp8_tflop_s: Annotated[Optional[float], _num("--fp8-tflop-s", "Dense FP8 peak [TFLOP/s].")] = None,
    fp4_tflop_s: Annotated[Optional[float], _num("--fp4-tflop-s", "Dense FP4 peak [TFLOP/s].")] = None,
    int8_tops: Annotated[Optional[float], _num("--int8-tops", "Dense INT8 peak [TOP/s].")] = None,
    scaleup_link: Annotated[Optional[str], _num("--scaleup-link", "Scale-up link name (default 'PCIe Gen5 x16').")] = None,
    scaleup_bw_gb_s: Annotated[Optional[float], _num("--scaleup-bw-gb-s", "Scale-up bandwidth per direction [GB/s] (default 64).")] = None,
    scaleup_domain: Annotated[Optional[int], _num("--scaleup-domain", "Devices in one scale-up domain (default 8).")] = None,
    scaleout_bw_gb_s: Annotated[Optional[float], _num("--scaleout-bw-gb-s", "Scale-out bandwidth per device per direction [GB/s] (default 50).")] = None,
    power_w: Annotated[Optional[float], _num("--power-w", "Board power [W] (default 700).")] = None,
    purchase_usd: Annotated[Optional[float], _num("--purchase-usd", "Purchase price [USD].")] = None,
    vendor: Annotated[Optional[str], _num("--vendor", "Vendor (default 'custom').")] = None,
    family: Annotated[Optional[str], _num("--family", "Architecture family (default 'custom').")] = None,
    full_name: Annotated[Optional[str], _num("--full-name", "Display name (default: NAME).")] = None,
    source: Annotated[Optional[str], _num("--source", "Where the figures come from.")] = None,
    aliases: Annotated[Optional[str], _num("--aliases", "Comma-separated other names.")] = None,
    compute_efficiency: Annotated[Optional[float], _num("--compute-efficiency", "Achievable fraction of peak FLOP/s (default 0.7).")] = None,
    memory_bw_efficiency: Annotated[Optional[float], _num("--memory-bw-efficiency", "Achievable fraction of memory bandwidth (default 0.8).")] = None,
    like: Annotated[Optional[str], typer.Option("--like", help="Start from this catalog device's figures.",
                                                autocompletion=o.complete_names("hardware"))] = None,
    save: Annotated[bool, typer.Option("--save", help="Write it to $TOKECON_HOME/hardware.toml (default: print the TOML).")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --save: replace an entry of the same name.")] = False,
    catalog: o.Catalogs = None,
) -> None:
    """A device of your own. Without --save, prints the TOML entry; with --save, adds it to your catalog."""
    from tokecon.commands.catalog_cmds import add_hardware

    fields = {
        "memory_gb": memory_gb, "memory_bw_tb_s": memory_bw_tb_s, "bf16_tflop_s": bf16_tflop_s,
        "rental_usd_per_hour": rental_usd_per_hour, "fp8_tflop_s": fp8_tflop_s, "fp4_tflop_s": fp4_tflop_s,
        "int8_tops": int8_tops, "scaleup_link": scaleup_link, "scaleup_bw_gb_s": scaleup_bw_gb_s,
        "scaleup_domain": scaleup_domain, "scaleout_bw_gb_s": scaleout_bw_gb_s, "power_w": power_w,
        "purchase_usd": purchase_usd, "vendor": vendor, "family": family, "name": full_name, "source": source,
    }  # fmt: skip
    eff = {"compute": compute_efficiency, "memory_bw": memory_bw_efficiency}
    alias_list = [a for a in (aliases or "").split(",") if a.strip()]
    new = add_hardware(name, fields, eff, like, alias_list, tuple(catalog or ()), save, force)
    o.report_new_entry(new)
