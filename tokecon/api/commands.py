"""Every command of tokecon, declared once (tokecon.api.declare): its options, defaults, thresholds,
help and examples. The CLI, budget files and the Python API all read this module.

Options shared by several commands are written once, in groups (dataclass bases); a command's own
options come first in its help, then its groups'.
"""

from __future__ import annotations

from pathlib import Path

from tokecon.api.declare import REQUIRED, Command, Options, argument, option

# --- groups -------------------------------------------------------------------------------------

NUMERICS = "Precision and engine"
COSTS = "Cost"
MODES = "Serving modes"
POOLS = "Disaggregated"


class Model(Options):
    model: str = option(REQUIRED, "--model", "-m", kind="model", metavar="MODEL", complete="models",
                        help="Model name or alias (`tokecon models list`), or a config.json.")


class OnDevices(Model):
    gpus: tuple[str, ...] = option(REQUIRED, "--gpus", "-g", kind="gpus", metavar="COUNTxDEVICE", complete="gpus",
                                   help="Devices, e.g. 4xH100; repeat to compare. An SRAM machine without a count "
                                        "(-g groq) gets as many chips as hold the model.")


class Weights(Options):
    dtype: str | None = option(None, "--dtype", kind="str", metavar="TYPE", panel=NUMERICS,
                               help="Weight type: bf16, fp8, fp4, int8, int4, mxfp4, nvfp4, q4_k_m (default: the model's).")
    engine: str | None = option(None, "--engine", kind="str", metavar="NAME[@VERSION]", panel=NUMERICS, complete="engines",
                                help="Serving engine whose efficiency is assumed (default vllm; `tokecon engines list`).")
    ideal: bool = option(False, "--ideal", panel=NUMERICS,
                         help="Ideal roofline: 100% of every peak, no latency or overhead (an upper bound).")
    catalog: tuple[Path, ...] = option((), "--catalog", kind="paths", metavar="FILE", panel=NUMERICS,
                                       help="Extra catalog TOML ([hardware.X], [models.X], [engines.X]); repeatable.")


class Numerics(Weights):
    kv_dtype: str | None = option(None, "--kv-dtype", kind="str", metavar="TYPE", panel=NUMERICS,
                                  help="KV-cache type (default bf16).")


class Tp(Options):
    tp: int | None = option(None, "--tp", kind="int", help="Tensor-parallel degree (default: all GPUs); the rest are replicas.")


class Layout(Tp):
    pp: int | None = option(None, "--pp", kind="int", help="Pipeline-parallel stages (layers split across them; default 1).")


class Price(Options):
    usd_per_gpu_hour: float | None = option(None, "--usd-per-gpu-hour", kind="float", panel=COSTS,
                                            help="Price per GPU-hour instead of the catalog's rental price.")
    as_of: str | None = option(None, "--as-of", kind="str", metavar="YYYY-MM", panel=COSTS,
                               help="Price at this date: the catalog's dated points interpolated (or projected), "
                                    "and the notes say how (`tokecon prices show DEVICE`).")


class Vary(Options):
    vary: tuple[str, ...] | None = option(None, "--vary", kind="strs", metavar="NAME=V1,V2,...", panel=COSTS,
                                          help="USD/Mtok's sensitivity to one cost input, e.g. interest-rate=0.02,0.05 "
                                               "(interest-rate, depreciation-years, other-capital-ratio, purchase-usd, "
                                               "usd-per-kwh, pue with --cost tco; usd-per-gpu-hour; utilisation).")


class TcoInputs(Options):
    cost_file: Path | None = option(None, "--cost-file", kind="path", panel=COSTS,
                                    help="TOML file with a [cost] table holding any of the cost options (flags win).")
    other_capital_ratio: float | None = option(None, "--other-capital-ratio", kind="float", panel=COSTS,
                                               help="TCO: facility capital (building, power, cooling) per USD of server "
                                                    "capital (default 0.40).")
    depreciation_years: float | None = option(None, "--depreciation-years", kind="float", panel=COSTS,
                                              help="TCO: years over which capital is recovered (default 5).")
    interest_rate: float | None = option(None, "--interest-rate", kind="float", panel=COSTS,
                                         help="TCO: cost of capital per year, e.g. 0.10 (default).")
    pue: float | None = option(None, "--pue", kind="float", panel=COSTS, help="TCO: facility power usage effectiveness (default 1.3).")
    usd_per_kwh: float | None = option(None, "--usd-per-kwh", kind="float", panel=COSTS, help="TCO: electricity price (default 0.10).")
    utilisation: float | None = option(None, "--utilisation", "--utilization", kind="float", panel=COSTS,
                                       help="Share of hours doing paid work, 0.01 to 1; divides the hourly price (default 1).")


