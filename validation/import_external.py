"""Convert the two external measurement sets into ``validation/external.csv`` and
``validation/external_disagg.csv``.

Reads ``shared/calibration/external/aiconfigurator_silicon_sample.csv`` (ai-dynamo/aiconfigurator,
Apache-2.0; aggregated rows into external.csv, disaggregated rows into external_disagg.csv) and ``argonne_llm_inference_bench.csv``
(argonne-lcf/LLM-Inference-Bench, BSD-3-Clause) and writes them in the column schema of
``measurements.csv``. Deterministic: same inputs, same bytes. Rows left out are counted by reason
(printed, and recorded in SOURCES.md). Run from the repository root:

    python validation/import_external.py [EXTERNAL_DIR]
"""

from __future__ import annotations

import csv
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE.parent.parent / "shared" / "calibration" / "external"
COLUMNS = ["id", "source_title", "source_url", "date", "model", "weight_precision", "kv_precision", "hardware",
           "n_gpus", "parallelism", "engine", "scenario", "input_len", "output_len", "concurrency_or_batch",
           "metric", "value", "notes"]

AIC_URL = ("https://github.com/ai-dynamo/aiconfigurator/blob/095f58a51c4ca8e61b66ec108d86f223f8d559ce/"
           "aic-core/src/aiconfigurator_core/systems/silicon_sample.csv")
ANL_URL = "https://github.com/argonne-lcf/LLM-Inference-Bench/blob/4211f5d/Plots/All_results.csv"

#: Hugging Face id -> tokecon catalog key. Quantised NVIDIA checkpoints are their base model.
AIC_MODELS = {
    "deepseek-ai/DeepSeek-R1": "deepseek-v3", "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "nvidia/DeepSeek-R1-NVFP4": "deepseek-v3", "nvidia/DeepSeek-V3.1-NVFP4": "deepseek-v3",
    "meta-llama/Llama-3.1-70B": "llama3-70b", "meta-llama/Llama-3.1-8B-Instruct": "llama3-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama3-8b", "Qwen/Qwen3-32B": "qwen3-32b", "nvidia/Qwen3-32B-NVFP4": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b", "openai/gpt-oss-120b": "gpt-oss-120b",
    "MiniMaxAI/MiniMax-M2.5": "minimax-m2.5", "moonshotai/Kimi-K2.5": "kimi-k2",
}
#: Models tokecon cannot represent: left out, with the reason.
AIC_UNREPRESENTABLE = {
    "Qwen/Qwen3.5-397B-A17B": "Qwen3.5-397B-A17B: hybrid linear attention (Gated DeltaNet) not representable",
    "zhipuai/GLM-5": "GLM-5: DeepSeek Sparse Attention (top-2048 tokens picked by a lightning indexer) not representable",
}
AIC_SYSTEMS = {"b200_sxm": "b200", "b300_sxm": "b300", "h100_sxm": "h100-sxm", "h200_sxm": "h200", "gb200": "gb200",
               "gb300": "gb300"}

ANL_HARDWARE = {"Nvidia A100 GPU": ("a100", "a100-40gb"), "Nvidia H100 GPU": ("h100", "h100-sxm"),
                "Nvidia GH200 GPU": ("gh200", "gh200"), "AMD MI300X GPU": ("mi300x", "mi300x")}
#: Framework -> (id part, engine NAME@VERSION); SOURCES.md says where each version comes from.
ANL_ENGINES = {"vLLM": ("vllm", "vllm@0.5"), "TensorRT-LLM": ("trtllm", "trtllm@0.12.0"), "llama.cpp": ("llamacpp", "llamacpp")}
#: On AMD GPUs the same frameworks ran their ROCm/HIP backends (engines.toml [vllm-rocm-2024], [llamacpp-hip]).
ANL_AMD_ENGINES = {"vLLM": "vllm-rocm@0.5", "llama.cpp": "llamacpp-hip"}
ANL_MODELS = {
    "meta-llama/Llama-2-7b-hf": "llama2-7b", "meta-llama/Llama-2-70b-hf": "llama2-70b",
    "meta-llama/Meta-Llama-3-8B": "llama3-8b", "meta-llama/Meta-Llama-3-70B": "llama3-70b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b", "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
}


def _source_fields(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key] = value
    m = re.search(r"(?:^|;\s*)([\w.#/-]+:[\w.-]+)\s*$", text)  # a bare container tag at the end
    if m and "image" not in out:
        out["image"] = m.group(1)
    return out


