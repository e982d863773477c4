"""The two phases of inference as roofline steps: prefill (the prompt) and decode (one token).

    prefill: B sequences of S new tokens, logits for the last one only -> t = time to first token
    decode:  B sequences, 1 new token each over a cache of C - 1 tokens -> t = time per output token

Worked numbers (tests/test_published.py): llama3-70b bf16, one H100 ideal, S = 2048:
~286 TFLOP (2 x 68.4e9 non-embedding params x 2048 + causal attention + one LM-head row)
-> 0.29 s of compute against 0.04 s of weight loading; a decode step reads 141 GB (42 ms).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tokecon.operations import step_operations
from tokecon.roofline import StepTimes, step_times
from tokecon.specs import Scenario


def decode_step(scn: Scenario, batch: np.ndarray, context: np.ndarray, overlap_comm: bool = False) -> StepTimes:
    """One decode step: every sequence adds one token to a cache that then holds ``context`` tokens.

    With ``pp`` pipeline stages the batch runs as pp micro-batches of B/pp (at least one sequence)
    that keep every stage busy; a round, in which every sequence gains a token, takes
    pp x t_stage(B/pp)."""
    context = np.asarray(context, dtype=float)
    pp = scn.deployment.pp
    micro = np.maximum(np.asarray(batch, dtype=float) / pp, 1.0) if pp > 1 else batch
    ops = step_operations(scn, micro, np.ones_like(context), np.maximum(context - 1.0, 0.0), 1.0)
    times = step_times(ops, scn, overlap_comm, sequences=micro)
    return times.rounds(pp) if pp > 1 else times


def prefill_step(
    scn: Scenario, batch: np.ndarray, input_len: np.ndarray, past: np.ndarray | float = 0.0, overlap_comm: bool = False
) -> StepTimes:
    """Prefill of ``input_len`` new tokens per sequence after ``past`` cached ones (chunked prefill).

    With ``pp`` stages the step is one stage's work (a stream of prompts keeps every stage busy,
    so throughput and GPU time follow the stage), and ``latency`` is pp x t_stage: one batch
    crosses the stages in turn before its first token exists."""
    has_head = 1.0 if scn.model.lm_head else 0.0
    ops = step_operations(scn, batch, input_len, past, has_head)
    times = step_times(ops, scn, overlap_comm, sequences=batch)
    pp = scn.deployment.pp
    return replace(times, latency_s=(times.step_time_s - times.overhead_s) * pp + times.overhead_s) if pp > 1 else times