class Costs(Price, TcoInputs):
    cost: str | None = option(None, "--cost", kind="choice", choices=("rental", "tco", "tco-published"), panel=COSTS,
                              help="Hourly price: catalog rental (default); total cost of ownership from capital, "
                                   "power and facility (tco); or a published all-in TCO per GPU-hour (tco-published, "
                                   "with --tco-source and --tier).")
    purchase_usd: float | None = option(None, "--purchase-usd", kind="float", panel=COSTS,
                                        help="TCO: capital per GPU at server share: the GPU with its share of host, NICs, "
                                             "chassis and scale-up switches (default: the catalog's).")
    tco_source: str | None = option(None, "--tco-source", kind="str", panel=COSTS,
                                    help="tco-published: whose all-in TCO (default SemiAnalysis; `tokecon prices list`).")
    tier: str | None = option(None, "--tier", kind="choice", choices=("hyperscaler", "neocloud"), panel=COSTS,
                              help="tco-published: the buyer tier (default hyperscaler).")
    explain_cost: bool = option(False, "--explain-cost", panel=COSTS, help="Show the breakdown of the price per GPU-hour.")


class Modes(Options):
    speculative: str | None = option(None, "--speculative", kind="str", metavar="mtp|eagle|draft:MODEL", panel=MODES,
                                     help="Speculative decoding: the model's MTP module (DeepSeek), an EAGLE head, or a draft model.")
    draft_tokens: int | None = option(None, "--draft-tokens", kind="int", panel=MODES,
                                      help="Tokens drafted per step (default: mtp 1, eagle 3, draft 4).")
    acceptance: float | None = option(None, "--acceptance", kind="float", panel=MODES,
                                      help="Probability each drafted token is accepted (default: mtp 0.85, eagle 0.75, draft 0.7).")
    prefix_hit: float = option(0.0, "--prefix-hit", panel=MODES,
                               help="Share of input tokens found in a prefix (KV) cache, not prefilled (e.g. 0.56).")
    range_ratio: float = option(1.0, "--range-ratio", panel=MODES,
                                help="Lengths vary: each request's input and output drawn uniformly from [ratio x length, "
                                     "length] (InferenceMAX: 0.8; default 1 = fixed).")
    price_in: float | None = option(None, "--price-in", kind="float", panel=MODES,
                                    help="List price of input tokens that miss the cache, USD/Mtok (revenue and margin).")
    price_in_cached: float | None = option(None, "--price-in-cached", kind="float", panel=MODES,
                                           help="List price of cached input tokens, USD/Mtok (default: --price-in).")
    price_out: float | None = option(None, "--price-out", kind="float", panel=MODES,
                                     help="List price of output tokens, USD/Mtok (revenue and margin).")


class Parallel(Layout):
    ep: int | None = option(None, "--ep", kind="int", help="Expert-parallel size for MoE models (needs --attention-dp; default all GPUs).")
    attention_dp: bool = option(False, "--attention-dp", help="MoE: data-parallel attention on every GPU, experts over --ep GPUs (DeepSeek-style).")
    eplb: bool = option(False, "--eplb/--no-eplb", help="Expert-parallel load balancer with redundant experts (DeepSeek EPLB): "
                                                        "busiest rank ~1.1x the mean instead of ~1.4x (default off).")
    chunked_prefill: int | None = option(None, "--chunked-prefill", kind="int",
                                         help="Token budget per step, prompts in chunks mixed with decode (default: the engine's).")
    max_num_tokens: int | None = option(None, "--max-num-tokens", kind="int",
                                        help="Token budget per step (TensorRT-LLM max_num_tokens, vLLM max-num-batched-tokens), "
                                             "prompts split or kept whole as the engine does (default: the engine's).")
    sync_scheduling: bool = option(False, "--sync-scheduling",
                                   help="The engine prepares each step only after the one before ends (TensorRT-LLM "
                                        "disable_overlap_scheduler, SGLang --disable-overlap-schedule, vLLM --no-async-scheduling): "
                                        "no step already prepared in TTFT (default: as the engine version runs).")
    price_split: float | None = option(None, "--price-split", kind="float", panel=COSTS,
                                       help="Price input tokens at this fraction of output tokens (Tensor Economics' gamma, "
                                            "e.g. 0.3) instead of by GPU time.")


class Workload(Options):
    input_len: int = option(1024, "--input-len", "-i", help="Prompt tokens per request.")
    output_len: int = option(1024, "--output-len", "-o", help="Output tokens per request.")


