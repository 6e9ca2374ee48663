"""Durations written the Prometheus way: 15s, 1m30s, 500ms, 35m, 7d."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def duration_seconds(text: str) -> float:
    """A Prometheus duration such as 15s, 1m30s or 500ms, in seconds."""
    parts = _DURATION_PART.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)
