"""The one decision path shared by the webhook and the reconcile loop.

For one app: read the formation (or take the stored counts where the exporter's
webhook-fed counts confirm them: scaler/known_formation.py), lock the roles'
state, decide each role with scaler.guardrails, mark the targets in flight,
send them in one batch, store Heroku's answer and record every decision
(acted on or not). All of Heroku's calls for one request share one Deadline
(scaler/deadline.py).

Heroku's 422 cannot_run_above_limit names the most dynos it runs: the roles
refused are held there (the limit is stored with the role, and the same
request sends the batch again at the limit), notified once, and asked above it
again only after LIMIT_BACKOFF_SECONDS (doubling while Heroku keeps the same
limit, up to LIMIT_BACKOFF_MAX_SECONDS), or at once when the role's settings or
the Heroku account change.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dynoscaler.config import Config, RoleSettings
from dynoscaler.heroku_budget import Budget
from dynoscaler.schedules import in_force
from dynoscaler.sizing import choose_size, units_needed
from scaler import metrics
from scaler.actuator import FAILURE, LIMIT, SUCCESS, HerokuError, Result
from scaler.busy import BusyReader
from scaler.deadline import Deadline, current
from scaler.guardrails import (
    IN_FLIGHT_EXPIRY_SECONDS,
    Busy,
    Policy,
    Request,
    State,
    Verdict,
    busy_refusal,
    decide,
    size_refusal,
)
from scaler.known_formation import KnownFormation
from scaler.quiet import DynoJobs, Quieting, as_busy, heroku_restart
from scaler.store import AppLock, Decision, Limit, Store, StoredState, owner_alive

log = logging.getLogger("dynoscaler.scaler")

# How long a count Heroku confirmed may answer a request that changes nothing.
FORMATION_REUSE_SECONDS = 30.0
# After Heroku's cannot_run_above_limit, how long a role stays at the limit
# before a count above it is asked again; doubled each time Heroku answers with
# the same limit, up to the maximum. (The alert repeats every 10 s: without the
# back-off, 360 refused PATCHes an hour per role.)
LIMIT_BACKOFF_SECONDS = 600.0
LIMIT_BACKOFF_MAX_SECONDS = 4 * 3600.0
_RECORDED_SETTINGS = (
    "min_dynos",
    "max_dynos",
    "cooldown",
    "max_step",
    "target_deadline",
    "boot_time",
    "concurrency",
    "scale_down_window",
    "scale_down_when_busy",
)


@dataclass(frozen=True)
class RoleInput:
    """One role's request and the raw inputs behind it (recorded as they came)."""

    role: str
    request: Request
    inputs: dict[str, Any]
    busy: Busy | None = None  # jobs running now, for scale_down_when_busy
    dynos: dict[int, DynoJobs] | None = None  # quiet: each dyno's worker (scaler.quiet)


