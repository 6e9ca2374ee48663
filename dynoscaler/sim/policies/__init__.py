"""The simulated autoscalers, one module each, all behind policies.base.Policy."""

from __future__ import annotations

import importlib

from dynoscaler.config import ConfigError
from dynoscaler.sim.policies.base import Context, Policy

# name -> "module:Class"; imported on use so one policy's dependency cannot break the others
REGISTRY: dict[str, str] = {
    "dynoscaler": "dynoscaler.sim.policies.dynoscaler:Dynoscaler",
    "guv": "dynoscaler.sim.policies.guv:Guv",
    "threshold": "dynoscaler.sim.policies.threshold:Threshold",
    "hpa": "dynoscaler.sim.policies.proportional:Proportional",
    "keda": "dynoscaler.sim.policies.proportional:Keda",
    "hirefire": "dynoscaler.sim.policies.hirefire:HireFire",
    "judoscale": "dynoscaler.sim.policies.judoscale:Judoscale",
    "fixed": "dynoscaler.sim.policies.fixed:Fixed",
}

# compared in every scenario unless the scenario lists its own
DEFAULT_POLICIES = (
    "dynoscaler",
    "guv",
    "threshold",
    "hpa",
    "keda",
    "hirefire",
    "judoscale",
)


def build(name: str, context: Context, params: dict[str, float] | None = None) -> Policy:
    if name not in REGISTRY:
        raise ConfigError(f"unknown policy {name!r}; known: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(context, **(params or {}))
