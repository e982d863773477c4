"""Measure one GPU against tokecon's prediction for the same work: a GEMM sweep across M (bf16 and fp8),
a device-to-device copy, and decode steps of a randomly initialised Llama-shaped model.

    python validation/gpu_probe.py --out DIR [--hardware h100-sxm] [--quick] [--device cpu]

Writes DIR/gpu_probe.json (every measurement beside tokecon's figure and their ratio) and
DIR/gpu_probe.md (the same as tables), with the device's name, the date and the versions. Needs
PyTorch (on the device machine); ``--quick --device cpu`` runs tiny shapes to test the script.

What each part settles:

* GEMM sweep, weights (N x K) = Llama-3-70B's gate/up projection at TP1 (28,672 x 8,192), M tokens
  from 1 to 8,192: the shape of achieved FLOP/s against M. tokecon takes a GEMM's time as
  max(FLOP / (peak x compute fraction x tile padding), bytes / (bandwidth x memory fraction)), a
  sharp knee at the ridge; a measured knee that is rounded (validation/poisson_check.py found
  tokecon's throughput saturating too early under load) shows here as ratios above 1 near the ridge.
  fp8 (torch._scaled_mm, per-tensor scales) tells whether 8-bit GEMMs reach the same fraction of
  their doubled peak.
* Copy: bytes moved (read + write) per second against the catalog's memory bandwidth.
* Decode: one step of a Llama-3-8B-shaped model (random bf16 weights, KV cache of ``context``
  tokens per sequence, eager PyTorch with SDPA attention) at several batch sizes, against tokecon's
  ideal roofline and its fitted step (``tokecon decode --engine vllm``): eager PyTorch has more
  per-kernel overhead than a serving engine, so the fitted figure is a floor, the ideal a bound.

tokecon's figures come from this checkout's catalog (``--hardware``, default chosen from the
device's name). Each part runs on its own: an error in one is recorded and the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GEMM_N, GEMM_K = 28_672, 8_192  # Llama-3-70B gate/up projection, TP1
GEMM_M = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
COPY_BYTES = 4 << 30
DECODE_MODEL = "llama3-8b"
DECODE_BATCHES = (1, 8, 32, 64, 128, 256)
DECODE_CONTEXT = 1024
#: tiny shapes for --quick (a CPU test of the script itself)
QUICK = {"n": 512, "k": 256, "m": (1, 16, 64), "copy_bytes": 8 << 20, "layers": 2, "batches": (1, 4), "context": 64}


def hardware_key(device_name: str) -> str:
    """The catalog device a torch device name stands for (the probe's default ``--hardware``)."""
    name = device_name.lower()
    for needle, key in (("gh200", "gh200"), ("h200", "h200"), ("h100 nvl", "h100-nvl"), ("h100 pcie", "h100-pcie"),
                        ("h100", "h100-sxm"), ("b200", "b200"), ("a100", "a100-80gb"), ("l40s", "l40s")):
        if needle in name:
            return key
    return "h100-sxm"


# --- tokecon's figures -----------------------------------------------------------------------------------------------

def predicted_gemm_s(hw: Any, m: int, n: int, k: int, dtype: str, ideal: bool = False) -> float:
    """tokecon's time for one (m x k) @ (k x n) GEMM with ``dtype`` operands (1 byte for fp8, 2 for bf16):
    max(2mnk / (peak x compute fraction x tile padding), bytes / (bandwidth x memory fraction)),
    every fraction 1 when ``ideal`` (tokecon.physics.roofline, tokecon.physics.efficiency.tile_fraction)."""
    import numpy as np

    from tokecon.physics import efficiency

    size = 1 if dtype == "fp8" else 2
    flop = 2.0 * m * n * k
    bytes_ = size * (n * k + m * k) + 2 * m * n  # weights and input in dtype, output in bf16
    ce = 1.0 if ideal else hw.efficiency.compute * float(efficiency.tile_fraction(np.asarray([m]), hw.gemm_tile_rows)[0])
    me = 1.0 if ideal else hw.efficiency.memory_bw
    return max(flop / (hw.peak_flop_s(dtype) * ce), bytes_ / (hw.memory_bw_b_s * me))


def predicted_copy_s(hw: Any, nbytes: int, ideal: bool = False) -> float:
    """A device-to-device copy reads and writes ``nbytes``: 2 nbytes / (bandwidth x memory fraction)."""
    return 2.0 * nbytes / (hw.memory_bw_b_s * (1.0 if ideal else hw.efficiency.memory_bw))


def predicted_decode_s(hardware: str, batches: tuple[int, ...], context: int, ideal: bool) -> list[float]:
    """tokecon decode's step time (TPOT) for DECODE_MODEL on one ``hardware`` at each batch."""
    import tokecon

    rows = tokecon.decode(model=DECODE_MODEL, gpus=[f"1x{hardware}"], batch=[",".join(map(str, batches))],
                          context=context, ideal=ideal, ignore_memory=True).rows
    by_batch = {r["batch"]: r for r in rows}
    return [float(by_batch[b]["tpot_s"]) for b in batches]


# --- measurements (PyTorch) ------------------------------------------------------------------------------------------

def timed(fn: Callable[[], Any], torch: Any, device: str, min_s: float = 0.05, repeats: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs of enough calls to last ``min_s`` (CUDA
    events on a GPU, perf_counter on the CPU), after a warm-up."""
    cuda = device.startswith("cuda")
    for _ in range(3):
        fn()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    calls = max(1, int(min_s / max(time.perf_counter() - t, 1e-6)))
    samples = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / calls)
        else:
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            samples.append((time.perf_counter() - t) / calls)
    return statistics.median(samples)


def gemm_sweep(torch: Any, device: str, hw: Any, n: int, k: int, ms: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    w16 = torch.randn(n, k, device=device, dtype=torch.bfloat16)
    fp8 = device.startswith("cuda") and hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn")
    w8 = w16.to(torch.float8_e4m3fn) if fp8 else None
    one = torch.ones((), device=device, dtype=torch.float32)
    for m in ms:
        x16 = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        cases = [("bf16", lambda: x16 @ w16.t())]
        if fp8:
            x8 = x16.to(torch.float8_e4m3fn)
            cases.append(("fp8", lambda: torch._scaled_mm(x8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)))
        for dtype, fn in cases:
            try:
                s = timed(fn, torch, device)
            except Exception as exc:  # an fp8 path the build lacks: recorded, the sweep goes on
                rows.append({"dtype": dtype, "m": m, "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            pred, ideal = predicted_gemm_s(hw, m, n, k, dtype), predicted_gemm_s(hw, m, n, k, dtype, ideal=True)
            rows.append({"dtype": dtype, "m": m, "n": n, "k": k, "measured_s": s, "tflop_s": 2.0 * m * n * k / s / 1e12,
                         "predicted_s": pred, "ideal_s": ideal, "measured_over_predicted": s / pred})
    return rows


def copy_bandwidth(torch: Any, device: str, hw: Any, nbytes: int) -> dict[str, Any]:
    src = torch.empty(nbytes // 2, device=device, dtype=torch.bfloat16).normal_()
    dst = torch.empty_like(src)
    s = timed(lambda: dst.copy_(src), torch, device)
    pred = predicted_copy_s(hw, nbytes)
    return {"bytes": nbytes, "measured_s": s, "gb_s": 2.0 * nbytes / s / 1e9, "predicted_s": pred,
            "ideal_s": predicted_copy_s(hw, nbytes, ideal=True), "measured_over_predicted": s / pred}


def decode_steps(torch: Any, device: str, hardware: str, layers: int | None, batches: tuple[int, ...],
                 context: int) -> list[dict[str, Any]]:
    """Step time of a Llama-shaped decoder (DECODE_MODEL's shapes from the catalog; ``layers`` overrides
    the depth for a quick test) at each batch, a KV cache of ``context`` tokens per sequence."""
    from tokecon.catalogs.catalog import load_catalog

    spec = load_catalog(use_user_home=False).models.get(DECODE_MODEL)
    h, heads, kvh, ffn = spec.hidden_size, spec.heads, spec.kv_heads, spec.intermediate_size
    d = spec.head_dim
    depth = layers or spec.layers
    if layers:  # the quick test: a narrow model too
        h, heads, kvh, ffn, d = 256, 4, 2, 512, 64
    bf = torch.bfloat16
    mk = lambda *shape: torch.randn(*shape, device=device, dtype=bf) * 0.02  # noqa: E731
    weights = [(mk(h, (heads + 2 * kvh) * d), mk(heads * d, h), mk(h, 2 * ffn), mk(ffn, h)) for _ in range(depth)]
    lm_head = mk(h, spec.vocab_size if not layers else 1024)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def attend(q: Any, k: Any, v: Any) -> Any:
        try:  # grouped-query attention without copying the cache (torch 2.5 on)
            return sdpa(q, k, v, enable_gqa=heads != kvh)
        except TypeError:
            return sdpa(q, k.repeat_interleave(heads // kvh, 1), v.repeat_interleave(heads // kvh, 1))

    rows = []
    for b in batches:
        kv = [(mk(b, kvh, context, d), mk(b, kvh, context, d)) for _ in range(depth)]
        x0 = mk(b, h)

        def step(kv: list = kv, b: int = b, x0: Any = x0) -> Any:  # this batch's cache, bound now
            x = x0
            for (wqkv, wo, wgu, wd), (kc, vc) in zip(weights, kv):
                y = torch.nn.functional.rms_norm(x, (h,)) if hasattr(torch.nn.functional, "rms_norm") else x
                q, kn, vn = (y @ wqkv).split([heads * d, kvh * d, kvh * d], dim=-1)
                kc[:, :, -1] = kn.view(b, kvh, d)
                vc[:, :, -1] = vn.view(b, kvh, d)
                a = attend(q.view(b, heads, 1, d), kc, vc)
                x = x + a.reshape(b, heads * d) @ wo
                g, u = (x @ wgu).chunk(2, dim=-1)
                x = x + (torch.nn.functional.silu(g) * u) @ wd
            return x @ lm_head

        with torch.inference_mode():
            s = timed(step, torch, device, min_s=0.2, repeats=3)
        rows.append({"batch": b, "context": context, "layers": depth, "measured_s": s})
        del kv, step  # free this batch's cache before the next one's
    if not layers:
        for row, fitted, ideal in zip(rows, predicted_decode_s(hardware, batches, context, False),
                                      predicted_decode_s(hardware, batches, context, True)):
            row |= {"predicted_s": fitted, "ideal_s": ideal, "measured_over_predicted": row["measured_s"] / fitted,
                    "measured_over_ideal": row["measured_s"] / ideal}
    return rows


# --- report ----------------------------------------------------------------------------------------------------------

#: (heading, row key, scale, format) of each column of the GEMM and decode tables
GEMM_TABLE = (("dtype", "dtype", None, "{}"), ("M", "m", None, "{}"), ("measured [us]", "measured_s", 1e6, "{:.1f}"),
              ("TFLOP/s", "tflop_s", 1.0, "{:.0f}"), ("tokecon [us]", "predicted_s", 1e6, "{:.1f}"),
              ("ideal [us]", "ideal_s", 1e6, "{:.1f}"), ("measured / tokecon", "measured_over_predicted", 1.0, "{:.2f}"))
DECODE_TABLE = (("batch", "batch", None, "{}"), ("context", "context", None, "{}"), ("measured step [ms]", "measured_s", 1e3, "{:.2f}"),
                ("tokecon fitted [ms]", "predicted_s", 1e3, "{:.2f}"), ("ideal [ms]", "ideal_s", 1e3, "{:.2f}"),
                ("measured / fitted", "measured_over_predicted", 1.0, "{:.2f}"))


def table(rows: list[dict[str, Any]], columns: tuple) -> list[str]:
    """A markdown table of the measured ``rows`` (a figure a row lacks shows as "-")."""
    def cell(row: dict[str, Any], key: str, scale: float | None, fmt: str) -> str:
        v = row.get(key)
        return "-" if v is None else fmt.format(v if scale is None else v * scale)

    rows = [r for r in rows if "measured_s" in r]
    if not rows:
        return []
    return (["| " + " | ".join(c[0] for c in columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(r, *c[1:]) for c in columns) + " |" for r in rows] + [""])


def markdown(doc: dict[str, Any]) -> str:
    out = [f"# GPU probe: {doc['device']} ({doc['hardware']} in tokecon's catalog), {doc['date']}", "",
           f"torch {doc['torch']}, CUDA {doc['cuda']}, Python {doc['python']}", ""]
    out += table(doc.get("gemm", []), GEMM_TABLE)
    if "measured_s" in doc.get("copy", {}):
        c = doc["copy"]
        out += [f"Copy of {c['bytes'] / 2**30:.1f} GiB: {c['gb_s']:.0f} GB/s moved; measured / tokecon "
                f"{c['measured_over_predicted']:.2f}", ""]
    out += table(doc.get("decode", []), DECODE_TABLE)
    errors = [f"- {part}: {err}" for part, err in doc.get("errors", {}).items()]
    return "\n".join(out + (["", "Errors:"] + errors if errors else [])) + "\n"


def run(out: Path, hardware: str | None, device: str, quick: bool) -> dict[str, Any]:
    import torch

    from tokecon.catalogs.catalog import load_catalog

    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"
    key = hardware or hardware_key(name)
    hw = load_catalog(use_user_home=False).hardware.get(key)
    doc: dict[str, Any] = {"device": name, "hardware": key, "date": datetime.date.today().isoformat(),
                           "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                           "quick": quick, "errors": {}}
    parts = {
        "gemm": lambda: gemm_sweep(torch, device, hw, QUICK["n"] if quick else GEMM_N, QUICK["k"] if quick else GEMM_K,
                                   QUICK["m"] if quick else GEMM_M),
        "copy": lambda: copy_bandwidth(torch, device, hw, QUICK["copy_bytes"] if quick else COPY_BYTES),
        "decode": lambda: decode_steps(torch, device, key, QUICK["layers"] if quick else None,
                                       QUICK["batches"] if quick else DECODE_BATCHES, QUICK["context"] if quick else DECODE_CONTEXT),
    }
    for part, fn in parts.items():
        try:
            doc[part] = fn()
        except Exception as exc:  # each part on its own: the others still run
            doc["errors"][part] = f"{type(exc).__name__}: {exc}"[:500]
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_probe.json").write_text(json.dumps(doc, indent=1))
    (out / "gpu_probe.md").write_text(markdown(doc))
    return doc


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--hardware", help="tokecon catalog key (default: from the device's name)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny shapes: a test of the script")
    a = p.parse_args(argv)
    doc = run(a.out, a.hardware, a.device, a.quick)
    print(markdown(doc))
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
