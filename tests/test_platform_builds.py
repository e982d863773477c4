"""An engine's build for AMD GPUs (engines.toml [vllm-rocm-2024], [llamacpp-hip]) and the family it
alone was measured on: the family's factors are extrapolated, the builds fit their kernels' scales and
share their engine's CPU-side overheads (tokecon.fidelity.calibrate.platform_families, engine_factors)."""

from __future__ import annotations

import pytest

import tokecon
from tokecon.catalogs.catalog import load_catalog
from tokecon.fidelity import calibrate, validation


def test_a_build_takes_its_kernel_scales_and_its_engines_overheads():
    f = calibrate.Factors(engine={"vllm-v0": {"compute_scale": 0.7, "memory_bw_scale": 1.0, "step_overhead_ms": 1.9},
                                  "vllm-rocm-2024": {"compute_scale": 0.6, "memory_bw_scale": 0.5}},
                          built_from={"vllm-rocm-2024": "vllm-v0"})
    assert calibrate.engine_factors(f, "vllm-rocm-2024") == {"compute_scale": 0.6, "memory_bw_scale": 0.5,
                                                              "step_overhead_ms": 1.9}
    assert calibrate.engine_factors(f, "vllm-v0")["compute_scale"] == 0.7
    assert calibrate.engine_factors(f, "sglang") is None
    engines = load_catalog(use_user_home=False).engines  # the catalog declares which engine a build runs
    assert (engines.get("vllm-rocm-2024").built_from, engines.get("llamacpp-hip").built_from) == ("vllm-v0", "llamacpp")


@pytest.fixture(scope="module")
def fit_rows():
    catalog = load_catalog(use_user_home=False)
    return calibrate.fit_cases(validation.evaluate(validation.load_measurements(), catalog, with_ideal=False))


def test_only_the_family_measured_on_its_own_builds_alone_is_extrapolated(fit_rows):
    # MI300X's public rows (Argonne 2024, Oracle's 405B blog) all ran ROCm/HIP builds no other family ran
    assert calibrate.platform_families(fit_rows) == {"cdna3"}
    cdna3_engines = {c.engine for c in fit_rows if c.family == "cdna3"}
    assert cdna3_engines == {"vllm-rocm-2024", "llamacpp-hip"}


def test_the_catalog_stores_cdna3_as_extrapolated_not_fitted():
    hw = load_catalog(use_user_home=False).hardware
    for key in ("mi300x", "mi325x"):
        assert "measured only on its own platform's engines" in hw.get(key).efficiency.fitted_on


def test_mi325x_offline_capacity_against_mlperf_v5_0_held_out():
    """MLPerf Inference v5.0 (not reserved, never fitted on), AMD 8xMI325X, llama2-70b-99.9 Offline:
    114.262 samples/s (validation/mlperf_server.csv; https://github.com/ntuhpc/mlperf_inference_results_v5.0
    closed/AMD/results/8xMI325X_2xEPYC_9575F). AMD's Quark MLPerf checkpoints quantise weights and KV
    cache to FP8 (assumed here; the result files do not say). Fitted on 2024 ROCm rows alone, the
    family read 0.56x this with a current vLLM; extrapolated, within 25%."""
    row = tokecon.serve(model="llama2-70b", gpus=["8xmi325x"], tp=1, dtype="fp8", kv_dtype="fp8", engine="vllm",
                        input_len=222, output_len=296, request_rate=["1"]).rows[0]
    assert row["max_request_rate"] / 114.262 == pytest.approx(1.0, abs=0.25)