class Pools(Options):
    prefill_gpus: str | None = option(None, "--prefill-gpus", kind="str", metavar="COUNTxDEVICE", complete="gpus", panel=POOLS,
                                      help="Disaggregated serving: GPUs of one prefill worker, e.g. 4xH200 (with --decode-gpus).")
    prefill_workers: int | None = option(None, "--prefill-workers", kind="int", panel=POOLS,
                                         help="Prefill workers (x of xPyD; default: balanced against the decode pool).")
    prefill_layout: str | None = option(None, "--prefill-layout", kind="str", metavar="tpN|depN", panel=POOLS,
                                        help="Layout of a prefill worker: tpN tensor-parallel groups, depN attention-DP "
                                             "with experts over N GPUs (default: as aggregated).")
    prefill_batch: int | None = option(None, "--prefill-batch", kind="int", panel=POOLS,
                                       help="Most prompts a prefill unit batches per step (default: the engine's token budget / input length).")
    decode_gpus: str | None = option(None, "--decode-gpus", kind="str", metavar="COUNTxDEVICE", complete="gpus", panel=POOLS,
                                     help="Disaggregated serving: GPUs of one decode worker, e.g. 8xH200.")
    decode_workers: int | None = option(None, "--decode-workers", kind="int", panel=POOLS,
                                        help="Decode workers (y of xPyD; default: balanced against the prefill pool).")
    decode_layout: str | None = option(None, "--decode-layout", kind="str", metavar="tpN|depN", panel=POOLS,
                                       help="Layout of a decode worker (as --prefill-layout).")


class Serving(Model, Workload, Parallel, Costs, Modes, Numerics, Vary):
    """What every serving command (serve, frontier, capacity, compare) takes."""


def _mode(default: str) -> str:
    return option(default, "--mode", kind="choice", choices=("agg", "disagg", "both"),
                  help="Search aggregated layouts, disaggregated prefill/decode pools within the GPUs, or both "
                       "(disaggregated where the model fits a part of them).")


class Catalogs(Options):
    catalog: tuple[Path, ...] = option((), "--catalog", kind="paths", metavar="FILE",
                                       help="Extra catalog TOML ([hardware.X], [models.X], [engines.X]); repeatable.")


# --- the phase views ------------------------------------------------------------------------------


class DecodeOptions(OnDevices, Layout, Numerics, Price, Vary):
    batch: tuple[int, ...] | None = option(None, "--batch", "-b", kind="ints", metavar="N[,N...]",
                                           help="Batch sizes, comma-separated or repeated (default: powers of two up to the largest that fits).")
    context: int = option(2048, "--context", "-c", help="Tokens in each sequence's KV cache.")
    ignore_memory: bool = option(False, "--ignore-memory", help="What-if: compute rows whose weights or KV cache do not fit "
                                                               "(marked fits: false, memory_ignored: true).")


class PrefillOptions(OnDevices, Layout, Numerics, Price):
    batch: tuple[int, ...] | None = option(None, "--batch", "-b", kind="ints", metavar="N[,N...]",
                                           help="Prompts per step, comma-separated or repeated (default 1, 8, 32).")
    input_len: int = option(2048, "--input-len", "-i", help="Prompt tokens per sequence.")
    ignore_memory: bool = option(False, "--ignore-memory", help="What-if: compute rows whose weights or KV cache do not fit.")


class EmbedOptions(OnDevices, Tp, Weights, Price):
    batch: tuple[int, ...] | None = option(None, "--batch", "-b", kind="ints", metavar="N[,N...]",
                                           help="Sequences per batch, comma-separated or repeated.")
    seq_len: int | None = option(None, "--seq-len", "-s", kind="int",
                                 help="Tokens per input sequence (default 1024, or the model's maximum if shorter).")
    utilization: float | None = option(None, "--utilization", kind="float",
                                       help="Fraction of the hours the devices are busy, 0.01 to 1, for USD/Mtok (default 1).")


class MoeOptions(Model, Numerics, Price):
    gpus: tuple[str, ...] = option(REQUIRED, "--gpus", "-g", kind="gpus", metavar="COUNTxDEVICE", complete="gpus",
                                   help="GPUs of ONE node (one scale-up domain): 8xH100, 72xGB200 for an NVL72 rack; repeat to compare.")
    nodes: tuple[int, ...] = option((1,), "--nodes", "-n", kind="ints", metavar="N[,N...]",
                                    help="Node counts, comma-separated or repeated (default 1); EP = nodes x GPUs per node.")
    batch_per_gpu: tuple[int, ...] | None = option(None, "--batch-per-gpu", "-b", kind="ints", metavar="N[,N...]",
                                                   help="Sequences per GPU per step (default 64 in decode, 1 in prefill).")
    context: int = option(2048, "--context", "-c", help="Tokens in each sequence's KV cache (decode) or prompt length (prefill).")
    phase: str = option("decode", "--phase", kind="choice", choices=("decode", "prefill"),
                        help="decode (output tok/s) or prefill (input tok/s).")
    interconnect: str | None = option(None, "--interconnect", kind="str",
                                      help="Scale-out link between nodes: catalog (default), infiniband, infiniband-xdr, "
                                           "ethernet, or GB/s per GPU.")
    overlap: bool = option(True, "--overlap/--no-overlap", help="Hide communication behind compute with two micro-batches.")
    dispatch_dtype: str = option("fp8", "--dispatch-dtype", help="All-to-all dispatch payload type (DeepSeek: fp8).")
    combine_dtype: str = option("bf16", "--combine-dtype", help="All-to-all combine payload type (DeepSeek: bf16).")
    eplb: bool = option(False, "--eplb/--no-eplb", help="Expert-parallel load balancer with redundant experts (DeepSeek EPLB).")


