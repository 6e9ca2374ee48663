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

Heroku's error lines count per role and code in dynoscaler_router_errors_total:
the router's `at=error code=H12 ... dyno=web.1 ...` (H10 app crashed, H12
request timeout, H13 connection closed, ...) and a dyno's own `heroku web.1 -
Error R14 (Memory quota exceeded)` (R10 boot timeout, R14/R15 memory). A code
is a letter and two digits ([HRL][0-9][0-9], at most 300 values), never a path,
request id or address. A router error no dyno took (H10 has `dyno=`) is the
`web` role's: on Heroku only the web process type takes HTTP traffic.

A field is `key=value` after a space; a quoted value ("...") may hold spaces
and never counts as a field, so a client's path or X-Forwarded-For header
(`path="..."`, `fwd="..."`) cannot pass for a dyno or a service time. Where a
key repeats, the last one counts.

The lines are read as bytes, without decoding them, about 3 µs a line: the
drain takes 50,000 lines a second on one core with room for the HTTP server.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Iterable

from exporter.metrics import DURATION_BUCKETS, HistogramSample, Sample

_QUOTED = re.compile(rb'"[^"]*"')
# A dyno= value's role: Cedar's web.1 -> web, Fir's web-12a34b56d-e78f9 -> web (the
# last two dash-separated parts name the dyno); and a service= value (a finite float).
_ROLE = re.compile(rb"([^ .]+)\.|([^ .]+)-[0-9a-z]+-[0-9a-z]+(?![^ ])")
_SERVICE = re.compile(rb"(\d{1,15}(?:\.\d{1,15})?)ms(?![^ ])")
_BLANKS = b" \r\n"
# A router error's code (after ` code=`) or a dyno error line's (after ` - Error `).
_CODE = re.compile(rb"([HRL][0-9][0-9])(?![^ ])")
_DYNO_ERROR = re.compile(rb"<\d{1,3}>\d+ [^ ]+ [^ ]+ heroku ([^ ]+) - Error ([HRL][0-9][0-9]) ")
# The codes every router role has a series for from the start (at 0), so that
# rate() sees their first error; others appear when first seen.
STANDING_CODES = ("H10", "H12", "H13", "R14", "R15")
WEB_ROLE = b"web"


class BadDrainBody(ValueError):
    """A body that is not Logplex framing; the message says where it breaks."""


def frame_spans(body: bytes) -> list[tuple[int, int]]:
    """(start, end) of each syslog line of a Logplex body; BadDrainBody where framing breaks."""
    spans, position, size, find = [], 0, len(body), body.find
    most_digits = len(str(size))
    while True:
        while position < size and body[position] in _BLANKS:
            position += 1
        if position == size:
            return spans
        space = find(b" ", position)
        length = body[position:space]
        if space < 0 or not length.isdigit():
            raise BadDrainBody(f"expected an octet count at byte {position}, found {length[:20]!r}")
        # More digits than the body's own length has: it cannot fit (and int() of
        # over 4,300 digits would raise a ValueError of its own).
        end = space + 1 + int(length) if len(length) <= most_digits else size + 1
        if end > size:
            octets = int(length) if len(length) <= 20 else f"{length[:20].decode()}..."
            raise BadDrainBody(f"frame at byte {position} says {octets} octets, body ends first")
        spans.append((space + 1, end))
        position = end


def frames(body: bytes) -> list[str]:
    """Split a Logplex body into its syslog lines."""
    return [body[s:e].decode("utf-8", "replace").rstrip("\n") for s, e in frame_spans(body)]


def router_fields(
    body: bytes, start: int = 0, end: int | None = None
) -> tuple[bytes, float] | None:
    """(process type, service seconds) of the router line body[start:end] (bytes); None for
    any other line. Reads the body in place: no copies of the line or its fields."""
    if end is None:
        end = len(body)
    if end > start and body[end - 1] == 10:  # the frame's own newline
        end -= 1
    # `<PRI>VERSION TIMESTAMP HOST heroku router - fields`: the 4th and 5th words.
    router = body.find(b" heroku router - ", start, end)
    if router < 0 or body.count(b" ", start, router) != 2:
        return None
    return _fields(body, router + 15, end)  # from the space before the first field


def router_message_fields(message: bytes) -> tuple[bytes, float] | None:
    """router_fields of a router line's message alone, without its syslog header
    (`at=info method=GET ... dyno=web.1 ... service=12ms ...`): the body of a Fir
    router log record (exporter/otlp.py). None unless it starts with `at=`."""
    if not message.startswith(b"at="):
        return None
    line = b" " + message.rstrip(b"\r\n")
    return _fields(line, 0, len(line))


def _fields(body: bytes, fields: int, end: int) -> tuple[bytes, float] | None:
    """The role and service time of the router fields body[fields:end], where
    body[fields] is the space before the first field."""
    dyno, service = body.rfind(b" dyno=", fields, end), body.rfind(b" service=", fields, end)
    if body.rfind(b'"', fields, end) > min(dyno, service):  # a quote after one of them
        return _quoted_router_fields(body[fields:end])
    if dyno < 0 or service < 0:
        return None
    return _role_and_seconds(body, dyno + 6, service + 9, end)


def _quoted_router_fields(fields: bytes) -> tuple[bytes, float] | None:
    """router_fields for the rare line with a quoted value after dyno= or service=."""
    fields = _QUOTED.sub(b'""', fields)
    dyno, service = fields.rfind(b" dyno="), fields.rfind(b" service=")
    if dyno < 0 or service < 0:
        return None
    return _role_and_seconds(fields, dyno + 6, service + 9, len(fields))


def _role_and_seconds(line: bytes, dyno: int, service: int, end: int) -> tuple[bytes, float] | None:
    """The role and service time of the dyno= and service= values at `dyno` and `service`."""
    role, seconds = _ROLE.match(line, dyno, end), _SERVICE.match(line, service, end)
    if role is None or seconds is None:
        return None
    return role.group(1) or role.group(2), float(seconds.group(1)) / 1000


def error_fields(body: bytes, start: int = 0, end: int | None = None) -> tuple[bytes, bytes] | None:
    """(process type, code) of the Heroku error line body[start:end]: a router line
    with `at=error code=...`, or a dyno's `heroku web.1 - Error R14 ...`; None for
    any other line."""
    if end is None:
        end = len(body)
    router = body.find(b" heroku router - at=error ", start, end)
    if router >= 0:
        if body.count(b" ", start, router) != 2:
            return None
        return _error_of(body, router + 15, end)
    if body.find(b" - Error ", start, end) < 0:  # most lines: one scan, no regex
        return None
    found = _DYNO_ERROR.match(body, start, end)
    if found is None:
        return None
    role = _ROLE.match(found.group(1) + b" ")
    return None if role is None else (role.group(1) or role.group(2), found.group(2))


def error_message_fields(message: bytes) -> tuple[bytes, bytes] | None:
    """error_fields of a router error's message alone (`at=error code=H12 ...`): the
    body of a Fir router log record (exporter/otlp.py)."""
    if not message.startswith(b"at=error "):
        return None
    line = b" " + message.rstrip(b"\r\n")
    return _error_of(line, 0, len(line))


def _error_of(body: bytes, fields: int, end: int) -> tuple[bytes, bytes] | None:
    """The role and code of the router error fields body[fields:end] (body[fields] is the
    space before the first field), quoted values left out."""
    fields_ = _QUOTED.sub(b'""', body[fields:end]) + b" "
    code = fields_.rfind(b" code=")
    found = _CODE.match(fields_, code + 6) if code >= 0 else None
    if found is None:
        return None
    dyno = fields_.rfind(b" dyno=")
    role = _ROLE.match(fields_, dyno + 6) if dyno >= 0 else None
    if role is not None:
        return role.group(1) or role.group(2), found.group(1)
    if dyno >= 0 and fields_.startswith(b" ", dyno + 6):  # dyno= empty: no dyno took it
        return WEB_ROLE, found.group(1)
    return None


def dyno_role(dyno: str) -> str | None:
    """The process type of a dyno name (web.1 or Fir's web-12a34b56d-e78f9: web)."""
    found = _ROLE.match(dyno.encode("utf-8", "surrogateescape") + b" ")
    return None if found is None else (found.group(1) or found.group(2)).decode("utf-8", "replace")


def router_request(line: str) -> tuple[str, float] | None:
    """(process type, service seconds) of a router line; None for any other line."""
    found = router_fields(line.encode("utf-8", "surrogateescape"))
    return None if found is None else (found[0].decode("utf-8", "replace"), found[1])


class RouterStats:
    """Request counts, service-time histograms and error counts per (app, role), kept
    in memory."""

    def __init__(self, roles: Iterable[tuple[str, str]]) -> None:
        self._lock = threading.Lock()
        self._stats = {key: ([0] * (len(DURATION_BUCKETS) + 1), [0.0]) for key in roles}
        self.apps = frozenset(app for app, _ in self._stats)
        # per app: the role's name as it appears in a line (bytes) -> its (counts, total)
        self._roles: dict[str, dict[bytes, tuple[list[int], list[float]]]] = {}
        for (app, role), stats in self._stats.items():
            self._roles.setdefault(app, {})[role.encode()] = stats
        # (app, role, code) -> errors; the standing codes of every role from the start
        self._errors: dict[tuple[str, str, str], int] = {
            (app, role, code): 0 for app, role in self._stats for code in STANDING_CODES
        }

    def receive(self, app: str, body: bytes) -> int:
        """Count the router lines of one drain POST; returns how many requests were counted.

        A body that is not Logplex framing raises BadDrainBody and counts nothing.
        """
        spans = frame_spans(body)  # all of them first: a bad body counts nothing
        self._count_errors(app, (error_fields(body, start, end) for start, end in spans))
        return self._count(app, (router_fields(body, start, end) for start, end in spans))

    def receive_messages(self, app: str, messages: Iterable[bytes]) -> int:
        """Count the router lines among messages without syslog headers (Fir's router
        log records: router_message_fields); returns how many requests were counted."""
        messages = list(messages)
        self._count_errors(app, (error_message_fields(message) for message in messages))
        return self._count(app, (router_message_fields(message) for message in messages))

    def _count(self, app: str, found: Iterable[tuple[bytes, float] | None]) -> int:
        roles = self._roles.get(app, {})
        requests = [(roles[f[0]], f[1]) for f in found if f is not None and f[0] in roles]
        with self._lock:
            for (counts, total), seconds in requests:
                counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
                total[0] += seconds
        return len(requests)

    def _count_errors(self, app: str, found: Iterable[tuple[bytes, bytes] | None]) -> None:
        roles = self._roles.get(app, {})
        errors = [(f[0].decode(), f[1].decode()) for f in found if f is not None and f[0] in roles]
        if not errors:
            return
        with self._lock:
            for role, code in errors:
                key = (app, role, code)
                self._errors[key] = self._errors.get(key, 0) + 1

    def samples(self) -> list[Sample | HistogramSample]:
        with self._lock:
            snapshot = [(key, tuple(c), t[0]) for key, (c, t) in self._stats.items()]
            errors = list(self._errors.items())
        samples: list[Sample | HistogramSample] = []
        for key, counts, total in snapshot:
            samples.append(Sample("dynoscaler_router_requests", key, sum(counts)))
            samples.append(HistogramSample("dynoscaler_router_service_seconds", key, counts, total))
        samples += [Sample("dynoscaler_router_errors", key, count) for key, count in errors]
        return samples
