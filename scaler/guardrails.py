"""The scaler's safety rules in one place: pure functions, no I/O, no Flask.

The webhook, the reconcile loop and the simulator's autoscalers all decide
through `decide`, so a rule changed here changes everywhere at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scaler.deadline import HEROKU_BUDGET_SECONDS

if TYPE_CHECKING:
    from dynoscaler.config import RoleSettings

# A target still marked in flight after this long belongs to a request that
# ended without clearing it (its process died); it no longer suppresses a new
# action. Every request's Heroku calls end within HEROKU_BUDGET_SECONDS; the
# rest is room for the store's transactions. (The service also drops at once a
# mark whose process is known to be gone.)
IN_FLIGHT_EXPIRY_SECONDS = HEROKU_BUDGET_SECONDS + 4.0


@dataclass(frozen=True)
class Request:
    """What an input asks for one role.

    desired: the count the rules computed (None when the input carries none).
    observed_at: Unix time of the data behind `desired`; None when unknown or
    missing. Data older than `stale_after` never causes a scale-down.
    scale_down_allowed: False for an input that asks only to scale up (a
    ScaleRole alert with direction="up"): its count never lowers a formation,
    even one Heroku confirms above it, since Alertmanager's inhibitions while
    the exporter is down match only direction="down".
    """

    desired: int | None
    observed_at: float | None
    scale_down_allowed: bool = True
    # A role with sizes: the slots it needs at its current size's speed (ResizeRole);
    # the scaler turns them into a (size, count) with dynoscaler.sizing.
    slots: float | None = None


@dataclass(frozen=True)
class State:
    """What is known about one role right now.

    current: the formation quantity Heroku last confirmed (None: unknown).
    last_action_at: Unix time of the last applied change (None: never).
    in_flight: the target of a change sent but not yet answered (None: none).
    in_flight_since: Unix time that change was started.
    limit: the most dynos Heroku runs for this role, from its 422
    cannot_run_above_limit (None: none known).
    limit_until: Unix time until which `limit` holds; after it, a count above
    is tried again (None with a limit: until further notice).
    """

    current: int | None
    last_action_at: float | None = None
    in_flight: int | None = None
    in_flight_since: float | None = None
    limit: int | None = None
    limit_until: float | None = None


@dataclass(frozen=True)
class Policy:
    """The settings of one role that the rules need (a subset of RoleSettings)."""

    min_dynos: int
    max_dynos: int
    cooldown: float
    max_step: int

    @classmethod
    def of(cls, settings: RoleSettings) -> Policy:
        return cls(settings.min_dynos, settings.max_dynos, settings.cooldown, settings.max_step)


@dataclass(frozen=True)
class Verdict:
    """target: the count to set (None: no change); reason: why, for people and the log.

    With dry_run the target is what would have been set; nothing must be sent.
    """

    target: int | None
    reason: str
    dry_run: bool = False
    size: str | None = None  # a dyno size to set with the target count

    @property
    def acts(self) -> bool:
        """True when the caller must send `target` to Heroku."""
        return self.target is not None and not self.dry_run


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def is_stale(observed_at: float | None, now: float, stale_after: float) -> bool:
    """Missing data counts as stale."""
    return observed_at is None or now - observed_at > stale_after


def decide(
    request: Request,
    state: State,
    policy: Policy,
    now: float,
    stale_after: float,
    dry_run: bool = False,
) -> Verdict:
    """Decide the next formation quantity of one role.

    Contract (every rule holds for any input; property-tested):
    - a returned target is always within [policy.min_dynos, policy.max_dynos],
      and never above Heroku's limit while it holds (`state.limit` until
      `state.limit_until`, and only while the current count is not above it:
      a count above shows the limit is gone); a limit below min_dynos is the
      one exception to the lower bound (Heroku runs no more than the limit);
    - no target when `request.desired` or `state.current` is None (nothing safe
      to compare), when the clamped desired count equals the current count
      (or the current count is at Heroku's limit and the desired one above it),
      or when the target equals the count already in flight (repeated and
      duplicate alerts: one action);
    - a target below `state.current` only when the data is fresh
      (`now - request.observed_at <= stale_after`) and the last action is at
      least `policy.cooldown` seconds old, except that a current count outside
      [min, max] is always brought back inside (the budget is the hard rule);
    - a target differs from `state.current` by at most `policy.max_step`, except
      where that would leave it outside [min, max];
    - with `dry_run` the verdict carries the same target, marked dry_run, and
      `Verdict.acts` is False: the caller must only record it.
    All times are Unix seconds; the function reads no clock and does no I/O.
    """
    if request.desired is None:
        return Verdict(None, "no desired count in the input")
    if state.current is None:
        return Verdict(None, "current count unknown")
    wanted = clamp(request.desired, policy.min_dynos, policy.max_dynos)
    clamped = (
        f" (desired {request.desired} clamped to {wanted})" if wanted != request.desired else ""
    )
    if wanted == state.current:
        return Verdict(None, f"already at {wanted}{clamped}")
    ceiling = heroku_limit(state, now)
    held = ""
    if ceiling is not None and wanted > ceiling:
        held = f" (desired {wanted} held at Heroku's limit {ceiling})"
        if state.current == ceiling:
            return Verdict(None, f"at Heroku's limit {ceiling}: desired {wanted}")
    out_of_bounds = clamp(state.current, policy.min_dynos, policy.max_dynos) != state.current
    if wanted < state.current and not out_of_bounds:
        refusal = _scale_down_refusal(request, state, policy, now, stale_after)
        if refusal:
            return Verdict(None, refusal)
    step = clamp(wanted - state.current, -policy.max_step, policy.max_step)
    target = clamp(state.current + step, policy.min_dynos, policy.max_dynos)
    if held:
        target = min(target, ceiling)  # type: ignore[type-var]
    limited = (
        f" (limited by max_step {policy.max_step})"
        if target != wanted and not (held and target == ceiling)
        else ""
    )
    if _in_flight(state, now) == target:
        return Verdict(None, f"{target} already in flight{clamped}")
    reason = f"scale {state.current} -> {target}{clamped}{held}{limited}"
    if out_of_bounds:
        reason += f" (current outside [{policy.min_dynos}, {policy.max_dynos}])"
    if dry_run:
        return Verdict(target, f"dry run: {reason}", dry_run=True)
    return Verdict(target, reason)


# Heroku stops a dyno with SIGTERM, then SIGKILL this many seconds later.
SIGTERM_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Busy:
    """The jobs running on a role now, from the exporter's metrics.

    in_progress: jobs being processed (None: unknown). oldest_age: seconds the
    oldest of them has run (None: unknown, or no backend of the role tells it).
    by_dyno: jobs being processed per dyno number (worker.3: 3), where the
    backend tells which dyno runs a job (None: it does not); a dyno not listed
    runs none.
    """

    in_progress: float | None
    oldest_age: float | None = None
    by_dyno: Mapping[int, float] | None = None


def busy_refusal(mode: str, busy: Busy | None, target: int, concurrency: int) -> str | None:
    """Why a scale-down to `target` dynos waits for running jobs (None: it may go).

    - allow: never waits;
    - wait: while a dyno numbered above `target` runs a job (Heroku stops the
      highest-numbered dynos); where the dynos' jobs are unknown, while the jobs
      in progress exceed the slots `target` dynos have;
    - wait_long: while a job older than Heroku's SIGTERM grace period runs (it
      would be killed and retried); where no age is known, as wait;
    - quiet: as wait (scaler.quiet decides a scale-down instead where the role's
      library can quiet its dynos; this rule is for the others, and size changes).
    Unknown jobs in progress wait (no scale-down on missing data).
    """
    if mode == "allow":
        return None
    if busy is None or busy.in_progress is None:
        return f"no scale-down ({mode}): jobs in progress unknown"
    running = busy.in_progress
    if mode == "wait_long" and busy.oldest_age is not None:
        if running > 0 and busy.oldest_age > SIGTERM_GRACE_SECONDS:
            return (
                f"no scale-down (wait_long): a job has run {busy.oldest_age:.0f}s, "
                f"longer than Heroku's {SIGTERM_GRACE_SECONDS:g}s SIGTERM grace"
            )
        return None
    if busy.by_dyno is not None:
        stopped = sorted(n for n, jobs in busy.by_dyno.items() if n > target and jobs > 0)
        if not stopped:
            return None
        jobs = sum(busy.by_dyno[n] for n in stopped)
        return (
            f"no scale-down ({mode}): {jobs:g} job(s) in progress on dyno(s) "
            f"{', '.join(map(str, stopped))}, which a scale-down to {target} stops"
        )
    slots = target * concurrency
    if running > slots:
        unknown_age = " (oldest job's age unknown)" if mode == "wait_long" else ""
        return (
            f"no scale-down ({mode}): {running:g} job(s) in progress, "
            f"{target} dyno(s) have {slots} slot(s){unknown_age}"
        )
    return None


def size_refusal(
    observed_at: float | None,
    last_size_change: float | None,
    size_cooldown: float,
    now: float,
    stale_after: float,
) -> str | None:
    """Why a role keeps its dyno size (None: it may change): a size change restarts
    every dyno of the role, so never on stale data or within size_cooldown of the last."""
    if is_stale(observed_at, now, stale_after):
        return "no size change: input data stale or of unknown age"
    if last_size_change is not None and now - last_size_change < size_cooldown:
        left = size_cooldown - (now - last_size_change)
        return f"no size change: size cooldown, {left:.0f}s left"
    return None


def heroku_limit(state: State, now: float) -> int | None:
    """Heroku's limit for the role while it holds, else None."""
    if state.limit is None or state.current is None or state.current > state.limit:
        return None
    if state.limit_until is not None and now >= state.limit_until:
        return None
    return state.limit


def _in_flight(state: State, now: float) -> int | None:
    if state.in_flight is None or state.in_flight_since is None:
        return None
    if now - state.in_flight_since > IN_FLIGHT_EXPIRY_SECONDS:
        return None
    return state.in_flight


def _scale_down_refusal(
    request: Request, state: State, policy: Policy, now: float, stale_after: float
) -> str | None:
    if not request.scale_down_allowed:
        return "no scale-down: the input asks only to scale up"
    if request.observed_at is None:
        return "no scale-down: input data missing or of unknown age"
    if is_stale(request.observed_at, now, stale_after):
        age = now - request.observed_at
        return f"no scale-down: input data {age:.0f}s old (stale after {stale_after:g}s)"
    if state.last_action_at is not None and now - state.last_action_at < policy.cooldown:
        left = policy.cooldown - (now - state.last_action_at)
        return f"no scale-down: cooldown, {left:.0f}s left"
    return None
