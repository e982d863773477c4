"""What a mix of requests looks like to the batching model: its lengths as weighted points.

Continuous batching (:mod:`tokecon.serving.batching`) reads request lengths through a
:class:`LengthMix`: fixed lengths here, drawn from a range in :mod:`tokecon.serving.lengths`.
Under continuous batching a request holds a running slot for its O - 1 decode steps, so the running
batch is length-biased: a slot's occupant is request j with weight v_j = w_j (O_j - 1) / E[O - 1].
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tokecon.records import record


@record
class LengthMoments:
    """Averages of a request mix over its points (arrays broadcast over the serving grid)."""

    input_tokens: np.ndarray  # points (..., S)
    output_tokens: np.ndarray  # points (..., S)
    weight: np.ndarray  # (S,), summing to 1

    def mean(self, values: np.ndarray) -> np.ndarray:
        """E_w[values] over the request points."""
        return np.sum(values * self.weight, axis=-1)

    def running_mean(self, values: np.ndarray) -> np.ndarray:
        """E_v[values]: the average over running slots, each request weighted by its O - 1 decode steps
        (at least one: a prompt-only request, O = 1, holds its slot for its prefill)."""
        v = self.weight * np.maximum(self.output_tokens - 1.0, 1.0)
        return np.sum(values * v, axis=-1) / np.sum(v, axis=-1)

    @property
    def input_mean(self) -> np.ndarray:
        return self.mean(self.input_tokens)

    @property
    def output_mean(self) -> np.ndarray:
        return self.mean(self.output_tokens)

    @property
    def attention_length(self) -> np.ndarray:
        """E[I^2] / E[I]: the prompt length that weights prompt-token attention (pairs grow as I^2)."""
        return self.mean(self.input_tokens**2) / self.input_mean


class LengthMix(Protocol):
    """How the input and output lengths of requests are drawn, around the longest (L_in, L_out)."""

    range_ratio: float  # lengths uniform in [ratio x L, L]; 1: fixed

    def moments(self, input_len: np.ndarray, output_len: np.ndarray) -> LengthMoments:
        """The mix as weighted points (arrays broadcast over the serving grid, points on the last axis)."""


@record
class FixedLengths:
    """Every request exactly ``input_len`` and ``output_len`` tokens long (the benchmark default)."""

    range_ratio: float = 1.0

    def moments(self, input_len: np.ndarray, output_len: np.ndarray) -> LengthMoments:
        inp, out = (np.asarray(a, dtype=float)[..., None] for a in (input_len, output_len))
        return LengthMoments(inp, out, np.ones(1))


FIXED = FixedLengths()