# --- serving --------------------------------------------------------------------------------------


class ServeOptions(Serving, Pools):
    gpus: tuple[str, ...] = option((), "--gpus", "-g", kind="gpus", metavar="COUNTxDEVICE", complete="gpus",
                                   help="Devices, e.g. 4xH100; repeat to compare (or the --prefill-gpus and --decode-gpus pools).")
    concurrency: tuple[int | str, ...] | None = option(None, "--concurrency", "-c", kind="concurrency", metavar="N[,N...]|max",
                                                       help="Requests in flight, comma-separated or repeated; 'max' = the most "
                                                            "that run at once (KV cache, engine cap).")
    request_rate: tuple[float, ...] | None = option(None, "--request-rate", kind="rates", metavar="R[,R...]",
                                                    help="Poisson arrivals per second (instead of --concurrency): mean and "
                                                         "p50/p90/p99 TTFT and TPOT.")


class FrontierOptions(Serving):
    gpus: tuple[str, ...] = option(REQUIRED, "--gpus", "-g", kind="gpus", metavar="COUNTxDEVICE", complete="gpus",
                                   help="Devices, e.g. 8xH200; repeat to compare.")
    mode: str = _mode("both")
    rank_by: str = option("usd-per-mtok", "--rank-by", kind="choice", choices=("usd-per-mtok", "tok-s-per-mw"),
                          help="Each device's answer under the SLO: usd-per-mtok (cheapest) or tok-s-per-mw.")


class CompareOptions(Serving):
    gpus: tuple[str, ...] = option((), "--gpus", "-g", kind="gpus", metavar="COUNTxDEVICE", complete="gpus",
                                   help="Device configurations to rank; repeat. Default: every catalog device, one node each.")
    mode: str = _mode("both")
    baseline: Path | None = option(None, "--baseline", kind="path", help="An earlier `tokecon compare --format json`: show the change.")


class CapacityOptions(Serving, Pools):
    gpus: tuple[str, ...] = option((), "--gpus", "-g", kind="gpus", metavar="COUNTxDEVICE", complete="gpus",
                                   help="Devices of one deployment, e.g. 8xH200; repeat to compare.")
    tokens_per_day: float = option(REQUIRED, "--tokens-per-day", kind="float", help="Daily volume to serve, input + output tokens (e.g. 1e9).")
    input_len: int | None = option(None, "--input-len", "-i", kind="int", help="Prompt tokens per request (default 1024).")
    input_output_ratio: float | None = option(None, "--input-output-ratio", kind="float",
                                              help="Input tokens per output token; sets --input-len from --output-len.")
    headroom: float = option(1.5, "--headroom", help="Peak over average load to provision for.")
    concurrency: tuple[int | str, ...] | None = option(None, "--concurrency", "-c", kind="concurrency", metavar="N[,N...]|max",
                                                       help="Operating point: requests in flight per deployment (default: the cheapest meeting the SLO).")
    mode: str = _mode("agg")


class TenantsOptions(OnDevices, Tp, Numerics, Price, Workload):
    adapters: tuple[int, ...] = option((1, 10, 100, 1000), "--adapters", "-n", kind="ints", metavar="N[,N...]",
                                       help="Tenants, one LoRA adapter each; comma-separated or repeated.")
    lora_rank: int = option(16, "--lora-rank", "-r", help="Rank r of every adapter.")
    lora_targets: str = option("qkvo", "--lora-targets", metavar="qkvo|mlp|all|LIST",
                               help="Adapted weights: qkvo, mlp (gate, up, down; experts too), all, or a list of q,k,v,o,gate,up,down.")
    popularity: str = option("uniform", "--popularity", metavar="uniform|zipf[:ALPHA]", help="How requests spread over tenants (zipf = alpha 1).")
    adapter_slots: int = option(32, "--adapter-slots", help="Swapped rows: adapters cached on each GPU; the rest load over the host link.")
    host_link_gb_s: float = option(64.0, "--host-link-gb-s", help="Host-to-GPU bandwidth per GPU per direction (PCIe Gen5 x16: 64).")
    concurrency: int = option(64, "--concurrency", "-c", help="Requests in flight over all tenants (the load).")


