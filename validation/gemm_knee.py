"""How round the knee of a dense GEMM is, from measured kernel latencies (tokecon.physics.efficiency,
``GEMM_KNEE_P``).

    python validation/gemm_knee.py DIR        # DIR: aiconfigurator's systems/data (a checkout)

Reads ai-dynamo/aiconfigurator's GEMM database (Apache-2.0; systems/data/<device>/gemm/trtllm/<version>/
gemm_perf.parquet, latencies in ms of TensorRT-LLM's GEMMs over M for each N x K; reading parquet needs
pyarrow, which tokecon does not depend on). For every projection of N x K >= 16M it takes the shape's
compute time t_c = 2 M N K / peak at its own large-M fraction of peak (M >= 4096, tiles of 64 rows
as tokecon pads them) and its memory time t_m = (M K + K N + M N) bytes / bandwidth at its small-M
fraction (M <= 16), tokecon's own tile rule and knee (tokecon.physics.efficiency), then prints, per device and type, the median log error of (t_c^p + t_m^p)^(1/p)
against the measured latency over the rows near the ridge (t_m / t_c in 0.25..4), for each p (the
sharp max is p = inf). Run at aiconfigurator 095f58a (2026-12-07): p = 2.5 is within 2.7% on every
device and type, the sharp max 1.4-9.8% too fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tokecon.physics import efficiency

#: Dense peak FLOP/s (bf16, fp8; None: no fp8) and HBM B/s of the devices in the database (tokecon's
#: hardware.toml), and the TensorRT-LLM version whose table is read. Each shape's times are rescaled by
#: its own measured fractions, so the peaks cancel in the errors; they only make t_c and t_m readable.
DEVICES = {"a100_sxm": (312e12, None, 2.039e12, "1.0.0"), "h100_sxm": (989e12, 1979e12, 3.35e12, "1.3.0rc20"),
           "h200_sxm": (989e12, 1979e12, 4.8e12, "1.3.0rc20"), "b200_sxm": (2250e12, 4500e12, 8.0e12, "1.3.0rc20")}
TYPES = {"bfloat16": (0, 2), "fp8": (1, 1)}  # index of the peak, bytes per element
KNEES = (1.5, 2.0, 2.5, 3.0, 4.0, float("inf"))


def knee_errors(m: np.ndarray, n: int, k: int, latency_s: np.ndarray, peak_flop_s: float, bw_b_s: float,
                bytes_per_element: int) -> dict[float, np.ndarray]:
    """Log errors ln(predicted / measured) near the ridge of one N x K shape, for each p of ``KNEES``;
    empty when the shape lacks its large-M or small-M points."""
    m = np.asarray(m, dtype=float)
    latency_s = np.asarray(latency_s, dtype=float)
    t_c = 2.0 * m * n * k / peak_flop_s / efficiency.tile_fraction(m)
    t_m = (m * k + k * n + m * n) * bytes_per_element / bw_b_s
    big, small = m >= 4096, m <= 16
    if big.sum() < 2 or small.sum() < 2:
        return {}
    t_c = t_c / np.median(t_c[big] / latency_s[big])
    t_m = t_m / np.median(t_m[small] / latency_s[small])
    near = (t_m / t_c > 0.25) & (t_m / t_c < 4.0)
    out = {}
    for p in KNEES:
        out[p] = np.log(efficiency.gemm_time_s(t_c, t_m, p)[near] / latency_s[near])  # p = inf: the sharp max
    return out


def main(data_dir: Path) -> None:
    import pyarrow.parquet as pq

    print(f"{'device':<10} {'type':<9} {'rows':>6}  " + "  ".join(f"p={p:g}".rjust(8) for p in KNEES))
    for device, (bf16, fp8, bw, version) in DEVICES.items():
        path = data_dir / device / "gemm" / "trtllm" / version / "gemm_perf.parquet"
        if not path.is_file():
            continue
        table = pq.read_table(path).to_pydict()
        m, n, k = (np.asarray(table[c], dtype=float) for c in ("m", "n", "k"))
        latency_s, dtype = np.asarray(table["latency"]) * 1e-3, np.asarray(table["gemm_dtype"])
        for name, (which, size) in TYPES.items():
            peak = (bf16, fp8)[which]
            if peak is None:
                continue
            errors: dict[float, list[np.ndarray]] = {p: [] for p in KNEES}
            for nn, kk in sorted(set(zip(n[dtype == name], k[dtype == name]))):
                if nn * kk < 16e6:
                    continue
                sel = (dtype == name) & (n == nn) & (k == kk)
                for p, e in knee_errors(m[sel], int(nn), int(kk), latency_s[sel], peak, bw, size).items():
                    errors[p].append(e)
            if errors[KNEES[0]]:
                medians = [100 * np.median(np.concatenate(errors[p])) for p in KNEES]
                rows = sum(e.size for e in errors[KNEES[0]])
                print(f"{device:<10} {name:<9} {rows:>6}  " + "  ".join(f"{v:+7.1f}%" for v in medians))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python validation/gemm_knee.py AICONFIGURATOR/aic-core/src/aiconfigurator_core/systems/data")
    main(Path(sys.argv[1]))
