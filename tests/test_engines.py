"""Engine generations: ``NAME@VERSION`` resolves to the profile whose version range covers it."""

from __future__ import annotations

import pytest

from tokecon.catalogs.catalog import load_catalog, version_tuple


@pytest.mark.parametrize(
    "text, expected",
    [("1.0.0rc3", (1, 0, 0)), ("0.5.8.post1", (0, 5, 8)), ("v0.19.0", (0, 19, 0)), ("nightly-dev", None), ("", None)],
)
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize(
    "name, key",
    [
        ("vllm", "vllm"),  # plain name: the current generation
        ("vllm@0.6.3", "vllm-v0"),  # V0 engine: V1 became the default in 0.8.0
        ("vllm@0.8.0", "vllm"),
        ("vllm@0.19.0", "vllm"),
        ("trtllm@0.14.0", "trtllm-2024"),
        ("trtllm@1.0.0rc3", "trtllm"),
        ("sglang@0.4.3", "sglang-2025"),
        ("sglang@0.5.9", "sglang"),
        ("TensorRT-LLM@1.2.0rc6.post2", "trtllm"),  # aliases work with a version too
    ],
)
def test_builtin_generations(catalog, name, key):
    engine = catalog.engines.get(name)
    assert engine.key == key
    assert engine.version_note == ""


def test_every_builtin_version_resolves_to_exactly_one_profile(catalog):
    """Within a family the ranges neither overlap nor leave gaps: every release maps to one profile."""
    from tokecon.catalogs.catalog import _covers

    for engine in catalog.engines:
        family = [e for e in catalog.engines if e.family == engine.family]
        for probe in ((0, 1, 0), (0, 4, 9), (0, 5, 0), (0, 7, 9), (0, 8, 0), (0, 14, 0), (0, 99, 0), (1, 0, 0), (2, 3, 0)):
            assert sum(_covers(e, probe) for e in family) == 1, (engine.family, probe)


def test_unreleased_version_is_the_current_generation_with_a_note(catalog):
    engine = catalog.engines.get("sglang@nightly-dev")
    assert engine.key == "sglang"
    assert "not a release number" in engine.version_note


def test_gap_takes_the_nearest_older_generation(tmp_path):
    """A user catalog with generations 1.x and 3.x: 2.5 is served by 1.x, said in the note."""
    path = tmp_path / "engines.toml"
    path.write_text(
        '[engines.myeng]\nname = "mine 3.x"\nfamily = "myeng"\nversion_from = "3.0"\ncompute_scale = 1.0\n'
        'memory_bw_scale = 1.0\nstep_overhead_ms = 1.0\nsource = "test"\n'
        '[engines.myeng-1]\nname = "mine 1.x"\nfamily = "myeng"\nversion_from = "1.0"\nversion_before = "2.0"\n'
        'compute_scale = 0.5\nmemory_bw_scale = 0.5\nstep_overhead_ms = 3.0\nsource = "test"\n'
    )
    cat = load_catalog([path])
    got = cat.engines.get("myeng@2.5")
    assert got.key == "myeng-1" and "nearest older" in got.version_note
    oldest = cat.engines.get("myeng@0.3")
    assert oldest.key == "myeng-1" and "the oldest" in oldest.version_note
    assert cat.engines.get("myeng@3.1").key == "myeng"


