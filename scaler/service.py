"""The one decision path shared by the webhook and the reconcile loop.

For one app: read the formation, lock the roles' state, decide each role with
scaler.guardrails, mark the targets in flight, send them in one batch, store
Heroku's answer and record every decision (acted on or not).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dynoscaler.config import Config, RoleSettings
from scaler import metrics
from scaler.actuator import FAILURE, HerokuError, Result
from scaler.guardrails import Policy, Request, State, Verdict, decide
from scaler.store import AppLock, Decision, Store, StoredState

log = logging.getLogger("dynoscaler.scaler")

# How long a count Heroku confirmed may answer a request that changes nothing.
FORMATION_REUSE_SECONDS = 30.0

_RECORDED_SETTINGS = (
    "min_dynos",
    "max_dynos",
    "cooldown",
    "max_step",
    "target_deadline",
    "boot_time",
    "concurrency",
    "scale_down_window",
)


@dataclass(frozen=True)
class RoleInput:
    """One role's request and the raw inputs behind it (recorded as they came)."""

    role: str
    request: Request
    inputs: dict[str, Any]


class FormationSource(Protocol):
    def formation(self, app: str) -> dict[str, int]: ...

    def scale(self, app: str, targets: dict[str, int]) -> Result: ...


class Notify(Protocol):
    def __call__(self, event: dict[str, Any]) -> None: ...


