"""Speculative decoding: multi-token prediction (DeepSeek MTP), EAGLE draft heads, draft models.

Each step a draft proposes k tokens per sequence, one pass per token, and the target model
verifies the k + 1 positions in one pass (k + 1 new tokens per sequence, logits at each). When each
drafted token is accepted with probability a, independently and in order (Leviathan, Kalman &
Matias 2023, arXiv:2211.17192, eq. 1), a step yields

    E     = (1 - a^(k+1)) / (1 - a)  tokens per sequence          (k = 1: E = 1 + a)
    step  = T_verify(B sequences x (k + 1) tokens) + k x T_draft(B sequences x 1 token)
    TPOT  = step / E

At small batch the verify pass costs about one decode step (the weights are read once, whatever
the tokens), so TPOT falls by about E; as the batch becomes compute-bound the verify pass costs
(k + 1) times as much and the gain shrinks, then reverses. Rejected tokens cost their FLOP and
nothing else (their KV slots are overwritten). The draft's weights (MTP modules and EAGLE heads
share the target's embedding and LM head) and its KV cache take memory from the target's cache.

Defaults per method, printed with every answer:
- mtp: k = 1, a = 0.85. DeepSeek-V3 technical report (arXiv:2412.19437, section 5.4.3): the second
  token is accepted 85-90% of the time, 1.8x tokens per second. The draft is one MTP module: one
  layer of the target (mixture-of-experts when the target is), its own KV cache.
- eagle: k = 3, a = 0.75. EAGLE (Li et al. 2024, arXiv:2401.15077) reports per-token acceptance of
  0.7-0.8 on MT-bench; the draft is one dense decoder layer of the target's width.
- draft:MODEL: k = 4, a = 0.7, a separate catalog model with its own embeddings (Leviathan et al.
  report 0.5-0.9 by pair): an assumption to replace with a measured rate (--acceptance).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tokecon.errors import TokeconError
from tokecon.physics import memory
from tokecon.physics.operations import step_operations
from tokecon.physics.roofline import StepTimes, step_times
from tokecon.physics.scenario import Scenario
from tokecon.physics.specs import Model
from tokecon.records import record

DEFAULTS: dict[str, tuple[int, float, str]] = {
    "mtp": (1, 0.85, "DeepSeek-V3 report (arXiv:2412.19437 s5.4.3): second token accepted 85-90%"),
    "eagle": (3, 0.75, "EAGLE (arXiv:2401.15077): 0.7-0.8 per token on MT-bench"),
    "draft": (4, 0.70, "assumed (Leviathan et al. arXiv:2211.17192 report 0.5-0.9 by model pair); measure yours"),
}
METHODS = ("none", "mtp", "eagle", "draft:MODEL")


@record
class Speculation:
    """Speculative decoding as served: a ``draft`` proposes ``draft_tokens`` tokens per step, each
    accepted with probability ``acceptance``; the target verifies them in one pass
    (tokecon.serving.speculative has the model). ``shares_embeddings``: the draft uses the target's
    embedding and LM head (MTP modules, EAGLE heads), so it adds no copy of them."""

    method: str  # mtp | eagle | draft
    draft: Model
    draft_tokens: int
    acceptance: float
    shares_embeddings: bool
    acceptance_source: str = ""

    @property
    def tokens_per_step(self) -> float:
        """E: tokens a sequence gains per verify step (:func:`tokens_per_step`)."""
        return tokens_per_step(self.draft_tokens, self.acceptance)

    def extra_weight_bytes_per_gpu(self, scn: Scenario) -> float:
        """The draft's weights per GPU, sharded like the target's: an MTP module or EAGLE head shares the
        target's embedding and LM head, so only its layers count; a draft model counts whole."""
        whole = memory.weight_bytes_per_gpu(self.draft, scn.precision, scn.deployment)
        if not self.shares_embeddings:
            return whole
        return whole - memory.weight_bytes_per_gpu(replace(self.draft, layers=0), scn.precision, scn.deployment)

    def extra_kv_bytes_per_seq(self, scn: Scenario, context: np.ndarray) -> np.ndarray:
        """The draft's own KV cache per sequence per GPU."""
        return memory.kv_bytes_per_seq_per_gpu(self.draft, scn.precision, scn.deployment, context)

    def extra_operations(self, scn: Scenario, tokens: np.ndarray, sequences: np.ndarray) -> list:
        """None inside the target's pass: the draft runs passes of its own (:meth:`draft_times`)."""
        return []

    def draft_times(self, scn: Scenario, batch: np.ndarray, context: np.ndarray, overlap_comm: bool = False) -> StepTimes:
        """k draft passes of one token per sequence, for ``batch`` sequences at ``context`` tokens."""
        dscn = draft_scenario(scn)
        ctx = np.asarray(context, dtype=float)
        ops = step_operations(dscn, batch, np.ones_like(ctx), np.maximum(ctx - 1.0, 0.0), 1.0)
        one = step_times(ops, dscn, overlap_comm, sequences=batch)
        return one.rounds(self.draft_tokens, one.overhead_s)  # k separate passes, each with its own overhead

    @property
    def label(self) -> str:
        what = self.draft.key if self.method == "draft" else self.method.upper()
        return f"{what}, {self.draft_tokens} draft token{'s' if self.draft_tokens > 1 else ''}, acceptance {self.acceptance:.0%}"