def _engine(backend: str, version: str, image: str) -> str:
    """NAME@VERSION. TensorRT-LLM's release container tag is the engine version; the Dynamo runtime
    image's tag is Dynamo's, not TensorRT-LLM's. A blank version is taken from the container tag."""
    tag = image.rsplit(":", 1)[-1] if ":" in image else ""
    if backend == "trtllm":
        if "tensorrt-llm/release:" in image:
            version = tag
        elif version.startswith("0.") and "dynamo" in image:
            version = ""
    elif not version and tag:
        version = re.sub(r"-cu\d+.*$", "", tag.removeprefix("v"))
    return f"{backend}@{version}" if version else backend


def _precision(r: dict[str, str]) -> tuple[str, str]:
    gemm, moe = r["gemm_quant_mode"], r["moe_quant_mode"]
    names = {"nvfp4": "nvfp4", "fp8": "fp8", "fp8_block": "fp8 (128x128 block scales)", "int4_wo": "int4 weight-only",
             "": "bf16"}
    weights = names[gemm]
    if moe and moe != gemm:
        weights += f"; experts {names[moe]}"
    if r["backend"] == "trtllm" and gemm in ("fp8", "fp8_block", "nvfp4"):
        kv = "fp8 (assumed: TensorRT-LLM fp8/nvfp4 ModelOpt checkpoints quantise the KV cache to fp8)"
    else:
        kv = "bf16 (assumed: engine default kv_cache_dtype auto)"
    return weights, kv


def _layout(r: dict[str, str]) -> tuple:
    """What a run deployed: its layout (both pools when disaggregated), quantisation and concurrency."""
    if r["mode"] == "agg":
        pools = tuple(r[k] or "1" for k in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size",
                                              "batch_size"))
    else:
        pools = tuple(r[f"{side}_{k}"] for side in ("prefill", "decode") for k in
                      ("num_workers", "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size", "batch_size"))
    return pools + (r["gemm_quant_mode"], r["moe_quant_mode"], _source_fields(r["silicon_data_source"]).get("silicon_concurrency", ""))


def duplicates(rows: list[dict[str, str]]) -> tuple[set[int], Counter]:
    """Indices of runs to leave out, and how many by rule. Runs are grouped by their measurement: the
    mode, system, engine, ISL, OSL and the exact (full precision) measured TTFT and TPOT pair, which no
    two separate runs reproduce to 15 digits.

    * repeat: a group whose runs agree on what they deployed (:func:`_layout`) is one run recorded
      more than once (as DeepSeek-V3 and as -R1, which share the shapes, or in a database dump and a
      work-in-progress file): the first is kept, the others left out;
    * conflict: a group whose runs disagree on the layout, the GPU count or the concurrency is one run
      recorded under at least one wrong configuration, and nothing says which: all are left out."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        key = (r["mode"], r["system"], r["backend"], r["isl"], r["osl"], r["silicon_ttft_ms"], r["silicon_tpot_ms"])
        groups.setdefault(key, []).append(i)
    drop: set[int] = set()
    counts: Counter = Counter()
    for idx in groups.values():
        if len(idx) < 2:
            continue
        mode = "aiconfigurator" if rows[idx[0]]["mode"] == "agg" else "aiconfigurator disagg"
        if len({_layout(rows[i]) for i in idx}) == 1:
            drop.update(idx[1:])
            counts[f"{mode}: repeat of another run's record (same deployment, same measured TTFT and TPOT)"] += len(idx) - 1
        else:
            drop.update(idx)
            counts[f"{mode}: conflicting records (same measured TTFT and TPOT under different deployments)"] += len(idx)
    return drop, counts


def _read_aiconfigurator(path: Path, skipped: Counter) -> list[dict[str, str]]:
    """The runs of aiconfigurator's sample without the duplicates (:func:`duplicates`), counted in ``skipped``."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    drop, counts = duplicates(rows)
    skipped.update(counts)
    return [r for i, r in enumerate(rows) if i not in drop]


