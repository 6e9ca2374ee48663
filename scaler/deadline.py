"""How long Heroku may take inside one request, and whether its caller is still there.

Alertmanager gives a webhook delivery until the route's group_interval (10 s in
alertmanager/alertmanager.yml) and then gives up on it. Every Heroku call a
request makes (the formation read, the PATCH, a second PATCH at Heroku's limit,
the retries and their back-off) shares one budget well below that, so a hanging
Heroku costs a delivery at most HEROKU_BUDGET_SECONDS and the scaler answers
(502: Alertmanager's next delivery tries again) before Alertmanager stops
listening. No module here imports Flask or gunicorn.
"""

from __future__ import annotations

import contextvars
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Alertmanager's notify deadline for the scale route (group_interval).
ALERTMANAGER_DEADLINE_SECONDS = 10.0
# The most Heroku time one request may spend, all calls and retries together:
# 6 s leaves 4 s of Alertmanager's 10 s for the store's transactions, the
# network and a busy machine, and is still room for a hung call cut off at
# ATTEMPT_TIMEOUT_SECONDS, one retry and the PATCH (Heroku answers in well
# under a second when it is well).
HEROKU_BUDGET_SECONDS = 6.0
# One call's time-out (connect and each read): a hung call leaves room for another.
ATTEMPT_TIMEOUT_SECONDS = 3.0
# No call is started with less time left than this.
MIN_ATTEMPT_SECONDS = 0.5


def _never() -> bool:
    return False


@dataclass
class Deadline:
    """One request's Heroku budget, counted from its start on the monotonic clock."""

    budget: float = HEROKU_BUDGET_SECONDS
    started: float = field(default_factory=time.monotonic)
    caller_gone: Callable[[], bool] = _never

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return max(0.0, self.budget - self.elapsed())

    def attempt_timeout(self) -> float:
        """The time-out of the next call: what is left, at most ATTEMPT_TIMEOUT_SECONDS."""
        return min(ATTEMPT_TIMEOUT_SECONDS, self.remaining())

    def room_for(self, wait: float) -> bool:
        """True when waiting `wait` seconds still leaves time for a call."""
        return self.remaining() - wait >= MIN_ATTEMPT_SECONDS

    def outcome(self) -> dict[str, Any]:
        """What to add to a decision's answer about the request itself."""
        late = self.elapsed() > ALERTMANAGER_DEADLINE_SECONDS
        if self.caller_gone() or late:
            return {"caller_gone": True, "request_seconds": round(self.elapsed(), 3)}
        return {}


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "dynoscaler_request_deadline", default=None
)


def current() -> Deadline | None:
    """The Deadline of the request this thread serves (set by RequestDeadline), if any."""
    return _CURRENT.get()


class RequestDeadline:
    """WSGI middleware: one Deadline per request, from its arrival, for every app it acts on.

    `scaler serve` wraps the Flask app in it; Scaler.apply takes `current()` when
    its caller passes no deadline of its own.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        token = _CURRENT.set(Deadline(caller_gone=caller_gone_check(environ)))
        try:
            return self.app(environ, start_response)
        finally:
            _CURRENT.reset(token)


def caller_gone_check(environ: dict[str, Any]) -> Callable[[], bool]:
    """For a WSGI request under gunicorn: True once the client closed its connection.

    gunicorn hands the client's socket over as environ["gunicorn.socket"]; a
    peek that reads end-of-file means the peer hung up (Alertmanager gave up,
    or any client that timed out). Without a socket the answer is always False.
    """
    connection = environ.get("gunicorn.socket")
    if not isinstance(connection, socket.socket):
        return _never

    def gone() -> bool:
        try:
            return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False  # open, nothing sent: still waiting for the answer
        except OSError:
            return True  # reset or closed

    return gone
