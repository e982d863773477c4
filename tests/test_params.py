"""Parameter counts derived from the architecture match each model's published figures.

Published totals and sources are in models.toml (`published_params_b`, `params_source`); the
tolerance is 1% unless the entry states a wider one with its reason (`params_tolerance_pct`:
figures published rounded, e.g. Kimi K2's "1T", or on another basis, e.g. Llama 4 incl. vision).
"""

from __future__ import annotations

import tomllib

import pytest

from tokecon.physics import params
from tokecon.catalogs.catalog import builtin_paths

RAW = tomllib.loads(builtin_paths()["models"].read_text())


@pytest.mark.parametrize("key", sorted(RAW))
def test_total_params_match_published(catalog, key):
    entry = RAW[key]
    model = catalog.models.get(key)
    tol = entry.get("params_tolerance_pct", 1.0) / 100
    derived = params.total_params(model) / 1e9
    assert derived == pytest.approx(entry["published_params_b"], rel=tol), entry.get("params_source")


@pytest.mark.parametrize("key", sorted(k for k, e in RAW.items() if e.get("experts")))
def test_active_params_match_published(catalog, key):
    entry = RAW[key]
    model = catalog.models.get(key)
    tol = entry.get("params_tolerance_pct", 1.0) / 100
    derived = params.active_params(model, exclude_embeddings=model.active_params_exclude_embeddings) / 1e9
    assert derived == pytest.approx(entry["published_active_params_b"], rel=tol), entry.get("params_source")


def test_llama33_70b_exact_count(catalog):
    """Tensor Economics, "LLM Inference Economics from First Principles": 70,553,706,496 parameters,
    141,107,412,992 bytes in bf16 (https://www.tensoreconomics.com/p/llm-inference-economics-from-first)."""
    m = catalog.models.get("llama3-70b")
    assert params.total_params(m) == 70_553_706_496
    from tokecon.physics.specs import Precision

    assert params.weight_bytes(m, Precision("bf16")) == 141_107_412_992


def test_dense_model_active_equals_total(catalog):
    m = catalog.models.get("llama3-8b")
    assert params.active_params(m) == params.total_params(m)


def test_kv_bytes_per_token_reference_values(catalog):
    """bf16 cache: GQA L x 2 x K x hd x 2 B (llama3-70b: 80 x 2 x 8 x 128 x 2 = 327,680); MLA (DeepSeek-V3,
    Kimi K2) L x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 B = 61 x 576 x 2 = 70,272; shapes from the
    HF config.json fixtures."""
    expected = {"llama3-70b": 327_680, "llama3-405b": 516_096, "qwen3-235b-a22b": 192_512, "deepseek-v3": 70_272,
                "kimi-k2": 70_272, "mixtral-8x22b": 229_376}
    for key, value in expected.items():
        assert params.kv_bytes_per_token(catalog.models.get(key), "bf16") == value, key


def test_sliding_window_caps_kv(catalog):
    """gpt-oss-120b: 18 full layers x 2,048 B/token + 18 windowed layers capped at 128 tokens."""
    m = catalog.models.get("gpt-oss-120b")
    ctx = 8192
    per_token = params.kv_bytes_per_token(m, "bf16", ctx)
    assert per_token * ctx == pytest.approx(18 * 2048 * ctx + 18 * 2048 * 128)