def convert_aiconfigurator(path: Path, skipped: Counter) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    counters: Counter = Counter()
    rows = _read_aiconfigurator(path, skipped)
    for r in rows:
        if r["mode"] != "agg":
            continue  # disaggregated rows: convert_aiconfigurator_disagg
        if r["model_path"] in AIC_UNREPRESENTABLE:
            skipped[f"aiconfigurator: {AIC_UNREPRESENTABLE[r['model_path']]}"] += 1
            continue
        src = _source_fields(r["silicon_data_source"])
        tp, pp = int(r["tp_size"]), int(r["pp_size"])
        dp = int(r["attention_dp_size"] or 1) or 1
        moe_tp, moe_ep = int(r["moe_tp_size"] or 1) or 1, int(r["moe_ep_size"] or 1) or 1
        concurrency = int(src.get("silicon_concurrency", 0)) or int(r["batch_size"]) * dp
        if concurrency != int(r["batch_size"]) * dp:
            skipped["aiconfigurator: batch_size x attention DP differs from silicon_concurrency (replica count unknown)"] += 1
            continue
        system = AIC_SYSTEMS[r["system"]]
        prefix = f"AIC.{system.split('-')[0]}.{r['backend']}"
        weights, kv = _precision(r)
        date = src.get("measured", "")[:7]
        for metric, column in (("ttft_ms", "silicon_ttft_ms"), ("tpot_ms", "silicon_tpot_ms")):
            counters[prefix] += 1
            out.append({
                "id": f"{prefix}-{counters[prefix]:05d}",
                "source_title": "ai-dynamo/aiconfigurator silicon_sample.csv (measured serving runs, aggregated mode)",
                "source_url": AIC_URL, "date": date, "model": AIC_MODELS[r["model_path"]],
                "weight_precision": weights, "kv_precision": kv, "hardware": system, "n_gpus": str(tp * pp * dp),
                "parallelism": f"TP{tp} PP{pp} attnDP{dp} moeTP{moe_tp} moeEP{moe_ep}",
                "engine": _engine(r["backend"], r["backend_version"], src.get("image", "")),
                "scenario": "closed-loop serving (aggregated), mean over requests", "input_len": r["isl"],
                "output_len": r["osl"], "concurrency_or_batch": str(concurrency), "metric": metric,
                "value": f"{float(r[column]):.6g}",
                "notes": f"{r['id']}; {r['model_path']}; batch_size {r['batch_size']}; {src.get('image', 'no container tag')}",
            })
    return out


def _pool(r: dict[str, str], side: str) -> str:
    """One pool of a disaggregated row: ``{workers}x TP.. PP.. attnDP.. moeTP.. moeEP..`` (workers
    ``?`` when not stated), then `` batch N`` when the prefill batch is stated."""
    g = {k: int(r[f"{side}_{k}_size"] or 1) or 1 for k in ("tp", "pp", "attention_dp", "moe_tp", "moe_ep")}
    workers = r[f"{side}_num_workers"] or "?"
    text = f"{side} {workers}x TP{g['tp']} PP{g['pp']} attnDP{g['attention_dp']} moeTP{g['moe_tp']} moeEP{g['moe_ep']}"
    return text + (f" batch {r['prefill_batch_size']}" if side == "prefill" and r["prefill_batch_size"] else "")


def convert_aiconfigurator_disagg(path: Path, skipped: Counter) -> list[dict[str, str]]:
    """The ``mode = disagg`` rows: prefill and decode pools in ``parallelism`` (:func:`_pool`), GPUs =
    prefill workers x their GPUs + decode workers x theirs (workers ``?``: counted as one each)."""
    out: list[dict[str, str]] = []
    counters: Counter = Counter()
    rows = _read_aiconfigurator(path, Counter())  # the duplicates are counted once, by convert_aiconfigurator
    for r in rows:
        if r["mode"] != "disagg":
            continue
        if r["model_path"] in AIC_UNREPRESENTABLE:
            skipped[f"aiconfigurator disagg: {AIC_UNREPRESENTABLE[r['model_path']]}"] += 1
            continue
        src = _source_fields(r["silicon_data_source"])
        if not src.get("silicon_concurrency"):
            skipped["aiconfigurator disagg: silicon_concurrency not stated"] += 1
            continue
        gpus = sum(int(r[f"{side}_num_workers"] or 1) * int(r[f"{side}_tp_size"] or 1) * int(r[f"{side}_pp_size"] or 1)
                   * (int(r[f"{side}_attention_dp_size"] or 1) or 1) for side in ("prefill", "decode"))
        system = AIC_SYSTEMS[r["system"]]
        prefix = f"AICPD.{system.split('-')[0]}.{r['backend']}"
        weights, kv = _precision(r)
        stated = "workers stated" if r["prefill_num_workers"] and r["decode_num_workers"] else "workers not stated (1P1D assumed)"
        for metric, column in (("ttft_ms", "silicon_ttft_ms"), ("tpot_ms", "silicon_tpot_ms")):
            counters[prefix] += 1
            out.append({
                "id": f"{prefix}-{counters[prefix]:05d}",
                "source_title": "ai-dynamo/aiconfigurator silicon_sample.csv (measured serving runs, disaggregated mode)",
                "source_url": AIC_URL, "date": src.get("measured", "")[:7], "model": AIC_MODELS[r["model_path"]],
                "weight_precision": weights, "kv_precision": kv, "hardware": system, "n_gpus": str(gpus),
                "parallelism": f"{_pool(r, 'prefill')}; {_pool(r, 'decode')}",
                "engine": _engine(r["backend"], r["backend_version"], src.get("image", "")),
                "scenario": "closed-loop serving (disaggregated prefill/decode), mean over requests", "input_len": r["isl"],
                "output_len": r["osl"], "concurrency_or_batch": src["silicon_concurrency"], "metric": metric,
                "value": f"{float(r[column]):.6g}",
                "notes": f"{r['id']}; {r['model_path']}; {stated}; decode batch_size {r['decode_batch_size'] or 'not stated'}; "
                         f"{src.get('image', 'no container tag')}",
            })
    return out


