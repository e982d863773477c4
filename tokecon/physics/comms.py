"""Time of collectives over the scale-up and scale-out links: a latency per call plus bytes over
bandwidth (the alpha-beta model).

Ring all-reduce of M bytes over n devices: each device sends (and receives) 2(n-1)/n * M,
half in the reduce-scatter and half in the all-gather (Patarasuk & Yuan 2009; nccl-tests
"busbw"), so t = calls * alpha + 2(n-1)/n * M / (link_B/s * efficiency).
All-to-all: a device sends its payload to the others. Destinations inside its scale-up domain
ride the scale-up link, the rest the scale-out NIC; the two links work at once, so the slower of
the two sets the time. An MoE token goes once to each distinct GPU (or, across nodes, node)
holding one of its experts (:func:`alltoall_copies_per_token`).

The scale-up bandwidth a group of n devices can use depends on the fabric
(:func:`scaleup_group_bw_b_s`): a switch (NVSwitch) gives every device its full aggregate; a
point-to-point mesh (AMD Infinity Fabric: 7 links of 64 GB/s per direction, 8 GPUs fully
connected; AMD's MI300X page, amd.com/en/products/accelerators/instinct/mi300/mi300x.html, gives 7 links
of 128 GB/s peak, read as bidirectional and halved as stas00/ml-engineering network/README.md does)
gives a group only the links to its n-1
peers; a torus (TPU ICI) gives a ring the 2 links of the one axis it runs along.
"""

from __future__ import annotations

import numpy as np


def scaleup_group_bw_b_s(aggregate_b_s: float, n: int, topology: str, links: int) -> float:
    """Per-direction scale-up bandwidth one device of an ``n``-device group can use.

    switch: the aggregate. mesh: aggregate * min(n-1, links)/links, one link per peer (MI300X,
    448 GB/s over 7 links: TP2 64 GB/s, TP4 192, TP8 448; an all-to-all sends to each peer over
    its own link, so the same figure). torus: aggregate * 2/links. Assumes the group is a ring
    along one torus axis, both directions (jax-ml scaling book, "sharded matmuls": a
    bidirectional ring on one axis has 2 links); a group spanning more axes could use more, and
    an all-to-all needs several hops (not modelled: optimistic for it). TPU v5e: 200 x 2/4 =
    100 GB/s; v5p: 600 x 2/6 = 200 GB/s.
    """
    if topology == "mesh":
        return aggregate_b_s * min(max(n - 1, 1), links) / links
    if topology == "torus":
        return aggregate_b_s * min(2, links) / links
    return aggregate_b_s


def distinct_bins_hit(bins: float, per_bin: float, k: int) -> float:
    """Expected number of distinct bins (GPUs, nodes) holding at least one of ``k`` experts drawn
    without replacement from ``bins`` bins of ``per_bin`` experts each:
    bins * (1 - C(E - per_bin, k) / C(E, k)), E = bins * per_bin (hypergeometric, uniform routing).
    DeepSeek-V3 at EP8: 8 (1 - C(224, 8)/C(256, 8)) = 5.29 GPUs per token. At most k: with fewer
    experts than bins (per_bin < 1) each expert sits in a bin of its own."""
    experts = bins * per_bin
    miss = 1.0
    for i in range(k):
        miss *= max(experts - per_bin - i, 0.0) / (experts - i)
    return min(bins * (1.0 - miss), float(k))


def alltoall_copies_per_token(
    experts: int, k: int, n: int, domain: int, groups: int = 0, groups_per_token: int = 0
) -> tuple[float, float]:
    """(scale-up, scale-out) copies of one token a device sends in an MoE dispatch over ``n``
    devices in nodes of ``domain`` (E/n experts per device, top-``k`` routing).

    DeepEP / DeepSeek-V3 (arXiv:2412.19437 section 3.2.2): a token crosses the scale-out network
    once per distinct remote node (to the GPU of the same local index) and is forwarded there over
    the scale-up link to each distinct GPU holding one of its experts. Node-limited routing
    (``groups_per_token`` of ``groups`` expert groups; DeepSeek-V3: 4 of 8, "at most 4 nodes")
    confines the experts to reach = min(nodes, g_tok * max(1, nodes/groups)) nodes.
      GPUs hit   G_d = distinct_bins_hit(reach * d, E/n, k)
      nodes hit  N_d = distinct_bins_hit(reach, E d/n, k)
      scale-up   G_d (d-1)/d     every GPU hit but the entry GPU of its node (the sender, or the
                                 receiver of the scale-out copy): 1 in d by symmetry
      scale-out  N_d (nodes-1)/nodes    remote nodes hit
    One node (n <= domain): G_d (n-1)/n copies, none across nodes.
    """
    d = min(domain, n)
    nodes = n / d
    reach = min(nodes, groups_per_token * max(1.0, nodes / groups)) if groups_per_token else nodes
    per_gpu = experts / n
    gpus = distinct_bins_hit(reach * d, per_gpu, k)
    node_hits = distinct_bins_hit(reach, per_gpu * d, k)
    return gpus * (d - 1) / d, node_hits * (nodes - 1) / nodes


def allreduce_link_bytes(message_bytes: np.ndarray, n: int) -> np.ndarray:
    """Bytes one device sends in a ring all-reduce of ``message_bytes``: 2(n-1)/n * M."""
    return 2.0 * (n - 1) / n * np.asarray(message_bytes, dtype=float)


def allreduce_time_s(message_bytes: np.ndarray, n: int, link_b_s: float, latency_s: float, calls: float) -> np.ndarray:
    """``calls`` all-reduces moving ``message_bytes`` in total over ``n`` devices.

    Worked number: llama3-70b decode, batch 1, TP4 on H100 (450 GB/s per direction):
    M = 2 x 80 layers x 8192 x 2 B = 2.62 MB per token; 2(3/4) M / 450e9 B/s = 8.7 us
    before latency (Tensor Economics counts (n-1)/n M, i.e. 4.4 us: one of the two phases).
    """
    if n <= 1:
        return np.zeros_like(np.asarray(message_bytes, dtype=float))
    return calls * latency_s + allreduce_link_bytes(message_bytes, n) / link_b_s


def alltoall_time_s(
    sent_bytes: np.ndarray,
    n: int,
    domain: int,
    scaleup_b_s: float,
    scaleout_b_s: float,
    latency_s: float,
    calls: float,
    scaleout_latency_s: float | None = None,
    scaleout_share: float | None = None,
) -> np.ndarray:
    """All-to-all where each of ``n`` devices sends ``sent_bytes`` to its peers.

    A ``scaleout_share`` of the bytes crosses the scale-out network (None: every peer reached
    directly, (n - d)/(n - 1) with d = min(domain, n)); the rest rides the scale-up link.
    t = calls*alpha + max(intra/scaleup, inter/scaleout). alpha is ``latency_s`` inside one
    domain and max(latency_s, ``scaleout_latency_s``) once some peers sit across the scale-out
    network (None: the same latency on both links).
    """
    sent = np.asarray(sent_bytes, dtype=float)
    if n <= 1:
        return np.zeros_like(sent)
    local = min(domain, n)
    share = (n - local) / (n - 1) if scaleout_share is None else scaleout_share
    intra = sent * (1.0 - share)
    inter = sent * share
    alpha = latency_s if (n <= local or scaleout_latency_s is None) else max(latency_s, scaleout_latency_s)
    return calls * alpha + np.maximum(intra / scaleup_b_s, inter / scaleout_b_s)
