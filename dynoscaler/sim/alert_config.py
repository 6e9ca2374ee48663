"""The alert path's timings as the project ships them, read from its own files.

The simulator's dynoscaler policy evaluates, sends ScaleRole and pages with
these, so a change to prometheus/prometheus.yml, the rules, docker-compose.yml's
Prometheus flags or alertmanager/alertmanager.yml shows in its figures:

- prometheus.yml: `global.evaluation_interval` (every rule group without its own);
- rules/capacity.yml: the interval of the group recording S₉₉ (dynoscaler_duration_tail);
- rules/alerts.yml: DeadlineUnmeetable's `for:`;
- docker-compose.yml: Prometheus' `--rules.alert.resend-delay` (1m when not set);
- alertmanager.yml: the scale route's group_wait, group_interval and repeat_interval,
  and the ops route's group_wait (a route inherits what it does not set).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynoscaler.config import ConfigError
from dynoscaler.demo.measure import alert_for_seconds, duration_seconds

ROOT = Path(__file__).resolve().parents[2]
TAIL_GROUP = "dynoscaler_duration_tail"
_RESEND_FLAG = "--rules.alert.resend-delay="
# Prometheus' defaults where its files set nothing
_PROMETHEUS_DEFAULTS = {"evaluation_interval": 60.0, "resend_delay": 60.0}
# Alertmanager's defaults for a root route that sets nothing
_ROUTE_DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
_ROUTE_KEYS = tuple(_ROUTE_DEFAULTS)


@dataclass(frozen=True)
class AlertPath:
    evaluation_interval: float  # seconds between rule evaluations
    tail_interval: float  # seconds between evaluations of S₉₉'s group
    resend_delay: float  # Prometheus re-sends a firing alert once this has passed
    scale_group_wait: float
    scale_group_interval: float
    scale_repeat_interval: float
    page_for: float  # DeadlineUnmeetable's `for:`
    page_group_wait: float  # the ops route's group_wait


@functools.cache
def shipped(root: Path = ROOT) -> AlertPath:
    """The alert path configured by the files under `root` (the project's checkout)."""
    prometheus = _read(root / "prometheus" / "prometheus.yml")
    evaluation = _duration(
        (prometheus.get("global") or {}).get("evaluation_interval"),
        _PROMETHEUS_DEFAULTS["evaluation_interval"],
        root / "prometheus" / "prometheus.yml",
        "global.evaluation_interval",
    )
    capacity = root / "prometheus" / "rules" / "capacity.yml"
    tail = [g for g in _read(capacity).get("groups") or [] if g.get("name") == TAIL_GROUP]
    if not tail:
        raise ConfigError(f"{capacity}: no rule group named {TAIL_GROUP}")
    scale = _route(root / "alertmanager" / "alertmanager.yml", 'severity="scale"')
    ops = _route(root / "alertmanager" / "alertmanager.yml", 'severity="ops"')
    alerts = root / "prometheus" / "rules" / "alerts.yml"
    return AlertPath(
        evaluation_interval=evaluation,
        tail_interval=_duration(tail[0].get("interval"), evaluation, capacity, "interval"),
        resend_delay=_resend_delay(root / "docker-compose.yml"),
        scale_group_wait=scale["group_wait"],
        scale_group_interval=scale["group_interval"],
        scale_repeat_interval=scale["repeat_interval"],
        page_for=alert_for_seconds([alerts], "DeadlineUnmeetable"),
        page_group_wait=ops["group_wait"],
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a YAML mapping")
    return document


def _duration(text: object, default: float, path: Path, key: str) -> float:
    if text is None:
        return default
    try:
        return duration_seconds(str(text))
    except ValueError as error:
        raise ConfigError(f"{path}: {key}: {error}") from None


def _route(path: Path, matcher: str) -> dict[str, float]:
    """The timings of the first child route of the root matching `matcher`, inheriting
    the root's (and the root Alertmanager's defaults); the root's own without one."""
    root = _read(path).get("route") or {}
    children = [r for r in root.get("routes") or [] if matcher in (r.get("matchers") or [])]
    settings = {**_ROUTE_DEFAULTS, **{k: root[k] for k in _ROUTE_KEYS if k in root}}
    if children:
        settings.update({k: children[0][k] for k in _ROUTE_KEYS if k in children[0]})
    return {k: _duration(v, 0.0, path, f"route {matcher}: {k}") for k, v in settings.items()}


def _resend_delay(path: Path) -> float:
    """Prometheus' --rules.alert.resend-delay in the compose file's prometheus service."""
    services = _read(path).get("services") or {}
    command = (services.get("prometheus") or {}).get("command") or []
    flags = [str(arg)[len(_RESEND_FLAG) :] for arg in command if str(arg).startswith(_RESEND_FLAG)]
    if not flags:
        return _PROMETHEUS_DEFAULTS["resend_delay"]
    return _duration(flags[-1], 0.0, path, "prometheus command: --rules.alert.resend-delay")