def convert_argonne(path: Path, skipped: Counter) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    counters: Counter = Counter()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        hw, fw = ANL_HARDWARE.get(r["Hardware"]), ANL_ENGINES.get(r["Framework"])
        if hw is None:
            skipped[f"Argonne: hardware '{r['Hardware']}' not in tokecon's catalog"] += 1
            continue
        if fw is None:
            skipped[f"Argonne: framework '{r['Framework']}' has no tokecon engine profile"] += 1
            continue
        model = ANL_MODELS.get(r["Model"])
        if model is None:
            skipped[f"Argonne: model '{r['Model']}' not in tokecon's catalog"] += 1
            continue
        n, length, batch = int(r["Num of Hardware"]), int(r["Input Output Length"]), int(r["Batch Size"])
        llamacpp = r["Framework"] == "llama.cpp"
        if llamacpp and batch == 1:
            skipped["Argonne: llama.cpp with -b 1 (prompt fed one token per step) not modelled"] += 1
            continue
        prefix = f"ANL.{hw[0]}.{fw[0]}"
        counters[prefix] += 1
        parallelism = f"TP{n}" if not llamacpp else "single device" if n == 1 else f"layer split across {n} GPUs (llama.cpp default)"
        out.append({
            "id": f"{prefix}-{counters[prefix]:04d}",
            "source_title": "LLM-Inference-Bench (Argonne, arXiv 2411.00136), Plots/All_results.csv",
            "source_url": ANL_URL, "date": "2024", "model": model, "weight_precision": "fp16", "kv_precision": "fp16",
            "hardware": hw[1], "n_gpus": str(n), "parallelism": parallelism,
            "engine": ANL_AMD_ENGINES.get(r["Framework"], fw[1]) if r["Hardware"].startswith("AMD") else fw[1],
            "scenario": "fixed-batch (static batching), whole batch submitted at once",
            "input_len": str(length), "output_len": str(length), "concurrency_or_batch": "1" if llamacpp else str(batch),
            "metric": "batch_latency_s", "value": f"{float(r['Latency']):.6g}",
            "notes": f"{r['Model']}; Batch Size column {batch}; Throughput {float(r['Throughput']):.6g} tok/s",
        })
    return out


def _write(rows: list[dict[str, str]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")


def main(external_dir: Path = DEFAULT_DIR, out_path: Path = HERE / "external.csv",
         disagg_path: Path = HERE / "external_disagg.csv") -> Counter:
    """external.csv (aggregated aiconfigurator rows, Argonne) and external_disagg.csv (disaggregated
    aiconfigurator rows, which validate predicts but never fits on)."""
    skipped: Counter = Counter()
    aic = external_dir / "aiconfigurator_silicon_sample.csv"
    _write(convert_aiconfigurator(aic, skipped) + convert_argonne(external_dir / "argonne_llm_inference_bench.csv", skipped),
           out_path)
    _write(convert_aiconfigurator_disagg(aic, skipped), disagg_path)
    for reason, count in sorted(skipped.items()):
        print(f"  left out {count:5d}: {reason}")
    return skipped


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR)
