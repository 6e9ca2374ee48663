"""Notifiers: tell people and systems about failures, limits and unmeetable deadlines.

Kinds: a generic JSON webhook, a Slack incoming webhook, New Relic custom
events (Insights insert API). A Slack notifier given a bot token and a channel
also uploads the role's snapshot (dynoscaler.snapshot, the last hour from
Prometheus) with DeadlineUnmeetable, through Slack's files API
(files.getUploadURLExternal, the upload, files.completeUploadExternal).
Sending happens on a small background pool with a time-out; a slow or failing
notifier is logged and counted, and never blocks or breaks scaling. When the
pool is backed up, new events are dropped (and counted) rather than queued
without bound.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from dynoscaler.config import ConfigError, NotifierSettings, notifier_problem
from scaler import metrics

log = logging.getLogger("dynoscaler.notifiers")

NEW_RELIC_URL = "https://insights-collector.newrelic.com"
NEW_RELIC_EVENT_TYPE = "DynoscalerEvent"
MAX_PENDING = 100
SLACK_API_URL = "https://slack.com/api"
SNAPSHOT_SECONDS = 3600

Sender = Callable[[requests.Session, dict[str, Any]], requests.Response]


def summary(event: dict[str, Any]) -> str:
    """One line a person can read in Slack."""
    where = event.get("app", "?")
    details = {k: v for k, v in event.items() if k not in ("event", "app")}
    what = event.get("event", "event")
    return f"dynoscaler {what} on {where}: {json.dumps(details, sort_keys=True)}"


class SlackError(Exception):
    """Slack's Web API answered ok: false (it does so with HTTP 200)."""


def _webhook(settings: NotifierSettings, prometheus_url: str | None) -> Sender:
    def send(session: requests.Session, event: dict[str, Any]) -> requests.Response:
        return session.post(settings.url, json=event, timeout=settings.timeout)

    return send


def _slack(settings: NotifierSettings, prometheus_url: str | None) -> Sender:
    def send(session: requests.Session, event: dict[str, Any]) -> requests.Response:
        text = session.post(settings.url, json={"text": summary(event)}, timeout=settings.timeout)
        unmeetable = event.get("event") == "deadline_unmeetable" and "role" in event
        if not (settings.token and prometheus_url and unmeetable):
            return text
        text.raise_for_status()
        return _upload_snapshot(session, settings, prometheus_url, event)

    return send


def _upload_snapshot(
    session: requests.Session,
    settings: NotifierSettings,
    prometheus_url: str,
    event: dict[str, Any],
) -> requests.Response:
    # matplotlib is imported only when a snapshot is drawn, not by every worker.
    from dynoscaler import snapshot

    app, role = event["app"], event["role"]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"{app}-{role}.png"
        end = time.time()
        snapshot.render(prometheus_url, app, role, end - SNAPSHOT_SECONDS, end, path)
        image = path.read_bytes()
    api = (settings.api_url or SLACK_API_URL).rstrip("/")
    auth = {"Authorization": f"Bearer {settings.token}"}
    ticket = _slack_answer(
        session.post(
            f"{api}/files.getUploadURLExternal",
            data={"filename": path.name, "length": len(image)},
            headers=auth,
            timeout=settings.timeout,
        )
    )
    upload = session.post(
        ticket["upload_url"],
        data=image,
        headers={"Content-Type": "image/png"},
        timeout=settings.timeout,
    )
    upload.raise_for_status()
    done = session.post(
        f"{api}/files.completeUploadExternal",
        json={
            "files": [{"id": ticket["file_id"], "title": f"{app}/{role}, the last hour"}],
            "channel_id": settings.channel,
            "initial_comment": summary(event),
        },
        headers=auth,
        timeout=settings.timeout,
    )
    _slack_answer(done)
    return done


def _slack_answer(response: requests.Response) -> dict[str, Any]:
    response.raise_for_status()
    body = response.json()
    if not body.get("ok"):
        raise SlackError(f"{response.url}: {body.get('error', 'ok: false')}")
    return body


def _newrelic(settings: NotifierSettings, prometheus_url: str | None) -> Sender:
    base = (settings.url or NEW_RELIC_URL).rstrip("/")
    url = f"{base}/v1/accounts/{settings.account_id}/events"

    def send(session: requests.Session, event: dict[str, Any]) -> requests.Response:
        # Insights attributes are flat scalars: nested values travel as JSON text.
        flat = {
            k: v if isinstance(v, str | int | float | bool) else json.dumps(v, sort_keys=True)
            for k, v in event.items()
        }
        body = [{"eventType": NEW_RELIC_EVENT_TYPE, **flat}]
        headers = {"X-Insert-Key": settings.insert_key}
        return session.post(url, json=body, headers=headers, timeout=settings.timeout)

    return send


_KINDS: dict[str, Callable[[NotifierSettings, str | None], Sender]] = {
    "webhook": _webhook,
    "slack": _slack,
    "newrelic": _newrelic,
}


class Notifiers:
    """Call with an event dict; each configured notifier gets it in the background."""

    def __init__(
        self, settings: tuple[NotifierSettings, ...], prometheus_url: str | None = None
    ) -> None:
        """prometheus_url: where Slack's snapshots are drawn from (none: no snapshots)."""
        self._senders = []
        for s in settings:
            if problem := notifier_problem(s):
                raise ConfigError(f"scaler.notifiers: {problem}")
            self._senders.append((s.type, _KINDS[s.type](s, prometheus_url)))
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify")
        self._slots = threading.BoundedSemaphore(MAX_PENDING)
        self._session = requests.Session()
        self._session.trust_env = False

    def __call__(self, event: dict[str, Any]) -> None:
        for kind, send in self._senders:
            if not self._slots.acquire(blocking=False):
                metrics.NOTIFICATIONS.labels(kind, "dropped").inc()
                log.warning("notifier %s backed up: event dropped", kind)
                continue
            self._pool.submit(self._deliver, kind, send, event)

    def _deliver(self, kind: str, send: Sender, event: dict[str, Any]) -> None:
        try:
            response = send(self._session, event)
            response.raise_for_status()
        except Exception as error:  # noqa: BLE001 - a notifier must never break scaling
            metrics.NOTIFICATIONS.labels(kind, "failed").inc()
            log.warning("notifier %s failed: %s", kind, error)
        else:
            metrics.NOTIFICATIONS.labels(kind, "sent").inc()
        finally:
            self._slots.release()

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
