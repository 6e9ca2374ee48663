"""A role's recorded series read back from Prometheus: the model's terms over a
time range (the shadow report, the snapshot) or at one instant (a decision's
explanation in the annotations API).

Every term but the price is a series the rules record per app and role
(prometheus/rules/capacity.yml), so what is read here is what the rules
computed and the scaler acted on, not a recomputation; the price is the
exporter's gauge for the formation's dyno size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from scaler.prometheus import query, query_range


@dataclass(frozen=True)
class Term:
    name: str
    record: str  # the recorded series
    label: str  # for people: legends, tables, annotations
    over: str  # how a step's samples combine when read per step: avg or max


TERMS = {
    t.name: t
    for t in (
        Term("formation", "app_role:dynoscaler_dynos", "formation (Heroku)", "avg"),
        Term("desired", "app_role:dynoscaler_desired_dynos", "desired dynos (rules)", "avg"),
        Term("needed", "app_role:dynoscaler_needed_dynos", "needed for the deadline", "avg"),
        Term("max_dynos", "app_role:dynoscaler_policy_max_dynos", "max_dynos", "max"),
        Term("depth", "app_role:dynoscaler_queue_depth", "jobs waiting", "max"),
        Term("in_progress", "app_role:dynoscaler_queue_in_progress", "jobs running", "max"),
        Term("oldest", "app_role:dynoscaler_queue_oldest_age_seconds", "oldest job's wait", "max"),
        Term("deadline", "app_role:dynoscaler_policy_target_deadline_seconds", "deadline", "max"),
        Term("arrival_rate", "app_role:dynoscaler_arrival_rate:rate1m", "λ (jobs/s)", "avg"),
        Term("lookahead", "app_role:dynoscaler_arrival_rate:lookahead", "λ' look-ahead", "avg"),
        Term("processing", "app_role:dynoscaler_processing_seconds", "S (s)", "avg"),
        Term("processing_p99", "app_role:dynoscaler_processing_seconds:p99_1h", "S99 (s)", "max"),
        Term("drain_slots", "app_role:dynoscaler_drain_slots", "drain slots", "avg"),
        Term("required_slots", "app_role:dynoscaler_required_slots", "required slots", "avg"),
        Term("price", "dynoscaler_dyno_hourly_price_dollars", "$ per dyno-hour", "max"),
    )
}


@dataclass
class RoleSeries:
    """Values of some terms on a grid of Unix times (None: no sample)."""

    app: str
    role: str
    times: list[float]
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def has_data(self) -> bool:
        return any(v is not None for values in self.values.values() for v in values)


def selector(term: Term, app: str, role: str) -> str:
    # PromQL string literals take Go's escapes; JSON's are a subset for these names.
    return f"{term.record}{{app={json.dumps(app)},role={json.dumps(role)}}}"


def read(
    base_url: str,
    app: str,
    role: str,
    start: float,
    end: float,
    step: float,
    names: Iterable[str] = TERMS,
    per_step: bool = False,
) -> RoleSeries:
    """The terms `names` from `start` to `end` every `step` seconds: the last
    sample at each time, or with `per_step` the step's samples combined (the
    step ending at each time, `Term.over`). Raises PrometheusError."""
    count = int((end - start) // step) + 1
    times = [start + i * step for i in range(count)]
    series = RoleSeries(app, role, times)
    for name in names:
        term = TERMS[name]
        expr = selector(term, app, role)
        if per_step:
            # 1 ms short of the step: Prometheus 2 includes a sample at the range's
            # start, which belongs to the step before (Prometheus 3 does not).
            expr = f"{term.over}_over_time({expr}[{round(step * 1000) - 1}ms])"
        values: list[float | None] = [None] * count
        for result in query_range(base_url, expr, start, times[-1], step):
            for at, text in result["values"]:
                index = round((float(at) - start) / step)
                if 0 <= index < count:
                    values[index] = _number(text)
        series.values[name] = values
    return series


def at(base_url: str, app: str, role: str, when: float) -> dict[str, float | None]:
    """Every term's value at Unix time `when`, as the rules had it then (one
    query, PromQL's @ modifier). Raises PrometheusError."""
    names = "|".join(term.record for term in TERMS.values())
    labels = f"app={json.dumps(app)},role={json.dumps(role)}"
    by_record = {
        result["metric"]["__name__"]: _number(result["value"][1])
        for result in query(base_url, f'{{__name__=~"{names}",{labels}}} @ {when:.3f}')
    }
    return {name: by_record.get(term.record) for name, term in TERMS.items()}


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None
