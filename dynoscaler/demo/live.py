"""Live progress of the demo per role: queue, oldest job vs deadline, dynos, late jobs.

Each sample is read from the sources themselves (Redis queues, the fake
Heroku's formation, Prometheus' desired count), kept for the chart, and shown
as one line per role: rewritten in place on a terminal, every few seconds in a log.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import TextIO

import redis
import requests

from dynoscaler.config import RoleSettings
from dynoscaler.demo.stack import Stack
from dynoscaler.demo.workers import DONE_PREFIX, LATE_PREFIX


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the monitor started
    app: str
    role: str
    depth: int
    oldest: float  # seconds the oldest waiting job has waited
    deadline: float
    dynos: int  # the formation's quantity
    up: int  # dynos booted and taking jobs
    desired: float | None  # app_role:dynoscaler_desired_dynos, None before the first value
    done: int
    late: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.role)

    def line(self) -> str:
        desired = "?" if self.desired is None else f"{self.desired:g}"
        return (
            f"{self.t:5.0f}s {self.app}/{self.role}: queue {self.depth:5d}, "
            f"oldest {self.oldest:5.1f}s/{self.deadline:g}s | dynos {self.dynos:2d} "
            f"(up {self.up:2d}), desired {desired:>2} | done {self.done:6d}, late {self.late}"
        )


class Monitor:
    def __init__(self, stack: Stack, out: TextIO = sys.stdout, every: float = 5.0) -> None:
        self.stack = stack
        self.roles = [role for role in stack.settings.roles if role.queues]
        self.out = out
        self.every = every
        self.samples: list[Sample] = []
        # "alertname app/role" of OPS alerts Alertmanager held -> first seen (monitor seconds)
        self.ops_alerts: dict[str, float] = {}
        self.started = time.monotonic()
        self._printed_at = -every
        self._lines_on_screen = 0

    def sample(self) -> list[Sample]:
        formation = self.stack.formation()
        t = time.monotonic() - self.started
        fresh = [self._sample(role, formation.get(role.key, 0), t) for role in self.roles]
        self.samples += fresh
        self._note_ops_alerts(t)
        return fresh

    def _note_ops_alerts(self, t: float) -> None:
        if self.stack.options.mode != "alertmanager":
            return
        try:
            alerts = self.stack.alerts()
        except (requests.RequestException, ValueError):
            return
        for alert in alerts:
            labels = alert["labels"]
            if labels.get("severity") == "ops":
                name = f"{labels['alertname']} {labels.get('app', '')}/{labels.get('role', '')}"
                self.ops_alerts.setdefault(name, t)

    def show(self, fresh: list[Sample]) -> None:
        lines = [sample.line() for sample in fresh]
        if self.out.isatty():
            up = f"\x1b[{self._lines_on_screen}F" if self._lines_on_screen else ""
            self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._lines_on_screen = len(lines)
        elif fresh and fresh[0].t - self._printed_at >= self.every:
            self.out.write("".join(f"{line}\n" for line in lines))
            self._printed_at = fresh[0].t
        self.out.flush()

    def _sample(self, role: RoleSettings, dynos: int, t: float) -> Sample:
        queues = [queue.name for queue in role.queues]
        client = self.stack.redis
        now = time.time()
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(f"queue:{queue}")
                pipe.lindex(f"queue:{queue}", -1)
                pipe.get(DONE_PREFIX + queue)
                pipe.get(LATE_PREFIX + queue)
            replies = pipe.execute()
        depth = sum(replies[0::4])
        oldest = max(
            (now - json.loads(job)["enqueued_at"] for job in replies[1::4] if job), default=0
        )
        return Sample(
            t=t,
            app=role.app,
            role=role.role,
            depth=depth,
            oldest=max(0.0, oldest),
            deadline=role.target_deadline,
            dynos=dynos,
            up=_booted(client, set(queues)),
            desired=self._desired(role),
            done=sum(int(v or 0) for v in replies[2::4]),
            late=sum(int(v or 0) for v in replies[3::4]),
        )

    def _desired(self, role: RoleSettings) -> float | None:
        selector = f'app_role:dynoscaler_desired_dynos{{app="{role.app}",role="{role.role}"}}'
        try:
            result = self.stack.query(selector)
        except (requests.RequestException, KeyError, ValueError):
            return None
        return float(result[0]["value"][1]) if result else None


def _booted(client: redis.Redis, queues: set[str]) -> int:
    """Sidekiq processes alive (hash present) working any of `queues`."""
    identities = client.smembers("processes")
    with client.pipeline(transaction=False) as pipe:
        for identity in identities:
            pipe.hget(identity, "info")
        infos = pipe.execute()
    return sum(1 for info in infos if info and queues & set(json.loads(info)["queues"]))
