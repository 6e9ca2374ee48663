"""Arrival-rate profiles (jobs per second over time) and Poisson arrivals drawn from them.

A profile is data: {"type": "sine", "mean": 30, "amplitude": 20, "period": 3600}.
Rates are evaluated at tick midpoints; within a tick arrivals are a Poisson
count placed uniformly (a non-homogeneous Poisson process, piecewise constant
per tick).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynoscaler.config import ConfigError

RateFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Profile:
    kind: str
    rate: RateFunction
    description: str

    def rates(self, times: np.ndarray) -> np.ndarray:
        return np.maximum(self.rate(np.asarray(times, dtype=float)), 0.0)


def _constant(p: dict[str, float]) -> RateFunction:
    return lambda t: np.full_like(t, p["rate"])


def _sine(p: dict[str, float]) -> RateFunction:
    phase = p.get("phase", 0.0)
    return lambda t: p["mean"] + p["amplitude"] * np.sin(2 * np.pi * (t / p["period"] + phase))


def _spike(p: dict[str, float]) -> RateFunction:
    start, end = p["start"], p["start"] + p["duration"]
    return lambda t: np.where((t >= start) & (t < end), p["peak"], p["base"])


def _ramp(p: dict[str, float]) -> RateFunction:
    start, duration = p["start"], p["duration"]
    low, high = p["from"], p["to"]
    return lambda t: low + (high - low) * np.clip((t - start) / duration, 0.0, 1.0)


def _batch(p: dict[str, float]) -> RateFunction:
    """`size` jobs over `duration` seconds on top of `base`, from `start` and again every
    `every` seconds (once without it): a cron job's dump."""
    start, length, every = p["start"], p["duration"], p.get("every", np.inf)
    extra = p["size"] / length

    def rate(t: np.ndarray) -> np.ndarray:
        since = t - start
        inside = (since >= 0) & (np.mod(np.maximum(since, 0.0), every) < length)
        return p["base"] + np.where(inside, extra, 0.0)

    return rate


def _piecewise(p: dict[str, Any]) -> RateFunction:
    points = np.asarray(p["points"], dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ConfigError("piecewise profile: points must be a list of [time, rate] pairs (2+)")
    if np.any(np.diff(points[:, 0]) < 0):
        raise ConfigError("piecewise profile: point times must not decrease")
    return lambda t: np.interp(t, points[:, 0], points[:, 1])


_BUILDERS: dict[str, tuple[Callable[[dict], RateFunction], tuple[str, ...]]] = {
    "constant": (_constant, ("rate",)),
    "sine": (_sine, ("mean", "amplitude", "period")),
    "spike": (_spike, ("base", "peak", "start", "duration")),
    "ramp": (_ramp, ("from", "to", "start", "duration")),
    "piecewise": (_piecewise, ("points",)),
    "batch": (_batch, ("base", "size", "start", "duration")),
}


def build_profile(spec: dict[str, Any]) -> Profile:
    """Turn a scenario's `arrivals` mapping into a Profile; ConfigError names what is wrong."""
    kind = spec.get("type")
    if kind not in _BUILDERS:
        raise ConfigError(f"arrivals: type {kind!r} is not one of: {', '.join(_BUILDERS)}")
    builder, required = _BUILDERS[kind]
    missing = [key for key in required if key not in spec]
    if missing:
        raise ConfigError(f"arrivals ({kind}): missing {', '.join(missing)}")
    for key, value in spec.items():
        if key not in ("type", "points") and (
            not isinstance(value, int | float) or isinstance(value, bool)
        ):
            raise ConfigError(f"arrivals ({kind}): {key} must be a number (got {value!r})")
    description = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("type", "points"))
    return Profile(kind, builder(spec), f"{kind}({description})")


def draw_block(
    rng: np.random.Generator, profile: Profile, first_tick: int, ticks: int, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals for `ticks` ticks from `first_tick`: (counts per tick, sorted arrival times).

    Sorted uniform positions within each tick come from exponential spacings
    (the k-th of n sorted uniforms is the sum of k spacings over the sum of n+1),
    which costs O(n) instead of sorting.
    """
    starts = (first_tick + np.arange(ticks)) * dt
    counts = rng.poisson(profile.rates(starts + dt / 2) * dt)
    spacings = rng.exponential(size=int(counts.sum()) + ticks)
    ends = np.cumsum(counts + 1)  # each tick: its jobs' spacings and one closing spacing
    running = np.cumsum(spacings)
    before = np.concatenate(([0.0], running[ends[:-1] - 1]))
    totals = running[ends - 1] - before
    is_job = np.ones(spacings.size, dtype=bool)
    is_job[ends - 1] = False
    fraction = (running[is_job] - np.repeat(before, counts)) / np.repeat(totals, counts)
    return counts, np.repeat(starts, counts) + fraction * dt
