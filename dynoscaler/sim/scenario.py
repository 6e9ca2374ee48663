"""Scenarios as data: YAML files in dynoscaler/sim/scenarios/ (or any path).

name: sine-wave
description: one line
duration: 14400          # seconds simulated
tick: 1                  # seconds per step (default 1)
seed: 1
in_bounds: true          # false: max_dynos cannot meet the deadline (the OPS case)
cycles: 4                # load cycles, for direction changes per cycle (optional)
initial_dynos: 2         # default min_dynos
role: {min_dynos: 1, max_dynos: 20, target_deadline: 60, boot_time: 45, concurrency: 10}
arrivals: {type: sine, mean: 30, amplitude: 20, period: 3600}
service: {type: lognormal, mean: 2.0, cv: 0.5}
observation: {scrape_interval: 15, alert_delay: 20}
policies: [dynoscaler, guv, hpa]          # optional, default: all baselines
parameters: {threshold: {step: 2}}        # optional per-policy settings
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dynoscaler.config import BUILTIN_DEFAULTS, ConfigError, QueueSettings, RoleSettings
from dynoscaler.config_schema import POLICY_PROPERTIES
from dynoscaler.sim.arrivals import Profile, build_profile
from dynoscaler.sim.policies import DEFAULT_POLICIES, REGISTRY
from dynoscaler.sim.service import Service, build_service

SCENARIO_DIR = Path(__file__).parent / "scenarios"
_KEYS = {
    "name",
    "description",
    "duration",
    "tick",
    "seed",
    "in_bounds",
    "cycles",
    "initial_dynos",
    "role",
    "arrivals",
    "service",
    "observation",
    "policies",
    "parameters",
}


@dataclass(frozen=True)
class Observation:
    scrape_interval: float = 15.0
    alert_delay: float = 20.0  # rule evaluation phase + Alertmanager group_wait + webhook


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    tick: float
    seed: int
    in_bounds: bool
    cycles: float | None
    initial_dynos: int
    role: RoleSettings
    arrivals: Profile
    service: Service
    observation: Observation
    policies: tuple[str, ...]
    parameters: dict[str, dict[str, float]] = field(default_factory=dict)


def available() -> dict[str, Path]:
    """Scenario name -> file, for the scenarios shipped with dynoscaler."""
    return {path.stem: path for path in sorted(SCENARIO_DIR.glob("*.yaml"))}


def load(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a YAML file by path."""
    shipped = available()
    path = shipped.get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        names = ", ".join(shipped)
        raise ConfigError(f"no scenario {name_or_path!r} (a file path or one of: {names})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse(document, path.stem)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse(document: Any, default_name: str) -> Scenario:
    if not isinstance(document, dict):
        raise ConfigError("a scenario is a mapping (see dynoscaler/sim/scenario.py)")
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; known: {', '.join(sorted(_KEYS))}")
    for key in ("duration", "role", "arrivals", "service"):
        if key not in document:
            raise ConfigError(f"missing {key}")
    role = _role(document["role"])
    policies = tuple(document.get("policies", DEFAULT_POLICIES))
    for name in policies:
        if name not in REGISTRY:
            raise ConfigError(f"policies: unknown {name!r}; known: {', '.join(REGISTRY)}")
    duration = _positive(document, "duration", None)
    tick = _positive(document, "tick", 1.0)
    observation = Observation(
        **_mapping(document, "observation", {"scrape_interval", "alert_delay"})
    )
    if observation.scrape_interval % tick:
        raise ConfigError("observation.scrape_interval must be a multiple of tick")
    return Scenario(
        name=str(document.get("name", default_name)),
        description=str(document.get("description", "")),
        duration=duration,
        tick=tick,
        seed=int(document.get("seed", 1)),
        in_bounds=bool(document.get("in_bounds", True)),
        cycles=document.get("cycles"),
        initial_dynos=int(document.get("initial_dynos", role.min_dynos)),
        role=role,
        arrivals=build_profile(_mapping(document, "arrivals", None)),
        service=build_service(_mapping(document, "service", None)),
        observation=observation,
        policies=policies,
        parameters={k: dict(v) for k, v in document.get("parameters", {}).items()},
    )


def _role(spec: Any) -> RoleSettings:
    if not isinstance(spec, dict):
        raise ConfigError("role must be a mapping of settings")
    unknown = sorted(set(spec) - set(POLICY_PROPERTIES))
    if unknown:
        raise ConfigError(
            f"role: unknown setting(s) {unknown}; known: {', '.join(POLICY_PROPERTIES)}"
        )
    settings = {**BUILTIN_DEFAULTS, **spec}
    if settings["min_dynos"] > settings["max_dynos"]:
        raise ConfigError("role: min_dynos is above max_dynos")
    if settings["concurrency"] < 1:
        raise ConfigError("role: concurrency must be at least 1")
    queue = QueueSettings(name="default", backend="sidekiq", url="sim://queue")
    return RoleSettings(app="sim", role="worker", queues=(queue,), **settings)


def _mapping(document: dict, key: str, allowed: set[str] | None) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping")
    if allowed is not None and set(value) - allowed:
        raise ConfigError(f"{key}: unknown key(s) {sorted(set(value) - allowed)}")
    return value


def _positive(document: dict, key: str, default: float | None) -> float:
    value = document.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key} must be a number above 0 (got {value!r})")
    return float(value)
