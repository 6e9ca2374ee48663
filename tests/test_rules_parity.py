"""The PromQL rules and dynoscaler.model agree, step by step, on every scenario.

Each test case of prometheus/tests/*.yml is replayed through promtool; at every
rule evaluation the inputs the rules derived (λ, S, Q, P, oldest age, dλ/dt, dyno
count, policy) are fed to dynoscaler.model, and its needed, desired (before and
after scale-down stabilisation) and unmeetable must equal the rules' exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import yaml
from rules_support import POLICY_NAMES, ROOT, STEP, Labels, probe, seconds, selector, values

from dynoscaler.config import QueueSettings, RoleSettings
from dynoscaler.model import (
    Capacity,
    RoleInputs,
    ScaleDownStabiliser,
    required_capacity,
    rules_window,
)

pytestmark = pytest.mark.timeout(120)

TEST_FILES = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))
SERIES = '{__name__=~"app_role:dynoscaler_.*"}'
QUEUE = QueueSettings("q", "sidekiq", "redis://127.0.0.1:6379/0")


def _cases() -> list[tuple[str, dict]]:
    cases = []
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            # a role's capacity settings (qos_test's burns carry a miss_ratio alone)
            if any("dynoscaler_policy_concurrency" in i["series"] for i in case["input_series"]):
                cases.append((f"{path.name}: {case['name']}", case))
    return cases


def _last_eval(case: dict) -> int:
    times = [seconds(t["eval_time"]) for t in case.get("promql_expr_test", [])]
    times += [seconds(t["eval_time"]) for t in case.get("alert_rule_test", [])]
    return max(times)


@dataclass
class RoleAtTime:
    values: dict[str, float]

    def get(self, name: str) -> float | None:
        return self.values.get(f"app_role:dynoscaler_{name}")

    def policy(self, app: str, role: str) -> RoleSettings | None:
        found = {
            key: self.get(metric.removeprefix("dynoscaler_"))
            for key, metric in POLICY_NAMES.items()
        }
        if any(value is None for key, value in found.items() if key != "target_queue_time"):
            return None
        web = self.get("queue_depth") is None
        return RoleSettings(
            app=app,
            role=role,
            min_dynos=int(found["min_dynos"]),
            max_dynos=int(found["max_dynos"]),
            target_deadline=found["target_deadline"],
            target_queue_time=found["target_queue_time"],
            boot_time=found["boot_time"],
            concurrency=int(found["concurrency"]),
            miss_ratio=found["miss_ratio"],
            scale_down_window=found["scale_down_window"],
            cooldown=0,
            max_step=10,
            queues=() if web else (QUEUE,),
            requests="router" if web else None,
        )

    def inputs(self) -> RoleInputs:
        current = self.get("dynos:last10m")
        return RoleInputs(
            arrival_rate=self.get("arrival_rate:rate1m"),
            processing_seconds=self.get("processing_seconds"),
            backlog=self.get("queue_depth") or 0.0,
            in_progress=self.get("queue_in_progress") or 0.0,
            oldest_age_seconds=self.get("queue_oldest_age_seconds:known"),
            processing_seconds_10m=self.get("processing_seconds:mean10m"),
            processing_seconds_p99=self.get("processing_seconds:p99_1h"),
            arrival_rate_slope=self.get("arrival_rate:deriv5m") or 0.0,
            current_dynos=None if current is None else int(current),
            stale=self.get("inputs_stale") is not None,
        )


def _by_role(samples: dict[Labels, float]) -> dict[tuple[str, str], RoleAtTime]:
    roles: dict[tuple[str, str], RoleAtTime] = {}
    for labels, value in samples.items():
        label = dict(labels)
        key = (label["app"], label["role"])
        roles.setdefault(key, RoleAtTime({})).values[label["__name__"]] = value
    return roles


def _compare(rules: RoleAtTime, model: Capacity) -> dict[str, tuple[float | None, float | None]]:
    unstabilised = rules.get("desired_dynos:unstabilised")
    needed = None if model.holding else model.needed_dynos
    unmeetable = None if model.holding else float(model.unmeetable)
    pairs = {
        "desired_dynos:unstabilised": (unstabilised, model.desired_dynos),
        "needed_dynos": (rules.get("needed_dynos"), needed),
        "deadline_unmeetable": (rules.get("deadline_unmeetable"), unmeetable),
    }
    return {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}


@pytest.mark.parametrize("name, case", _cases(), ids=[name for name, _ in _cases()])
def test_rules_and_model_agree_at_every_evaluation(name: str, case: dict) -> None:
    series = {item["series"]: item["values"] for item in case["input_series"]}
    times = range(0, _last_eval(case) + 1, STEP)
    results = probe(series, [(SERIES, t) for t in times])
    stabilisers: dict[tuple[str, str], ScaleDownStabiliser] = {}
    compared = 0
    for t in times:
        for (app, role), rules in _by_role(results[(SERIES, t)]).items():
            policy = rules.policy(app, role)
            if policy is None or rules.get("desired_dynos:unstabilised") is None:
                continue
            model = required_capacity(rules.inputs(), policy)
            assert _compare(rules, model) == {}, f"{app}/{role} at {t}s: {model.reasons}"
            if not model.holding and rules.get("required_slots") is not None:
                assert rules.get("required_slots") == pytest.approx(model.required_slots, rel=1e-9)
            window = rules_window(policy.scale_down_window)
            stabiliser = stabilisers.setdefault((app, role), ScaleDownStabiliser(window))
            assert rules.get("desired_dynos") == stabiliser.update(t, model), (
                f"{app}/{role} at {t}s"
            )
            compared += 1
    assert compared >= len(times) // 2, "too few evaluations had a desired count to compare"


def _random_role(rng: random.Random, index: int) -> tuple[RoleSettings, RoleInputs]:
    """A role with load from tiny to beyond its budget; some with D < S + B."""
    web = index % 5 == 0
    rate, seconds = 10 ** rng.uniform(-1.3, 1.3), 10 ** rng.uniform(-1.3, 1.5)
    boot = round(rng.uniform(0, 60), 3)
    slack = rng.uniform(-30, 5) if index % 6 == 1 else rng.uniform(5, 300)
    low = rng.randint(0, 3)
    policy = RoleSettings(
        app=f"app{index}",
        role="web" if web else "worker",
        min_dynos=low,
        max_dynos=rng.randint(max(low, 1), 50),
        target_deadline=round(max(seconds + boot + slack, 0.5), 3),
        boot_time=boot,
        concurrency=rng.randint(1, 16),
        miss_ratio=round(10 ** rng.uniform(-3, -0.5), 4),
        scale_down_window=rng.choice([0, 30, 60, 120, 300]),
        cooldown=0,
        max_step=10,
        queues=() if web else (QUEUE,),
        requests="router" if web else None,
    )
    backlog = 0 if web or index % 3 == 0 else int(10 ** rng.uniform(0, 3))
    current = policy.max_dynos
    if index % 7 == 3:  # nothing arrives or completes: S cannot be measured
        return policy, RoleInputs(0.0, None, backlog, current_dynos=current)
    rate, seconds = round(rate, 4), round(seconds, 4)
    if index % 4 == 2:  # nothing seen running, the oldest job's age known: may go without dynos
        age = round(rng.uniform(0, 120), 3)
        current = rng.choice([0, current])
        return policy, RoleInputs(rate, seconds, backlog, 0.0, age, current_dynos=current)
    return policy, RoleInputs(rate, seconds, backlog, rate * seconds, current_dynos=current)


def _steady_series(policy: RoleSettings, inputs: RoleInputs, steps: int) -> dict[str, str]:
    role = {"app": policy.app, "role": policy.role}
    queue = {**role, "queue": "q", "backend": "sidekiq"}
    counts = [inputs.arrival_rate * STEP * i for i in range(steps)]
    flat = {POLICY_NAMES[key]: getattr(policy, key) for key in POLICY_NAMES}
    flat["dynoscaler_dynos"] = inputs.current_dynos
    series = {selector(name, role): values([value] * steps) for name, value in flat.items()}
    if policy.requests:
        series[selector("dynoscaler_router_requests_total", role)] = values(counts)
        series[selector("dynoscaler_router_service_seconds_count", role)] = values(counts)
        sums = [c * (inputs.processing_seconds or 0) for c in counts]
        series[selector("dynoscaler_router_service_seconds_sum", role)] = values(sums)
        return series
    series[selector("dynoscaler_jobs_completed_total", queue)] = values(counts)
    series[selector("dynoscaler_queue_depth", queue)] = values([inputs.backlog] * steps)
    series[selector("dynoscaler_queue_in_progress", queue)] = values([inputs.in_progress] * steps)
    if inputs.oldest_age_seconds is not None:  # S from the duration histogram, not Little's law
        ages = [inputs.oldest_age_seconds] * steps
        series[selector("dynoscaler_queue_oldest_age_seconds", queue)] = values(ages)
        series[selector("dynoscaler_job_duration_seconds_count", queue)] = values(counts)
        sums = [c * inputs.processing_seconds for c in counts]
        series[selector("dynoscaler_job_duration_seconds_sum", queue)] = values(sums)
    return series


def test_random_steady_roles_give_the_models_count_on_the_true_inputs() -> None:
    """λ, S and Q as the exporter's series encode them, straight into the model."""
    rng = random.Random(20240601)
    roles = [_random_role(rng, index) for index in range(80)]
    eval_at = 7 * 60  # a full minute of samples, and the look-ahead's 5m window flat
    series: dict[str, str] = {}
    for policy, inputs in roles:
        series |= _steady_series(policy, inputs, eval_at // STEP + 1)
    query = '{__name__=~"app_role:dynoscaler_(desired_dynos|needed_dynos|deadline_unmeetable)"}'
    got = probe(series, [(query, eval_at)])[(query, eval_at)]
    by_role = _by_role(got)
    for policy, inputs in roles:
        model = required_capacity(inputs, policy)
        rules = by_role[(policy.app, policy.role)]
        if model.holding:
            expected = (None, model.desired_dynos, None)
        else:
            expected = (model.needed_dynos, model.desired_dynos, float(model.unmeetable))
        actual = (
            rules.get("needed_dynos"),
            rules.get("desired_dynos"),
            rules.get("deadline_unmeetable"),
        )
        assert actual == expected, f"{policy} {inputs}: {model.reasons}"
    assert len(by_role) == len(roles)