class FormationSource(Protocol):
    account: str

    def formation(self, app: str, deadline: Deadline | None = None) -> dict[str, int]: ...

    def scale(
        self,
        app: str,
        targets: dict[str, int],
        deadline: Deadline | None = None,
        at_limit: bool = False,
        known_limits: dict[str, int] | None = None,
    ) -> Result: ...

    def remaining(self) -> tuple[float | None, float]: ...


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
        busy: Callable[[str, str], Busy] | None = None,
        known: Callable[[str], dict[str, int]] | None = None,
    ) -> None:
        """busy: the jobs running on a role (scaler/busy.py); known: the counts the
        exporter holds current per role of an app (scaler/known_formation.py)."""
        self.config = config
        self.store = store
        self.actuator = actuator
        self.notify = notify
        self.clock = clock
        self.dry_run = config.scaler.dry_run
        self.budget = Budget(config.heroku)
        self.busy = busy or BusyReader(config.scaler.prometheus_url)
        self.known = known or KnownFormation(config.scaler.prometheus_url)
        self.quieting = Quieting(heroku_restart(actuator))

    def apply(
        self,
        app: str,
        inputs: list[RoleInput],
        source: str,
        deadline: Deadline | None = None,
    ) -> list[Decision]:
        """Decide and act for some roles of one app; every role gets one recorded Decision.

        deadline: the request's Heroku budget (default: the one of the HTTP request
        being served, see scaler.deadline.RequestDeadline, else a fresh one).
        """
        deadline = deadline or current() or Deadline()
        # a schedule's window sets the floor and budget in force (as the exporter publishes)
        settings = {i.role: in_force(self._settings(app, i.role), self.clock()) for i in inputs}
        inputs = [self._with_busy(app, i, settings[i.role]) for i in inputs]
        decisions = self._without_heroku(app, inputs, settings, source)
        if decisions is not None:
            self._observe(decisions)
            return decisions
        read_at = self.clock()
        try:
            formation = None if self.dry_run else self._formation(app, inputs, deadline)
        except HerokuError as error:
            reason = f"cannot read formation: {error}"
            decisions = [
                self._decision(i, settings, source, None, None, reason, FAILURE, error.answer())
                for i in inputs
            ]
            if error.attempts:  # not when no call was made (held after a 429)
                self.notify({"event": "formation_unreadable", "app": app, "answer": error.answer()})
            return self.record(decisions)
        with self.store.locked_app(app, [i.role for i in inputs]) as lock:
            verdicts, states = self._decide(lock, inputs, formation, read_at, settings)
            stored = dict(lock.states)
            targets = {r: v.target for r, v in verdicts.items() if v.target is not None}
            if not targets:
                decisions = self._decisions(inputs, settings, source, verdicts, states, None)
                lock.record(decisions)
        if targets:
            decisions = self._act(app, inputs, settings, source, verdicts, states, stored, deadline)
        self._observe(decisions)
        return decisions

    def _act(
        self,
        app: str,
        inputs: list[RoleInput],
        settings: dict[str, RoleSettings],
        source: str,
        verdicts: dict[str, Verdict],
        states: dict[str, State],
        stored: dict[str, StoredState],
        deadline: Deadline,
    ) -> list[Decision]:
        """Send the targets; at Heroku's limit, remember it and send the batch again
        at the limit; store what Heroku confirmed and record the decisions."""
        targets = {r: v.target for r, v in verdicts.items() if v.target is not None}
        sizes = {r: v.size for r, v in verdicts.items() if v.size is not None}
        known = {r: states[r].limit for r in targets if states[r].limit is not None}
        result = self._send(app, targets, deadline, sizes=sizes, known=known)
        limits: dict[str, Limit | None] = {}
        second: Result | None = None
        retry: dict[str, Verdict] = {}
        if result.outcome == LIMIT:
            limits = self._learned(app, targets, result, states, stored, settings)
            now = self.clock()
            for i in inputs:
                if i.role not in targets:
                    continue
                state = dataclasses.replace(states[i.role], in_flight=None, in_flight_since=None)
                learned = limits.get(i.role)
                if learned is not None:
                    state = dataclasses.replace(
                        state, limit=learned.count, limit_until=learned.until
                    )
                verdict = self._verdict(i, state, settings, now)
                lowered = verdict.target is not None and verdict.target < targets[i.role]
                if verdict.target is not None and (i.role not in limits or lowered):
                    retry[i.role] = verdict
            if not any(role in limits for role in retry):
                retry = {}  # nothing held lower: the same batch would be refused again
            if retry:
                at_limit = {r: v.target for r, v in retry.items() if v.target is not None}
                # Counted as limit only for a limit not known before (alerted once).
                new = any(v and v.count != known.get(r) for r, v in limits.items())
                resized = {r: v.size for r, v in retry.items() if v.size is not None}
                second = self._send(
                    app, at_limit, deadline, at_limit=new, sizes=resized, known=known
                )
                if second.outcome == LIMIT:  # lower still: learn that too, send no third
                    limits.update(self._learned(app, at_limit, second, states, stored, settings))
        final = second or result
        confirmed = {role: final.counts.get(role) for role in targets}
        held = set(limits)
        if final.outcome == SUCCESS:
            for role, count in confirmed.items():
                known = stored[role].limit
                if role not in held and None not in (count, known) and count > known.count:
                    limits[role] = None  # Heroku ran more: the limit is gone
        decisions = self._decisions(
            inputs, settings, source, verdicts, states, result, second, retry, held, deadline
        )
        changed = {
            role: count is not None and count != states[role].current
            for role, count in confirmed.items()
        }
        self.store.finish(app, confirmed, self.clock(), changed, decisions, limits)
        if final.outcome == FAILURE and final.answer.get("attempts"):
            self.notify(
                {
                    "event": "actuation_failure",
                    "app": app,
                    "targets": {r: v.target for r, v in (retry or verdicts).items() if v.target},
                    "answer": final.answer,
                }
            )
        return decisions

    def _formation(
        self, app: str, inputs: list[RoleInput], deadline: Deadline
    ) -> dict[str, int] | None:
        """Heroku's formation, or what stands for reading it: the counts the exporter
        holds through webhooks, where they equal the stored ones or none is stored
        (scaler/known_formation.py), or, while Heroku's bucket is below the floor kept
        for PATCHes and every role's count is stored, the stored counts (None)."""
        stored = self.store.states(app)
        counts = {
            i.role: stored[i.role].state.current if i.role in stored else None for i in inputs
        }
        sizes = self._sizes(app)
        if all(i.request.slots is None or i.role in sizes for i in inputs):
            known = self.known(app)
            if all(r in known and count in (None, known[r]) for r, count in counts.items()):
                metrics.FORMATION_READS.labels("spared", "webhook_counts").inc()
                return {role: known[role] for role in counts}
            reason = "unconfirmed"  # no webhook-fed count, or one that differs from the stored
        else:
            reason = "size_unknown"
        if None in counts.values() or self.budget.spare(*self.actuator.remaining()):
            metrics.FORMATION_READS.labels("read", reason).inc()
            return self.actuator.formation(app, deadline)
        metrics.FORMATION_READS.labels("spared", "low_bucket").inc()
        log.warning("%s: Heroku's bucket is low: the stored counts stand for a read", app)
        return None

    def _learned(
        self,
        app: str,
        targets: dict[str, int],
        result: Result,
        states: dict[str, State],
        stored: dict[str, StoredState],
        settings: dict[str, RoleSettings],
    ) -> dict[str, Limit | None]:
        """The limits a refused PATCH teaches, per role; notified when new or changed."""
        now = self.clock()
        counts = dict(result.limits)
        if not counts:
            # A limit Heroku did not name: hold the roles where they are.
            counts = {role: -1 for role, target in targets.items()}
        for role in list(counts):
            current = states[role].current
            if current is not None and counts[role] < current:
                counts[role] = current  # Heroku runs this many: hold there, no lower
            if counts[role] < 0 or counts[role] >= targets[role]:
                del counts[role]
        learned: dict[str, Limit | None] = {}
        news = {}
        for role, count in counts.items():
            key = self._limit_key(settings[role])
            known = stored[role].limit
            backoff = LIMIT_BACKOFF_SECONDS
            if known is not None and known.count == count and known.key == key:
                backoff = min(LIMIT_BACKOFF_MAX_SECONDS, 2 * max(known.until - known.at, backoff))
            else:
                news[role] = count
            learned[role] = Limit(count, now, now + backoff, key)
        if news:
            self.notify(
                {
                    "event": "actuation_limit",
                    "app": app,
                    "targets": targets,
                    "limits": news,
                    "answer": result.answer,
                }
            )
        return learned

    def _limit_key(self, settings: RoleSettings) -> str:
        """What a stored limit was learned under: the role's settings and the account."""
        configured = self._settings(settings.app, settings.role)  # not a window's
        recorded = {k: getattr(configured, k) for k in _RECORDED_SETTINGS}
        account = getattr(self.actuator, "account", "")
        return json.dumps({"settings": recorded, "account": account}, sort_keys=True)

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
            sizes = self._sizes(app)
            if any(i.request.slots is not None and i.role not in sizes for i in inputs):
                return None  # a sized role's current size is read with the formation
            states = {role: self._stored_state(s, role, settings) for role, s in stored.items()}
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

    def _with_busy(self, app: str, i: RoleInput, settings: RoleSettings) -> RoleInput:
        """The input with the jobs running now, read (before any lock is taken) for a
        role whose scale-downs wait for them; recorded with the inputs."""
        asks = i.request.desired is not None or i.request.slots is not None
        if settings.scale_down_when_busy == "allow" or not asks:
            return i
        # A dry run quiets nothing, so quiet's second phase would never come: judged as wait.
        quiets = settings.scale_down_when_busy == "quiet" and not self.dry_run
        dynos = self.quieting.read(settings) if quiets else None
        if dynos is not None:
            shown = {str(n): dataclasses.asdict(d) for n, d in dynos.items()}
            inputs = {**i.inputs, "dynos": shown}
            return dataclasses.replace(i, dynos=dynos, busy=as_busy(dynos), inputs=inputs)
        busy = self.busy(app, i.role)
        recorded: dict[str, Any] = {
            "in_progress": busy.in_progress,
            "oldest_in_progress_age": busy.oldest_age,
        }
        if busy.by_dyno is not None:
            recorded["in_progress_by_dyno"] = {str(n): v for n, v in busy.by_dyno.items()}
        return dataclasses.replace(i, busy=busy, inputs={**i.inputs, "busy": recorded})

    def _sizes(self, app: str) -> dict[str, str]:
        """Each role's dyno size as the actuator last saw it (none: it cannot tell)."""
        sizes = getattr(self.actuator, "sizes", None)
        return sizes(app) if sizes is not None else {}

    def _sized(
        self, i: RoleInput, role: RoleSettings, state: State, now: float
    ) -> tuple[Verdict | None, RoleInput, str]:
        """A role with sizes: the cheapest (size, count) for the slots it needs.

        A size change is a verdict sending size and count together. Where the size
        stays (the cheapest, or it may not change: stale data, size cooldown) the
        input comes back asking for the count the current size needs, which the
        guardrails decide like any other; the note says why the size stays.
        """
        current = self._sizes(role.app).get(i.role)
        option = role.size(current)
        if option is None:
            shown = "unknown" if current is None else f"{current}, not listed in sizes"
            return Verdict(None, f"no change: current dyno size {shown}"), i, ""
        units = units_needed(i.request.slots or 0.0, option)
        i.inputs["units"] = units
        recent = max([units, *self._recent_units(role, now)])
        now_at = None if state.current is None else (option, state.current)
        choice = choose_size(units, role, self.config.prices, now_at, recent)
        note = ""
        if choice.option != option:
            note = size_refusal(
                i.request.observed_at,
                self._last_size_change(role, now),
                role.size_cooldown,
                now,
                self.config.scaler.stale_after,
            ) or ("" if i.request.scale_down_allowed else "no size change: scale-up only input")
            now_capacity = option.capacity * (state.current or 0)
            if not note and choice.count * choice.option.capacity < now_capacity:
                # A size change restarts every dyno: a smaller one leaves no slot of
                # the role to its running jobs. (A larger one goes ahead, as a
                # scale-up would: the deadline needs it.)
                busy = busy_refusal(role.scale_down_when_busy, i.busy, 0, role.concurrency)
                note = "" if busy is None else busy.replace("no scale-down", "no size change")
            if not note:
                if _in_flight_target(state, now) is not None:
                    return Verdict(None, f"{state.in_flight} already in flight"), i, ""
                reason = f"resize {state.current} x {current} -> {choice.describe(units)}"
                i.inputs["size_change"] = {"from": current, "to": choice.size}
                dry = self.dry_run
                shown = f"dry run: {reason}" if dry else reason
                return Verdict(choice.count, shown, dry_run=dry, size=choice.size), i, ""
            note += f" (cheapest: {choice.describe(units)})"
        at_size = dataclasses.replace(role, sizes=(option,))
        count = choose_size(recent, at_size, self.config.prices).count
        request = dataclasses.replace(i.request, desired=count)
        return None, dataclasses.replace(i, request=request), note

    def _recent_units(self, role: RoleSettings, now: float) -> list[float]:
        """The needs recorded within size_cooldown (dynoscaler.sizing.SizeNeed): a size
        goes down only once the need stayed lower that long. Those of the boot_time +
        target_deadline after the last size change are the change's own (its restart's
        backlog), left out."""
        since = now - role.size_cooldown
        changed = self._last_size_change(role, now)
        if changed is not None:
            since = max(since, changed + role.boot_time + role.target_deadline)
        rows = self.store.decisions(role.app, role.role, limit=None, since=since)
        return [r["inputs"]["units"] for r in rows if "units" in (r["inputs"] or {})]

    def _last_size_change(self, role: RoleSettings, now: float) -> float | None:
        """When the decision log last shows a size change Heroku took for the role, of
        those that still count: within size_cooldown, or whose boot_time +
        target_deadline reach into the need window of _recent_units."""
        since = now - role.size_cooldown - role.boot_time - role.target_deadline
        rows = self.store.decisions(role.app, role.role, None, since=since, actions=True)
        for row in rows:
            if row["outcome"] == SUCCESS and (row["inputs"] or {}).get("size_change"):
                return row["time"]
        return None

    def _verdict(
        self, i: RoleInput, state: State, settings: dict[str, RoleSettings], now: float
    ) -> Verdict:
        role = settings[i.role]
        policy = Policy.of(role)
        note = ""
        if i.request.slots is not None and role.sizes:
            sized, i, note = self._sized(i, role, state, now)
            if sized is not None:
                return sized
        verdict = self._count_verdict(i, state, role, policy, now)
        return dataclasses.replace(verdict, reason=f"{verdict.reason}; {note}") if note else verdict

    def _count_verdict(
        self, i: RoleInput, state: State, role: RoleSettings, policy: Policy, now: float
    ) -> Verdict:
        verdict = decide(
            i.request, state, policy, now, self.config.scaler.stale_after, self.dry_run
        )
        current = state.current
        if i.dynos is not None and current is not None:
            return self.quieting.verdict(role, i, current, verdict, self.dry_run)
        lowers = verdict.target is not None and current is not None and verdict.target < current
        if lowers and current <= role.max_dynos:  # above the budget: back inside regardless
            refusal = busy_refusal(
                role.scale_down_when_busy, i.busy, verdict.target, role.concurrency
            )
            if refusal:
                return Verdict(None, refusal)
        return verdict

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
        second: Result | None = None,
        retry: dict[str, Verdict] | None = None,
        held: set[str] | None = None,
        deadline: Deadline | None = None,
    ) -> list[Decision]:
        """A decision per role: outcome "none" where nothing was sent (no target, or
        `result` None); else what Heroku answered to `result`, and at its limit to the
        `second` batch of the roles in `retry` (`held`: roles held at a learned limit)."""
        late = deadline.outcome() if deadline is not None else {}
        if late:
            log.warning("Heroku answered after the caller gave up (%s)", late)
        retry = retry or {}
        held = held or set()
        decisions = []
        for i in inputs:
            verdict = verdicts[i.role]
            current = states[i.role].current
            if verdict.target is None or result is None:
                decisions.append(
                    self._decision(
                        i, settings, source, current, verdict.target, verdict.reason, "none"
                    )
                )
                continue
            to, reason, outcome, answer = (
                verdict.target,
                verdict.reason,
                result.outcome,
                result.answer,
            )
            if result.outcome == LIMIT:
                refusal = f"; Heroku refused it: {result.answer.get('message')}"
                reason += refusal
                if second is not None and i.role in retry:
                    to = retry[i.role].target
                    reason += f"; then {retry[i.role].reason}"
                    answer = {**second.answer, "refused": result.answer}
                    outcome = second.outcome
                    if second.outcome == SUCCESS and i.role in held:
                        outcome = LIMIT
                elif second is not None:
                    answer = {**result.answer, "then": second.answer}
            decisions.append(
                self._decision(
                    i, settings, source, current, to, reason, outcome, {**answer, **late}
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
        return dataclasses.replace(self._stored_state(stored, role, settings), current=current)

    def _stored_state(
        self, stored: StoredState, role: str, settings: dict[str, RoleSettings]
    ) -> State:
        """The stored state less what no longer holds: an in-flight mark whose process
        is gone (its change was never answered: decide afresh at once) and a limit
        learned under other settings or another account."""
        state = stored.state
        if state.in_flight is not None and owner_alive(stored.in_flight_owner) is False:
            log.warning(
                "%s: in-flight mark %s of %s ignored: that process is gone",
                role,
                state.in_flight,
                stored.in_flight_owner,
            )
            state = dataclasses.replace(state, in_flight=None, in_flight_since=None)
        limit = stored.limit
        if limit is not None and limit.key != self._limit_key(settings[role]):
            state = dataclasses.replace(state, limit=None, limit_until=None)
        return state

    def _send(
        self,
        app: str,
        targets: dict[str, int],
        deadline: Deadline,
        at_limit: bool = False,
        sizes: dict[str, str] | None = None,
        known: dict[str, int] | None = None,
    ) -> Result:
        if self.dry_run:
            return Result("dry_run", dict(targets), {"dry_run": True})
        if sizes:
            return self.actuator.scale(
                app, targets, deadline, at_limit, sizes=sizes, known_limits=known
            )
        return self.actuator.scale(app, targets, deadline, at_limit, known_limits=known)

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


def _in_flight_target(state: State, now: float) -> int | None:
    if state.in_flight_since is None or now - state.in_flight_since > IN_FLIGHT_EXPIRY_SECONDS:
        return None
    return state.in_flight


def _older(confirmed_at: float | None, now: float) -> bool:
    return confirmed_at is None or now - confirmed_at > FORMATION_REUSE_SECONDS
