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
    seconds = f"{interval:g}s"
    document["global"] = {
        **document.get("global", {}),
        "scrape_interval": seconds,
        "evaluation_interval": seconds,
        "scrape_timeout": f"{max(interval / 2, 0.5):g}s",
    }
    document["rule_files"] = [str(source.parent / f) for f in document.get("rule_files", [])]
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
    """alertmanager.yml sending the scaler's webhooks to the demo's scaler with `token`.

    Grouping intervals shrink (group_wait as given, group_interval and
    repeat_interval a few times longer) so decisions follow the load within
    seconds; receivers other than the scaler's webhook are emptied, since the
    demo has no people to page (the alert stays visible in Alertmanager's API).
    """
    document = _read(source)
    document["route"] = _fast_route(document.get("route", {}), group_wait)
    base = urlsplit(scaler_url)
    for receiver in document.get("receivers", []):
        hooks = [_to_scaler(hook, base, token) for hook in receiver.get("webhook_configs", [])]
        kept = {"name": receiver["name"]}
        if any(hooks):
            kept["webhook_configs"] = [hook for hook in hooks if hook]
        receiver.clear()
        receiver.update(kept)
    return document


def _fast_route(route: dict[str, Any], group_wait: float) -> dict[str, Any]:
    route = dict(route)
    route["group_wait"] = f"{group_wait:g}s"
    route["group_interval"] = f"{max(2 * group_wait, 2):g}s"
    # Alertmanager re-sends a firing alert only every repeat_interval, and a new
    # desired_dynos annotation alone does not count as a change: keep it short.
    route["repeat_interval"] = f"{max(5 * group_wait, 10):g}s"
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


def _to_scaler(hook: dict[str, Any], base: Any, token: str) -> dict[str, Any] | None:
    """A webhook to the scaler (its URL path ends in /alerts), pointed at the demo's scaler."""
    url = urlsplit(hook["url"])
    if not url.path.rstrip("/").endswith("/alerts"):
        return None
    hook = dict(hook)
    hook["url"] = url._replace(scheme=base.scheme, netloc=base.netloc).geturl()
    hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    hook["max_alerts"] = hook.get("max_alerts", 0)
    return hook


def write(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
