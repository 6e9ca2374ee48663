"""The share of jobs within the deadline: the project's metrics against the demo's own count.

The demo's dynos count every job they finish in `demo:done:<queue>` and those
past the deadline in `demo:late:<queue>` (workers.py), apart from
exporter.timing; the exporter publishes dynoscaler_job_total_seconds_count and
dynoscaler_jobs_within_deadline_total from the timing hashes. Once the queues
are drained and Prometheus has scraped the last job, the two must agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from dynoscaler.config import RoleSettings
from dynoscaler.demo.stack import Stack
from dynoscaler.demo.workers import DONE_PREFIX, LATE_PREFIX


@dataclass(frozen=True)
class Share:
    done: int  # the demo's own count
    late: int
    measured: int | None  # dynoscaler_job_total_seconds_count in Prometheus
    measured_within: int | None  # dynoscaler_jobs_within_deadline_total

    @property
    def agrees(self) -> bool:
        return (self.measured, self.measured_within) == (self.done, self.done - self.late)

    def line(self) -> str:
        own = f"{self.done} jobs done, {self.late} after the deadline (the dynos' own count)"
        if not self.measured or self.measured_within is None:
            return f"{own}; dynoscaler's metrics: no finished job in Prometheus"
        share = self.measured_within / self.measured
        verdict = "they agree" if self.agrees else "they DISAGREE"
        return (
            f"{own}; dynoscaler's metrics: {share:.2%} of {self.measured} jobs within the "
            f"deadline ({self.measured - self.measured_within} late): {verdict}"
        )


def compare(stack: Stack, role: RoleSettings, timeout: float = 60.0) -> Share:
    """Both counts once Prometheus holds every job the dynos finished (or at `timeout`)."""
    until = time.monotonic() + timeout
    while True:
        share = _read(stack, role)
        if share.agrees or time.monotonic() >= until:
            return share
        time.sleep(1)


def _read(stack: Stack, role: RoleSettings) -> Share:
    queues = [queue.name for queue in role.queues]
    counts = stack.redis.mget([DONE_PREFIX + q for q in queues] + [LATE_PREFIX + q for q in queues])
    done = sum(int(v or 0) for v in counts[: len(queues)])
    late = sum(int(v or 0) for v in counts[len(queues) :])
    selector = f'app="{role.app}",role="{role.role}"'
    try:
        measured = _value(stack, f"sum(dynoscaler_job_total_seconds_count{{{selector}}})")
        within = _value(stack, f"sum(dynoscaler_jobs_within_deadline_total{{{selector}}})")
    except (requests.RequestException, ValueError, KeyError):
        measured = within = None
    return Share(done, late, measured, within)


def _value(stack: Stack, expression: str) -> int | None:
    result = stack.query(expression)
    return round(float(result[0]["value"][1])) if result else None