class FleetOptions(Model, Workload, TcoInputs, Numerics):
    old: str = option(REQUIRED, "--old", kind="str", metavar="COUNTxDEVICE", complete="gpus", help="The fleet in service, e.g. 8xA100.")
    new: str = option(REQUIRED, "--new", kind="str", metavar="COUNTxDEVICE", complete="gpus", help="The fleet that might replace it, e.g. 8xH100.")
    min_tok_s_per_user: float | None = option(None, "--min-tok-s-per-user", kind="float",
                                              help="Operating point: the most tokens per GPU that still serves each user this fast (default: max throughput).")
    start: int = option(2026, "--from", help="First year of the table.")
    years: int = option(5, "--years", help="Years in the table (the horizon of the old fleet's value).")


# --- fidelity, budgets, catalogs ------------------------------------------------------------------


class ValidateOptions(Catalogs):
    group_by: str = option("hardware", "--group-by", kind="choice",
                           choices=("hardware", "device", "model", "source", "metric", "engine", "kind"),
                           help="Summarise by hardware (family), device, model, source, metric, engine (generation) or kind (dense/moe).")
    rows: bool = option(False, "--rows", help="Also list every measurement with its prediction (JSON always has them).")
    fit: bool = option(False, "--fit", help="Refit the efficiency factors and report the error.")
    held_out: bool = option(False, "--held-out", help="With --fit: leave-one-source-out error and the 80% intervals (minutes).")
    write: bool = option(False, "--write", help="With --fit: store the factors in hardware.toml and engines.toml (and the intervals).")
    measurements: Path | None = option(None, "--measurements", kind="path", help="Another measurements CSV (same columns).")


class CheckOptions(Options):
    budget: Path = argument("Budget file: [scenarios.NAME] tables of command options and thresholds.", kind="path", metavar="BUDGET.toml")
    junit: Path | None = option(None, "--junit", kind="path", help="Also write a JUnit XML report to this file (never one the budget reads).")


class HardwareName(Catalogs):
    name: str = argument("Device name or alias.", complete="hardware")


class ModelName(Catalogs):
    name: str = argument("Model name or alias, or a path to a config.json.", complete="models")


class EngineName(Catalogs):
    name: str = argument("Engine profile, or an engine at a version.", metavar="NAME[@VERSION]", complete="engines")


class Saving(Options):
    save: bool = option(False, "--save", help="Write it to $TOKECON_HOME (default: print the TOML entry).")
    force: bool = option(False, "--force", help="With --save: replace an entry of the same name.")


class HardwareAddOptions(Catalogs, Saving):
    name: str = argument("Catalog key of the new device, e.g. my-h100-oc.")
    like: str | None = option(None, "--like", kind="str", complete="hardware", help="Start from this catalog device's figures.")
    memory_gb: float | None = option(None, "--memory-gb", kind="float", help="Memory capacity [GB, decimal].")
    memory_bw_tb_s: float | None = option(None, "--memory-bw-tb-s", kind="float", help="Memory bandwidth [TB/s].")
    bf16_tflop_s: float | None = option(None, "--bf16-tflop-s", kind="float", help="Dense BF16 peak [TFLOP/s] (not the sparse figure).")
    fp8_tflop_s: float | None = option(None, "--fp8-tflop-s", kind="float", help="Dense FP8 peak [TFLOP/s].")
    fp4_tflop_s: float | None = option(None, "--fp4-tflop-s", kind="float", help="Dense FP4 peak [TFLOP/s].")
    int8_tops: float | None = option(None, "--int8-tops", kind="float", help="Dense INT8 peak [TOP/s].")
    rental_usd_per_hour: float | None = option(None, "--rental-usd-per-hour", kind="float", help="Price per device-hour [USD/h].")
    purchase_usd: float | None = option(None, "--purchase-usd", kind="float", help="Purchase price [USD].")
    scaleup_link: str | None = option(None, "--scaleup-link", kind="str", help="Scale-up link name (default 'PCIe Gen5 x16').")
    scaleup_bw_gb_s: float | None = option(None, "--scaleup-bw-gb-s", kind="float", help="Scale-up bandwidth per direction [GB/s] (default 64).")
    scaleup_domain: int | None = option(None, "--scaleup-domain", kind="int", help="Devices in one scale-up domain (default 8).")
    scaleout_bw_gb_s: float | None = option(None, "--scaleout-bw-gb-s", kind="float", help="Scale-out bandwidth per device per direction [GB/s] (default 50).")
    power_w: float | None = option(None, "--power-w", kind="float", help="Board power [W] (default 700).")
    vendor: str | None = option(None, "--vendor", kind="str", help="Vendor (default 'custom').")
    family: str | None = option(None, "--family", kind="str", help="Architecture family (default 'custom').")
    full_name: str | None = option(None, "--full-name", kind="str", help="Display name (default: NAME).")
    source: str | None = option(None, "--source", kind="str", help="Where the figures come from.")
    aliases: str | None = option(None, "--aliases", kind="str", help="Comma-separated other names.")
    compute_efficiency: float | None = option(None, "--compute-efficiency", kind="float", help="Achievable fraction of peak FLOP/s (default 0.7).")
    memory_bw_efficiency: float | None = option(None, "--memory-bw-efficiency", kind="float", help="Achievable fraction of memory bandwidth (default 0.8).")


