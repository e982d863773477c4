"""Options -> scenario: resolve names against the catalog and validate what the user asked for.

Plain values in (strings, numbers), frozen dataclasses out; raises :class:`TokeconError` with
one clear line on bad input. No typer, no printing.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np

from tokecon.catalogs.catalog import Catalog
from tokecon.errors import DoesNotFitError, TokeconError
from tokecon.physics import memory
from tokecon.physics import params
from tokecon.physics.scenario import Scenario
from tokecon.physics.specs import Deployment, Engine, Hardware, Model, Precision
from tokecon.records import record
from tokecon.serving import sram
from tokecon.units import DTYPE_BYTES, GB

_GPUS = re.compile(r"^\s*(\d+)\s*[xX×*]\s*(\S+)\s*$")


@record
class GpuSpec:
    count: int
    hardware: Hardware
    count_given: bool = True  # False for a bare name: one device, or for an SRAM machine as many as hold the model

    @property
    def label(self) -> str:
        return f"{self.count}x{self.hardware.key}"


def parse_gpus(text: str, catalog: Catalog) -> GpuSpec:
    """``4xH100`` -> 4 of the catalog's h100-sxm. A bare name means one device."""
    match = _GPUS.match(text)
    if match:
        count, name = int(match.group(1)), match.group(2)
    elif text.strip() and not text.strip()[0].isdigit():
        count, name = 1, text.strip()
    else:
        raise TokeconError(f"malformed --gpus '{text}': expected COUNTxDEVICE, e.g. 4xH100")
    if count < 1 or count > 100_000:
        raise TokeconError(f"malformed --gpus '{text}': the device count must be between 1 and 100000")
    return GpuSpec(count, catalog.hardware.get(name), bool(match))


