"""The Heroku Platform API budget, one account's, shared by the exporter and the scaler.

Heroku gives each account a bucket of `rate_limit` tokens (4,500) refilled at
`rate_limit` an hour (75 a minute); every call but GET /account/rate-limits
takes one, and every client of the account draws on the same bucket (people's
CLI, deploys, other tools). dynoscaler may spend `heroku.budget_share` of the
refill. The scaler's PATCHes come first: the exporter's formation poller takes
what that share leaves after the scaler's spend, at most 1 - SCALER_RESERVE of
it and at least POLLER_MIN_SHARE. The scaler's spend is what it counted itself
(its dynoscaler_heroku_api_requests_total, every call that takes a token) over
the last CHANGE_WINDOW_SECONDS, read from Prometheus (`ScalerSpend`), plus
that figure's standard error, so the poller aims below what is left by as much
as the scaler's burstiness makes its next window uncertain; while
Prometheus cannot tell, it is estimated from the formation changes the poller
learns of (webhook deliveries, or reads that find new counts):
SCALER_TOKENS_PER_CHANGE each (the most a change costs: its read and its
PATCH); a change by hand counts too, so that estimate errs on the side of
leaving room. The poller reads one app at a time
(round-robin), and pauses while the bucket is below FLOOR_SHARE of its size,
for as long as the refill needs to bring it back, so the scaler always has
tokens left; below that floor the scaler too skips its formation read before
a PATCH where it knows the counts (`Budget.spare`), so the floor is the
PATCHes'. A 429 is a bucket at 0 (and its Retry-After, when Heroku sends one,
is waited for too): never a retry storm; the scaler shares its 429 hold
between its processes through the decision store (scaler/actuator.py).

Every answer passes through `record` (dynoscaler.heroku's session calls it):
it counts the call by client and kind and keeps the last RateLimit-Remaining,
which the poller's pacing reads.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from prometheus_client import Counter, Gauge

from dynoscaler.config import HerokuSettings
from scaler.prometheus import PrometheusError, query

log = logging.getLogger("dynoscaler.heroku")

HOUR = 3600.0
# Share of dynoscaler's budget the exporter's poller leaves to the scaler's reads and PATCHes.
SCALER_RESERVE = 0.25
# The poller's least share of that budget, however often formations change: its reads
# reconcile what webhooks miss.
POLLER_MIN_SHARE = 0.25
# The most tokens the scaler spends on one formation change: its formation read
# (spared where the exporter's webhook-fed counts confirm its own) and its PATCH.
SCALER_TOKENS_PER_CHANGE = 2
# How far back the scaler's spend and the formation changes are counted.
CHANGE_WINDOW_SECONDS = 600.0
# How often the poller asks Prometheus for the scaler's spend, and how long it waits.
SPEND_REFRESH_SECONDS = 30.0
SPEND_QUERY_TIMEOUT_SECONDS = 2.0
# Deliveries of one app this close together are one change (a batch PATCH of several roles).
SAME_CHANGE_SECONDS = 2.0
# Below this share of the bucket the poller pauses: the rest is the scaler's.
FLOOR_SHARE = 0.02
# Calls that take no token: the rate-limit endpoint, and answers of an empty bucket.
FREE_KINDS = ("rate_limits", "rate_limited")

REQUESTS = Counter(
    "dynoscaler_heroku_api_requests",
    "Heroku Platform API calls by client (exporter, scaler, cli) and kind",
    ["client", "kind"],
)
REMAINING = Gauge(
    "dynoscaler_heroku_rate_limit_remaining",
    "RateLimit-Remaining of Heroku's last answer to this client",
    ["client"],
    multiprocess_mode="mostrecent",
)

_APP_PATH = re.compile(r"^/apps/[^/]+(?P<rest>/.*)?$")


def kind(method: str, url: str) -> str:
    """What a call is, for the spend's `kind` label (never the app: bounded cardinality)."""
    path = urlsplit(url).path.rstrip("/")
    if path == "/account/rate-limits":
        return "rate_limits"
    match = _APP_PATH.match(path)
    if match is None:
        return "other"
    rest = match.group("rest") or ""
    if rest.startswith("/formation"):
        return "formation_read" if method.upper() == "GET" else "formation_update"
    if rest.startswith("/webhooks"):
        return "webhooks"
    return "app" if not rest else "other"


