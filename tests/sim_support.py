"""Small scenarios and runs built in code for the simulator tests."""

from __future__ import annotations

import math
from typing import Any

from dynoscaler.sim.metrics import RunResult, Trace
from dynoscaler.sim.scenario import Scenario, parse


def scenario(**overrides: Any) -> Scenario:
    document: dict[str, Any] = {
        "duration": 600,
        "seed": 1,
        "role": {"min_dynos": 1, "max_dynos": 1, "concurrency": 4, "boot_time": 0},
        "arrivals": {"type": "constant", "rate": 1.0},
        "service": {"type": "exponential", "mean": 2.0},
        "policies": ["fixed"],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return parse(document, "test")


def run_result(policy: str, within: float, dyno_seconds: float, **extra: Any) -> RunResult:
    """A hand-made run's figures, for the report's and the sweep's goal tests."""
    figures = {"direction_changes": 2, "first_miss": math.inf, "first_flag": math.inf, **extra}
    return RunResult(
        "t", policy, 1000, within, 10.0, 1.0, dyno_seconds, 4, trace=Trace(), **figures
    )


def erlang_c_wait(servers: int, arrival_rate: float, mean_service: float) -> float:
    """Mean time in queue of M/M/c (Erlang C)."""
    load = arrival_rate * mean_service
    below = sum(load**k / math.factorial(k) for k in range(servers))
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    waiting_probability = top / (below + top)
    return waiting_probability / (servers / mean_service - arrival_rate)
