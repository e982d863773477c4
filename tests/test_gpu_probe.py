"""validation/gpu_probe.py: tokecon's side of the GPU probe checked by hand (the measurements need
PyTorch and run on a device machine; with PyTorch installed, a tiny CPU run tests them too)."""

from __future__ import annotations

import json

import pytest

from tokecon.catalogs.catalog import load_catalog

from helpers import validation_script

probe = validation_script("gpu_probe")
H100 = load_catalog(use_user_home=False).hardware.get("h100-sxm")


def test_a_large_gemm_is_compute_bound_and_a_thin_one_reads_its_weights():
    """M = 8,192: 2 x 8,192 x 28,672 x 8,192 FLOP = 3.85 TFLOP at 989.4 TFLOP/s (H100 SXM dense bf16;
    fp8 1,978.9: NVIDIA datasheet) x the fitted compute fraction; M = 1: 28,672 x 8,192 x 2 bytes of
    weights at 3.35 TB/s x the fitted memory fraction."""
    n, k = probe.GEMM_N, probe.GEMM_K
    flop = 2.0 * 8192 * n * k
    assert probe.predicted_gemm_s(H100, 8192, n, k, "bf16") == pytest.approx(flop / (989.4e12 * H100.efficiency.compute), rel=1e-9)
    assert probe.predicted_gemm_s(H100, 8192, n, k, "fp8") == pytest.approx(flop / (1978.9e12 * H100.efficiency.compute), rel=1e-9)
    thin = (2 * (n * k + k) + 2 * n) / (3.35e12 * H100.efficiency.memory_bw)
    assert probe.predicted_gemm_s(H100, 1, n, k, "bf16") == pytest.approx(thin, rel=1e-9)
    assert probe.predicted_gemm_s(H100, 1, n, k, "bf16", ideal=True) < probe.predicted_gemm_s(H100, 1, n, k, "bf16")


def test_copy_and_decode_figures_come_from_the_catalog_and_the_api():
    assert probe.predicted_copy_s(H100, 1 << 30, ideal=True) == pytest.approx(2 * 2**30 / 3.35e12)
    fitted = probe.predicted_decode_s("h100-sxm", (1, 64), 1024, ideal=False)
    ideal = probe.predicted_decode_s("h100-sxm", (1, 64), 1024, ideal=True)
    assert all(i < f for i, f in zip(ideal, fitted)) and fitted[0] < fitted[1]
    # batch 1, ideal: Llama-3-8B's ~16 GB of bf16 weights (and a 1,024-token cache) at 3.35 TB/s: ~4.5 ms
    assert 4.0e-3 < ideal[0] < 5.5e-3


def test_device_names_map_to_catalog_devices():
    assert probe.hardware_key("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert probe.hardware_key("NVIDIA H200") == "h200"
    assert probe.hardware_key("NVIDIA GH200 480GB") == "gh200"
    assert probe.hardware_key("NVIDIA H100 NVL") == "h100-nvl"


def test_the_whole_probe_runs_on_the_cpu_with_tiny_shapes(tmp_path):
    pytest.importorskip("torch")
    doc = probe.run(tmp_path, "h100-sxm", "cpu", quick=True)
    assert not doc["errors"], doc["errors"]
    assert json.loads((tmp_path / "gpu_probe.json").read_text())["gemm"]
    assert "| bf16 |" in (tmp_path / "gpu_probe.md").read_text()
