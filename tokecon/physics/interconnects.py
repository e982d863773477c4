"""Scale-out networks between nodes (``moe --interconnect``): named fabrics with their bandwidth per
GPU per direction and latency per call, a bandwidth given in GB/s, or the device's own catalog entry."""

from __future__ import annotations

import dataclasses
import math

from tokecon.errors import TokeconError
from tokecon.physics.specs import Hardware
from tokecon.records import record
from tokecon.units import GB, US


@record
class Interconnect:
    """A scale-out network: bandwidth per GPU per direction and latency per all-to-all call."""

    key: str
    name: str
    bw_b_s: float
    latency_s: float | None
    source: str


#: Named scale-out networks for ``--interconnect``; "catalog" keeps the device's own entry.
INTERCONNECTS: dict[str, Interconnect] = {
    "infiniband": Interconnect(
        "infiniband", "InfiniBand NDR (400 Gb/s)", 50e9, 15 * US,
        "one ConnectX-7 per GPU as in DGX H100, where DeepEP measures 43-47 GB/s RDMA; 15 us per call assumed",
    ),
    "infiniband-xdr": Interconnect(
        "infiniband-xdr", "InfiniBand XDR (800 Gb/s)", 100e9, 15 * US,
        "one ConnectX-8 per GPU assumed, and 15 us per call",
    ),
    "ethernet": Interconnect(
        "ethernet", "RoCE Ethernet (200 Gb/s)", 25e9, 25 * US,
        "assumed: a typical cloud Ethernet fabric, and 25 us per call",
    ),
}
_ALIASES = {"ib": "infiniband", "ndr": "infiniband", "xdr": "infiniband-xdr", "roce": "ethernet", "eth": "ethernet"}


def resolve_interconnect(text: str | None, hw: Hardware) -> Interconnect:
    """``infiniband``, ``ethernet``, ``catalog`` (the device's own scale-out entry) or a
    bandwidth in GB/s per GPU per direction such as ``100``."""
    if text is None or text.strip().lower() in ("", "catalog", "default"):
        return Interconnect("catalog", "the catalog's scale-out link", hw.scaleout_bw_b_s, None, "the device's catalog entry")
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    if key in INTERCONNECTS:
        return INTERCONNECTS[key]
    try:
        gb_s = float(key.removesuffix("gb/s").removesuffix("gb_s").strip())
    except ValueError:
        raise TokeconError(
            f"unknown --interconnect '{text}' (known: catalog, {', '.join(INTERCONNECTS)}, or GB/s per GPU such as 100)"
        ) from None
    if not (math.isfinite(gb_s) and 0 < gb_s <= 1e5):
        raise TokeconError(f"--interconnect bandwidth must be between 0 and 100000 GB/s per GPU, got '{text}'")
    return Interconnect("custom", "a scale-out link", gb_s * GB, None, "given with --interconnect")


def with_interconnect(hw: Hardware, link: Interconnect, gpus_per_node: int | None = None) -> Hardware:
    """The device with its scale-out link (and that link's call latency) replaced. With
    ``gpus_per_node`` the scale-up domain is one node at most: nodes reach each other over
    scale-out (write 72xGB200 for a whole NVL72 rack)."""
    eff = dataclasses.replace(hw.efficiency, scaleout_latency_s=link.latency_s)
    domain = hw.scaleup_domain if gpus_per_node is None else min(hw.scaleup_domain, gpus_per_node)
    return dataclasses.replace(hw, scaleout_bw_b_s=link.bw_b_s, efficiency=eff, scaleup_domain=domain)
