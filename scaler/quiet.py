"""Quiet the dynos a scale-down will stop, then stop them once idle (`scale_down_when_busy: quiet`).

`wait` reads the jobs of the last scrape, so a job that starts on a dyno between
that scrape and the PATCH is on a stopped dyno all the same. `quiet` closes that
race in two phases, through the job library's own remote control:

1. the dynos numbered above the target (Heroku stops the highest numbers) are
   told to stop fetching jobs; no scale-down yet;
2. once the library reports each of them quiet and running no job, the
   scale-down goes ahead. Until then every decision says which dynos are being
   quieted and how many jobs they still run. There is no time-out: a quieted
   dyno takes no new job, so the wait ends with its longest running job, and
   no job is ever cut (a job that runs for hours holds its dyno that long;
   `allow` is the rule for roles that would rather cut it).

A quieted dyno that the formation keeps (the load came back, the target rose)
cannot serve until it is restarted: Sidekiq has no "un-quiet". `plan` lists
those dynos as `restart` once they are idle; the caller restarts them (Heroku's
dyno restart: a fresh process, not quiet, after one boot), and they count as
busy for the scale-down meanwhile.

Which library can do this:
- Sidekiq (`SidekiqQuieter`): Sidekiq::Process#quiet! LPUSHes "TSTP" onto
  `<identity>-signals` (expiring in 60 s); the process pops it at its next
  heartbeat (every 5 s) and stops fetching (a job fetched after that is pushed
  back). Its hash `<identity>` then says `quiet` "true" and `busy`, the jobs it
  still runs, at every heartbeat. Its hostname is the dyno's name ($DYNO).
- Celery: `control.cancel_consumer(queue, destination=[worker@host])` stops a
  worker consuming, `add_consumer` resumes it (no restart needed), and
  `inspect().active()` tells its running tasks. Not built yet: a Celery role on
  `quiet` falls back to `wait`.
- RQ: `send_shutdown_command` makes a worker finish its job and exit, with no
  way back short of a restart; Dramatiq has no remote control; BullMQ's
  `worker.pause()` is local to the worker's process. These keep `wait`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import redis
import requests

from dynoscaler import heroku
from dynoscaler.config import RoleSettings
from scaler.guardrails import SIGTERM_GRACE_SECONDS, Busy, Verdict, clamp

if TYPE_CHECKING:
    from scaler.service import RoleInput

log = logging.getLogger("dynoscaler.scaler")

# Sidekiq::Process#signal: the signal list expires 60 s after the push.
SIGNAL_EXPIRY_SECONDS = 60


@dataclass(frozen=True)
class DynoJobs:
    """What the job library tells of one dyno: whether it stopped fetching, and the
    jobs it still runs."""

    quiet: bool
    busy: int


@dataclass(frozen=True)
class Step:
    """What `plan` asks: dynos to quiet now, idle quieted dynos the formation keeps (to
    restart), and why the scale-down waits (None: it may go)."""

    quiet: list[int] = field(default_factory=list)
    restart: list[int] = field(default_factory=list)
    refusal: str | None = None


class Quieter(Protocol):
    def dynos(self) -> dict[int, DynoJobs]:
        """Each dyno number of the role that runs a worker process, and its state."""
        ...

    def quiet(self, numbers: Iterable[int]) -> None:
        """Tell the workers on these dynos to stop fetching jobs."""
        ...


def plan(dynos: Mapping[int, DynoJobs], current: int, target: int) -> Step:
    """The quiet rule for a role at `current` dynos whose decision is `target` (equal
    to current: no scale-down asked).

    The dynos numbered target+1..current stop; each must be quiet and idle first.
    A dyno with no worker process reported (booting, or already gone) runs no job.
    Quieted dynos numbered up to the count kept are listed for a restart when idle.
    """
    kept = min(current, target)
    restart = sorted(n for n, d in dynos.items() if n <= kept and d.quiet and d.busy == 0)
    leaving = [n for n in range(kept + 1, current + 1) if n in dynos]
    to_quiet = [n for n in leaving if not dynos[n].quiet]
    running = {n: dynos[n].busy for n in leaving if dynos[n].busy > 0}
    if not to_quiet and not running:
        return Step(restart=restart)
    parts = []
    if to_quiet:
        parts.append(f"quieting dyno(s) {', '.join(map(str, to_quiet))}")
    if running:
        jobs = sum(running.values())
        parts.append(f"{jobs:g} job(s) still running on dyno(s) {', '.join(map(str, running))}")
    refusal = f"no scale-down to {target} yet (quiet): " + "; ".join(parts)
    return Step(quiet=to_quiet, restart=restart, refusal=refusal)


def as_busy(dynos: Mapping[int, DynoJobs]) -> Busy:
    """The workers' jobs as the busy rules read them (a size change under `quiet`
    waits as under `wait`: until no dyno runs a job)."""
    by_dyno = {n: float(d.busy) for n, d in dynos.items()}
    return Busy(sum(by_dyno.values()), by_dyno=by_dyno)


def step(
    dynos: Mapping[int, DynoJobs],
    role: RoleSettings,
    current: int,
    desired: int | None,
    target: int | None,
) -> Step:
    """The quiet rule for one decision. `target`: the guardrails' count. Quieting is the
    scale-down's first half (a quieted dyno serves nothing), so only the dynos the
    guardrails' scale-down stops are quieted, never on data the guardrails refuse
    (stale, cooldown), and the refusal says what that scale-down waits for. A count
    above max_dynos is brought back regardless. Kept quieted dynos, up to the desired
    count (None: the input asks no scale-down), are listed for a restart."""
    wanted = current
    if desired is not None:
        wanted = min(current, clamp(desired, role.min_dynos, role.max_dynos))
    restart = plan(dynos, current, wanted).restart
    if target is None or not target < current <= role.max_dynos:
        return Step(restart=restart)
    stop = plan(dynos, current, target)
    return dataclasses.replace(stop, restart=restart)


class SidekiqQuieter:
    """The Sidekiq processes of one role in one Redis: those whose hostname is
    `<role>.<n>` and that serve one of the role's queues."""

    def __init__(self, url: str, role: str, queues: Iterable[str], timeout: float = 2.0) -> None:
        self.redis = redis.Redis.from_url(url, socket_timeout=timeout)
        self.role = role
        self.queues = set(queues)

    def _processes(self) -> dict[int, list[tuple[str, dict[bytes, bytes]]]]:
        """Each dyno number's live processes: (identity, hash)."""
        identities = sorted(member.decode() for member in self.redis.smembers("processes"))
        pipe = self.redis.pipeline(transaction=False)
        for identity in identities:
            pipe.hgetall(identity)
        by_dyno: dict[int, list[tuple[str, dict[bytes, bytes]]]] = {}
        for identity, fields in zip(identities, pipe.execute(), strict=True):
            number = self._dyno(fields)
            if number is not None:
                by_dyno.setdefault(number, []).append((identity, fields))
        return by_dyno

    def _dyno(self, fields: dict[bytes, bytes]) -> int | None:
        """The dyno number of a live process of this role (None: not one)."""
        try:
            info = json.loads(fields[b"info"])
            hostname, served = str(info["hostname"]), set(info["queues"])
        except (KeyError, ValueError, TypeError):
            return None  # expired (no hash) or not an entry Sidekiq wrote
        role, _, number = hostname.rpartition(".")
        if role != self.role or not number.isdigit() or not served & self.queues:
            return None
        return int(number)

    def dynos(self) -> dict[int, DynoJobs]:
        return {
            number: DynoJobs(
                quiet=all(f.get(b"quiet") == b"true" for _, f in processes),
                busy=sum(int(f.get(b"busy", b"0")) for _, f in processes),
            )
            for number, processes in self._processes().items()
        }

    def quiet(self, numbers: Iterable[int]) -> None:
        wanted = set(numbers)
        pipe = self.redis.pipeline(transaction=True)
        for number, processes in self._processes().items():
            if number in wanted:
                for identity, _ in processes:  # as Sidekiq::Process#quiet! does
                    pipe.lpush(f"{identity}-signals", "TSTP")
                    pipe.expire(f"{identity}-signals", SIGNAL_EXPIRY_SECONDS)
        pipe.execute()


