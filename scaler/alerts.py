"""Alertmanager's webhook payload (version 4): validate it and turn it into requests.

Only the alerts of the contract ask for a count: firing, labels alertname="ScaleRole",
severity="scale", direction "up" or "down" (what prometheus/rules/alerts.yml sets),
app and role, annotation desired_dynos. Any other alert, a `ScaleRole` with another
severity or direction included, is recorded and changes nothing. A payload that is
wrong can never become right, so every problem is a PayloadError (a 4xx, which
Alertmanager does not retry) and nothing is acted on.

An alert's age comes from its endsAt (see `observed_at`); an alert whose age cannot
be established carries observed_at None, which the guardrails treat as stale: no
scale-down on it, while a scale-up still acts.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import jsonschema
import yaml

from dynoscaler.config import Config
from scaler.guardrails import Request
from scaler.service import RoleInput

SCALE_ALERT = "ScaleRole"
SCALE_SEVERITY = "scale"
SCALE_DIRECTIONS = ("up", "down")
UNMEETABLE_ALERT = "DeadlineUnmeetable"
# A role with sizes: severity="scale", annotation required_slots (the slots it needs
# at its current size's speed); the scaler chooses size and count (scaler.service).
RESIZE_ALERT = "ResizeRole"
# Go's zero time.Time, as Alertmanager writes it: the endsAt of every firing
# alert in its webhook (its types.Alerts hides an end not yet reached).
ZERO_TIME = "0001-01-01T00:00:00Z"


def _payload_schema() -> dict[str, Any]:
    """The Payload schema of scaler/openapi.yml: one definition for the docs and the check.

    Its local $refs are inlined once here; resolving them on every request
    would cost more than the rest of the validation.
    """
    text = resources.files("scaler").joinpath("openapi.yml").read_text(encoding="utf-8")
    schemas = yaml.safe_load(text)["components"]["schemas"]
    return _inline(schemas["Payload"], schemas)


def _inline(node: Any, schemas: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        return {k: _inline(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, schemas) for v in node]
    return node


_VALIDATOR = jsonschema.Draft202012Validator(_payload_schema())


class PayloadError(Exception):
    """A payload that can never be acted on; `problems` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Parsed:
    """scale: role inputs per app; ignored: alerts recorded but not acted on."""

    scale: dict[str, list[RoleInput]] = field(default_factory=dict)
    ignored: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    unmeetable: list[dict[str, Any]] = field(default_factory=list)


