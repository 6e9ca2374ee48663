"""Heroku actuation: read and batch-update an app's formation, with retries.

One PATCH /apps/{app id}/formation carries every role of an app that changes.
429, 5xx and time-outs are retried with exponential back-off and jitter (a
bounded number of attempts; formation quantities are absolute, so repeating a
PATCH that may have landed is harmless). 422 cannot_run_above_limit is an
account limit: recorded and reported, never retried. A count is only ever
taken from Heroku's success answer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import heroku3
import requests

from dynoscaler import heroku
from scaler import metrics

T = TypeVar("T")

SUCCESS, FAILURE, LIMIT = "success", "failure", "limit"


@dataclass
class Result:
    """Heroku's final answer to one formation change.

    outcome: success | failure | limit; counts: the confirmed quantity per role
    (only on success); answer: what to record (status, message, attempts).
    """

    outcome: str
    counts: dict[str, int] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=dict)


class HerokuError(Exception):
    """A Heroku call that failed for good; kind names the class of failure."""

    def __init__(self, kind: str, message: str, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts

    def answer(self) -> dict[str, Any]:
        return {
            "error": self.kind,
            "status": self.status,
            "message": str(self),
            "attempts": self.attempts,
        }


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, status: int | None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class Actuator:
    """Reads and scales formations through heroku3 (dynoscaler.heroku.client)."""

    def __init__(
        self,
        connect: Callable[[], heroku3.api.Heroku] = heroku.client,
        attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self._connection: heroku3.api.Heroku | None = None
        self._apps: dict[str, heroku3.models.app.App] = {}
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    @property
    def connection(self) -> heroku3.api.Heroku:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def formation(self, app: str) -> dict[str, int]:
        """Current quantity per process type; raises HerokuError."""
        formations = self._retrying(app, lambda: self._app(app).process_formation())
        return {f.type: f.quantity for f in formations}

    def scale(self, app: str, targets: dict[str, int]) -> Result:
        """Set several roles of one app in one batch PATCH."""
        started = time.monotonic()
        try:
            changed = self._retrying(
                app, lambda: self._app(app).batch_scale_formation_processes(targets)
            )
        except HerokuError as error:
            outcome = LIMIT if error.kind == "limit" else FAILURE
            result = Result(outcome, answer=error.answer())
        else:
            counts = {f.type: f.quantity for f in changed}
            result = Result(SUCCESS, counts, {"formation": counts, **self._rate_limit()})
        metrics.ACTUATION_SECONDS.labels(app).observe(time.monotonic() - started)
        metrics.ACTUATIONS.labels(app, result.outcome).inc()
        return result

    def check(self) -> None:
        """Raise HerokuError unless the API answers (GET /account/rate-limits)."""
        # heroku3's is_authenticated caches its first answer and hides the error,
        # so the check goes through the same session directly.
        try:
            response = self.connection._session.get(self.connection._url_for("account/rate-limits"))
        except requests.RequestException as error:
            raise HerokuError("timeout", f"Heroku unreachable: {error}", None, 1) from None
        if not response.ok:
            raise HerokuError("client", _message(response), response.status_code, 1)

    def _app(self, name: str) -> heroku3.models.app.App:
        # GET /apps/{name} once per process: the app's id never changes.
        if name not in self._apps:
            self._apps[name] = self.connection.app(name)
        return self._apps[name]

    def _rate_limit(self) -> dict[str, Any]:
        remaining = self.connection._ratelimit_remaining
        if remaining is None:
            return {}
        metrics.RATE_LIMIT_REMAINING.labels(self.connection._heroku_url).set(float(remaining))
        return {"ratelimit_remaining": int(remaining)}

    def _retrying(self, app: str, call: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                try:
                    return call()
                finally:
                    self._rate_limit()
            except Exception as error:  # noqa: BLE001 - classified right below
                failure = _classify(error)
                metrics.HEROKU_ERRORS.labels(app, failure.kind).inc()
                if not isinstance(failure, _Retryable) or attempt == self.attempts:
                    raise HerokuError(failure.kind, str(failure), failure.status, attempt) from None
                self._sleep(self._delay(attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def _classify(error: Exception) -> _Retryable | HerokuError:
    if isinstance(error, heroku3.api.RateLimitExceeded):
        # heroku3 drops the response on 429; the message still holds the body.
        return _Retryable("rate_limit", str(error).strip(), 429)
    if isinstance(error, requests.Timeout | requests.ConnectionError):
        return _Retryable("timeout", f"no answer from Heroku: {error}", None)
    response = getattr(error, "response", None)
    if isinstance(error, requests.HTTPError) and response is not None:
        status = response.status_code
        if status >= 500:
            return _Retryable("server", _message(response), status)
        body_id = _body(response).get("id")
        kind = "limit" if status == 422 and body_id == "cannot_run_above_limit" else "client"
        return HerokuError(kind, _message(response), status, 0)
    return HerokuError("client", f"unexpected answer from Heroku: {error}", None, 0)


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