def describe(role: RoleSettings) -> str:
    """For check-config: how a role on `quiet` quiets its dynos ("" on another rule)."""
    if role.scale_down_when_busy != "quiet":
        return ""
    if quieter_for(role) is not None:
        return " (Sidekiq: the dynos a scale-down stops are quieted first)"
    backends = ", ".join(sorted({queue.backend for queue in role.queues})) or "no queue"
    return (
        f" (acts as wait: quieting needs every queue of the role on Sidekiq in one Redis; "
        f"this role has {backends})"
    )


def quieter_for(role: RoleSettings) -> Quieter | None:
    """The role's quieter: its queues all on Sidekiq in one Redis; else None (the
    role's `quiet` acts as `wait`)."""
    backends = {queue.backend for queue in role.queues}
    urls = {queue.url for queue in role.queues}
    if backends != {"sidekiq"} or len(urls) != 1:
        return None
    return SidekiqQuieter(urls.pop(), role.role, [queue.name for queue in role.queues])


class Quieting:
    """The quiet rule in the scaler: reads each role's dynos through its quieter (kept
    per role), quiets those a scale-down stops, restarts kept quieted ones through
    Heroku (`restart(app, dyno_name)`), and holds the scale-down until they are idle."""

    def __init__(self, restart: Callable[[str, str], bool]) -> None:
        self.restart = restart
        self._quieters: dict[tuple[str, str], Quieter | None] = {}
        # (app, dyno) -> when this process last restarted it (monotonic seconds)
        self._restarted: dict[tuple[str, str], float] = {}

    def quieter(self, role: RoleSettings) -> Quieter | None:
        if role.key not in self._quieters:
            self._quieters[role.key] = quieter_for(role)
        return self._quieters[role.key]

    def read(self, role: RoleSettings) -> dict[int, DynoJobs] | None:
        """The role's dynos, or None where it has no quieter, the read fails or finds no
        worker named after a dyno of the role (hostnames not $DYNO, Fir's random dyno
        names, no worker up): the caller then applies `wait`, which reads Prometheus."""
        quieter = self.quieter(role)
        if quieter is None:
            return None
        try:
            dynos = quieter.dynos()
        except redis.RedisError as error:
            log.warning("%s/%s: cannot read the workers to quiet: %s", *role.key, error)
            return None
        if not dynos:
            log.warning("%s/%s: no worker named %s.<n>: quiet acts as wait", *role.key, role.role)
            return None
        return dynos

    def verdict(
        self, role: RoleSettings, i: RoleInput, current: int, verdict: Verdict, dry_run: bool
    ) -> Verdict:
        """`verdict` (the guardrails') under the quiet rule (see `step`)."""
        assert i.dynos is not None
        desired = i.request.desired if i.request.scale_down_allowed else None
        quiet = step(i.dynos, role, current, desired, verdict.target)
        note = "" if dry_run else self._act(role, quiet)
        if quiet.refusal:
            verdict = Verdict(None, quiet.refusal)
        return dataclasses.replace(verdict, reason=verdict.reason + note)

    def _act(self, role: RoleSettings, step: Step) -> str:
        """Quiet and restart as `step` asks; a note for the decision's reason."""
        quieter = self.quieter(role)
        try:
            if step.quiet and quieter is not None:
                quieter.quiet(step.quiet)
        except redis.RedisError as error:
            log.warning("%s/%s: cannot quiet dynos %s: %s", *role.key, step.quiet, error)
        restarted = [n for n in step.restart if self._restart(role, n)]
        if not restarted:
            return ""
        return f"; restarted quieted dyno(s) {', '.join(map(str, restarted))}, which stay"

    def _restart(self, role: RoleSettings, number: int) -> bool:
        """Restart a kept quieted dyno, once: its quiet process may still report itself
        until Heroku's SIGTERM reaches it and the new one boots (boot_time + the grace)."""
        key, now = (role.app, f"{role.role}.{number}"), time.monotonic()
        if now - self._restarted.get(key, -math.inf) < role.boot_time + SIGTERM_GRACE_SECONDS:
            return False
        if not self.restart(*key):
            return False
        self._restarted[key] = now
        return True


def heroku_restart(actuator: Any) -> Callable[[str, str], bool]:
    """restart(app, dyno_name) through the actuator's heroku3 connection (Heroku's
    DELETE /apps/{app}/dynos/{dyno}: the dyno's process gets SIGTERM and starts
    afresh; the app by name, no GET /apps/{name} first); True when Heroku took it."""

    def restart(app: str, dyno: str) -> bool:
        connection = getattr(actuator, "connection", None)
        if connection is None:
            return False
        try:
            return bool(heroku.app_by_name(connection, app).kill_dyno(dyno))
        except requests.RequestException as error:
            log.warning("%s: cannot restart quieted dyno %s: %s", app, dyno, error)
            return False

    return restart