class Scaler:
    """Takes decisions for the roles of one app at a time; safe across processes."""

    def __init__(
        self,
        config: Config,
        store: Store,
        actuator: FormationSource,
        notify: Notify,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.actuator = actuator
        self.notify = notify
        self.clock = clock
        self.dry_run = config.scaler.dry_run

    def apply(self, app: str, inputs: list[RoleInput], source: str) -> list[Decision]:
        """Decide and act for some roles of one app; every role gets one recorded Decision."""
        settings = {i.role: self._settings(app, i.role) for i in inputs}
        decisions = self._without_heroku(app, inputs, settings, source)
        if decisions is not None:
            self._observe(decisions)
            return decisions
        read_at = self.clock()
        try:
            formation = None if self.dry_run else self.actuator.formation(app)
        except HerokuError as error:
            reason = f"cannot read formation: {error}"
            decisions = [
                self._decision(i, settings, source, None, None, reason, FAILURE, error.answer())
                for i in inputs
            ]
            self.notify({"event": "formation_unreadable", "app": app, "answer": error.answer()})
            return self.record(decisions)
        with self.store.locked_app(app, [i.role for i in inputs]) as lock:
            verdicts, states = self._decide(lock, inputs, formation, read_at, settings)
            targets = {r: v.target for r, v in verdicts.items() if v.target is not None}
            if not targets:
                decisions = self._decisions(inputs, settings, source, verdicts, states, None)
                lock.record(decisions)
        if targets:
            result = self._send(app, targets)
            decisions = self._decisions(inputs, settings, source, verdicts, states, result)
            confirmed = {role: result.counts.get(role) for role in targets}
            acted = result.outcome in ("success", "dry_run")
            self.store.finish(app, confirmed, self.clock(), acted, decisions)
        self._observe(decisions)
        return decisions

    def _without_heroku(
        self, app: str, inputs: list[RoleInput], settings: dict[str, RoleSettings], source: str
    ) -> list[Decision] | None:
        """Decide on the stored counts when they are recent and no role needs a change.

        Repeated alerts are the common case; answering them from the store spares
        Heroku's rate limit (about 4,500 calls an hour). Any change is decided on
        a fresh formation read instead (None here), so a count changed by hand
        can only delay an action by FORMATION_REUSE_SECONDS, never misdirect one.
        """
        now = self.clock()
        with self.store.locked_app(app, [i.role for i in inputs]) as lock:
            stored = {i.role: lock.states[i.role] for i in inputs}
            if any(_older(s.current_at, now) for s in stored.values()):
                return None
            states = {role: s.state for role, s in stored.items()}
            verdicts = {i.role: self._verdict(i, states[i.role], settings, now) for i in inputs}
            if any(v.target is not None for v in verdicts.values()):
                return None
            decisions = self._decisions(inputs, settings, source, verdicts, states, None)
            lock.record(decisions)
        return decisions

    def _decide(
        self,
        lock: AppLock,
        inputs: list[RoleInput],
        formation: dict[str, int] | None,
        read_at: float,
        settings: dict[str, RoleSettings],
    ) -> tuple[dict[str, Verdict], dict[str, State]]:
        """Run the guardrails per role under the app's lock; mark targets in flight."""
        now = self.clock()
        verdicts, states = {}, {}
        for i in inputs:
            state = self._state(lock.states[i.role], formation, i.role, read_at, settings)
            if formation is not None:
                lock.confirm(i.role, formation.get(i.role), read_at)
            verdict = self._verdict(i, state, settings, now)
            if verdict.target is not None:
                lock.mark_in_flight(i.role, verdict.target, now)
            verdicts[i.role], states[i.role] = verdict, state
        return verdicts, states

    def _verdict(
        self, i: RoleInput, state: State, settings: dict[str, RoleSettings], now: float
    ) -> Verdict:
        policy = Policy.of(settings[i.role])
        return decide(i.request, state, policy, now, self.config.scaler.stale_after, self.dry_run)

    def record(self, decisions: list[Decision]) -> list[Decision]:
        """Store decisions taken outside `apply` (ignored alerts, unreadable formation)."""
        self.store.record(decisions)
        self._observe(decisions)
        return decisions

    def _decisions(
        self,
        inputs: list[RoleInput],
        settings: dict[str, RoleSettings],
        source: str,
        verdicts: dict[str, Verdict],
        states: dict[str, State],
        result: Result | None,
    ) -> list[Decision]:
        decisions = []
        for i in inputs:
            verdict = verdicts[i.role]
            acted = verdict.target is not None and result is not None
            decisions.append(
                self._decision(
                    i,
                    settings,
                    source,
                    states[i.role].current,
                    verdict.target,
                    verdict.reason,
                    result.outcome if acted else "none",
                    result.answer if acted else None,
                )
            )
        return decisions

    def _settings(self, app: str, role: str) -> RoleSettings:
        settings = self.config.role(app, role)
        if settings is None:
            raise KeyError(f"{app}/{role} is not in {self.config.path}")
        return settings

    def _state(
        self,
        stored: StoredState,
        formation: dict[str, int] | None,
        role: str,
        read_at: float,
        settings: dict[str, RoleSettings],
    ) -> State:
        """The freshest known count: Heroku's read, unless the store confirmed one since."""
        current = stored.state.current
        if formation is not None and (stored.current_at is None or stored.current_at < read_at):
            current = formation.get(role)
        elif formation is None and current is None:
            # Dry run without a recorded count: start where fake-heroku does.
            current = settings[role].min_dynos
        return dataclasses.replace(stored.state, current=current)

    def _send(self, app: str, targets: dict[str, int]) -> Result:
        if self.dry_run:
            return Result("dry_run", dict(targets), {"dry_run": True})
        result = self.actuator.scale(app, targets)
        if result.outcome != "success":
            self.notify(
                {
                    "event": f"actuation_{result.outcome}",
                    "app": app,
                    "targets": targets,
                    "answer": result.answer,
                }
            )
        return result

    def _decision(
        self,
        i: RoleInput,
        settings: dict[str, RoleSettings],
        source: str,
        from_count: int | None,
        to_count: int | None,
        reason: str,
        outcome: str,
        answer: dict[str, Any] | None = None,
    ) -> Decision:
        role_settings = settings[i.role]
        recorded = {k: getattr(role_settings, k) for k in _RECORDED_SETTINGS}
        recorded.update(dry_run=self.dry_run, stale_after=self.config.scaler.stale_after)
        return Decision(
            time=self.clock(),
            source=source,
            app=role_settings.app,
            role=i.role,
            inputs=i.inputs,
            settings=recorded,
            from_count=from_count,
            to_count=to_count,
            reason=reason,
            outcome=outcome,
            answer=answer,
        )

    def _observe(self, decisions: list[Decision]) -> None:
        for d in decisions:
            metrics.DECISIONS.labels(d.app, d.role, d.source, d.outcome).inc()
            log.info("%s/%s %s: %s (%s)", d.app, d.role, d.source, d.reason, d.outcome)


def _older(confirmed_at: float | None, now: float) -> bool:
    return confirmed_at is None or now - confirmed_at > FORMATION_REUSE_SECONDS
