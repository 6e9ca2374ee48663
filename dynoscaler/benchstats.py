"""Latency statistics of the benchmarks, and their command-line number types."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with `percent`% of values at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def positive_whole(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def positive_wholes(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers of 1 or more."""
    return [positive_whole(part.strip()) for part in text.split(",")]
