"""The two phases of inference as roofline steps: prefill (the prompt) and decode (one token).

    prefill: B sequences of S new tokens, logits for the last one only -> t = time to first token
    decode:  B sequences, 1 new token each over a cache of C - 1 tokens -> t = time per output token

Worked numbers (tests/test_published.py): llama3-70b bf16, one H100 ideal, S = 2048:
~286 TFLOP (2 x 68.4e9 non-embedding params x 2048 + causal attention + one LM-head row)
-> 0.29 s of compute against 0.04 s of weight loading; a decode step reads 141 GB (42 ms).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tokecon.errors import TokeconError
from tokecon.physics.operations import step_operations
from tokecon.physics.roofline import StepTimes, step_times
from tokecon.physics.scenario import Scenario


def decode_step(scn: Scenario, batch: np.ndarray, context: np.ndarray, overlap_comm: bool = False) -> StepTimes:
    """One decode step: every sequence adds one token to a cache that then holds ``context`` tokens.

    With ``pp`` pipeline stages the batch runs as pp micro-batches of B/pp (at least one sequence)
    that keep every stage busy; a round, in which every sequence gains a token, takes
    pp x t_stage(B/pp) (:func:`pipeline_rounds` for unequal stages and fewer sequences than stages).

    When the scenario speculates (:class:`tokecon.physics.scenario.Speculating`) the target verifies
    q = k + 1 tokens per sequence (logits at each) after the draft's k passes, every sequence gaining
    E tokens on average (``scn.tokens_per_step``). Speculation with pipeline stages is not modelled."""
    context = np.asarray(context, dtype=float)
    pp = scn.deployment.pp
    if scn.speculation is not None:
        if pp > 1:
            raise TokeconError("speculative decoding with pipeline stages (--pp) is not modelled; drop one of them")
        q = scn.verified_tokens
        ops = step_operations(scn, batch, np.full_like(context, q), np.maximum(context - 1.0, 0.0), q)
        verify = step_times(ops, scn, overlap_comm, sequences=batch)
        return verify.plus(scn.speculation.draft_times(scn, batch, context, overlap_comm), "draft/")
    micro = np.maximum(np.asarray(batch, dtype=float) / pp, 1.0) if pp > 1 else batch
    ops = step_operations(scn, micro, np.ones_like(context), np.maximum(context - 1.0, 0.0), 1.0)
    times = step_times(ops, scn, overlap_comm, sequences=micro)
    return times.rounds(pipeline_rounds(scn.model.layers, pp, batch), scn.layer_overhead_s) if pp > 1 else times


def pipeline_rounds(layers: int, pp: int, batch: np.ndarray | float) -> np.ndarray:
    """Stage times a pipeline round lasts, in units of the slowest stage (ceil(L/pp) layers): with
    m = min(B, pp) micro-batches circling pp stages the round is max(sum of the stage times,
    m x the slowest) = max(L / ceil(L/pp), m) (a ring of pp servers with m jobs). Balanced stages
    give pp whatever the batch; Llama 70B (80 layers) on 72 stages: 40 at batch 1 (the token
    crosses every stage once), 72 once 72 micro-batches fill the ring."""
    crossing = layers / math.ceil(layers / pp)
    return np.maximum(crossing, np.minimum(np.asarray(batch, dtype=float), pp))


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
    if pp == 1:
        return times
    crossed = times.rounds(pipeline_rounds(scn.model.layers, pp, 1.0), scn.layer_overhead_s)
    return replace(times, latency_s=crossed.step_time_s)
