"""Time of collectives over the scale-up and scale-out links: a latency per call plus bytes over
bandwidth (the alpha-beta model).

Ring all-reduce of M bytes over n devices: each device sends (and receives) 2(n-1)/n * M,
half in the reduce-scatter and half in the all-gather (Patarasuk & Yuan 2009; nccl-tests
"busbw"), so t = calls * alpha + 2(n-1)/n * M / (link_B/s * efficiency).
All-to-all: a device sends (n-1)/n of its payload to the others. Destinations inside its
scale-up domain (size d) ride the scale-up link, the rest (n-d)/n ride the scale-out NIC; the
two links work at once, so the slower of the two sets the time.
"""

from __future__ import annotations

import numpy as np


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
) -> np.ndarray:
    """All-to-all where each of ``n`` devices sends ``sent_bytes`` spread evenly over all n.

    Peers inside the scale-up domain (min(domain, n) devices) are reached over the scale-up
    link, the others over scale-out; t = calls*alpha + max(intra/scaleup, inter/scaleout).
    alpha is ``latency_s`` inside one domain and max(latency_s, ``scaleout_latency_s``) once
    some peers sit across the scale-out network (None: the same latency on both links).
    """
    sent = np.asarray(sent_bytes, dtype=float)
    if n <= 1:
        return np.zeros_like(sent)
    local = min(domain, n)
    intra = sent * (local - 1) / n
    inter = sent * (n - local) / n
    alpha = latency_s if (n <= local or scaleout_latency_s is None) else max(latency_s, scaleout_latency_s)
    return calls * alpha + np.maximum(intra / scaleup_b_s, inter / scaleout_b_s)
