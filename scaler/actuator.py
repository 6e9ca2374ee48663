"""Heroku actuation: read and batch-update an app's formation, within one time budget.

One PATCH /apps/{app name}/formation carries every role of an app that changes
(addressed by name: no GET /apps/{name} per process and app).
429, 5xx and time-outs are retried with exponential back-off and jitter
(formation quantities are absolute, so repeating a PATCH that may have landed
is harmless), all within the request's Deadline (scaler/deadline.py): every
call's time-out is what is left of it, at most ATTEMPT_TIMEOUT_SECONDS, and a
back-off that would not leave room for another call ends the attempts at once.
A 429 waits for Heroku's Retry-After when it sends one, else for its bucket to
refill (`refill`, heroku.rate_limit an hour: one token every 0.8 s at 4,500),
doubling per attempt; no
process on the same decision store (every gunicorn worker, the reconcile loop)
then makes a call until that wait is over (`Holds`: other requests fail fast
instead of adding to a retry storm). 422 cannot_run_above_limit is an account
limit: never retried; the limit Heroku names comes back in the Result for the
caller to remember. A count is only ever taken from Heroku's success answer.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import heroku3
import requests

from dynoscaler import heroku
from scaler import metrics
from scaler.deadline import Deadline

T = TypeVar("T")
log = logging.getLogger("dynoscaler.scaler")

SUCCESS, FAILURE, LIMIT = "success", "failure", "limit"
# A refusal naming only limits the caller already knew (the retry after a limit's
# back-off): counted apart, so ScalerActuationFailing fires once per new limit.
HELD = "held"

# Heroku refills its 4,500-token bucket at 75 a minute: one token every 0.8 s.
TOKEN_SECONDS = 3600 / 4500
REFILL_PER_SECOND = 1 / TOKEN_SECONDS
# How often /healthz asks Heroku at most (GET /account/rate-limits, which costs
# no token), how long that call may take, and how long /healthz waits for an
# answer once it has an earlier one (it never waits on a hanging Heroku).
PROBE_INTERVAL_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2.0
PROBE_WAIT_SECONDS = 0.02


@dataclass
class Result:
    """Heroku's final answer to one formation change.

    outcome: success | failure | limit; counts: the confirmed quantity per role
    (only on success); answer: what to record (status, message, attempts);
    limits: on a limit, the most dynos Heroku runs per refused role.
    """

    outcome: str
    counts: dict[str, int] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)  # on success: each role's dyno size


class HerokuError(Exception):
    """A Heroku call that failed for good; kind names the class of failure.

    retry_after: seconds before Heroku takes a call again (429), when known;
    limit and size: what a 422 cannot_run_above_limit named.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None,
        attempts: int,
        retry_after: float | None = None,
        limit: int | None = None,
        size: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after
        self.limit = limit
        self.size = size

    def answer(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "error": self.kind,
            "status": self.status,
            "message": str(self),
            "attempts": self.attempts,
        }
        for key in ("retry_after", "limit", "size"):
            if getattr(self, key) is not None:
                answer[key] = getattr(self, key)
        return answer