def parse(payload: Any, config: Config, now: float) -> Parsed:
    """Validate a decoded payload against the schema and the config; raise PayloadError."""
    errors = sorted(_VALIDATOR.iter_errors(payload), key=lambda e: list(map(str, e.path)))
    if errors:
        raise PayloadError([f"{_where(e.absolute_path)}: {_cut(e.message)}" for e in errors[:10]])
    parsed, problems = Parsed(), []
    stale_after = config.scaler.stale_after
    wanted: dict[tuple[str, str], list[tuple[int, dict[str, Any], Age, bool]]] = {}
    resize: dict[tuple[str, str], list[tuple[float, dict[str, Any], Age]]] = {}
    for index, alert in enumerate(payload["alerts"]):
        name = alert["labels"]["alertname"]
        if alert["status"] != "firing":
            parsed.ignored.append((alert, f"{name} resolved: changes nothing"))
        elif name == UNMEETABLE_ALERT:
            parsed.unmeetable.append(alert)
            parsed.ignored.append((alert, f"{name}: recorded and notified"))
        elif name == RESIZE_ALERT and alert["labels"].get("severity") == SCALE_SEVERITY:
            try:
                app, role, slots = _resize_request(alert, config)
            except ValueError as error:
                problems.append(f"alerts.{index}: {error}")
                continue
            resize.setdefault((app, role), []).append(
                (slots, _inputs(alert), observed_at(alert, now, stale_after))
            )
        elif name != SCALE_ALERT:
            parsed.ignored.append((alert, f"{name}: not a scaling alert"))
        elif outside := _outside_contract(alert["labels"]):
            parsed.ignored.append((alert, f"{name} {outside}: {_CONTRACT}"))
        else:
            try:
                app, role, desired = _scale_request(alert, config)
            except ValueError as error:
                problems.append(f"alerts.{index}: {error}")
                continue
            age = observed_at(alert, now, stale_after)
            if age.at is None:
                age = Age(None, f"alerts.{index}: {age.why}")
            down = alert["labels"]["direction"] == "down"
            wanted.setdefault((app, role), []).append((desired, _inputs(alert), age, down))
    if problems:
        raise PayloadError(problems)
    for (app, role), asks in wanted.items():
        # Several alerts for one role in one payload: the largest count wins
        # (the safe side of a deadline); all of them are recorded. The data is
        # as old as the oldest alert's, and of unknown age if any alert's is;
        # it may lower the formation only if every alert says direction="down".
        desired = max(a[0] for a in asks)
        observed = [a[2].at for a in asks]
        at = None if None in observed else min(observed)
        inputs: dict[str, Any] = {"alerts": [a[1] for a in asks], "observed_at": at}
        unknown = [a[2].why for a in asks if a[2].at is None]
        if unknown:
            inputs["age_unknown"] = unknown
        request = Request(desired, at, scale_down_allowed=all(a[3] for a in asks))
        parsed.scale.setdefault(app, []).append(RoleInput(role, request, inputs))
    for (app, role), asks in resize.items():
        if (app, role) in wanted:
            parsed.ignored.extend(
                (a[1], f"{RESIZE_ALERT}: {app}/{role} also has a {SCALE_ALERT} here") for a in asks
            )
            continue
        observed = [a[2].at for a in asks]
        at = None if None in observed else min(observed)
        request = Request(None, at, slots=max(a[0] for a in asks))
        inputs = {"alerts": [a[1] for a in asks], "observed_at": at}
        parsed.scale.setdefault(app, []).append(RoleInput(role, request, inputs))
    return parsed


# A non-negative decimal number, as Go's printf "%.3f" writes one (no exponent).
_SLOTS = re.compile(r"\s*([0-9]{1,7}(\.[0-9]*)?)\s*")


def _resize_request(alert: dict[str, Any], config: Config) -> tuple[str, str, float]:
    labels = alert["labels"]
    app, role = labels.get("app"), labels.get("role")
    if app is None or role is None:
        raise ValueError(f"{RESIZE_ALERT} needs labels app and role (has {sorted(labels)})")
    settings = config.role(app, role)
    if settings is None:
        raise ValueError(f"unknown app/role {app}/{role}: not in the scaler's config")
    if not settings.sizes:
        raise ValueError(f"{RESIZE_ALERT} for {app}/{role}, which lists no sizes")
    text = alert["annotations"].get("required_slots")
    match = None if text is None else _SLOTS.fullmatch(text)
    if match is None:
        raise ValueError(f"required_slots of {app}/{role} is {text!r}, not a non-negative number")
    return app, role, float(match.group(1))


def _where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "payload"


def _cut(message: str, limit: int = 300) -> str:
    """A schema message quotes the offending value, which may be most of the body."""
    return message if len(message) <= limit else message[:limit] + "..."


def _outside_contract(labels: dict[str, str]) -> str | None:
    """How a ScaleRole alert's labels leave the contract (None: they keep it)."""
    severity, direction = labels.get("severity"), labels.get("direction")
    if severity == SCALE_SEVERITY and direction in SCALE_DIRECTIONS:
        return None
    return f"with severity {_shown(severity)}, direction {_shown(direction)}"


_CONTRACT = 'not acted on (only with severity "scale" and direction "up" or "down")'


