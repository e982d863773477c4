"""`tokecon validate` and the calibration: error stated, fit reproducible, no silent drops, and the
Tensor Economics measured curve reproduced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tokecon import calibrate, validation
from tokecon.cli.main import app
from tokecon.commands.validate import run_validate

BASELINE = json.loads((Path(__file__).resolve().parents[1] / "validation" / "baseline.json").read_text())


@pytest.fixture(scope="module")
def outcomes(catalog):
    return validation.evaluate(validation.load_measurements(), catalog)


def test_every_row_is_predicted_or_skipped_with_a_reason(outcomes):
    rows = validation.load_measurements()
    assert len(outcomes) == len(rows)
    for o in outcomes:
        assert (o.predicted is not None) != bool(o.skipped), o.id
        if o.predicted is not None:
            assert np.isfinite(o.predicted) and o.predicted > 0, o.id


def test_overall_median_error_does_not_regress(outcomes):
    """Fails if the overall median |error| grows by more than two percentage points over the
    figure recorded in validation/baseline.json (update it when accuracy improves)."""
    assert validation.mape(outcomes) <= BASELINE["overall_median_ape"] + 0.02
    predicted = sum(o.predicted is not None for o in outcomes)
    assert predicted >= BASELINE["rows_predicted"]  # coverage may not shrink either


def test_ideal_is_an_upper_bound_for_throughput_rows(outcomes):
    for o in outcomes:
        if o.predicted is None or o.case.metric == "ttft_ms":
            continue
        assert o.ideal >= o.predicted * (1 - 1e-9), o.id


def test_tensor_economics_measured_curve(outcomes):
    """Tensor Economics (Llama 3.3 70B, 4x H100 TP4, vLLM, 2035 in / 300 out): "We go from around
    ~60% of theoretical estimated performance in small batches to around 40%" (batch 1 -> 512).
    Against tokecon's ideal roofline the published runs give ~0.58 at batch 1, falling to ~0.5 at
    128-512: less steep than the article's 40%, because tokecon's roofline knows that only ~200
    sequences of 2335 tokens fit in 4x 80 GB at once, so batch 512 runs in waves even ideally.
    tokecon's prediction must follow the measured curve at every batch."""
    te = {o.case.batch: o for o in outcomes if o.id.startswith("TE") and o.case.metric == "output_tok_per_s_total"}
    measured = {b: o.case.measured / o.ideal for b, o in te.items()}
    predicted = {b: o.predicted / o.ideal for b, o in te.items()}
    assert measured[1] == pytest.approx(0.6, abs=0.05)
    assert 0.35 < measured[512] < measured[1] and 0.35 < measured[128] < measured[1]
    for b in te:
        assert predicted[b] == pytest.approx(measured[b], abs=0.08), b
    assert predicted[1] > predicted[512]


def test_fit_reproduces_the_stored_factors(catalog):
    """The fit reruns from the checkout and gives the factors stored in the catalogs (fitted
    families, the extrapolation for unmeasured ones, and the engines)."""
    outs = validation.evaluate(validation.load_measurements(), catalog, with_ideal=False)
    cases = calibrate.fit_cases(outs)
    fitted = calibrate.fit(cases)
    for family, values in fitted.family.items():
        for hw in (h for h in catalog.hardware if h.family == family):
            stored = {"compute": hw.efficiency.compute, "memory_bw": hw.efficiency.memory_bw,
                      "kv_bw": hw.efficiency.kv_cache_bw, "link": hw.efficiency.link}
            for k, v in values.items():
                assert stored[k] == pytest.approx(v, abs=0.0015), (hw.key, k)
    all_families = sorted({h.family for h in catalog.hardware})
    for family, values in calibrate.extrapolate(fitted, all_families).items():
        for hw in (h for h in catalog.hardware if h.family == family):
            stored = {"compute": hw.efficiency.compute, "memory_bw": hw.efficiency.memory_bw, "kv_bw": hw.efficiency.kv_cache_bw}
            for k, v in values.items():
                assert stored[k] == pytest.approx(v, abs=0.0015), (hw.key, k)
    for engine, values in fitted.engine.items():
        e = catalog.engines.get(engine)
        stored = {"compute_scale": e.compute_scale, "memory_bw_scale": e.memory_bw_scale,
                  "step_overhead_ms": e.step_overhead_s * 1e3}
        for k, v in values.items():
            assert stored[k] == pytest.approx(v, abs=0.0015), (engine, k)


def test_validate_cli_json_and_table():
    runner = CliRunner()
    r = runner.invoke(app, ["validate", "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["command"] == "validate" and len(doc["rows"]) == len(validation.load_measurements())
    assert any(s["group"] == "all" for s in doc["summary"])
    r = runner.invoke(app, ["validate", "--group-by", "source"])
    assert r.exit_code == 0 and "median |error| [%]" in r.stdout
    r = runner.invoke(app, ["validate", "--group-by", "colour"])
    assert r.exit_code == 2 and "--group-by" in r.stderr


def test_summary_groups_cover_all_predicted_rows(outcomes):
    rows = run_validate("model")[1].rows
    total = next(r for r in rows if r["group"] == "all")
    assert sum(r["rows"] for r in rows if r["group"] != "all") == total["rows"]
