"""The web simulator: requests routed at random to dynos, each serving c at once.

`dynoscaler simulate-web [SCENARIO ...]` runs a web scenario (YAML in
dynoscaler/sim/web_scenarios/) under each policy and prints, per policy, the
share of minutes whose p95 request queue time was within target_queue_time, the
dyno-seconds used and their ratio to the lower bound's (docs/simulator.md, "Web
roles").

Requests arrive as the scenario's Poisson profile (dynoscaler.sim.arrivals)
with service times from its distribution (dynoscaler.sim.service). As Heroku's
router does, each request goes to a serving dyno chosen at random, where it
takes the first of the dyno's c slots to come free (queue time: from arrival to
that moment); a dyno asked for serves boot_time later, one removed takes no new
request. Policies decide every EVALUATION_SECONDS (dynoscaler) or minute
(Heroku) from what was seen up to then; their change applies DECISION_DELAY
seconds later:

- dynoscaler: the production model (dynoscaler.model.required_capacity on the
  last minute's λ, S and λ's trend, the web utilisation of
  prometheus/rules/web.yml) and its scale-down window (ScaleDownStabiliser);
- heroku: Heroku's own autoscaling as documented (p95 response time against a
  target, one dyno a step, at most one change a minute): a dyno more when the
  last minute's p95 response time is above `heroku_p95_target`, a dyno less
  when it is below HEROKU_SCALE_DOWN_SHARE of it (assumed: Heroku does not say
  when it scales down).

The lower bound knows the rate of every minute in advance and boots nothing:
each minute, the fewest dynos whose M/M/c queue (random routing, Erlang C,
the scenario's mean S) keeps the p95 of queue time within target.
"""

from __future__ import annotations

import argparse
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from dynoscaler.config import ConfigError, RoleSettings, merged_policy
from dynoscaler.config_schema import POLICY_PROPERTIES
from dynoscaler.model import (
    DECISION_DELAY,
    RoleInputs,
    ScaleDownStabiliser,
    required_capacity,
    rules_window,
)
from dynoscaler.sim.arrivals import Profile, build_profile, draw_block
from dynoscaler.sim.service import Service, build_service

MINUTE = 60
SCENARIO_DIR = Path(__file__).with_name("web_scenarios")
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
# Shapes only; arrivals and service are checked by their builders, which know each type.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["duration", "role", "arrivals", "service", "heroku_p95_target"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "duration": {"type": "integer", "minimum": MINUTE, "multipleOf": MINUTE},
        "seed": {"type": "integer", "minimum": 0},
        "initial_dynos": {"type": "integer", "minimum": 1},
        "role": {"type": "object", "additionalProperties": False, "properties": POLICY_PROPERTIES},
        "arrivals": {"type": "object", "required": ["type"]},
        "service": {"type": "object", "required": ["type"]},
        "heroku_p95_target": _POSITIVE,
    },
}
POLICIES = ("dynoscaler", "heroku")
EVALUATION_SECONDS = 5.0  # prometheus.yml's evaluation_interval
HEROKU_SCALE_DOWN_SHARE = 0.5


@dataclass(frozen=True)
class WebScenario:
    name: str
    description: str
    duration: int  # seconds, whole minutes
    seed: int
    initial_dynos: int
    role: RoleSettings
    arrivals: Profile
    service: Service
    heroku_p95_target: float  # seconds of p95 response time, Heroku autoscaling's setting


@dataclass(frozen=True)
class WebResult:
    policy: str
    minutes_within: float  # share of minutes with requests whose p95 queue time <= target
    dyno_seconds: float
    queue_p95: float  # p95 of every request's queue time
    changes: int  # formation changes
    peak_dynos: int


def available() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SCENARIO_DIR.glob("*.yaml"))}