class _Observed:
    """The last RateLimit-Remaining this process saw, and until when a 429 asked to wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.remaining: float | None = None
        self.at = 0.0  # monotonic time of that answer
        self.retry_until = 0.0

    def note(self, remaining: float | None, retry_after: float | None) -> None:
        with self._lock:
            now = time.monotonic()
            if remaining is not None:
                self.remaining, self.at = remaining, now
            if retry_after is not None:
                self.retry_until = max(self.retry_until, now + retry_after)

    def snapshot(self) -> tuple[float | None, float, float]:
        with self._lock:
            return self.remaining, self.at, self.retry_until


OBSERVED = _Observed()


def record(client: str, response: requests.Response) -> None:
    """Count one answer of Heroku's and note its RateLimit-Remaining (and a 429's wait)."""
    request = response.request
    limited = response.status_code == 429
    what = "rate_limited" if limited else kind(request.method or "GET", request.url or "")
    REQUESTS.labels(client, what).inc()
    remaining = _number(response.headers.get("RateLimit-Remaining"))
    if remaining is not None:
        REMAINING.labels(client).set(remaining)
    retry_after = _number(response.headers.get("Retry-After")) if limited else None
    OBSERVED.note(0.0 if limited else remaining, retry_after)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class Budget:
    """The pace of the exporter's formation reads within `settings`' share of the account."""

    settings: HerokuSettings
    observed: _Observed = OBSERVED

    @property
    def refill(self) -> float:
        """Tokens Heroku gives back per second."""
        return self.settings.rate_limit / HOUR

    @property
    def tokens_per_minute(self) -> float:
        """What dynoscaler (exporter and scaler together) may spend a minute."""
        return self.settings.share * self.refill * 60

    @property
    def floor(self) -> float:
        return self.settings.rate_limit * FLOOR_SHARE

    def poller_rate(self, scaler_per_second: float = 0.0) -> float:
        """Formation reads a second the poller may make: dynoscaler's share of the refill
        less the scaler's tokens a second, within the poller's bounds."""
        ours = self.settings.share * self.refill
        left = ours - scaler_per_second
        return min(ours * (1 - SCALER_RESERVE), max(ours * POLLER_MIN_SHARE, left))

    def read_gap(self, apps: int, interval: float, scaler_per_second: float = 0.0) -> float:
        """Seconds between two formation reads (one app each): `interval` per app, or
        slower where the poller's part of the budget does not cover that many apps."""
        return max(interval / max(apps, 1), 1 / self.poller_rate(scaler_per_second))

    def pause(self) -> float:
        """Seconds the poller waits before its next read: until a 429's Retry-After, and
        while the bucket is below the floor, until the refill brings it back."""
        remaining, at, retry_until = self.observed.snapshot()
        now = time.monotonic()
        waits = [retry_until - now]
        if remaining is not None and remaining < self.floor:
            waits.append((self.floor - remaining) / self.refill - (now - at))
        return max(0.0, *waits)

    def spare(self, remaining: float | None, at: float) -> bool:
        """Whether a call its caller can do without (the scaler's formation read before a
        PATCH) may take a token: not while the bucket, `remaining` as seen at `at`
        (monotonic) plus the refill since, is below the floor the poller leaves to PATCHes."""
        if remaining is None:
            return True
        return remaining + (time.monotonic() - at) * self.refill >= self.floor

    def may_sweep(self) -> bool:
        """Whether a start-up read of every app may go on back to back: only while the
        bucket holds more than the part others are owed (1 - share of it) and the floor."""
        remaining, _, retry_until = self.observed.snapshot()
        if retry_until > time.monotonic():
            return False
        owed = (1 - self.settings.share) * self.settings.rate_limit + self.floor
        return remaining is None or remaining > owed


class ChangeRate:
    """Formation changes a second over the last `window_seconds`, one per app and
    batch (deliveries of one app within SAME_CHANGE_SECONDS are one change)."""

    def __init__(self, window_seconds: float = CHANGE_WINDOW_SECONDS) -> None:
        self.window = window_seconds
        self._lock = threading.Lock()
        self._times: deque[float] = deque()  # monotonic, oldest first
        self._last: dict[str, float] = {}  # each app's last counted change

    def note(self, app: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last.get(app, -math.inf) >= SAME_CHANGE_SECONDS:
                self._times.append(now)
            self._last[app] = now

    def per_second(self) -> float:
        with self._lock:
            oldest = time.monotonic() - self.window
            while self._times and self._times[0] < oldest:
                self._times.popleft()
            return len(self._times) / self.window


# The window's parts whose scatter gives the uncertainty of the scaler's spend.
SPEND_PARTS = 5
# The scaler's calls that take a token, counted by the scaler itself.
_SCALER_CALLS = 'dynoscaler_heroku_api_requests_total{{client="scaler", kind!~"{free}"}}'
# Its rate over the window, plus that rate's standard error: the standard deviation
# of its rates over the window's SPEND_PARTS parts over the square root of their number.
_SCALER_SPEND = (
    "sum(rate({calls}[{window}ms])) + on () ("
    "stddev_over_time(sum(rate({calls}[{part}ms]))[{window}ms:{part}ms]) / {root}"
    " or vector(0))"
)


class ScalerSpend:
    """The scaler's Heroku tokens a second, as the poller leaves them to it: its own count
    over CHANGE_WINDOW_SECONDS from Prometheus at `prometheus_url` where that answers with
    it, plus that figure's standard error (the scatter of its rate over the window's
    parts: a bursty scaler's next window may spend more than its last), else
    SCALER_TOKENS_PER_CHANGE per formation change learned."""

    def __init__(
        self,
        prometheus_url: str | None = None,
        window_seconds: float = CHANGE_WINDOW_SECONDS,
        refresh_seconds: float = SPEND_REFRESH_SECONDS,
    ) -> None:
        self.prometheus_url = prometheus_url
        self.window = window_seconds
        self.refresh_seconds = refresh_seconds
        self.measured: float | None = None  # tokens a second, from Prometheus
        self._asked = -math.inf  # monotonic

    def refresh(self) -> None:
        """Ask Prometheus again once `refresh_seconds` have passed (from the poller's
        thread, so a scrape never waits on it); no answer: the estimate stands."""
        if self.prometheus_url is None or time.monotonic() - self._asked < self.refresh_seconds:
            return
        self._asked = time.monotonic()
        promql = _SCALER_SPEND.format(
            calls=_SCALER_CALLS.format(free="|".join(FREE_KINDS)),
            window=round(self.window * 1000),
            part=round(self.window * 1000 / SPEND_PARTS),
            root=math.sqrt(SPEND_PARTS),
        )
        try:
            result = query(self.prometheus_url, promql, SPEND_QUERY_TIMEOUT_SECONDS)
        except PrometheusError as error:
            log.info("the scaler's Heroku spend unknown, estimated from changes: %s", error)
            result = []
        value = float(result[0]["value"][1]) if result else math.nan
        self.measured = value if math.isfinite(value) and value >= 0 else None

    def per_second(self, changes: ChangeRate) -> float:
        if self.measured is not None:
            return self.measured
        return changes.per_second() * SCALER_TOKENS_PER_CHANGE
