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


import numpy as np

from tokecon.errors import TokeconError
from tokecon.records import record
from tokecon.serving.requests import FIXED, LengthMix, LengthMoments

POINTS = 8  # midpoints per length: the mean and the second moment of a uniform within 0.2%


@record
class UniformLengths:
    """Input and output lengths drawn independently and uniformly from [r L, L] (r = ``range_ratio``),
    as the random dataset of SGLang's bench_serving and vLLM's benchmark_serving draws them; each
    length at least 2 output and 1 input token."""

    range_ratio: float

    def moments(self, input_len: np.ndarray, output_len: np.ndarray) -> LengthMoments:
        inp, out = (np.asarray(a, dtype=float)[..., None] for a in (input_len, output_len))
        return _uniform(inp, out, self.range_ratio)


def uniform(range_ratio: float = 1.0) -> LengthMix:
    """The mix ``--range-ratio`` asks for: fixed lengths at 1, else :class:`UniformLengths`."""
    if not (np.isfinite(range_ratio) and 0.0 < range_ratio <= 1.0):
        raise TokeconError(f"--range-ratio must be in (0, 1] (lengths uniform in [ratio x L, L]), got {range_ratio}")
    return FIXED if range_ratio == 1.0 else UniformLengths(float(range_ratio))


def mix(input_len: np.ndarray, output_len: np.ndarray, range_ratio: float = 1.0) -> LengthMoments:
    """The weighted points of :func:`uniform` ``(range_ratio)`` around (``input_len``, ``output_len``)."""
    return uniform(range_ratio).moments(input_len, output_len)


def _uniform(inp: np.ndarray, out: np.ndarray, range_ratio: float) -> LengthMoments:
    u = range_ratio + (1.0 - range_ratio) * (np.arange(POINTS) + 0.5) / POINTS  # bin midpoints of [r, 1]
    ui, uo = (g.ravel() for g in np.meshgrid(u, u, indexing="ij"))
    weight = np.full(ui.size, 1.0 / ui.size)
    return LengthMoments(np.maximum(inp * ui, 1.0), np.maximum(out * uo, 2.0), weight)