def load(name_or_path: str) -> WebScenario:
    """A shipped web scenario by name, or a YAML file by path; ConfigError says what is wrong."""
    path = available().get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"no web scenario {name_or_path!r} (one of: {', '.join(available())})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return parse(document, path.stem)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse(document: Any, default_name: str) -> WebScenario:
    problems = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(document), key=str)
    if problems:
        raise ConfigError("; ".join(f"{_where(e)}: {e.message}" for e in problems))
    settings = merged_policy(document["role"])
    if settings["min_dynos"] < 1 or settings["min_dynos"] > settings["max_dynos"]:
        raise ConfigError("role: a web role needs 1 <= min_dynos <= max_dynos")
    duration = int(document["duration"])
    role = RoleSettings(app="sim", role="web", requests="router", **settings)
    return WebScenario(
        name=str(document.get("name", default_name)),
        description=str(document.get("description", "")),
        duration=duration,
        seed=int(document.get("seed", 1)),
        initial_dynos=int(document.get("initial_dynos", role.min_dynos)),
        role=role,
        arrivals=build_profile(document["arrivals"]),
        service=build_service(document["service"]),
        heroku_p95_target=float(document["heroku_p95_target"]),
    )


class _Dynos:
    """The formation: each dyno's c slot free times and when it serves from."""

    def __init__(self, count: int, concurrency: int) -> None:
        self.concurrency = concurrency
        self.slots: list[np.ndarray] = [np.zeros(concurrency) for _ in range(count)]
        self.ready: list[float] = [0.0] * count
        self.pending: deque[tuple[float, int]] = deque()  # (when, target count)

    @property
    def count(self) -> int:
        return len(self.slots)

    def apply(self, now: float, boot: float) -> bool:
        changed = False
        while self.pending and self.pending[0][0] <= now:
            _, target = self.pending.popleft()
            while self.count < target:
                self.slots.append(np.full(self.concurrency, now + boot))
                self.ready.append(now + boot)
                changed = True
            while self.count > target:  # the newest go first; their requests finish
                self.slots.pop()
                self.ready.pop()
                changed = True
        return changed

    def serving(self, now: float) -> list[int]:
        return [i for i, ready in enumerate(self.ready) if ready <= now]


