"""Processing-time distributions (seconds per job), given by mean and spread.

{"type": "lognormal", "mean": 2.0, "cv": 0.5}; normal is truncated at a floor
(1% of the mean) so no job takes zero or negative time; bimodal mixes two
lognormals (e.g. fast cache hits and slow misses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dynoscaler.config import ConfigError


@dataclass(frozen=True)
class Service:
    kind: str
    mean: float
    stddev: float
    parts: tuple[tuple[float, float, float], ...]  # (weight, mean, cv) for bimodal

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "exponential":
            return rng.exponential(self.mean, n)
        if self.kind == "normal":
            return np.maximum(rng.normal(self.mean, self.stddev, n), 0.01 * self.mean)
        if self.kind == "lognormal":
            return _lognormal(rng, self.mean, self.stddev / self.mean, n)
        first = rng.random(n) < self.parts[0][0]
        out = _lognormal(rng, self.parts[1][1], self.parts[1][2], n)
        out[first] = _lognormal(rng, self.parts[0][1], self.parts[0][2], int(first.sum()))
        return out


def _lognormal(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    sigma2 = np.log1p(cv * cv)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)


def _positive(spec: dict[str, Any], key: str, where: str) -> float:
    value = spec.get(key)
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: {key} must be a number above 0 (got {value!r})")
    return float(value)


def build_service(spec: dict[str, Any]) -> Service:
    """Turn a scenario's `service` mapping into a Service; ConfigError names what is wrong."""
    kind = spec.get("type")
    where = f"service ({kind})"
    if kind == "exponential":
        mean = _positive(spec, "mean", where)
        return Service(kind, mean, mean, ())
    if kind in ("normal", "lognormal"):
        mean = _positive(spec, "mean", where)
        cv = _positive(spec, "cv", where)
        return Service(kind, mean, mean * cv, ())
    if kind == "bimodal":
        weight = spec.get("weight")
        if not isinstance(weight, int | float) or not 0 < weight < 1:
            raise ConfigError(f"{where}: weight (share of the first mode) must be in (0, 1)")
        m1, m2 = _positive(spec, "mean1", where), _positive(spec, "mean2", where)
        cv = float(spec.get("cv", 0.25))
        mean = weight * m1 + (1 - weight) * m2
        second_moment = weight * m1 * m1 * (1 + cv * cv) + (1 - weight) * m2 * m2 * (1 + cv * cv)
        stddev = float(np.sqrt(second_moment - mean * mean))
        return Service(kind, mean, stddev, ((weight, m1, cv), (1 - weight, m2, cv)))
    known = "exponential, normal, lognormal, bimodal"
    raise ConfigError(f"service: type {kind!r} is not one of: {known}")