class _Retryable(Exception):
    def __init__(
        self, kind: str, message: str, status: int | None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class Holds(Protocol):
    """A hold on Heroku calls shared between processes (scaler.store.Store)."""

    def held_until(self, account: str) -> float: ...

    def hold(self, account: str, until: float) -> None: ...


class Actuator:
    """Reads and scales formations through heroku3 (dynoscaler.heroku.client).

    Safe to share between the threads of one process: each call's deadline and
    last response are kept per thread.
    """

    def __init__(
        self,
        connect: Callable[[], heroku3.api.Heroku] = heroku.client,
        attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        budget: float | None = None,
        holds: Holds | None = None,
        refill: float = REFILL_PER_SECOND,
    ) -> None:
        """holds: where a 429's hold is shared (the decision store): every process
        on it (gunicorn workers, the reconcile loop) then waits it out. refill: the
        tokens a second Heroku's bucket gives back (heroku_budget.Budget.refill),
        which a 429 without Retry-After waits for."""
        self._connect = connect
        self.holds = holds
        self._connection: heroku3.api.Heroku | None = None
        self._sizes: dict[str, dict[str, str]] = {}  # per app, each role's dyno size
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.budget = budget
        self.refill = refill
        self._sleep = sleep
        self._lock = threading.Lock()
        self._local = threading.local()
        self._held_until = 0.0  # monotonic: no call before (after a 429)
        self._seen: tuple[float | None, float] = (None, 0.0)  # RateLimit-Remaining, when
        self._probe = _Probe(self._check_now)

    @property
    def connection(self) -> heroku3.api.Heroku:
        with self._lock:
            if self._connection is None:
                connection = self._connect()
                self._bound(connection)
                self._connection = connection
            return self._connection

    def _bound(self, connection: heroku3.api.Heroku) -> None:
        """Give every call of `connection` the calling thread's deadline as its time-out,
        and keep the raw response (heroku3 drops it on a 429, and Retry-After with it)."""
        session = connection._session
        send = session.request

        def request(method: str, url: str, **kwargs: Any) -> requests.Response:
            deadline = getattr(self._local, "deadline", None)
            if deadline is not None:
                kwargs["timeout"] = deadline.attempt_timeout()
            response = send(method, url, **kwargs)
            self._local.response = response
            self._note(response)
            return response

        session.request = request

    @property
    def account(self) -> str:
        """Which Heroku account this is: the API address and a short fingerprint of the
        key (a limit learned under one account says nothing about another)."""
        key = os.environ.get("HEROKU_API_KEY", "")
        return f"{heroku.api_url()} {hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def _deadline(self, deadline: Deadline | None) -> Deadline:
        if deadline is not None:
            return deadline
        return Deadline() if self.budget is None else Deadline(self.budget)

    def formation(self, app: str, deadline: Deadline | None = None) -> dict[str, int]:
        """Current quantity per process type; raises HerokuError."""
        formations = self._retrying(
            app, lambda: self._app(app).process_formation(), self._deadline(deadline)
        )
        self._sizes[app] = {f.type: str(f.size) for f in formations}
        return {f.type: f.quantity for f in formations}

    def scale(
        self,
        app: str,
        targets: dict[str, int],
        deadline: Deadline | None = None,
        at_limit: bool = False,
        sizes: dict[str, str] | None = None,
        known_limits: dict[str, int] | None = None,
    ) -> Result:
        """Set several roles of one app in one batch PATCH.

        at_limit: the targets are held at Heroku's limit below the counts asked
        for; the change is then counted as outcome limit even when Heroku takes it.
        sizes: the dyno size to set with the quantity, for the roles named.
        known_limits: the limits the caller knows per role; a refusal naming only
        those is counted as outcome held.
        """
        started = time.monotonic()
        try:
            changed = self._retrying(
                app, lambda: self._batch(app, targets, sizes or {}), self._deadline(deadline)
            )
        except HerokuError as error:
            if error.kind == "limit":
                limits = self._held(app, targets, error)
                result = Result(LIMIT, answer=error.answer(), limits=limits)
            else:
                result = Result(FAILURE, answer=error.answer())
        else:
            counts = {f.type: f.quantity for f in changed}
            result = Result(SUCCESS, counts, {"formation": counts, **self._rate_limit()})
            if sizes:
                result.sizes = {f.type: str(f.size) for f in changed}
                result.answer["sizes"] = result.sizes
                self._sizes.setdefault(app, {}).update(result.sizes)
        metrics.ACTUATION_SECONDS.labels(app).observe(time.monotonic() - started)
        counted = LIMIT if at_limit and result.outcome == SUCCESS else result.outcome
        known = known_limits or {}
        if result.limits and all(known.get(r) == n for r, n in result.limits.items()):
            counted = HELD
        metrics.ACTUATIONS.labels(app, counted).inc()
        return result

    def _batch(
        self, app: str, targets: dict[str, int], sizes: dict[str, str]
    ) -> list[heroku3.models.formation.Formation]:
        """PATCH /apps/{name}/formation; with sizes, each update carries its size too
        (heroku3's batch calls set either quantities or sizes, not both at once)."""
        found = self._app(app)
        if not sizes:
            return found.batch_scale_formation_processes(targets)
        updates = [
            {"type": role, "quantity": n, **({"size": sizes[role]} if role in sizes else {})}
            for role, n in targets.items()
        ]
        connection = found._h
        response = connection._http_resource(
            method="PATCH",
            resource=("apps", found.id, "formation"),
            data=connection._resource_serialize({"updates": updates}),
        )
        response.raise_for_status()
        items = connection._resource_deserialize(response.content.decode("utf-8"))
        return connection._process_items(items, obj=heroku3.models.formation.Formation)

    def sizes(self, app: str) -> dict[str, str]:
        """Each role's dyno size as the last formation read or change showed it."""
        return dict(self._sizes.get(app, {}))

    def _held(self, app: str, targets: dict[str, int], error: HerokuError) -> dict[str, int]:
        """The roles a cannot_run_above_limit holds, with the limit: those sent above it,
        of the dyno size it names when the last formation read knew the sizes."""
        if error.limit is None:
            return {}
        above = {role for role, n in targets.items() if n > error.limit}
        sizes = self._sizes.get(app, {})
        if error.size:
            of_size = {r for r in above if sizes.get(r, "").lower() == error.size.lower()}
            above = of_size or above
        return {role: error.limit for role in sorted(above)}

    def check(self) -> None:
        """Raise HerokuError unless the API answered its last probe.

        The probe (GET /account/rate-limits) runs in the background at most every
        PROBE_INTERVAL_SECONDS; this waits for it at most PROBE_WAIT_SECONDS once
        an earlier answer is known, so /healthz answers at once while Heroku hangs
        (reporting the last answer, or the probe's time-out once it has passed).
        """
        error = self._probe.result()
        if error is not None:
            raise error

    def start_probe(self) -> None:
        """Ask Heroku in the background now (`scaler serve` does at each worker's start),
        so the first /healthz has an answer to give rather than a call to wait for."""
        self._probe.start()

    def _check_now(self) -> None:
        # heroku3's is_authenticated caches its first answer and hides the error,
        # so the check goes through the same session directly.
        connection = self.connection
        self._local.deadline = Deadline(PROBE_TIMEOUT_SECONDS)
        try:
            response = connection._session.get(connection._url_for("account/rate-limits"))
        except requests.RequestException as error:
            raise HerokuError("timeout", f"Heroku unreachable: {error}", None, 1) from None
        finally:
            self._local.deadline = None
        if not response.ok:
            raise HerokuError("client", _message(response), response.status_code, 1)

    def _app(self, name: str) -> heroku3.models.app.App:
        return heroku.app_by_name(self.connection, name)

    def _rate_limit(self) -> dict[str, Any]:
        response = getattr(self._local, "response", None)
        remaining = None if response is None else response.headers.get("RateLimit-Remaining")
        if remaining is None or not remaining.strip().isdigit():
            return {}
        return {"ratelimit_remaining": int(remaining)}

    def _note(self, response: requests.Response) -> None:
        value = response.headers.get("RateLimit-Remaining", "").strip()
        if response.status_code == 429:
            self._seen = (0.0, time.monotonic())
        elif value.isdigit():
            self._seen = (float(value), time.monotonic())

    def remaining(self) -> tuple[float | None, float]:
        """Heroku's RateLimit-Remaining in this actuator's last answer (a 429: 0) and
        when (monotonic); None before any answer."""
        return self._seen

    def held_for(self) -> float:
        """Seconds until this process calls Heroku again after a 429, its own or one
        another process on the same holds met (0: free to call)."""
        held = self._held_until - time.monotonic()
        if self.holds is not None:
            try:
                held = max(held, self.holds.held_until(self.account) - time.time())
            except Exception as error:  # noqa: BLE001 - the store's failure is not Heroku's
                log.warning("shared Heroku hold unreadable, this process's own used: %s", error)
        return max(0.0, held)

    def _hold(self, seconds: float) -> None:
        with self._lock:
            self._held_until = max(self._held_until, time.monotonic() + seconds)
        if self.holds is not None:
            try:
                self.holds.hold(self.account, time.time() + seconds)
            except Exception as error:  # noqa: BLE001 - held here at least
                log.warning("shared Heroku hold not stored, held in this process only: %s", error)

    def _retrying(self, app: str, call: Callable[[], T], deadline: Deadline) -> T:
        for attempt in range(1, self.attempts + 1):
            held = self.held_for()
            if held > 0 and not deadline.room_for(held):
                raise HerokuError(
                    "rate_limit",
                    f"Heroku answered 429: no call for {held:.1f} s more, past this "
                    f"request's Heroku budget ({deadline.remaining():.1f} s left); given up",
                    429,
                    attempt - 1,
                    retry_after=round(held, 3),
                )
            if held > 0:
                self._sleep(held)
            if not deadline.room_for(0):
                raise HerokuError(
                    "timeout",
                    f"no time left of this request's Heroku budget ({deadline.budget:g} s)",
                    None,
                    attempt - 1,
                )
            self._local.deadline, self._local.response = deadline, None
            try:
                try:
                    return call()
                finally:
                    self._local.deadline = None
                    self._rate_limit()
            except Exception as error:  # noqa: BLE001 - classified right below
                failure = _classify(error, getattr(self._local, "response", None))
                metrics.HEROKU_ERRORS.labels(app, failure.kind).inc()
                if not isinstance(failure, _Retryable):
                    failure.attempts = attempt
                    raise failure from None
                delay = self._delay(attempt, failure)
                if failure.kind == "rate_limit":
                    self._hold(delay)
                retry_after = failure.retry_after
                if attempt == self.attempts or not deadline.room_for(delay):
                    message = str(failure)
                    if attempt < self.attempts:
                        message += (
                            f"; the next attempt in {delay:.1f} s would pass this request's "
                            f"Heroku budget ({deadline.remaining():.1f} s left): given up"
                        )
                    raise HerokuError(
                        failure.kind, message, failure.status, attempt, retry_after=retry_after
                    ) from None
                if failure.kind != "rate_limit":
                    self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, attempt: int, failure: _Retryable) -> float:
        if failure.kind == "rate_limit":
            # Never sooner than Heroku asks, nor than its bucket gives a token back.
            refill = min(self.max_delay, 2 ** (attempt - 1) / self.refill)
            return max(failure.retry_after or 0.0, random.uniform(refill, 1.5 * refill))
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class _Probe:
    """The last answer of a background health call, refreshed at most every interval."""

    def __init__(self, run: Callable[[], None]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._error: HerokuError | None = None
        self._at: float | None = None  # monotonic time of the last answer
        self._running: threading.Event | None = None
        self._started = 0.0  # monotonic start of the last probe

    def start(self) -> bool:
        """Start a probe unless one runs or the last answer is recent; True if started."""
        with self._lock:
            now = time.monotonic()
            due = self._at is None or now - self._at >= PROBE_INTERVAL_SECONDS
            if self._running is not None or not due:
                return False
            self._running = threading.Event()
            self._started = now
            threading.Thread(target=self._probe, args=(self._running,), daemon=True).start()
            return True

    def result(self) -> HerokuError | None:
        started_here = self.start()
        with self._lock:
            running, first = self._running, self._at is None
        if running is not None:
            # Only a first probe started by this very call is waited for (bounded by
            # its own time-out): an answer is due, and no earlier one exists.
            wait = PROBE_TIMEOUT_SECONDS + 1 if first and started_here else PROBE_WAIT_SECONDS
            running.wait(wait)
        with self._lock:
            if self._at is None:
                asked = time.monotonic() - self._started
                return HerokuError("timeout", f"no answer from Heroku yet ({asked:.1f} s)", None, 1)
            return self._error

    def _probe(self, done: threading.Event) -> None:
        error = None
        try:
            self._run()
        except HerokuError as failure:
            error = failure
        except Exception as failure:  # noqa: BLE001 - any failure is a failed check
            error = HerokuError("client", f"{type(failure).__name__}: {failure}", None, 1)
        with self._lock:
            self._error, self._at, self._running = error, time.monotonic(), None
        done.set()


_LIMIT = re.compile(r"more than (\d+) (\S+) size")


def _classify(error: Exception, response: requests.Response | None) -> _Retryable | HerokuError:
    if isinstance(error, heroku3.api.RateLimitExceeded):
        # heroku3 drops the response on 429; the session kept it for Retry-After.
        retry_after = None if response is None else _retry_after(response)
        return _Retryable("rate_limit", str(error).strip(), 429, retry_after)
    if isinstance(error, requests.Timeout | requests.ConnectionError):
        return _Retryable("timeout", f"no answer from Heroku: {error}", None)
    response = getattr(error, "response", None)
    if isinstance(error, requests.HTTPError) and response is not None:
        status = response.status_code
        if status >= 500:
            return _Retryable("server", _message(response), status)
        body = _body(response)
        if status == 422 and body.get("id") == "cannot_run_above_limit":
            limit, size = _limit(body)
            return HerokuError("limit", _message(response), status, 0, limit=limit, size=size)
        return HerokuError("client", _message(response), status, 0)
    return HerokuError("client", f"unexpected answer from Heroku: {error}", None, 0)


def _limit(body: dict[str, Any]) -> tuple[int | None, str | None]:
    """The limit and dyno size of a cannot_run_above_limit body: its "limit" field
    (Heroku's error carries one), else the number in its message ("Cannot run more
    than 2 Free size dynos.")."""
    found = _LIMIT.search(str(body.get("message", "")))
    limit = body.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        limit = int(found.group(1)) if found else None
    size = body.get("size") if isinstance(body.get("size"), str) else None
    return limit, size or (found.group(2) if found else None)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: requests.Response) -> str:
    body = _body(response)
    text = body.get("message") or response.text[:200]
    return f"HTTP {response.status_code} {body.get('id', '')}: {text}".replace("  ", " ")
