"""Hugging Face ``config.json`` -> a ``models.toml`` entry (a dict of :data:`tokecon.catalogs.catalog.MODEL_FIELDS`).

Families understood: Llama 2/3, Mistral, Qwen2/Qwen3 (dense and MoE), Mixtral, DeepSeek-V3/R1 and
Kimi K2 (MLA), gpt-oss (alternating sliding windows, MXFP4 experts), Gemma 3 (nested
``text_config``, class defaults), Llama 4 (interleaved MoE, chunked attention), BERT-style
encoders, and DeepSeek's own reference-inference ``ModelArgs`` files (``dim``, ``inter_dim``, ...).

The traps, as the released config.json files show them (copies and provenance in
tests/fixtures/hf_configs/SOURCES.md) and as the transformers configuration classes define their keys
(https://github.com/huggingface/transformers, src/transformers/models/<family>/configuration_<family>.py:
MixtralConfig, Qwen2Config, Qwen3MoeConfig, DeepseekV3Config, GptOssConfig, Gemma3TextConfig,
Llama4TextConfig), and how they are handled:
  expert count       num_experts | num_local_experts | n_routed_experts
  intermediate_size  dense FFN width, or expert width when every layer is MoE (Mixtral, gpt-oss,
                     Qwen3-MoE uses moe_intermediate_size), or the dense width beside
                     moe_intermediate_size (DeepSeek) / intermediate_size_mlp (Llama 4)
  weight type        quantization_config first (DeepSeek's FP8 says torch_dtype bfloat16), then
                     torch_dtype / dtype; gpt-oss MXFP4 applies to the experts only
  MLA                KV cache is kv_lora_rank + qk_rope_head_dim per layer; kv_heads = heads
  windows            layer_types, sliding_window_pattern (Gemma 3), a bare sliding_window
                     (Mistral v0.1), Qwen's use_sliding_window + max_window_layers
  chunks             attention_chunk_size with no_rope_layers (Llama 4) or chunked_attention in
                     layer_types: its own kind (a token sees its chunk only), not a window
  node-limited       n_group / topk_group (DeepSeek-V3: 8 / 4; Kimi K2's 1 / 1 is no limit)
  nesting            text_config (Gemma 3, Llama 4), merged over the top-level keys

Assumes: a decoder-only (or BERT-style encoder) transformer; vision towers are not counted.
Worked number: llama-3.1-70b.json -> 70.554e9 parameters, the same as the llama3-70b entry.
No I/O beyond reading the file given to :func:`import_config_file`; no printing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

from tokecon.errors import TokeconError

_MISSING = object()

#: transformers ``Gemma3TextConfig`` defaults (keys its released config.json files leave out).
GEMMA3_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 131_072,
    "tie_word_embeddings": True,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
}

#: DeepSeek reference-inference ``ModelArgs`` key -> Hugging Face key.
_DEEPSEEK_ARGS = {
    "dim": "hidden_size",
    "inter_dim": "intermediate_size",
    "moe_inter_dim": "moe_intermediate_size",
    "n_layers": "num_hidden_layers",
    "n_dense_layers": "first_k_dense_replace",
    "n_heads": "num_attention_heads",
    "n_routed_experts": "n_routed_experts",
    "n_shared_experts": "n_shared_experts",
    "n_activated_experts": "num_experts_per_tok",
    "n_expert_groups": "n_group",
    "n_limited_groups": "topk_group",
    "q_lora_rank": "q_lora_rank",
    "kv_lora_rank": "kv_lora_rank",
    "qk_nope_head_dim": "qk_nope_head_dim",
    "qk_rope_head_dim": "qk_rope_head_dim",
    "v_head_dim": "v_head_dim",
    "vocab_size": "vocab_size",
}

_UNSUPPORTED = ("mamba", "rwkv", "jamba", "nemotron_h", "falcon_h1", "zamba", "recurrent_gemma", "xlstm")
_ENCODERS = ("bert", "roberta", "xlm-roberta", "xlm_roberta", "distilbert", "electra", "mpnet", "nomic_bert")
_QK_NORM = ("qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2", "olmoe")
_TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3", "gemma3_text")
_TORCH_DTYPES = {
    "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16", "half": "fp16",
    "float32": "fp32", "fp32": "fp32", "float": "fp32", "float8_e4m3fn": "fp8", "fp8": "fp8",
}  # fmt: skip


class HFConfigError(TokeconError):
    """A config.json that cannot be read as a transformer tokecon can model (exit code 2)."""


def slug(text: str) -> str:
    """A catalog key from a model name: lowercase, ``[a-z0-9._-]``, no path."""
    base = text.strip().rstrip("/").split("/")[-1]
    out = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-.")
    return out[:64] or "imported-model"


def load_config_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; one-line errors for a missing, unreadable or malformed file."""
    from tokecon.catalogs.inputs import read_input_text

    try:
        exists, is_dir = Path(path).exists(), Path(path).is_dir()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise HFConfigError(f"{path}: cannot read a config.json: {exc.strerror or exc}") from None
    if not exists:
        raise HFConfigError(f"{path}: no such file")
    if is_dir:
        raise HFConfigError(f"{path}: is a directory with no config.json in it")
    try:
        text = read_input_text(path, "a config.json")
    except TokeconError as exc:
        raise HFConfigError(str(exc)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HFConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise HFConfigError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise HFConfigError(f"{path}: not a usable config.json ({exc})") from None
    if not isinstance(data, dict):
        raise HFConfigError(f"{path}: expected a JSON object (a Hugging Face config.json), got {type(data).__name__}")
    return data


def import_config_file(path: Path | str, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """Read ``path`` and return ``(key, entry)``, validated against the catalog schema."""
    from tokecon.catalogs.catalog import validate_entry

    path = Path(path)
    try:
        if path.is_dir() and (path / "config.json").is_file():  # a downloaded checkpoint's folder
            path = path / "config.json"
    except OSError:  # e.g. a name longer than the file system allows: load_config_file says so
        pass
    cfg = load_config_file(path)
    key, entry = entry_from_config(cfg, name=name, where=str(path), default_name=default_name(path))
    validate_entry("models", key, entry, str(path))
    return key, entry


def default_name(path: Path) -> str:
    """What an imported config is called when neither ``--name`` nor its ``_name_or_path`` says:
    the checkpoint's folder for a file named ``config.json`` (``Llama-3.1-8B/config.json`` is
    ``Llama-3.1-8B``), else the file's own stem."""
    if path.stem.lower() == "config":
        folder = path.resolve().parent.name
        if folder:
            return folder
    return path.stem


def model_from_config_file(path: Path | str, name: str | None = None):
    """A :class:`tokecon.physics.specs.Model` straight from a config.json (``--model path/config.json``)."""
    from tokecon.catalogs.catalog import model_from_entry

    key, entry = import_config_file(path, name)
    return model_from_entry(key, entry, str(path))


# --- the mapping -------------------------------------------------------------------------


class _Reader:
    """Typed access to config keys with one-line errors naming the key."""

    def __init__(self, cfg: dict[str, Any], where: str):
        self.cfg, self.where = cfg, where

    def raw(self, *keys: str, default: Any = _MISSING) -> Any:
        for k in keys:
            v = self.cfg.get(k)
            if v is not None:
                return v
        if default is _MISSING:
            raise HFConfigError(f"{self.where}: missing '{keys[0]}' (is this a Hugging Face transformer config.json?)")
        return default

    def int(self, *keys: str, default: Any = _MISSING, minimum: int = 1, maximum: int = 10**12) -> int:
        v = self.raw(*keys, default=default)
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise HFConfigError(f"{self.where}: '{self._which(keys)}' must be an integer, got {v!r}")
        if v < minimum:
            raise HFConfigError(f"{self.where}: '{self._which(keys)}' must be >= {minimum}, got {v!r}")
        if v > maximum:
            raise HFConfigError(f"{self.where}: '{self._which(keys)}' = {v} is implausibly large (limit {maximum})")
        return v

    def bool(self, *keys: str, default: bool = False) -> bool:
        v = self.raw(*keys, default=default)
        if not isinstance(v, bool):
            raise HFConfigError(f"{self.where}: '{self._which(keys)}' must be true or false, got {v!r}")
        return v

    def str(self, *keys: str, default: str = "") -> str:
        v = self.raw(*keys, default=default)
        return v if isinstance(v, str) else default

    def list(self, key: str) -> list | None:
        v = self.cfg.get(key)
        if v is None:
            return None
        if not isinstance(v, list):
            raise HFConfigError(f"{self.where}: '{key}' must be a list, got {type(v).__name__}")
        return v

    def _which(self, keys: tuple[str, ...]) -> str:
        return next((k for k in keys if self.cfg.get(k) is not None), keys[0])


def _flatten(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """Merge a nested ``text_config`` (Gemma 3, Llama 4) over the top-level keys; translate
    DeepSeek's reference ``ModelArgs`` names."""
    out = dict(cfg)
    text = cfg.get("text_config")
    if isinstance(text, dict):
        out = {k: v for k, v in cfg.items() if k != "text_config"}
        top_type = str(cfg.get("model_type") or "")
        out.update({k: v for k, v in text.items() if v is not None or k not in out})
        if not text.get("model_type") and top_type:
            out["model_type"] = f"{top_type}_text"
    if "dim" in out and "n_layers" in out and "hidden_size" not in out:
        ds = {hf: out[k] for k, hf in _DEEPSEEK_ARGS.items() if k in out}
        ds["model_type"] = "deepseek_v3"
        ds["reference_args"] = True
        ds["torch_dtype"] = "bfloat16"
        if str(out.get("dtype", "")).lower() == "fp8":
            ds["quantization_config"] = {"quant_method": "fp8"}
        # ModelArgs: YaRN extends original_seq_len (4096) by rope_factor (40) = 163840 tokens
        seq = _Reader(out, where).int("original_seq_len", default=4096, maximum=10**8)
        factor = out.get("rope_factor", 40)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor <= 1e4:
            raise HFConfigError(f"{where}: 'rope_factor' must be a number from 1 to 10000, got {factor!r}")
        ds["max_position_embeddings"] = int(seq * factor)
        ds["num_key_value_heads"] = ds.get("num_attention_heads")
        ds["tie_word_embeddings"] = False
        out = ds
    return out


def _weight_types(r: _Reader, notes: list[str]) -> tuple[str, str | None]:
    """(weight dtype, expert dtype or None) from quantization_config, then torch_dtype."""
    q = r.cfg.get("quantization_config")
    torch_dtype = str(r.raw("torch_dtype", "dtype", default="") or "").lower().replace("torch.", "")
    base = _TORCH_DTYPES.get(torch_dtype)
    if base is None:
        base = "bf16"
        notes.append("no torch_dtype in the config: weights assumed bf16")
    if not isinstance(q, dict):
        return base, None
    method = str(q.get("quant_method", "")).lower()
    if method in ("fp8", "fbgemm_fp8", "finegrained_fp8"):
        return "fp8", None
    if method == "mxfp4":
        # gpt-oss: attention, router, embeddings and LM head stay bf16; experts MXFP4
        if base in ("fp32",):
            base = "bf16"
        return base, "mxfp4"
    if method in ("awq", "gptq", "aqlm", "hqq", "exl2", "auto-round", "autoround"):
        bits = q.get("bits", q.get("w_bit", 4))
        return ("int8" if bits == 8 else "int4"), None
    if method == "bitsandbytes":
        return ("int8" if q.get("load_in_8bit") else "int4"), None
    if method in ("modelopt", "compressed-tensors", "compressed_tensors"):
        blob = json.dumps(q).lower()
        if "nvfp4" in blob or '"num_bits": 4, "type": "float"' in blob:
            return "nvfp4", None
        if "fp8" in blob or '"type": "float"' in blob:
            return "fp8", None
        if '"num_bits": 4' in blob:
            return "int4", None
        if '"num_bits": 8' in blob:
            return "int8", None
    notes.append(f"quantization '{method or '?'}' not recognised: weights assumed {base} (override with --dtype)")
    return base, None


def _count_chunked(r: _Reader, layers: int, model_type: str) -> tuple[int, int]:
    """(attention_chunk_size, chunked_layers) — layers whose tokens see only their own chunk."""
    chunk = r.cfg.get("attention_chunk_size")
    layer_types = r.list("layer_types")
    if layer_types is not None:
        chunked = sum(1 for t in layer_types if t == "chunked_attention")
    elif model_type.startswith("llama4") and chunk:
        no_rope = r.list("no_rope_layers")
        if no_rope and len(no_rope) == layers:
            chunked = sum(1 for v in no_rope if v)  # 1 = RoPE + chunked attention, 0 = global NoPE
        else:
            interval = r.int("no_rope_layer_interval", default=4)
            chunked = sum(1 for i in range(layers) if (i + 1) % interval)
    else:
        return 0, 0
    if chunked and not chunk:
        raise HFConfigError(f"{r.where}: layer_types has chunked layers but 'attention_chunk_size' is missing")
    return (r.int("attention_chunk_size"), chunked) if chunked else (0, 0)


def _count_windowed(r: _Reader, layers: int, model_type: str) -> tuple[int, int]:
    """(sliding_window, sliding_layers) — how many layers keep only a window of keys."""
    layer_types = r.list("layer_types")
    window = r.cfg.get("sliding_window")
    if model_type.startswith("llama4"):
        return 0, 0  # chunked, not windowed: _count_chunked
    if layer_types is not None:
        windowed = sum(1 for t in layer_types if t in ("sliding_attention", "local_attention"))
        if windowed and not window:
            raise HFConfigError(f"{r.where}: layer_types has windowed layers but 'sliding_window' is missing")
        return (r.int("sliding_window"), windowed) if windowed else (0, 0)
    if not window:
        return 0, 0
    if model_type.startswith("gemma"):
        pattern = r.int("sliding_window_pattern", default=6)
        return r.int("sliding_window"), layers - layers // pattern
    if "use_sliding_window" in r.cfg:  # Qwen2/3: off unless asked; then layers >= max_window_layers
        if not r.cfg.get("use_sliding_window"):
            return 0, 0
        first = r.int("max_window_layers", default=layers, minimum=0)
        return r.int("sliding_window"), max(layers - first, 0)
    return r.int("sliding_window"), layers  # Mistral v0.1: every layer windowed


def _dense_layers(r: _Reader, layers: int, model_type: str, experts: int) -> int:
    if not experts:
        return layers
    if model_type.startswith("llama4"):
        moe = r.list("moe_layers")
        if moe is None:
            step = r.int("interleave_moe_layer_step", default=1)
            moe = list(range(step - 1, layers, step))
        return layers - len(moe)
    if "first_k_dense_replace" in r.cfg:  # DeepSeek / Kimi
        first = r.int("first_k_dense_replace", default=0, minimum=0)
        if first >= layers:
            raise HFConfigError(f"{r.where}: 'first_k_dense_replace' = {first} leaves no MoE layer of {layers} "
                                f"(it must be below num_hidden_layers)")
        freq = r.int("moe_layer_freq", default=1)
        moe = sum(1 for i in range(first, layers) if i % freq == 0)
        return layers - moe
    only = r.list("mlp_only_layers") or []
    step = r.int("decoder_sparse_step", default=1)
    moe = sum(1 for i in range(layers) if i not in only and (i + 1) % step == 0)
    return layers - moe


class _Shape(NamedTuple):
    """The transformer's shape, in the entry's names."""

    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    is_mla: bool


def _config_reader(cfg: dict[str, Any], where: str, notes: list[str]) -> tuple[_Reader, str]:
    """A reader over the flattened config (:func:`_flatten`) and its lowercased ``model_type``. Rejects
    state-space and hybrid models; fills in the keys a Gemma 3 config leaves to its class defaults
    (:data:`GEMMA3_DEFAULTS`, noted)."""
    if not isinstance(cfg, dict):
        raise HFConfigError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    flat = _flatten(cfg, where)
    model_type = str(flat.get("model_type") or "").lower()
    if any(bad in model_type for bad in _UNSUPPORTED) or "hybrid_override_pattern" in flat:
        raise HFConfigError(f"{where}: model_type '{model_type}' is not a transformer tokecon can model (state-space / hybrid layers)")
    if model_type.startswith("gemma3"):
        used = [k for k in GEMMA3_DEFAULTS if flat.get(k) is None]
        flat = {**GEMMA3_DEFAULTS, **{k: v for k, v in flat.items() if v is not None}}
        if used:
            notes.append("Gemma3TextConfig defaults used for " + ", ".join(used))
    return _Reader(flat, where), model_type


def _shape(r: _Reader) -> _Shape:
    """Layers, width, heads and vocabulary under each family's key names. MLA (``kv_lora_rank`` set):
    kv_heads = heads and head_dim = qk_nope_head_dim + qk_rope_head_dim; otherwise ``head_dim``, or
    hidden_size / heads where the config gives none."""
    layers = r.int("num_hidden_layers", "n_layer", "num_layers", maximum=10_000)  # the layer counts loop over layers
    hidden = r.int("hidden_size", "d_model", "n_embd")
    heads = r.int("num_attention_heads", "n_head", "num_heads")
    vocab = r.int("vocab_size")
    is_mla = bool(r.cfg.get("kv_lora_rank"))
    kv_heads = heads if is_mla else r.int("num_key_value_heads", default=heads)
    if is_mla:
        head_dim = r.int("qk_nope_head_dim") + r.int("qk_rope_head_dim")
    elif r.cfg.get("head_dim") is not None:
        head_dim = r.int("head_dim")
    else:
        if hidden % heads:
            raise HFConfigError(f"{r.where}: no 'head_dim', and hidden_size {hidden} is not a multiple of {heads} heads")
        head_dim = hidden // heads
    return _Shape(layers, hidden, heads, kv_heads, head_dim, vocab, is_mla)


def _ffn_widths(r: _Reader, model_type: str, layers: int, hidden: int) -> tuple[int, int, int, int]:
    """(experts, dense_layers, expert width, dense FFN width). The expert width is intermediate_size for
    Mixtral, gpt-oss and Llama 4, else moe_intermediate_size; the dense width is the expert width when
    every layer is MoE, intermediate_size_mlp on Llama 4, else intermediate_size (4 x hidden if absent)."""
    experts = r.int("num_local_experts", "num_experts", "n_routed_experts", default=0, minimum=0)
    if not experts and r.int("num_experts_per_tok", "experts_per_token", "moe_topk", default=0, minimum=0):
        raise HFConfigError(f"{r.where}: '{r._which(('num_local_experts', 'num_experts', 'n_routed_experts'))}' is 0 "
                            "but 'num_experts_per_tok' routes tokens to experts; give the expert count")
    dense_layers = _dense_layers(r, layers, model_type, experts)
    expert_width = 0
    if experts:
        if model_type.startswith("llama4") or (model_type in ("mixtral", "gpt_oss") and "moe_intermediate_size" not in r.cfg):
            expert_width = r.int("intermediate_size")
        else:
            expert_width = r.int("moe_intermediate_size", "intermediate_size")
    if experts and dense_layers == 0:
        ffn = expert_width  # no dense FFN: intermediate_size is unused or is the expert width
    elif model_type.startswith("llama4"):
        ffn = r.int("intermediate_size_mlp", "intermediate_size")
    else:
        ffn = r.int("intermediate_size", "n_inner", default=4 * hidden)
    return experts, dense_layers, expert_width, ffn


def _layer_fields(
    r: _Reader, model_type: str, encoder: bool, shape: _Shape, ffn: int, max_context: int, weight_dtype: str
) -> dict[str, Any]:
    """The fields every entry has, from the shape to the kinds of attention, MLP and norm: an encoder
    (BERT-style) is bidirectional with a plain MLP, LayerNorm and no LM head; a decoder causal, gated,
    RMSNorm. Embeddings tied by default on Gemma; QKV biases on Qwen2."""
    return {
        "layers": shape.layers,
        "hidden_size": shape.hidden_size,
        "heads": shape.heads,
        "kv_heads": shape.kv_heads,
        "head_dim": shape.head_dim,
        "intermediate_size": ffn,
        "vocab_size": shape.vocab_size,
        "tied_embeddings": r.bool("tie_word_embeddings", default=model_type in _TIED_BY_DEFAULT),
        "max_context": max_context,
        "weight_dtype": weight_dtype,
        "attention": "mla" if shape.is_mla else "gqa",
        "causal": not encoder,
        "lm_head": not encoder,
        "mlp": "plain" if encoder else "gated",
        "norm": "layernorm" if encoder else "rmsnorm",
        "qk_norm": model_type in _QK_NORM,
        "attention_bias": (not encoder) and (model_type.startswith("qwen2") or r.bool("attention_bias")),
    }


def _mla_fields(r: _Reader) -> dict[str, int]:
    """MLA's ranks and head widths (DeepSeek-V3, Kimi K2): the KV cache holds kv_lora_rank +
    qk_rope_head_dim per token per layer."""
    return dict(
        q_lora_rank=r.int("q_lora_rank", default=0, minimum=0),
        kv_lora_rank=r.int("kv_lora_rank"),
        qk_rope_head_dim=r.int("qk_rope_head_dim"),
        qk_nope_head_dim=r.int("qk_nope_head_dim"),
        v_head_dim=r.int("v_head_dim"),
    )


def _moe_fields(r: _Reader, model_type: str, experts: int, expert_width: int, dense_layers: int) -> dict[str, int]:
    """Routing: experts per token, shared experts (n_shared_experts; one on Llama 4; one of its own width,
    shared_expert_intermediate_size, on Qwen2-MoE) and node-limited routing, n_group / topk_group when
    n_group > 1 (DeepSeek-V3: 8 / 4; Kimi K2's 1 / 1 is no limit)."""
    per_token = r.int("num_experts_per_tok", "experts_per_token", "moe_topk", "num_selected_experts")
    shared = r.int("n_shared_experts", "num_shared_experts", default=0, minimum=0)
    shared_width = 0
    if model_type.startswith("llama4"):
        shared = 1
    elif r.cfg.get("shared_expert_intermediate_size"):
        shared, shared_width = 1, r.int("shared_expert_intermediate_size")
    fields = dict(
        experts=experts,
        experts_per_token=per_token,
        shared_experts=shared,
        expert_intermediate_size=expert_width,
        dense_layers=dense_layers,
    )
    if shared_width:
        fields["shared_expert_intermediate_size"] = shared_width
    groups = r.int("n_group", default=0, minimum=0)
    if groups > 1:
        fields.update(expert_groups=groups, expert_groups_per_token=r.int("topk_group", default=groups))
    return fields


def _architecture_name(r: _Reader, model_type: str) -> str:
    """What the entry's source names the config by: its first ``architectures`` class, else its model_type."""
    if r.cfg.get("reference_args"):
        return "DeepSeek reference-inference ModelArgs"
    arch = r.cfg.get("architectures")
    return arch[0] if isinstance(arch, list) and arch and isinstance(arch[0], str) else model_type or "unknown"


def entry_from_config(
    cfg: dict[str, Any], name: str | None = None, where: str = "config.json", default_name: str = "imported-model"
) -> tuple[str, dict[str, Any]]:
    """``(key, entry)`` for a Hugging Face config dict. Raises :class:`HFConfigError` (one line).

    The parts are read in a fixed order (shape, FFN and expert widths, weight types, windows and chunks,
    context, then the remaining fields), so a config with several faults always reports the same one."""
    notes: list[str] = []
    r, model_type = _config_reader(cfg, where, notes)
    encoder = model_type in _ENCODERS
    shape = _shape(r)
    experts, dense_layers, expert_width, ffn = _ffn_widths(r, model_type, shape.layers, shape.hidden_size)
    weight_dtype, expert_dtype = _weight_types(r, notes)
    if encoder and r.cfg.get("torch_dtype") is None and r.cfg.get("dtype") is None:
        weight_dtype = "fp32"
    window, sliding_layers = _count_windowed(r, shape.layers, model_type)
    chunk, chunked_layers = _count_chunked(r, shape.layers, model_type)
    max_context = r.int("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", default=0, minimum=0)
    if not max_context:
        max_context = 4096
        notes.append("no max_position_embeddings: context assumed 4096 tokens")

    display = name or r.str("_name_or_path") or default_name
    key = slug(name or display)
    hf_id = r.str("_name_or_path")
    entry: dict[str, Any] = {"name": (name or display.rstrip("/").split("/")[-1] or key)}
    if "/" in hf_id and not hf_id.startswith(("/", ".")):
        entry["hf_id"] = hf_id
    entry.update(_layer_fields(r, model_type, encoder, shape, ffn, max_context, weight_dtype))
    if expert_dtype:
        entry["expert_dtype"] = expert_dtype
    if encoder:
        entry["linear_bias"] = True
        entry["position_embeddings"] = max_context + r.int("type_vocab_size", default=2, minimum=0)
    if model_type.startswith(("gemma2", "gemma3")):
        entry["extra_norms_per_layer"] = 2
    if shape.is_mla:
        entry.update(_mla_fields(r))
    if experts:
        entry.update(_moe_fields(r, model_type, experts, expert_width, dense_layers))
    if sliding_layers:
        entry.update(sliding_window=window, sliding_layers=sliding_layers)
    if chunked_layers:
        entry.update(attention_chunk_size=chunk, chunked_layers=chunked_layers)
    mtp = r.int("num_nextn_predict_layers", default=0, minimum=0)
    if mtp:
        entry["mtp_modules"] = min(mtp, 16)
    entry["source"] = f"imported from {where} ({_architecture_name(r, model_type)})"
    if notes:
        entry["notes"] = "; ".join(notes)
    return key, entry
