"""Scenarios as data: YAML files in dynoscaler/sim/scenarios/ (or any path).

name: sine-wave
description: one line
duration: 14400          # seconds simulated
tick: 1                  # seconds per step (default 1)
seed: 1
in_bounds: true          # false: max_dynos cannot meet the deadline (the OPS case)
flag_lead_goal: 300      # out of bounds: seconds of lead the page must give (optional;
                         # only where the load allows it: a miss can come D after it begins)
cycles: 4                # load cycles, for direction changes per cycle (optional)
initial_dynos: 2         # default min_dynos
role: {min_dynos: 1, max_dynos: 20, target_deadline: 60, boot_time: 45, concurrency: 10}
                         # role may carry schedules: as in autoscale.yml (dynoscaler.schedules)
start: "2026-12-04T09:45:00+01:00"  # the date and time of t = 0, for schedules (default
                         # 2026-01-05T00:00:00Z); every policy runs under the schedules
arrivals: {type: sine, mean: 30, amplitude: 20, period: 3600}
service: {type: lognormal, mean: 2.0, cv: 0.5}
observation: {scrape_interval: 5, evaluation_lag: 2}   # optional, these defaults
policies: [dynoscaler, guv, hpa]          # optional, default: all baselines
parameters: {threshold: {step: 2}}        # optional per-policy settings
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dynoscaler.config import (
    ConfigError,
    QueueSettings,
    RoleSettings,
    SizeOption,
    merged_policy,
    schedules_of,
)
from dynoscaler.config_schema import POLICY_PROPERTIES, SIZE
from dynoscaler.sim.arrivals import Profile, build_profile
from dynoscaler.sim.policies import DEFAULT_POLICIES, REGISTRY
from dynoscaler.sim.service import Service, build_service

SCENARIO_DIR = Path(__file__).parent / "scenarios"
DEFAULT_START = datetime.fromisoformat("2026-01-05T00:00:00+00:00").timestamp()  # a Monday
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_NUMBERS = {"type": "object", "additionalProperties": {"type": "number"}}
# Shapes only; arrivals and service are checked by their builders, which know each type.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["duration", "role", "arrivals", "service"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "duration": _POSITIVE,
        "tick": _POSITIVE,
        "seed": {"type": "integer", "minimum": 0},
        "in_bounds": {"type": "boolean"},
        "flag_lead_goal": _POSITIVE,
        "cycles": _POSITIVE,
        "initial_dynos": {"type": "integer", "minimum": 0},
        "start": {"type": "string", "minLength": 1},
        "role": {
            "type": "object",
            "additionalProperties": False,
            # sizes as in autoscale.yml: the role starts at the first (service times
            # are at speed 1) and dynoscaler chooses among them (dynoscaler.sizing)
            "properties": {
                **POLICY_PROPERTIES,
                "sizes": {"type": "array", "minItems": 1, "items": SIZE},
            },
        },
        "arrivals": {"type": "object", "required": ["type"]},
        "service": {"type": "object", "required": ["type"]},
        "observation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "scrape_interval": _POSITIVE,
                "evaluation_lag": {"type": "number", "minimum": 0},
            },
        },
        "policies": {"type": "array", "minItems": 1, "items": {"enum": list(REGISTRY)}},
        "parameters": {
            "type": "object",
            "propertyNames": {"enum": list(REGISTRY)},
            "additionalProperties": _NUMBERS,
        },
    },
}


@dataclass(frozen=True)
class Observation:
    scrape_interval: float = 5.0  # prometheus/prometheus.yml's scrape_interval
    # Seconds from a scrape to the rule evaluation (every policy's decision) that
    # reads it: Prometheus offsets scrapes and rule groups independently, so the
    # data a decision sees is this old. parse() defaults it to half the scrape
    # interval, rounded down to the tick.
    evaluation_lag: float = 0.0


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
    flag_lead_goal: float | None = None  # out of bounds: the lead the page must give
    start: float = DEFAULT_START  # epoch seconds of t = 0 (schedules open by the calendar)


def without_schedules(scenario: Scenario) -> Scenario:
    """The scenario with its role's schedules left out: the reactive policy alone."""
    return dataclasses.replace(scenario, role=dataclasses.replace(scenario.role, schedules=()))


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
    _validate(document)
    start = _start(document.get("start"))
    role = _role(document["role"], start)
    tick = float(document.get("tick", 1.0))
    observation = _observation(document.get("observation", {}), tick)
    return Scenario(
        name=str(document.get("name", default_name)),
        description=str(document.get("description", "")),
        duration=float(document["duration"]),
        tick=tick,
        seed=int(document.get("seed", 1)),
        in_bounds=bool(document.get("in_bounds", True)),
        cycles=document.get("cycles"),
        initial_dynos=int(document.get("initial_dynos", role.min_dynos)),
        role=role,
        arrivals=build_profile(document["arrivals"]),
        service=build_service(document["service"]),
        observation=observation,
        policies=tuple(document.get("policies", DEFAULT_POLICIES)),
        parameters={k: dict(v) for k, v in document.get("parameters", {}).items()},
        flag_lead_goal=document.get("flag_lead_goal"),
        start=start,
    )


def _start(text: str | None) -> float:
    if text is None:
        return DEFAULT_START
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(f"start: {text!r} is not a date and time with its UTC offset")
    return moment.timestamp()


def _observation(spec: dict[str, float], tick: float) -> Observation:
    scrape = float(spec.get("scrape_interval", Observation.scrape_interval))
    lag = float(spec.get("evaluation_lag", math.floor(scrape / 2 / tick) * tick))
    if scrape % tick:
        raise ConfigError("observation.scrape_interval must be a multiple of tick")
    if lag % tick or lag >= scrape:
        raise ConfigError(
            "observation.evaluation_lag must be a multiple of tick below scrape_interval"
        )
    return Observation(scrape, lag)


def _validate(document: Any) -> None:
    if not isinstance(document, dict):
        raise ConfigError("a scenario is a mapping (see dynoscaler/sim/scenario.py)")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if errors:
        raise ConfigError("; ".join(f"{_where(e)}: {e.message}" for e in errors))


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _role(spec: dict[str, Any], start: float) -> RoleSettings:
    sizes = tuple(SizeOption(**s) for s in spec.get("sizes", ()))
    settings = merged_policy({k: v for k, v in spec.items() if k != "sizes"})
    if sizes:
        settings["concurrency"] = sizes[0].concurrency
    if settings["min_dynos"] > settings["max_dynos"]:
        raise ConfigError("role: min_dynos is above max_dynos")
    found, problems = schedules_of(settings, ("role",), start)
    if problems:
        raise ConfigError("; ".join(f"{'.'.join(map(str, w))}: {m}" for w, m in problems))
    settings["schedules"] = found
    queue = QueueSettings(name="default", backend="sidekiq", url="sim://queue")
    return RoleSettings(app="sim", role="worker", queues=(queue,), sizes=sizes, **settings)
