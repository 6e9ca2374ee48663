"""Alertmanager's webhook payload (version 4): validate it and turn it into requests.

Only firing `ScaleRole` alerts ask for a count (labels app and role, annotation
desired_dynos); other alerts are recorded and change nothing. A payload that is
wrong can never become right, so every problem is a PayloadError (a 4xx, which
Alertmanager does not retry) and nothing is acted on.
"""

from __future__ import annotations

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
UNMEETABLE_ALERT = "DeadlineUnmeetable"
_ZERO_TIME_YEAR = 1  # "0001-01-01T00:00:00Z": a firing alert without an end


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
        raise PayloadError([f"{_where(e.absolute_path)}: {e.message}" for e in errors[:10]])
    parsed, problems = Parsed(), []
    wanted: dict[tuple[str, str], list[tuple[int, dict[str, Any], float | None]]] = {}
    for index, alert in enumerate(payload["alerts"]):
        name = alert["labels"]["alertname"]
        if alert["status"] != "firing":
            parsed.ignored.append((alert, f"{name} resolved: changes nothing"))
        elif name == UNMEETABLE_ALERT:
            parsed.unmeetable.append(alert)
            parsed.ignored.append((alert, f"{name}: recorded and notified"))
        elif name != SCALE_ALERT:
            parsed.ignored.append((alert, f"{name}: not a scaling alert"))
        else:
            try:
                app, role, desired = _scale_request(alert, config)
                observed_at = _observed_at(alert, now)
            except ValueError as error:
                problems.append(f"alerts.{index}: {error}")
                continue
            wanted.setdefault((app, role), []).append((desired, _inputs(alert), observed_at))
    if problems:
        raise PayloadError(problems)
    for (app, role), asks in wanted.items():
        # Several alerts for one role in one payload: the largest count wins
        # (the safe side of a deadline); all of them are recorded.
        desired = max(a[0] for a in asks)
        observed = [a[2] for a in asks]
        observed_at = None if None in observed else min(observed)
        inputs = {"alerts": [a[1] for a in asks]}
        parsed.scale.setdefault(app, []).append(
            RoleInput(role, Request(desired, observed_at), inputs)
        )
    return parsed


def _where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "payload"


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


def _observed_at(alert: dict[str, Any], now: float) -> float:
    """A firing alert is fresh until its endsAt; past that its data is as old as endsAt."""
    ends = alert.get("endsAt")
    if ends is None:
        return now
    try:
        ends_at = datetime.fromisoformat(ends.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"endsAt {ends!r} is not an RFC 3339 time") from None
    if ends_at.year == _ZERO_TIME_YEAR or ends_at.tzinfo is None:
        return now
    return min(now, ends_at.timestamp())


def _inputs(alert: dict[str, Any]) -> dict[str, Any]:
    keys = ("labels", "annotations", "startsAt", "endsAt", "fingerprint")
    return {k: alert[k] for k in keys if k in alert}
