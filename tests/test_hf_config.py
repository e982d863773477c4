"""Hugging Face config.json import: every fixture in tests/fixtures/hf_configs reproduces its catalog
entry (same architecture, same parameter counts) and the published parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokecon.physics import params
from tokecon.catalogs.catalog import load_catalog, model_from_entry
from tokecon.cli.main import app
from tokecon.errors import TokeconError
from tokecon.catalogs.hf_config import entry_from_config, import_config_file, model_from_config_file

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"  # copies of public configs: SOURCES.md there

#: fixture file stem -> the models.toml entry it must reproduce
FIXTURE_ENTRY = {
    "deepseek-r1": "deepseek-v3",
    "deepseek-v3": "deepseek-v3",
    "deepseek-v3.inference-config_671B": "deepseek-v3",  # DeepSeek's own ModelArgs, not HF format
    "deepseek-v3.1.inference-config_v3.1": "deepseek-v3",
    "gpt-oss-20b": "gpt-oss-20b",
    "gpt-oss-120b": "gpt-oss-120b",
    "kimi-k2-instruct": "kimi-k2",
    "llama-3.1-8b": "llama3-8b",
    "llama-3.1-70b": "llama3-70b",
    "llama-3.3-70b-instruct": "llama3-70b",
    "llama-3.1-405b": "llama3-405b",
    "llama-4-scout-17b-16e-instruct.TRIMMED": "llama4-scout",
    "llama-4-maverick-17b-128e-instruct.TRIMMED": "llama4-maverick",
    "mixtral-8x7b-v0.1": "mixtral-8x7b",
    "mixtral-8x22b-v0.1": "mixtral-8x22b",
    "qwen3-8b": "qwen3-8b",
    "qwen3-32b": "qwen3-32b",
    "qwen3-30b-a3b": "qwen3-30b-a3b",
    "qwen3-235b-a22b": "qwen3-235b-a22b",
}

ARCH_FIELDS = ("layers", "hidden_size", "heads", "kv_heads", "head_dim", "intermediate_size", "vocab_size",
               "tied_embeddings", "max_context", "weight_dtype", "expert_dtype", "attention", "qk_norm",
               "attention_bias", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
               "experts", "experts_per_token", "shared_experts", "expert_intermediate_size",
               "shared_expert_intermediate_size", "dense_layers", "sliding_window", "sliding_layers",
               "attention_chunk_size", "chunked_layers", "expert_groups", "expert_groups_per_token")

#: Gemma 3 27B text_config as released (fields of google/gemma-3-27b-it config.json,
#: https://huggingface.co/google/gemma-3-27b-it/blob/main/config.json); the rest are
#: Gemma3TextConfig class defaults, exactly the trap the importer must handle. No fixture file exists.
GEMMA3_27B = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {
        "head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
        "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16,
        "query_pre_attn_scalar": 168, "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"},
}  # fmt: skip


@pytest.fixture(scope="module")
def builtin():
    return load_catalog(use_user_home=False)


def test_every_fixture_has_an_expected_entry():
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(FIXTURE_ENTRY)


@pytest.mark.parametrize("stem", sorted(FIXTURE_ENTRY))
def test_fixture_reproduces_catalog_entry_and_published_counts(stem, builtin):
    path = FIXTURES / f"{stem}.json"
    key, entry = import_config_file(path)
    model = model_from_entry(key, entry, str(path))
    ref = builtin.models.get(FIXTURE_ENTRY[stem])
    for f in ARCH_FIELDS:
        assert getattr(model, f) == getattr(ref, f), f"{stem}: {f}"
    ex = ref.active_params_exclude_embeddings
    total, active = params.total_params(model), params.active_params(model, ex)
    # the same formula on the catalog entry (within 1%; in fact exact)
    assert total == pytest.approx(params.total_params(ref), rel=0.01)
    assert active == pytest.approx(params.active_params(ref, ex), rel=0.01)
    # the vendor-published counts, within 1% or the entry's documented tolerance (rounded figures)
    tol = (builtin_tolerance(ref.key) or 1.0) / 100
    assert total == pytest.approx(ref.published_params_b * 1e9, rel=tol)
    assert active == pytest.approx(ref.published_active_params_b * 1e9, rel=tol)
    assert params.kv_bytes_per_token(model, "bf16", 8192.0) == params.kv_bytes_per_token(ref, "bf16", 8192.0)


def builtin_tolerance(key: str) -> float | None:
    import tomllib

    from tokecon.catalogs.catalog import builtin_paths

    with open(builtin_paths()["models"], "rb") as fh:
        return tomllib.load(fh)[key].get("params_tolerance_pct")


def test_traps_are_handled():
    def load(stem):
        return import_config_file(FIXTURES / f"{stem}.json")[1]

    ds = load("deepseek-v3")  # torch_dtype says bfloat16, quantization_config says FP8
    assert ds["weight_dtype"] == "fp8" and ds["attention"] == "mla" and ds["kv_heads"] == ds["heads"]
    oss = load("gpt-oss-120b")  # no torch_dtype; MXFP4 experts only; alternating windows
    assert (oss["weight_dtype"], oss["expert_dtype"]) == ("bf16", "mxfp4")
    assert (oss["sliding_window"], oss["sliding_layers"]) == (128, 18)
    q = load("qwen3-30b-a3b")  # intermediate_size 6144 is unused: every layer is MoE
    assert q["intermediate_size"] == q["expert_intermediate_size"] == 768 and q["dense_layers"] == 0
    mav = load("llama-4-maverick-17b-128e-instruct.TRIMMED")  # nested text_config, interleaved MoE
    assert (mav["dense_layers"], mav["intermediate_size"], mav["expert_intermediate_size"]) == (24, 16384, 8192)
    assert (mav["attention_chunk_size"], mav["chunked_layers"]) == (8192, 36) and "sliding_layers" not in mav
    assert mav["shared_experts"] == 1
    mix = load("mixtral-8x7b-v0.1")  # sliding_window null
    assert "sliding_layers" not in mix and mix["experts"] == 8


def test_gemma3_uses_class_defaults_and_window_pattern(builtin):
    key, entry = entry_from_config(GEMMA3_27B, name="gemma3-27b-test")
    model = model_from_entry(key, entry, "test")
    ref = builtin.models.get("gemma3-27b")
    for f in ARCH_FIELDS:
        assert getattr(model, f) == getattr(ref, f), f
    assert model.extra_norms_per_layer == 2 and model.sliding_layers == 52
    assert params.total_params(model) == pytest.approx(ref.published_params_b * 1e9, rel=0.01)
    assert "Gemma3TextConfig defaults" in entry["notes"]


def test_qwen2_and_mistral_families():
    qwen2 = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
             "sliding_window": 131072, "use_sliding_window": False, "max_window_layers": 28, "tie_word_embeddings": False,
             "torch_dtype": "bfloat16"}  # fmt: skip
    _, e = entry_from_config(qwen2)
    assert e["attention_bias"] is True and "sliding_layers" not in e and e["head_dim"] == 128
    mistral = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000, "sliding_window": 4096,
               "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}  # fmt: skip
    _, e = entry_from_config(mistral)
    assert (e["sliding_window"], e["sliding_layers"]) == (4096, 32)


def test_bert_encoder():
    bge = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 1024, "intermediate_size": 4096,
           "num_hidden_layers": 24, "num_attention_heads": 16, "vocab_size": 30522, "max_position_embeddings": 512,
           "type_vocab_size": 2, "torch_dtype": "float32"}  # fmt: skip
    key, e = entry_from_config(bge, name="bge-test")
    m = model_from_entry(key, e, "test")
    ref = load_catalog(use_user_home=False).models.get("bge-large")
    assert params.total_params(m) == params.total_params(ref)
    assert (m.causal, m.lm_head, m.mlp, m.norm) == (False, False, "plain", "layernorm")


_TINY = {"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10, "intermediate_size": 16}


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({}, "missing 'num_hidden_layers'"),
        ({"model_type": "mamba", "num_hidden_layers": 2}, "not a transformer"),
        ({"num_hidden_layers": "2", "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10}, "must be an integer"),
        ({"num_hidden_layers": -2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10}, "must be >= 1"),
        ({"num_hidden_layers": 2**63, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10}, "implausibly large"),
        ({"num_hidden_layers": 2, "hidden_size": 10, "num_attention_heads": 3, "vocab_size": 10}, "not a multiple"),
        ({"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10, "layer_types": "x"}, "must be a list"),
        # issue 11: these were internal errors ("please report it") or silently accepted
        ({**_TINY, "model_type": "mistral", "sliding_window": "abc"}, "'sliding_window' must be an integer, got 'abc'"),
        ({**_TINY, "model_type": "mistral", "sliding_window": float("inf")}, "'sliding_window' must be an integer, got inf"),
        ({**_TINY, "model_type": "llama4_text", "num_local_experts": 2, "num_experts_per_tok": 1, "attention_chunk_size": "x"},
         "'attention_chunk_size' must be an integer"),
        ({"dim": 8, "n_layers": 2, "n_heads": 2, "vocab_size": 10, "inter_dim": 16, "original_seq_len": "x"},
         "'original_seq_len' must be an integer"),
        ({"dim": 8, "n_layers": 2, "n_heads": 2, "vocab_size": 10, "inter_dim": 16, "original_seq_len": float("inf")},
         "'original_seq_len' must be an integer"),
        ({"dim": 8, "n_layers": 2, "n_heads": 2, "vocab_size": 10, "inter_dim": 16, "rope_factor": float("nan")},
         "'rope_factor' must be a number"),
        ({**_TINY, "model_type": "mixtral", "num_local_experts": 0, "num_experts_per_tok": 2}, "'num_local_experts' is 0"),
        ({**_TINY, "model_type": "deepseek_v3", "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
          "first_k_dense_replace": 5}, "'first_k_dense_replace' = 5 leaves no MoE layer of 2"),
    ],
)
def test_bad_configs_give_one_line(cfg, message):
    with pytest.raises(TokeconError, match=message) as err:
        entry_from_config(cfg, where="cfg.json")
    assert "\n" not in str(err.value) and str(err.value).startswith("cfg.json")


def test_bad_files(tmp_path):
    cases = {"bad.json": b"{not json", "list.json": b"[1, 2]", "bin.json": b"\xff\xfe\x00", "deep.json": b"[" * 100000}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(TokeconError) as err:
            import_config_file(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TokeconError, match="no such file"):
        import_config_file(tmp_path / "missing.json")
    # numbers the catalog schema refuses are caught with the field named
    huge = {"num_hidden_layers": 2, "hidden_size": 10**7, "num_attention_heads": 2, "vocab_size": 10}
    (tmp_path / "huge.json").write_text(json.dumps(huge))
    with pytest.raises(TokeconError, match="field .hidden_size."):
        import_config_file(tmp_path / "huge.json")


runner = CliRunner()


def test_any_command_accepts_a_config_json(tmp_path):
    for command in (["serve"], ["frontier"], ["embed"], ["compare"], ["capacity", "--tokens-per-day", "1e9"]):
        r = runner.invoke(app, [*command, "--model", str(FIXTURES / "qwen3-8b.json"), "--gpus", "1xH100", "-f", "json"])
        assert r.exit_code == 0, (command, r.output)
    path = FIXTURES / "llama-3.1-8b.json"
    by_path = runner.invoke(app, ["decode", "--model", str(path), "--gpus", "1xH100", "-b", "1,8", "-f", "json"])
    by_name = runner.invoke(app, ["decode", "--model", "llama3-8b", "--gpus", "1xH100", "-b", "1,8", "-f", "json"])
    assert by_path.exit_code == 0, by_path.output
    a, b = json.loads(by_path.stdout), json.loads(by_name.stdout)
    assert [r["step_time_s"] for r in a["rows"]] == [r["step_time_s"] for r in b["rows"]]
    assert a["sources"]["model:llama-3.1-8b"] == str(path)  # output says where the model came from
    missing = runner.invoke(app, ["prefill", "--model", str(tmp_path / "nope.json"), "--gpus", "1xH100"])
    assert missing.exit_code == 2 and "no such config.json" in missing.stderr


def test_models_import_prints_and_saves(isolated_home):
    path = FIXTURES / "qwen3-8b.json"
    r = runner.invoke(app, ["models", "import", str(path)])
    assert r.exit_code == 0, r.output
    assert "[models.qwen3-8b]" in r.stdout and "8.191 B parameters" in r.stdout
    assert "overrides [qwen3-8b] from built-in" in r.stderr and not (isolated_home / "models.toml").exists()
    r = runner.invoke(app, ["models", "import", str(path), "--name", "my-qwen", "--save"])
    assert r.exit_code == 0 and "saved [my-qwen]" in r.stdout
    assert model_from_config_file(path).layers == load_catalog().models.get("my-qwen").layers
    assert load_catalog().models.get("my-qwen").origin == str(isolated_home / "models.toml")
    again = runner.invoke(app, ["models", "import", str(path), "--name", "my-qwen", "--save"])
    assert again.exit_code == 2 and "--force" in again.stderr
    assert runner.invoke(app, ["models", "import", str(path), "--name", "my-qwen", "--save", "--force"]).exit_code == 0
    bad = runner.invoke(app, ["models", "import", str(path), "--name", "bad name!"])
    assert bad.exit_code == 2 and "must be 1-64 characters" in bad.stderr


def test_an_imported_checkpoint_is_named_after_its_folder_and_its_snippet_pastes(isolated_home, tmp_path):
    """A downloaded checkpoint is a folder holding config.json: the import is named after the folder
    (not "config"), takes the folder itself, and what it prints works pasted into models.toml."""
    folder = tmp_path / "Llama-3.1-8B-Custom"
    folder.mkdir()
    cfg = json.loads((FIXTURES / "llama-3.1-8b.json").read_text())
    cfg.pop("_name_or_path", None)
    (folder / "config.json").write_text(json.dumps(cfg))
    for given in (folder, folder / "config.json"):
        r = runner.invoke(app, ["models", "import", str(given)])
        assert r.exit_code == 0, r.output
        assert '[models."llama-3.1-8b-custom"]' in r.stdout and 'name = "Llama-3.1-8B-Custom"' in r.stdout
    (isolated_home / "models.toml").write_text(r.stdout)  # pasted as printed
    d = runner.invoke(app, ["decode", "--model", "llama-3.1-8b-custom", "--gpus", "1xH100", "-b", "1"])
    assert d.exit_code == 0, d.output
    # saving beside a pasted table: a second entry appends, --force replaces the pasted one in place
    assert runner.invoke(app, ["models", "import", str(folder), "--name", "other", "--save"]).exit_code == 0
    again = runner.invoke(app, ["models", "import", str(folder), "--save"])
    assert again.exit_code == 2 and "already has an entry [llama-3.1-8b-custom]" in again.stderr
    forced = runner.invoke(app, ["models", "import", str(folder), "--save", "--force"])
    assert forced.exit_code == 0, forced.output
    assert {"llama-3.1-8b-custom", "other"} <= set(load_catalog().models.entries)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["models", "import", str(empty)])
    assert r.exit_code == 2 and "no config.json in it" in r.stderr
