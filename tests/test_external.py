"""The external measurement sets (validation/external.csv): converted deterministically, source
prefixes that make leave-one-source-out meaningful, and the models they need in the catalog with
their published parameter counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tokecon.physics import params
from tokecon.fidelity import validation

from helpers import validation_script

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL_DIR = ROOT.parent / "shared" / "calibration" / "external"


def _converter():
    return validation_script("import_external")


@pytest.mark.skipif(not EXTERNAL_DIR.exists(), reason="shared/calibration/external not in this checkout")
def test_converter_reproduces_the_committed_csv(tmp_path):
    out, split = tmp_path / "external.csv", tmp_path / "external_disagg.csv"
    skipped = _converter().main(EXTERNAL_DIR, out, split)
    assert out.read_bytes() == (ROOT / "validation" / "external.csv").read_bytes()
    assert split.read_bytes() == (ROOT / "validation" / "external_disagg.csv").read_bytes()
    # 1,602 disaggregated runs: 22 GLM-5 (not representable), 7 without a concurrency, 255 repeats of
    # another run's record and 509 conflicting records (one measured pair under different deployments)
    # left out; 809 converted into two rows each (TTFT, TPOT)
    disagg = "aiconfigurator disagg: "
    assert skipped[disagg + "GLM-5: DeepSeek Sparse Attention (top-2048 tokens picked by a lightning indexer) not representable"] == 22
    assert skipped[disagg + "silicon_concurrency not stated"] == 7
    assert skipped[disagg + "repeat of another run's record (same deployment, same measured TTFT and TPOT)"] == 255
    assert skipped[disagg + "conflicting records (same measured TTFT and TPOT under different deployments)"] == 509
    assert len(validation.load_measurements(split)) == 2 * (1602 - 22 - 7 - 255 - 509)


def test_source_prefixes_are_balanced():
    rows = validation.load_measurements(validation.measurements_path("external.csv"))
    sources = Counter(r["id"].split("-")[0] for r in rows)
    assert all(s.startswith(("AIC.", "ANL.")) and s.count(".") == 2 for s in sources)
    assert max(sources.values()) < 0.2 * len(rows)


def test_external_rows_are_predicted_or_skipped_with_a_reason(catalog):
    rows = validation.load_measurements(validation.measurements_path("external.csv"))
    outcomes = validation.evaluate(rows, catalog, with_ideal=False)
    predicted = [o for o in outcomes if o.predicted is not None]
    assert len(predicted) > 0.9 * len(rows)
    assert all(o.skipped for o in outcomes if o.predicted is None)
    kinds = Counter(o.case.kind for o in predicted)
    assert kinds["serving"] > 4500 and kinds["static"] > 2000  # 664 duplicate aiconfigurator records left out (issue 18)


def test_layouts_parse_to_deployments(catalog):
    row = {"id": "X-1", "model": "deepseek-v3", "hardware": "b200", "n_gpus": "8", "engine": "trtllm@1.2.0rc6",
           "weight_precision": "nvfp4", "kv_precision": "fp8", "scenario": "closed-loop serving (aggregated)",
           "metric": "tpot_ms", "value": "20", "concurrency_or_batch": "64", "input_len": "1024", "output_len": "1024",
           "parallelism": "TP1 PP1 attnDP8 moeTP1 moeEP8"}
    dep = validation.build_case(row, catalog).scenario.deployment
    assert (dep.n_gpus, dep.tp, dep.ep, dep.attention_dp) == (8, 1, 8, True)
    dep = validation.build_case({**row, "parallelism": "TP8 PP1 attnDP1 moeTP1 moeEP8"}, catalog).scenario.deployment
    assert (dep.tp, dep.ep, dep.attention_dp) == (8, 1, False)
    with pytest.raises(validation.Skip, match="inside"):
        validation.build_case({**row, "n_gpus": "16", "parallelism": "TP4 PP1 attnDP4 moeTP1 moeEP16"}, catalog)


def test_minimax_m25_published_parameter_count(catalog):
    """MiniMax-M2 model card: '230 billion total parameters with 10 billion active parameters'
    (M2.5 keeps the architecture); the formula gives 228.7B and 10.4B without the input embedding."""
    m = catalog.models.get("MiniMaxAI/MiniMax-M2.5")
    assert params.total_params(m) == pytest.approx(230e9, rel=0.01)
    assert params.active_params(m, exclude_embeddings=True) == pytest.approx(10e9, rel=0.05)


def test_kimi_k25_is_kimi_k2_text_architecture(catalog):
    """Kimi-K2.5's text_config has Kimi-K2's shapes (61 layers, 7168 wide, 384 experts, MLA); the
    vision tower is not modelled. Moonshot: 1T total, 32B activated (rounded)."""
    m = catalog.models.get("moonshotai/Kimi-K2.5")
    assert m.key == "kimi-k2"
    assert params.total_params(m) == pytest.approx(1.0e12, rel=0.03)
    assert params.active_params(m) == pytest.approx(32e9, rel=0.03)