def check_dtype(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v not in DTYPE_BYTES:
        raise TokeconError(f"unknown data type for {flag}: '{value}' (known: {', '.join(DTYPE_BYTES)})")
    return v


#: Components a user may type apart (``attention=bf16,experts=fp8``): the recipe's names and short forms.
COMPONENT_NAMES = {"attention": "attention", "attn": "attention", "dense_mlp": "dense_mlp", "mlp": "dense_mlp",
                   "dense": "dense_mlp", "shared_experts": "shared_experts", "shared": "shared_experts",
                   "routed_experts": "routed_experts", "experts": "routed_experts", "mtp": "mtp"}


def parse_components(text: str | None) -> dict[str, str]:
    """``"attention=bf16,experts=fp8"`` -> {"attention": "bf16", "routed_experts": "fp8"}: per-component
    types that override a recipe (the front end's per-component option)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, dtype = part.partition("=")
        key = COMPONENT_NAMES.get(name.strip().lower())
        if not sep or key is None:
            raise TokeconError(f"a component type is NAME=DTYPE with NAME one of {', '.join(sorted(set(COMPONENT_NAMES)))}, "
                               f"got '{part.strip()}'")
        out[key] = check_dtype(dtype, f"component {name.strip()}")
    return out


def precision_for(model: Model, weights: str | None, kv_cache: str | None, engine: Engine | None = None,
                  components: dict[str, str] | None = None) -> Precision:
    """The storage types a scenario runs with: checkpoints quantise components, not models.

    ``--dtype`` names a published checkpoint when the model has one of that type (its recipe,
    :meth:`Model.recipe`: "fp4" on DeepSeek-V3 is NVIDIA's FP4 checkpoint, attention and MTP in BF16;
    on gpt-oss the MXFP4 experts with everything else BF16), else every matmul in that type (the
    embeddings, head and routers stay 16-bit); without ``--dtype`` the model's native types (its
    recipe of that type when it publishes one). ``components`` override single components. The KV
    cache: ``--kv-dtype``, else the recipe's KV type when the engine reads the checkpoint's KV scales
    (engines.toml ``checkpoint_kv_cache``: TensorRT-LLM), else bf16 (vLLM's and SGLang's ``auto``).
    ``Precision.recipe`` and ``Precision.kv_source`` say which was taken."""
    w = check_dtype(weights, "--dtype")
    family = engine.family if engine is not None else ""
    recipe = model.recipe(w or model.weight_dtype, family)
    if recipe is not None:
        prec = Precision(weights=recipe.dtype, experts=recipe.routed_experts or None, attention=recipe.attention or None,
                         dense=recipe.dense_mlp or None, shared=recipe.shared_experts or None, mtp=recipe.mtp or None,
                         dense_16bit_layers=recipe.dense_16bit_layers, recipe=recipe.checkpoint or recipe.name)
        if w is None and model.expert_dtype and not recipe.routed_experts:
            prec = replace(prec, experts=model.expert_dtype)
    elif w is not None:
        prec = Precision(weights=w, recipe=f"every matmul {w} ({model.key} publishes no {w} checkpoint)")
    else:
        prec = Precision(weights=model.weight_dtype, experts=model.expert_dtype, recipe="native")
    fields = {"attention": "attention", "dense_mlp": "dense", "shared_experts": "shared", "routed_experts": "experts",
              "mtp": "mtp"}
    if components:
        prec = replace(prec, **{fields[k]: v for k, v in components.items()},
                       recipe=prec.recipe + " with " + ", ".join(f"{k} {v}" for k, v in components.items()))
    kv = check_dtype(kv_cache, "--kv-dtype")
    if kv is not None:
        return replace(prec, kv_cache=kv, kv_source="--kv-dtype")
    if recipe is not None and recipe.kv_cache and engine is not None and engine.checkpoint_kv_cache:
        return replace(prec, kv_cache=recipe.kv_cache,
                       kv_source=f"the checkpoint's {recipe.kv_cache} KV scales, which {engine.key} uses")
    reason = ("the checkpoint carries no KV scales" if recipe is not None and not recipe.kv_cache else
              f"{engine.key} does not read the checkpoint's KV scales" if recipe is not None and engine is not None else
              "the engine's default")
    return replace(prec, kv_cache="bf16", kv_source=f"bf16: {reason}")


def build_scenario(
    catalog: Catalog,
    model_name: str,
    gpus: GpuSpec,
    tp: int | None = None,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    engine: str | None = None,
    ideal: bool = False,
    usd_per_gpu_hour: float | None = None,
    ep: int = 1,
    attention_dp: bool = False,
    pp: int | None = None,
    eplb: bool = False,
    components: dict[str, str] | None = None,
) -> Scenario:
    model = resolve_model(catalog, model_name)
    hw = gpus.hardware
    pp = 1 if pp is None else pp
    if pp < 1 or gpus.count % pp:
        raise TokeconError(f"--pp {pp} must divide the device count {gpus.count}")
    if pp > model.layers:
        raise TokeconError(f"--pp {pp} exceeds {model.key}'s {model.layers} layers")
    tp = gpus.count // pp if tp is None else tp
    if tp < 1 or gpus.count % (tp * pp):
        raise TokeconError(f"--tp {tp} x --pp {pp} must divide the device count {gpus.count}")
    if model.heads % tp and not attention_dp:
        raise TokeconError(f"--tp {tp} does not divide {model.key}'s {model.heads} attention heads")
    if usd_per_gpu_hour is not None and not (0 <= usd_per_gpu_hour < 1e6 and math.isfinite(usd_per_gpu_hour)):
        raise TokeconError(f"--usd-per-gpu-hour must be a price between 0 and 1e6, got {usd_per_gpu_hour}")
    eng = resolve_engine(catalog, engine or hw.engine or None)
    prec = precision_for(model, dtype, kv_dtype, eng, components)  # components: parse_components("attention=bf16,...")
    return Scenario(model, Deployment(hw, gpus.count, tp, ep, attention_dp, pp), prec, eng, ideal, usd_per_gpu_hour, eplb)


def _config_file(name: str):
    """The path of a Hugging Face config.json that ``name`` points to, or None."""
    if not (isinstance(name, str) and name.strip().lower().endswith(".json")):
        return None
    from pathlib import Path

    path = Path(name.strip()).expanduser()
    return path if path.is_file() else None


def register_model_file(catalog: Catalog, name: str) -> Catalog:
    """If ``name`` is a Hugging Face config.json on disk, add it to ``catalog`` so that looking up
    ``name`` (by any command) finds the imported model; its origin is the file."""
    path = _config_file(name)
    if path is not None:
        from tokecon.catalogs.hf_config import model_from_config_file

        model = model_from_config_file(path)
        catalog.models.add(model.key, model, (name.strip(),), model.origin)
    return catalog


def resolve_model(catalog: Catalog, name: str) -> Model:
    """A catalog model by name or alias, or a Hugging Face ``config.json`` given by path."""
    path = _config_file(name)
    if path is not None:
        from tokecon.catalogs.hf_config import model_from_config_file

        return model_from_config_file(path)
    try:
        return catalog.models.get(name)
    except TokeconError:
        if name.strip().lower().endswith(".json"):
            raise TokeconError(f"--model {name}: no such config.json file (and no catalog model of that name)") from None
        raise


def resolve_engine(catalog: Catalog, name: str | None) -> Engine:
    """The engine named, else vllm (build_scenario first tries the device's own stack, ``engine`` in
    hardware.toml: GroqCloud on Groq LPUs)."""
    return catalog.engines.get(name or "vllm")


def check_context(model: Model, context: int, flag: str = "--context") -> None:
    if context > model.max_context:
        raise TokeconError(f"{flag} {context} exceeds {model.key}'s maximum context of {model.max_context} tokens")


def require_fit(scn: Scenario, context: int) -> None:
    """Raise :class:`DoesNotFitError` when even one sequence of ``context`` tokens cannot be held,
    naming the memory needed and the smallest device count that would hold it."""
    if memory.max_batch(scn, np.asarray([context]))[0] >= 1:
        return
    m, hw, dep = scn.model, scn.hardware, scn.deployment
    weights = params.weight_bytes(m, scn.precision)
    kv = float(memory.kv_bytes_per_seq_per_gpu(m, scn.precision, Deployment(hw, 1, 1), np.asarray(context)))
    smallest = sram.chips_to_hold(scn, context) if sram.is_sram(hw) else _smallest_fit(scn, context)
    hint = f"; smallest that fits: {smallest}x{hw.key} (--gpus {smallest}x{hw.key})" if smallest else (
        f"; {sram.NONE_HOLDS}" if sram.is_sram(hw) else f"; no count of {hw.key} up to 1024 holds it"
    )
    raise DoesNotFitError(
        f"{m.key} does not fit on {dep.n_gpus}x{hw.key} (tp={dep.tp}): it needs {weights / GB:.1f} GB of weights "
        f"+ {kv / GB:.2f} GB of KV cache for one {context}-token sequence, and each {hw.key} holds "
        f"{memory.usable_bytes(scn) / GB:.1f} GB after the engine's reserve of {memory.reserve_bytes(scn) / GB:.1f} GB{hint}"
    )


def _smallest_fit(scn: Scenario, context: int) -> int | None:
    m = scn.model
    for n in range(1, 1025):
        if m.heads % n and n > 1:
            continue
        dep = Deployment(scn.hardware, n, n)
        trial = Scenario(m, dep, scn.precision, scn.engine, scn.ideal, scn.usd_per_gpu_hour)
        if memory.max_batch(trial, np.asarray([context]))[0] >= 1:
            return n
    return None
