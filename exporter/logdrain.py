"""Heroku router log drain: request counts and service times per app and role.

Heroku's Logplex POSTs batches of syslog lines (Content-Type
application/logplex-1), each framed by its length in bytes: `<octets> <line>`.
Router lines look like

    <158>1 2026-11-23T10:00:00+00:00 host heroku router - at=info method=GET path="/"
    host=shop.herokuapp.com request_id=... dyno=web.1 connect=1ms service=23ms status=200

Each one with a dyno and a service time counts one request of that dyno's
process type (web.1 -> web), if the settings give that role `requests: router`.
Other lines (the app's own output, other roles) are ignored, so a drain cannot
create series the settings do not name.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from exporter.metrics import DURATION_BUCKETS, HistogramSample, Sample, bucket_index

_FIELD = re.compile(r'(\w+)=("[^"]*"|\S*)')
_DURATION = re.compile(r"(\d+(?:\.\d+)?)ms")


class BadDrainBody(ValueError):
    """A body that is not Logplex framing; the message says where it breaks."""


def frames(body: bytes) -> list[str]:
    """Split a Logplex body into its syslog lines."""
    lines, position = [], 0
    while True:
        while position < len(body) and body[position] in b" \r\n":
            position += 1
        if position == len(body):
            return lines
        space = body.find(b" ", position)
        length = body[position:space]
        if space < 0 or not length.isdigit():
            raise BadDrainBody(f"expected an octet count at byte {position}, found {length[:20]!r}")
        start, end = space + 1, space + 1 + int(length)
        if end > len(body):
            raise BadDrainBody(
                f"frame at byte {position} says {int(length)} octets, body ends first"
            )
        lines.append(body[start:end].decode("utf-8", "replace").rstrip("\n"))
        position = end


def router_request(line: str) -> tuple[str, float] | None:
    """(process type, service seconds) of a router line; None for any other line."""
    parts = line.split(" ", 6)
    if len(parts) < 7 or parts[3] != "heroku" or parts[4] != "router":
        return None
    fields = {key: value.strip('"') for key, value in _FIELD.findall(parts[6])}
    service = _DURATION.fullmatch(fields.get("service", ""))
    role = fields.get("dyno", "").split(".", 1)[0]
    if not role or service is None:
        return None
    return role, float(service.group(1)) / 1000


class RouterStats:
    """Request counts and service-time histograms per (app, role), kept in memory."""

    def __init__(self, roles: Iterable[tuple[str, str]]) -> None:
        self._lock = threading.Lock()
        self._stats = {key: ([0] * (len(DURATION_BUCKETS) + 1), [0.0]) for key in roles}
        self.apps = frozenset(app for app, _ in self._stats)

    def receive(self, app: str, body: bytes) -> int:
        """Count the router lines of one drain POST; returns how many were counted."""
        requests = [
            r for r in map(router_request, frames(body)) if r and (app, r[0]) in self._stats
        ]
        with self._lock:
            for role, seconds in requests:
                counts, total = self._stats[(app, role)]
                counts[bucket_index(seconds)] += 1
                total[0] += seconds
        return len(requests)

    def samples(self) -> list[Sample | HistogramSample]:
        with self._lock:
            snapshot = [(key, tuple(c), t[0]) for key, (c, t) in self._stats.items()]
        samples: list[Sample | HistogramSample] = []
        for key, counts, total in snapshot:
            samples.append(Sample("dynoscaler_router_requests", key, sum(counts)))
            samples.append(HistogramSample("dynoscaler_router_service_seconds", key, counts, total))
        return samples