def test_engines_list_shows_every_generation_with_its_range():
    import json

    from typer.testing import CliRunner

    from tokecon.cli.main import app

    result = CliRunner().invoke(app, ["engines", "list", "-f", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["engine"]: r for r in json.loads(result.stdout)["rows"]}
    assert {"vllm", "vllm-v0", "sglang", "sglang-2025", "trtllm", "trtllm-2024", "llamacpp"} <= set(rows)
    assert rows["vllm-v0"]["versions"] == "v < 0.8" and rows["trtllm"]["versions"] == "1.0 <= v"
    assert all(r["fitted_on"] for r in rows.values())


def test_engines_show_one_profile_as_engine_resolves_it(catalog):
    """`engines show NAME[@VERSION]` (issue 11: list/show, with their version ranges): the profile the
    same text picks for --engine, its figures with units, and the nearest-older note in a gap."""
    import json

    from typer.testing import CliRunner

    from tokecon.cli.main import app

    runner = CliRunner()
    for text in ("vllm", "vllm@0.6.3", "sglang@0.4.6", "trtllm@1.0.0"):
        e = catalog.engines.get(text)
        r = runner.invoke(app, ["engines", "show", text, "-f", "json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        figures = {row["figure"]: row for row in doc["rows"]}
        assert doc["engine"] == e.key and figures["versions"]["value"] == e.version_range
        assert figures["step_overhead_s"]["unit"] == "s" and figures["step_overhead_s"]["value"] == e.step_overhead_s
        assert figures["compute_scale"]["value"] == e.compute_scale
    table = runner.invoke(app, ["engines", "show", "vllm-v0"])
    assert table.exit_code == 0 and "versions covered" in table.stdout and "v < 0.8" in table.stdout
    miss = runner.invoke(app, ["engines", "show", "vlm"])
    assert miss.exit_code == 2 and "closest: vllm" in miss.stderr


def test_vllm_before_0_7_1_caches_every_heads_key_and_value_of_an_mla_model(catalog):
    """vLLM ran MLA as multi-head attention until 0.7.1 (engines.toml ``mla_kernels_from``). By hand,
    DeepSeek-R1 (61 layers, 128 heads, key 128 nope + 64 rope, value 128 padded to 192) in bf16 on TP8:
    each GPU caches 16 heads x 2 x 192 x 2 B x 61 = 749,568 B per token, against the latent's
    (512 + 64) x 2 B x 61 = 70,272 B replicated on every rank, 10.67x. The vLLM/Neural Magic post on
    v0.7.1 (2025-02-04, 8x H200) measured 54,560 -> 512,000 tokens of KV capacity, 9.38x: within 15%
    (the MLA kernels' own workspace takes some of the room, which tokecon's reserve does not model)."""
    import numpy as np

    from helpers import scenario
    from tokecon.physics import memory

    old = scenario(catalog, "deepseek-r1", "h200", 8, engine="vllm@0.7.0")
    new = scenario(catalog, "deepseek-r1", "h200", 8, engine="vllm@0.7.1")
    assert (old.model.mla_cache, new.model.mla_cache) == ("expanded", "latent")
    assert old.precision.kv_cache == new.precision.kv_cache == "bf16"
    one = np.asarray([1.0])
    assert float(memory.kv_bytes_per_seq_per_gpu(old.model, old.precision, old.deployment, one)[0]) == 16 * 2 * 192 * 2 * 61
    assert float(memory.kv_bytes_per_seq_per_gpu(new.model, new.precision, new.deployment, one)[0]) == 576 * 2 * 61
    ctx = np.asarray([1024.0])
    ratio = float(memory.max_batch(new, ctx)[0]) / float(memory.max_batch(old, ctx)[0])
    assert ratio == pytest.approx(512_000 / 54_560, rel=0.15)
    # the step reads the expanded cache too: more attention bytes at the same batch and context
    from tokecon.physics.phases import decode_step

    t_old, t_new = decode_step(old, np.asarray([16.0]), ctx), decode_step(new, np.asarray([16.0]), ctx)
    assert t_old.breakdown_bytes["attn/core"][0] > 5 * t_new.breakdown_bytes["attn/core"][0]


@pytest.mark.parametrize("engine", ["vllm-v0", "vllm", "sglang@0.4.1", "trtllm"])
def test_other_engines_and_a_plain_vllm_v0_cache_the_latent(catalog, engine):
    """A plain profile is its generation's newest release (vLLM V0's last, 0.7.3, has MLA kernels);
    SGLang and TensorRT-LLM cache the latent in every profile; a dense model is untouched."""
    from dataclasses import replace

    from helpers import scenario

    scn = scenario(catalog, "deepseek-r1", "h200", 8, engine=engine)
    assert scn.model.mla_cache == "latent"
    old = replace(scn, engine=catalog.engines.get("vllm@0.6.6"))
    assert old.model.mla_cache == "expanded" and replace(old, engine=scn.engine).model.mla_cache == "latent"
    assert scenario(catalog, "llama3-70b", "h200", 8, engine="vllm@0.6.6").model.mla_cache == "latent"
