"""The project's prometheus.yml and alertmanager.yml, rewritten for the demo's ports and pace.

Only addresses, intervals and credentials change; rules, routes, matchers and
receivers' names stay the project's own, so the demo runs what a user deploys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from dynoscaler.demo.supervisor import DemoError


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise DemoError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(document, dict):
        raise DemoError(f"{path}: expected a YAML mapping")
    return document


def prometheus(
    source: Path,
    exporter: str,
    alertmanager: str | None,
    scaler: str | None,
    interval: float,
) -> dict[str, Any]:
    """prometheus.yml with the demo's targets, `interval` for scrapes and rule evaluation.

    Jobs are matched to the demo's processes by name (scaler, alertmanager,
    prometheus, anything else dynoscaler/exporter); jobs for things the demo
    does not run are dropped. Rule files are made absolute.
    """
    document = _read(source)
    seconds = duration(interval)
    document["global"] = {
        **document.get("global", {}),
        "scrape_interval": seconds,
        "evaluation_interval": seconds,
        "scrape_timeout": duration(max(interval / 2, 0.5)),
    }
    document["rule_files"] = [
        str(source.resolve().parent / f) for f in document.get("rule_files", [])
    ]
    if alertmanager:
        document["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
        }
    else:
        document.pop("alerting", None)
    targets = {"scaler": scaler, "alertmanager": alertmanager, "exporter": exporter}
    jobs = []
    for job in document.get("scrape_configs", []):
        target = _target_for(job["job_name"], targets)
        if target:
            jobs.append(_retarget(job, target))
    if not any(job["static_configs"] == [{"targets": [exporter]}] for job in jobs):
        jobs.append({"job_name": "dynoscaler", "static_configs": [{"targets": [exporter]}]})
    document["scrape_configs"] = jobs
    return document


def _target_for(job_name: str, targets: dict[str, str | None]) -> str | None:
    name = job_name.lower()
    # Order matters: "dynoscaler-exporter" also contains "scaler".
    for key in ("alertmanager", "exporter", "scaler"):
        if key in name:
            return targets[key]
    return None  # e.g. prometheus itself or a redis exporter: not part of the demo


def _retarget(job: dict[str, Any], target: str) -> dict[str, Any]:
    job = {k: v for k, v in job.items() if k not in ("scrape_interval", "scrape_timeout")}
    job["static_configs"] = [{"targets": [target]}]
    for discovery in ("file_sd_configs", "dns_sd_configs", "http_sd_configs"):
        job.pop(discovery, None)
    return job


def alertmanager(source: Path, scaler_url: str, token: str, group_wait: float) -> dict[str, Any]:
    """alertmanager.yml sending the scale route's webhooks to the demo's scaler with `token`.

    Grouping intervals shrink (group_wait as given, group_interval and
    repeat_interval a few times longer) so decisions follow the load within
    seconds. The receivers of routes matching severity="scale" point at the
    scaler; the others are emptied, since the demo has no people to page (their
    alerts stay visible in Alertmanager's API and pages).
    """
    document = _read(source)
    route = document.get("route", {})
    scale_receivers = set(_scale_receivers(route))
    if not scale_receivers:
        raise DemoError(f'{source}: no route for severity="scale" alerts to the scaler')
    document["route"] = _fast_route(route, group_wait)
    base = urlsplit(scaler_url)
    for receiver in document.get("receivers", []):
        kept: dict[str, Any] = {"name": receiver["name"]}
        if receiver["name"] in scale_receivers:
            kept["webhook_configs"] = [
                _to_scaler(hook, base, token) for hook in receiver.get("webhook_configs", [])
            ]
        receiver.clear()
        receiver.update(kept)
    return document


def _scale_receivers(route: dict[str, Any]) -> list[str]:
    """Receivers of the routes (at any depth) that match severity="scale"."""
    found = []
    for child in route.get("routes", []):
        matchers = [m.replace(" ", "") for m in child.get("matchers", [])]
        if 'severity="scale"' in matchers or child.get("match", {}).get("severity") == "scale":
            found.append(child["receiver"])
        found += _scale_receivers(child)
    return found


def _fast_route(route: dict[str, Any], group_wait: float) -> dict[str, Any]:
    route = dict(route)
    route["group_wait"] = duration(group_wait)
    route["group_interval"] = duration(max(2 * group_wait, 2))
    # Alertmanager re-sends a firing alert only every repeat_interval, and a new
    # desired_dynos annotation alone does not count as a change: as short as it goes.
    route["repeat_interval"] = route["group_interval"]
    if "routes" in route:
        route["routes"] = [_fast_child(child, group_wait) for child in route["routes"]]
    return route


def _fast_child(route: dict[str, Any], group_wait: float) -> dict[str, Any]:
    route = dict(route)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        route.pop(key, None)  # inherit the fast parent's
    if "routes" in route:
        route["routes"] = [_fast_child(child, group_wait) for child in route["routes"]]
    return route


def _to_scaler(hook: dict[str, Any], base: Any, token: str) -> dict[str, Any]:
    """A webhook pointed at the demo's scaler (same path), with the token inline."""
    url = urlsplit(hook["url"])
    hook = dict(hook)
    hook["url"] = url._replace(scheme=base.scheme, netloc=base.netloc).geturl()
    hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    return hook


def duration(seconds: float) -> str:
    """Prometheus and Alertmanager durations take whole numbers of a unit."""
    return f"{round(seconds * 1000)}ms"


def write(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
