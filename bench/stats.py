"""Small statistics and formatting helpers (no numpy: the benchmark needs nothing beyond the dev venv)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> str:
    """Seconds as milliseconds with 3 significant-ish digits."""
    value = seconds * 1000.0
    if math.isnan(value):
        return "n/a"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def secs(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds < 1:
        return ms(seconds)
    return f"{seconds:.2f} s"


def mib(nbytes: float) -> str:
    return f"{nbytes / (1024 * 1024):.1f} MiB"


def spread(values: Sequence[float]) -> str:
    """``min to max`` in ms, for notes."""
    if not values:
        return "n/a"
    return f"{min(values) * 1000:.1f} to {max(values) * 1000:.1f} ms"
