"""Request lengths as distributions: what a steady state of mixed requests looks like on average.

Benchmarks and production draw lengths at random. InferenceMAX runs SGLang's ``bench_serving`` /
vLLM's ``benchmark_serving`` random dataset with ``--random-range-ratio 0.8``: each request's input
and output lengths are drawn independently and uniformly from [r L, L] (mean (1 + r) L / 2). With
``range_ratio`` r the distribution is sampled at the midpoints of ``POINTS`` equal bins of each
length (a product grid, equal weights); r = 1 is the fixed-length request.

Under continuous batching a request holds a running slot for its O - 1 decode steps, so the running
batch is length-biased: a slot's occupant is request j with weight v_j = w_j (O_j - 1) / E[O - 1].

    requests/s        = running / (E[O - 1] / gain x step)        (Little's law over the slots)
    decode context    = E_v[I + O/2]            KV admission footprint = E_v[admitted(I, O)]
    cache at its peak = E_v[I + O]              prompt attention length = E[I^2] / E[I]
    prefill steps     = E[ceil(I (1 - h) / chunk)]                (each request its own count)

and the longest request (L_in + L_out) must fit on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokecon.errors import TokeconError

POINTS = 8  # midpoints per length: the mean and the second moment of a uniform within 0.2%


@dataclass(frozen=True)
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


def mix(input_len: np.ndarray, output_len: np.ndarray, range_ratio: float = 1.0) -> LengthMoments:
    """Input and output lengths drawn independently and uniformly from [r L, L] (r = ``range_ratio``;
    1 = fixed), as the random dataset of SGLang's bench_serving and vLLM's benchmark_serving draws
    them; each length at least 2 output and 1 input token."""
    if not (np.isfinite(range_ratio) and 0.0 < range_ratio <= 1.0):
        raise TokeconError(f"--range-ratio must be in (0, 1] (lengths uniform in [ratio x L, L]), got {range_ratio}")
    inp, out = (np.asarray(a, dtype=float)[..., None] for a in (input_len, output_len))
    if range_ratio == 1.0:
        return LengthMoments(inp, out, np.ones(1))
    u = range_ratio + (1.0 - range_ratio) * (np.arange(POINTS) + 0.5) / POINTS  # bin midpoints of [r, 1]
    ui, uo = (g.ravel() for g in np.meshgrid(u, u, indexing="ij"))
    weight = np.full(ui.size, 1.0 / ui.size)
    return LengthMoments(np.maximum(inp * ui, 1.0), np.maximum(out * uo, 2.0), weight)