class PricesListOptions(Catalogs):
    as_of: str | None = option(None, "--as-of", kind="str", metavar="YYYY-MM", help="Staleness at this date (default: this month).")
    tco_source: str | None = option(None, "--tco-source", kind="str", help="Whose published TCO to show (default SemiAnalysis).")
    tier: str | None = option(None, "--tier", kind="choice", choices=("hyperscaler", "neocloud"), help="Its buyer tier (default hyperscaler).")


class PricesShowOptions(HardwareName):
    as_of: str | None = option(None, "--as-of", kind="str", metavar="YYYY-MM", help="Staleness at this date (default: this month).")


class ModelsImportOptions(Catalogs, Saving):
    config: Path = argument("A Hugging Face config.json, or a folder holding one.", kind="path")
    name: str | None = option(None, "--name", kind="str", help="Catalog key (default: the folder or file it came from).")


# --- the commands -------------------------------------------------------------------------------

_SERVING_LIMITS = ("max_usd_per_mtok", "max_usd_per_mtok_in", "max_usd_per_mtok_out", "max_usd_per_mtok_blended",
                   "min_tok_s_per_gpu", "max_ttft_ms", "max_tpot_ms", "min_tok_s_per_user")
_TAILS = ("max_ttft_p99_ms", "max_tpot_p99_ms")
#: the SLO compare ranks under unless told otherwise: an interactive chat service
COMPARE_SLO = {"min_tok_s_per_user": 20.0, "max_ttft_ms": 2000.0}