def simulate(scenario: WebScenario, policy: str) -> WebResult:
    """One run of `policy` over the scenario (the same arrivals and services for every policy)."""
    rng = np.random.default_rng(scenario.seed)
    role, minutes = scenario.role, scenario.duration // MINUTE
    counts, times = draw_block(rng, scenario.arrivals, 0, scenario.duration, 1.0)
    services = scenario.service.sample(rng, times.size)
    picks = rng.random(times.size)
    dynos = _Dynos(scenario.initial_dynos, role.concurrency)
    stabiliser = ScaleDownStabiliser(rules_window(role.scale_down_window))
    queue_by_minute: list[list[float]] = [[] for _ in range(minutes)]
    response_by_minute: list[list[float]] = [[] for _ in range(minutes)]
    rates: deque[tuple[float, float]] = deque()  # (time, λ over the last minute)
    recent: deque[tuple[float, float]] = deque()  # (arrival, service) of the last minute
    dyno_seconds, changes, peak, first = 0.0, 0, dynos.count, 0
    for second in range(scenario.duration):
        changes += dynos.apply(second, role.boot_time)
        dyno_seconds += dynos.count
        peak = max(peak, dynos.count)
        serving = dynos.serving(second) or list(range(dynos.count))
        last = first + int(counts[second])
        for index in range(first, last):
            arrival, service = times[index], services[index]
            slots = dynos.slots[serving[int(picks[index] * len(serving))]]
            slot = int(slots.argmin())
            start = max(arrival, slots[slot])
            slots[slot] = start + service
            queue_by_minute[second // MINUTE].append(start - arrival)
            response_by_minute[second // MINUTE].append(start - arrival + service)
            recent.append((arrival, service))
        first = last
        now = second + 1.0
        while recent and recent[0][0] < now - MINUTE:
            recent.popleft()
        if policy == "dynoscaler" and now % EVALUATION_SECONDS == 0:
            target = _dynoscaler(role, now, recent, rates, dynos.count, stabiliser)
            dynos.pending.append((now + DECISION_DELAY, target))
        elif policy == "heroku" and now % MINUTE == 0 and not dynos.pending:
            target = _heroku(scenario, response_by_minute[int(now) // MINUTE - 1], dynos.count)
            if target != dynos.count:
                dynos.pending.append((now + DECISION_DELAY, target))
    queue_all = np.concatenate([np.asarray(q) for q in queue_by_minute if q] or [np.zeros(1)])
    p95s = [float(np.percentile(q, 95)) for q in queue_by_minute if q]
    within = sum(p <= role.target_queue_time for p in p95s) / max(len(p95s), 1)
    return WebResult(
        policy,
        within,
        dyno_seconds,
        float(np.percentile(queue_all, 95)),
        changes,
        peak,
    )


def _dynoscaler(
    role: RoleSettings,
    now: float,
    recent: deque[tuple[float, float]],
    rates: deque[tuple[float, float]],
    current: int,
    stabiliser: ScaleDownStabiliser,
) -> int:
    """The count the production model asks for now, from the last minute's λ and S and
    λ's slope over 5 minutes (least squares, as deriv()), after the scale-down window."""
    rate = len(recent) / MINUTE
    s = float(np.mean([service for _, service in recent])) if recent else None
    rates.append((now, rate))
    while rates[0][0] < now - 5 * MINUTE:
        rates.popleft()
    slope = 0.0
    if len(rates) > 1 and rates[-1][0] - rates[0][0] >= MINUTE:
        t, r = np.array(rates).T
        slope = float(np.polyfit(t - t[0], r, 1)[0])
    inputs = RoleInputs(rate, s, 0.0, arrival_rate_slope=slope, current_dynos=current)
    return stabiliser.update(now, required_capacity(inputs, role))


def _heroku(scenario: WebScenario, responses: list[float], current: int) -> int:
    """Heroku's autoscaling: one dyno up past the p95 response time target, one down well
    under it, within [min_dynos, max_dynos]."""
    if not responses:
        return current
    p95, role = float(np.percentile(responses, 95)), scenario.role
    if p95 > scenario.heroku_p95_target:
        return min(current + 1, role.max_dynos)
    if p95 < HEROKU_SCALE_DOWN_SHARE * scenario.heroku_p95_target:
        return max(current - 1, role.min_dynos)
    return current


def erlang_c_wait_share(c: int, load: float, wait: float, s: float) -> float:
    """P(queue time > wait) in an M/M/c queue with offered load `load` (< c)."""
    term, head = 1.0, 1.0
    for k in range(1, c):
        term *= load / k
        head += term
    tail = term * load / c * c / (c - load)
    return tail / (head + tail) * math.exp(-(c - load) * wait / s)


def lower_bound_dyno_seconds(scenario: WebScenario) -> float:
    """Each minute, the fewest dynos whose per-dyno M/M/c queue keeps P(queue time >
    target) <= 0.05 at the minute's mean rate; summed as dyno-seconds."""
    role, s = scenario.role, scenario.service.mean
    total = 0.0
    for minute in range(scenario.duration // MINUTE):
        moments = minute * MINUTE + np.arange(MINUTE) + 0.5
        rate = float(np.mean(scenario.arrivals.rates(moments)))
        dynos = max(role.min_dynos, 1)
        while dynos < 10_000:
            load = rate * s / dynos
            if load < role.concurrency and (
                erlang_c_wait_share(role.concurrency, load, role.target_queue_time, s) <= 0.05
            ):
                break
            dynos += 1
        total += dynos * MINUTE
    return total


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenarios", nargs="*", help=f"names or paths (default: all in {SCENARIO_DIR.name}/)"
    )


def run(args: argparse.Namespace) -> int:
    names = args.scenarios or list(available())
    for name in names:
        scenario = load(name)
        bound = lower_bound_dyno_seconds(scenario)
        print(f"{scenario.name}: {scenario.description}")
        print(f"  lower bound: {bound:,.0f} dyno-seconds")
        print(
            "  policy      p95 queue within target  dyno-seconds  x lower bound"
            "  p95 queue  changes  peak"
        )
        for policy in POLICIES:
            result = simulate(scenario, policy)
            print(
                f"  {policy:<11} {result.minutes_within:>22.1%}  {result.dyno_seconds:>12,.0f}"
                f"  {result.dyno_seconds / bound:>13.2f}  {result.queue_p95:>8.3f}s"
                f"  {result.changes:>7}  {result.peak_dynos:>4}"
            )
    return 0