def _shown(value: str | None, limit: int = 40) -> str:
    if value is None:
        return "missing"
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _scale_request(alert: dict[str, Any], config: Config) -> tuple[str, str, int]:
    labels = alert["labels"]
    app, role = labels.get("app"), labels.get("role")
    if app is None or role is None:
        raise ValueError(f"{SCALE_ALERT} needs labels app and role (has {sorted(labels)})")
    if config.role(app, role) is None:
        raise ValueError(f"unknown app/role {app}/{role}: not in the scaler's config")
    text = alert["annotations"].get("desired_dynos")
    if text is None:
        raise ValueError(f"{SCALE_ALERT} {app}/{role} has no annotation desired_dynos")
    return app, role, _count(text, f"{app}/{role}")


# ASCII digits only: float() would also take "1e3", "1_0", "inf" and non-Latin digits.
_COUNT = re.compile(r"\s*([0-9]{1,6})(\.0*)?\s*")


def _count(text: str, where: str) -> int:
    """A non-negative integer; '5' and '5.0' (a rendered float) both mean 5."""
    match = _COUNT.fullmatch(text)
    if match is None:
        raise ValueError(f"desired_dynos of {where} is {text!r}, not a non-negative integer")
    return int(match.group(1))


@dataclass(frozen=True)
class Age:
    """When a firing alert's data was current: `at` in Unix seconds, None when unknown
    (then `why` says what was wrong with its endsAt)."""

    at: float | None
    why: str = ""


# RFC 3339 section 5.6 date-time: full date, "T", time with seconds and an optional
# fraction, and a zone ("Z" or an offset). ASCII digits only (re's \d takes others).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def rfc3339(text: str) -> float | None:
    """Unix seconds of an RFC 3339 date-time with a zone; None for anything else.

    Not datetime.fromisoformat: it also takes times without a zone ("local", of
    unknown offset here), dates alone, and other ISO 8601 forms. A leap second
    (":60") is refused too: Go, so Prometheus and Alertmanager, never writes one.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    try:
        datetime(year, month, day, hour, minute, second)  # a real calendar date and time
    except ValueError:
        return None
    offset = 0
    if not zulu:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            return None
        offset = (int(offset_hours) * 60 + int(offset_minutes)) * 60
        offset = -offset if sign == "-" else offset
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds - offset + (float(fraction) if fraction else 0.0)


def observed_at(alert: dict[str, Any], now: float, stale_after: float) -> Age:
    """When a firing alert's data was current, from its endsAt.

    - "0001-01-01T00:00:00Z" exactly (Go's zero time): Alertmanager's webhook
      writes it for every firing alert. Prometheus sends endsAt = evaluation time
      + 4 x max(evaluation interval, resend delay) on each evaluation;
      Alertmanager hides an end not yet reached, and past it calls the alert
      resolved. So a firing alert with the zero time is current now.
    - an RFC 3339 date-time with a zone, from 1970 up to `stale_after` ahead of
      now: fresh until then, as old as it afterwards (a sender other than
      Alertmanager that writes Prometheus' "valid until").
    - anything else has no age: no endsAt, no zone (an offset nobody knows), a
      date alone, other text, another year-1 time, before 1970, or further ahead
      than the scaler would trust data anyway (a far-off clock, or an end meaning
      something else).
    """
    ends = alert.get("endsAt")
    if ends is None:
        return Age(None, "no endsAt")
    if ends == ZERO_TIME:
        return Age(now)
    shown = _shown(ends)
    at = rfc3339(ends)
    if at is None:
        return Age(None, f"endsAt {shown} is not an RFC 3339 date-time with a zone")
    if at < 0:
        return Age(None, f"endsAt {shown} is before 1970")
    if at > now + stale_after:
        return Age(None, f"endsAt {shown} is more than stale_after ({stale_after:g}s) ahead")
    return Age(min(now, at))


def _inputs(alert: dict[str, Any]) -> dict[str, Any]:
    keys = ("labels", "annotations", "startsAt", "endsAt", "fingerprint")
    return {k: alert[k] for k in keys if k in alert}