COMMANDS: tuple[Command, ...] = (
    Command("compare", CompareOptions, "tokecon.commands.compare:run",
            "Which hardware is cheapest for a workload, at an SLO.",
            "Rank device configurations by blended USD/Mtok at each one's cheapest operating point that meets the "
            "SLO (default: 20 tok/s per user, TTFT <= 2 s), searching layouts as frontier does (TP, EP, "
            "attention-DP, disaggregation where it pays); says why the winner wins.",
            ("tokecon compare -m llama3-70b -g 8xH100 -g 8xMI300X -g 8xB200",
             "tokecon compare -m llama3-70b -i 4096 -o 512 --min-tok-s-per-user 50"),
            _SERVING_LIMITS, slo=COMPARE_SLO, progress=True),
    Command("decode", DecodeOptions, "tokecon.commands.phase:decode",
            "Time per output token, tok/s and USD/Mtok at each batch size.",
            "Decode: time per output token, tok/s and USD per million output tokens at each batch size.",
            ("tokecon decode -m llama3-70b -g 4xH100",
             "tokecon decode -m llama3-70b -g 4xH100 -g 2xH200 -b 1,64"),
            ("max_usd_per_mtok", "min_tok_s_per_gpu", "max_tpot_ms", "min_tok_s_per_user")),
    Command("prefill", PrefillOptions, "tokecon.commands.phase:prefill",
            "Time to first token, input tok/s and USD/Mtok of prompts.",
            "Prefill: time to first token, input tok/s and USD per million input tokens.",
            ("tokecon prefill -m llama3-70b -g 4xH100 -i 2048 -b 1,8",
             "tokecon prefill -m llama3-70b -g 4xH100 --explain"),
            ("max_usd_per_mtok", "min_tok_s_per_gpu", "max_ttft_ms")),
    Command("embed", EmbedOptions, "tokecon.commands.embed:run",
            "Embeddings: time per batch, embeddings/s, USD/Mtok.",
            "Embeddings: one forward pass without LM head; time per batch, embeddings/s, FLOP/s per USD/h, USD/Mtok.",
            ("tokecon embed -m qwen3-embedding-8b -g 1xH100 -g 1xRTX4090",
             "tokecon embed -m qwen3-embedding-8b -g 1xL40S --utilization 0.5"),
            ("max_usd_per_mtok", "min_tok_s_per_gpu", "max_ttft_ms")),
    Command("serve", ServeOptions, "tokecon.commands.serve:run",
            "Continuous batching: TTFT, TPOT, tok/s, USD/Mtok in and out.",
            "Serve a workload: TTFT, TPOT, tok/s per user and per GPU, and USD per million input and output tokens "
            "under continuous batching at each concurrency (or Poisson arrivals with --request-rate).",
            ("tokecon serve -m llama3-70b -g 4xH100 -c 1,8,64,256",
             "tokecon serve -m deepseek-v3 -g 8xH200 --request-rate 2,8"),
            _SERVING_LIMITS + _TAILS),
    Command("frontier", FrontierOptions, "tokecon.commands.frontier:run",
            "Tok/s per GPU vs tok/s per user; the cheapest point of an SLO.",
            "Frontier of output tok/s per GPU against tok/s per user over layouts and concurrency, with USD per "
            "million tokens along it. Limits act as an SLO: the cheapest point meeting them is named, and the "
            "command fails (exit 1) only when no point meets them.",
            ("tokecon frontier -m llama3-70b -g 4xH100 -g 8xH200",
             "tokecon frontier -m deepseek-v3 -g 8xB200 --max-ttft-ms 1000"),
            _SERVING_LIMITS, progress=True, present="tokecon.cli.frontier"),
    Command("capacity", CapacityOptions, "tokecon.commands.capacity:run",
            "GPUs, nodes and USD/day for a daily token volume.",
            "Capacity: GPUs and nodes needed for a daily token volume at an operating point or SLO.",
            ("tokecon capacity -m llama3-70b -g 8xH200 --tokens-per-day 5e9",
             "tokecon capacity -m deepseek-v3 -g 8xH200 --tokens-per-day 1e10 \\\n"
             "      --max-ttft-p99-ms 2000 --max-tpot-p99-ms 50"),
            _SERVING_LIMITS + _TAILS),
    Command("moe", MoeOptions, "tokecon.commands.moe:run",
            "Large mixture-of-experts serving: expert parallel, interconnect.",
            "Mixture of experts at scale: attention data-parallel, experts expert-parallel over nodes; throughput "
            "per node against EP size and the interconnect.",
            ("tokecon moe -m deepseek-v3 -g 8xH200 -n 1,2,4",
             "tokecon moe -m deepseek-v3 -g 72xGB200 --phase prefill"),
            ("max_usd_per_mtok", "min_tok_s_per_gpu", "max_ttft_ms", "max_tpot_ms")),
    Command("tenants", TenantsOptions, "tokecon.commands.tenants:run",
            "Many tenants: N LoRA adapters on one deployment vs one each.",
            "Serve N tenants' LoRA adapters on one base model: TPOT, throughput, adapter memory and USD/Mtok per N, "
            "against a dedicated deployment per tenant.",
            ("tokecon tenants -m llama3-8b -g 1xH100 --adapters 1,10,100,1000",
             "tokecon tenants -m llama3-8b -g 1xH100 -n 1000 --popularity zipf"),
            ("max_usd_per_mtok", "min_tok_s_per_gpu", "max_ttft_ms", "max_tpot_ms", "min_tok_s_per_user")),
    Command("fleet", FleetOptions, "tokecon.commands.fleet:run",
            "Old fleet vs new: cost per Mtok by year, when replacing pays.",
            "Compare a fleet of an older device with a newer one on one workload, year by year: each one's cost per "
            "Mtok (TCO at that year's purchase price), the market price of a token, the old GPUs' remaining value, "
            "and the NPV and payback of replacing them on the same power.",
            ("tokecon fleet -m llama3-70b --old 8xA100 --new 8xH100",
             "tokecon fleet -m llama3-70b --old 8xMI300X --new 8xMI355X \\\n      --interest-rate 0.05"),
            ("max_usd_per_mtok",)),
    Command("validate", ValidateOptions, "tokecon.commands.validate:run",
            "Predict every public measurement and state the error.",
            "Predict every public measurement and state tokecon's error against it: a summary per group on a "
            "terminal, every row with --rows or in JSON; --fit refits the efficiency factors.",
            ("tokecon validate --group-by metric", "tokecon validate --fit --held-out"),
            analysis=False, progress=True),
    Command("hardware list", Catalogs, "tokecon.commands.catalog_cmds:hardware_list",
            "Every device of the catalogs.", "Every device of the merged catalogs, and which file each came from.",
            ("tokecon hardware list", "tokecon hardware list --wide"), analysis=False),
    Command("hardware show", HardwareName, "tokecon.commands.catalog_cmds:hardware_show",
            "One device: figures, ridge points, figures of merit.",
            "One device: its figures, ridge points (FLOP/B), figures of merit per USD, and its catalog file.",
            ("tokecon hardware show h100", "tokecon hardware show gb200 --format json"), analysis=False),
    Command("hardware add", HardwareAddOptions, "tokecon.commands.catalog_cmds:hardware_add",
            "A device of your own.", "A device of your own. Without --save, prints the TOML entry; with --save, adds "
            "it to $TOKECON_HOME/hardware.toml.",
            ("tokecon hardware add my-h100 --like h100 --memory-bw-tb-s 3.9",
             "tokecon hardware add my-gpu --memory-gb 96 --memory-bw-tb-s 4 \\\n      --bf16-tflop-s 900 --rental-usd-per-hour 2 --save"), analysis=False),
    Command("models list", Catalogs, "tokecon.commands.catalog_cmds:models_list",
            "Every model of the catalogs.", "Every model of the merged catalogs, with parameter counts, and which file each came from.",
            ("tokecon models list", "tokecon models list --format csv"), analysis=False),
    Command("models show", ModelName, "tokecon.commands.catalog_cmds:models_show",
            "One model: parameters, bytes per type, KV per token.",
            "One model: parameters, active parameters, weight bytes per type, KV bytes per token, its file.",
            ("tokecon models show llama3-70b", "tokecon models show path/to/config.json"), analysis=False),
    Command("models import", ModelsImportOptions, "tokecon.commands.catalog_cmds:models_import",
            "Read a Hugging Face config.json into a catalog entry.",
            "Read a Hugging Face config.json (Llama, Qwen, Mixtral, DeepSeek/Kimi MLA, gpt-oss, Gemma 3, Llama 4, "
            "BERT) into a models.toml entry named after its folder or file. Without --save, prints the entry.",
            ("tokecon models import ./my-model/config.json", "tokecon models import ./my-model --save"), analysis=False),
    Command("prices list", PricesListOptions, "tokecon.commands.prices:prices_list",
            "Each device's current prices and where they come from.",
            "Each device's current rental and capital (at server share) with their source class, date and staleness, "
            "its newest published all-in TCO, and its board and all-in power.",
            ("tokecon prices list", "tokecon prices list --as-of 2025-06"), analysis=False),
    Command("prices show", PricesShowOptions, "tokecon.commands.prices:prices_show",
            "Every dated price of one device, with its source.",
            "Every dated price point of one device: value, scope (chip, card, server share, rack share, all-in TCO), "
            "source class (primary, secondary, derived), buyer tier, provider and source; current, stale and derived "
            "points marked.",
            ("tokecon prices show b200", "tokecon prices show gb200 --format json"), analysis=False),
    Command("engines list", Catalogs, "tokecon.commands.catalog_cmds:engines_list",
            "Serving-engine generations and their fitted factors.",
            "Every engine profile with the versions it covers and what it was fitted on.",
            ("tokecon engines list", "tokecon engines list --format json"), analysis=False),
    Command("engines show", EngineName, "tokecon.commands.catalog_cmds:engines_show",
            "One engine profile: versions, scales, overheads.",
            "One engine profile: the versions it covers, its fitted scales and overheads, its scheduling defaults.",
            ("tokecon engines show vllm", "tokecon engines show sglang@0.4.6"), analysis=False),
)


