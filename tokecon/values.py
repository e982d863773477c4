"""Plain values from users, checked once: counts, comma lists, concurrencies, rates.

The same rules for the command line (``--batch 1,8``), budget files (``batch = [1, 8]``) and the
Python API (``batch=[1, 8]``); no numpy, so that parsing options never pays for it. Errors name
the option as the user wrote it (``label``: ``--batch``, ``'batch'``, ``batch=``).
"""

from __future__ import annotations

import math
import sys
from numbers import Integral, Real
from typing import Any, Iterable

from tokecon.errors import TokeconError

#: largest token count or batch taken from a user: 10x Llama 4 Scout's 10,485,760-token context
#: (the model's own max_context then bounds lengths)
MAX_COUNT = 100_000_000
MAX_RATE = 1e9  # requests per second: far past any deployment's, short of overflowing arrival chains


def describe_number(value: Any) -> str:
    """``value`` for an error message: an integer of hundreds of digits as ``an integer of N digits``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        digits = len(str(abs(value)))
        if abs(value) > sys.float_info.max:
            return f"an integer of {digits} digits"
        return f"{value:.3e} (an integer of {digits} digits)"
    return repr(value)


def positive_ints(values: Iterable[Any], label: str) -> list[int]:
    """Each value a positive integer no larger than :data:`MAX_COUNT`."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise TokeconError(f"{label} must be a positive integer, got {v!r}")
        if v > MAX_COUNT:
            raise TokeconError(f"{label} value {describe_number(int(v))} is implausibly large (limit {MAX_COUNT:,})")
        out.append(int(v))
    return out


def _pieces(value: Any) -> list[Any]:
    """``"1,8"`` or ``["1,8", 64]`` or ``64`` -> ["1", "8", 64]: comma lists and repeats flattened."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[Any] = []
    for item in items:
        out.extend(p.strip() for p in item.split(",") if p.strip()) if isinstance(item, str) else out.append(item)
    return out


def _shown(value: Any) -> str:
    """A user's value as they wrote it: ``1,x`` for ``["1,x"]``."""
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def int_list(value: Any, label: str) -> list[int]:
    """Positive integers from ``"1,8,64"``, ``[1, 8]``, ``64`` or repeated flags (a float that is an integer passes)."""
    out = []
    for part in _pieces(value):
        number = part
        if isinstance(part, str):
            try:
                number = float(part)
            except ValueError:
                raise TokeconError(f"{label} expects comma-separated positive integers, got '{_shown(value)}'") from None
        if isinstance(number, float):
            if not math.isfinite(number) or number != int(number):
                raise TokeconError(f"{label} expects comma-separated positive integers, got '{_shown(value)}'")
            number = int(number)
        out.append(number)
    if not out:
        raise TokeconError(f"{label} expects comma-separated positive integers, got '{_shown(value)}'")
    return positive_ints(out, label)


def concurrency_list(value: Any, label: str = "--concurrency") -> list[int | str]:
    """Requests in flight: positive integers or ``max`` (the most that run at once)."""
    out: list[int | str] = []
    for part in _pieces(value):
        out.extend(["max"] if isinstance(part, str) and part.lower() == "max" else int_list(part, label))
    if not out:
        raise TokeconError(f"{label} expects comma-separated positive integers or 'max'")
    return out


def rate_list(value: Any, label: str = "--request-rate") -> list[float]:
    """Requests per second: positive numbers up to :data:`MAX_RATE`."""
    out = []
    for part in _pieces(value):
        try:
            rate = float(part) if not isinstance(part, bool) else float("nan")
        except (TypeError, ValueError):
            raise TokeconError(f"{label} expects comma-separated requests per second, got {part!r}") from None
        if not (0 < rate <= MAX_RATE):
            raise TokeconError(f"{label} must be a positive number of requests per second, at most {MAX_RATE:g}; got {part}")
        out.append(rate)
    if not out:
        raise TokeconError(f"{label} expects comma-separated requests per second")
    return out


def finite(value: Any, label: str) -> float:
    """A finite number (not a bool)."""
    try:
        number = float(value) if isinstance(value, Real) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise TokeconError(f"{label} must be a finite number, got {str(value)[:40]}")
    return number


def powers_of_two(top: int) -> list[int]:
    """1, 2, 4, ... up to ``top``, and ``top`` itself (the default batches and concurrencies: up to the
    most that fit or run at once)."""
    out = [1 << i for i in range(min(int(top), MAX_COUNT).bit_length()) if (1 << i) <= top]
    return out + ([int(top)] if int(top) not in out else [])
