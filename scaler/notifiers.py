"""Notifiers: tell people and systems about failures, limits and unmeetable deadlines.

Kinds: a generic JSON webhook, a Slack incoming webhook, New Relic custom
events (Insights insert API). Sending happens on a small background pool with
a time-out; a slow or failing notifier is logged and counted, and never blocks
or breaks scaling. When the pool is backed up, new events are dropped (and
counted) rather than queued without bound.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from dynoscaler.config import ConfigError, NotifierSettings, notifier_problem
from scaler import metrics

log = logging.getLogger("dynoscaler.notifiers")

NEW_RELIC_URL = "https://insights-collector.newrelic.com"
NEW_RELIC_EVENT_TYPE = "DynoscalerEvent"
MAX_PENDING = 100

Sender = Callable[[requests.Session, dict[str, Any]], requests.Response]


def summary(event: dict[str, Any]) -> str:
    """One line a person can read in Slack."""
    where = event.get("app", "?")
    details = {k: v for k, v in event.items() if k not in ("event", "app")}
    what = event.get("event", "event")
    return f"dynoscaler {what} on {where}: {json.dumps(details, sort_keys=True)}"


def _webhook(settings: NotifierSettings) -> Sender:
    def send(session: requests.Session, event: dict[str, Any]) -> requests.Response:
        return session.post(settings.url, json=event, timeout=settings.timeout)

    return send


def _slack(settings: NotifierSettings) -> Sender:
    def send(session: requests.Session, event: dict[str, Any]) -> requests.Response:
        return session.post(settings.url, json={"text": summary(event)}, timeout=settings.timeout)

    return send


def _newrelic(settings: NotifierSettings) -> Sender:
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


_KINDS: dict[str, Callable[[NotifierSettings], Sender]] = {
    "webhook": _webhook,
    "slack": _slack,
    "newrelic": _newrelic,
}


class Notifiers:
    """Call with an event dict; each configured notifier gets it in the background."""

    def __init__(self, settings: tuple[NotifierSettings, ...]) -> None:
        self._senders = []
        for s in settings:
            if problem := notifier_problem(s):
                raise ConfigError(f"scaler.notifiers: {problem}")
            self._senders.append((s.type, _KINDS[s.type](s)))
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