def tokens_per_step(draft_tokens: float, acceptance: float) -> float:
    """E = (1 - a^(k+1)) / (1 - a): tokens a sequence gains per verify step (k + 1 when a = 1)."""
    k, a = float(draft_tokens), float(acceptance)
    return k + 1.0 if a >= 1.0 else (1.0 - a ** (k + 1.0)) / (1.0 - a)


def _one_layer(model: Model, suffix: str, **changes) -> Model:
    base = dict(layers=1, dense_layers=0, sliding_window=0, sliding_layers=0, attention_chunk_size=0, chunked_layers=0,
                mtp_modules=0, published_params_b=None, published_active_params_b=None, aliases=())
    return replace(model, key=f"{model.key}-{suffix}", name=f"{model.name} {suffix.upper()}", **{**base, **changes})


def resolve(catalog, model: Model, method: str | None, draft_tokens: int | None, acceptance: float | None) -> Speculation | None:
    """The speculation ``--speculative`` asks for (None for none), with its defaults filled in."""
    if method is None or method.strip().lower() in ("", "none", "off"):
        if draft_tokens is not None or acceptance is not None:
            raise TokeconError("--draft-tokens and --acceptance need --speculative (mtp, eagle or draft:MODEL)")
        return None
    name, _, draft_key = method.strip().partition(":")
    name = name.lower()
    if name not in DEFAULTS or (name == "draft") != bool(draft_key):
        raise TokeconError(f"--speculative must be one of {', '.join(METHODS)}, got {method!r}")
    k_default, a_default, source = DEFAULTS[name]
    k = k_default if draft_tokens is None else draft_tokens
    a = a_default if acceptance is None else acceptance
    if not (isinstance(k, int) and 1 <= k <= 16):
        raise TokeconError(f"--draft-tokens must be an integer from 1 to 16, got {k}")
    if not (math.isfinite(a) and 0.0 <= a <= 1.0):
        raise TokeconError(f"--acceptance must be a probability in [0, 1], got {a}")
    if acceptance is not None:
        source = "given (--acceptance)"
    if name == "mtp":
        if model.mtp_modules < 1:
            raise TokeconError(f"{model.key} ships no multi-token prediction module; use --speculative eagle or draft:MODEL")
        draft = _one_layer(model, "mtp")
    elif name == "eagle":
        draft = _one_layer(model, "eagle", experts=0, experts_per_token=0, shared_experts=0, expert_intermediate_size=0,
                           shared_expert_intermediate_size=0, expert_groups=0, expert_groups_per_token=0)
    else:
        draft = catalog.models.get(draft_key)
        if draft.vocab_size != model.vocab_size:
            raise TokeconError(f"draft model {draft.key} has a vocabulary of {draft.vocab_size} tokens, "
                               f"{model.key} of {model.vocab_size}: a draft must share the target's tokenizer")
    return Speculation(name, draft, k, float(a), name != "draft", source)


def draft_scenario(scn: Scenario) -> Scenario:
    """The draft's passes on the target's devices and layout: its own model, no speculation, and no
    second fixed step overhead (one scheduler iteration runs draft and verify; the draft's layers
    still pay their launch floor)."""
    spec = scn.speculation
    engine = replace(scn.engine, step_overhead_s=0.0, step_overhead_per_seq_s=0.0)
    return replace(scn, model=spec.draft, speculation=None, lora=None, engine=engine)