def _thresholds_listing() -> tuple[str, ...]:
    """Each analysis command's thresholds as budget keys (the same names as its flags), for check's help."""
    import textwrap

    out = ["Thresholds per command (budget keys; each is also the command's --flag):"]
    for c in COMMANDS:
        if c.analysis:
            out += textwrap.wrap(", ".join(c.thresholds), 76, initial_indent=f"  {c.name}: ", subsequent_indent="    ")
    return tuple(out)


COMMANDS += (
    Command("check", CheckOptions, "tokecon.commands.check:run",
            "Run a budget file of scenarios and thresholds (for CI).",
            "Run every scenario of a budget file, one line each; exit 1 if any crosses a threshold, 2 on a bad file. "
            "A scenario is any analysis command with its options and thresholds as keys.",
            ("tokecon check examples/budget.toml", "tokecon check budget.toml --format markdown --junit report.xml"),
            analysis=False, listing=_thresholds_listing()),
)

#: command groups on the command line: name -> help
GROUPS = {
    "hardware": "Accelerators in the catalogs: list, show, add your own.",
    "models": "Models in the catalogs: list, show, import a config.json.",
    "engines": "Serving-engine generations: versions, fitted efficiency.",
    "prices": "Dated prices of every device, with scope, class and source.",
}

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
ANALYSES: tuple[Command, ...] = tuple(c for c in COMMANDS if c.analysis)
