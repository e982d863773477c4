"""The thresholds each command takes: its flags, and the same names as budget-file keys
(``tokecon check``). A module of its own, without imports, so that ``check --help`` lists them
without loading the budget runner on every command."""

_ONE_PHASE = ("max_usd_per_mtok", "min_tok_s_per_gpu")
_PRICES = ("max_usd_per_mtok_in", "max_usd_per_mtok_out", "max_usd_per_mtok_blended")

BY_COMMAND: dict[str, tuple[str, ...]] = {
    "decode": (*_ONE_PHASE, "max_tpot_ms", "min_tok_s_per_user"),
    "prefill": (*_ONE_PHASE, "max_ttft_ms"),
    "embed": (*_ONE_PHASE, "max_ttft_ms"),
    "serve": (*_ONE_PHASE, "max_ttft_ms", "max_tpot_ms", "min_tok_s_per_user", *_PRICES, "max_ttft_p99_ms", "max_tpot_p99_ms"),
}


def help_text() -> str:
    """Each command's thresholds, for ``check --help``."""
    return "\n".join(f"  {name}: {', '.join(names)}" for name, names in BY_COMMAND.items())
