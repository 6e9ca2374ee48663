"""App webhooks of the fake Heroku: subscriptions through Heroku's endpoints, signed deliveries.

- POST /apps/{app}/webhooks {"include", "level", "url"[, "secret", "authorization"]},
  GET /apps/{app}/webhooks, GET|PATCH|DELETE /apps/{app}/webhooks/{id}: Heroku's
  shapes (the secret is never answered back); include is a subset of the
  entities below, level notify|sync, url http(s);
- every formation change (through the API, by hand or by the scaler) delivers
  an api:formation `update` event to each subscription of the app that
  includes it: POST of Heroku's event body, `Heroku-Webhook-Hmac-SHA256` =
  base64(HMAC-SHA256(secret, body)), in order, from one background thread, so
  an API answer never waits on a receiver; `notify` tries once, `sync` up to
  SYNC_ATTEMPTS times, a second apart, until a 2xx;
- GET /__fake__/deliveries: every attempt (at, webhook, app, url, status or error).
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from dynoscaler.heroku_webhooks import SIGNATURE_HEADER, sign

ENTITIES = (
    "api:addon-attachment",
    "api:addon",
    "api:app",
    "api:build",
    "api:collaborator",
    "api:domain",
    "api:dyno",
    "api:formation",
    "api:release",
    "api:sni-endpoint",
    "dyno",
)
SYNC_ATTEMPTS = 3
DELIVERY_TIMEOUT_SECONDS = 5.0


def heroku_now() -> str:
    """The time now as Heroku's API writes created_at and updated_at (also fake_heroku's)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Webhook:
    app_id: str
    app_name: str
    include: list[str]
    level: str
    url: str
    secret: str | None = None
    authorization: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=heroku_now)
    updated_at: str = field(default_factory=heroku_now)

    def to_json(self) -> dict[str, Any]:
        return {
            "app": {"id": self.app_id, "name": self.app_name},
            "created_at": self.created_at,
            "id": self.id,
            "include": list(self.include),
            "level": self.level,
            "updated_at": self.updated_at,
            "url": self.url,
        }


class InvalidWebhook(ValueError):
    """Parameters Heroku would refuse with 422 invalid_params."""


def checked(body: dict[str, Any], partial: bool) -> dict[str, Any]:
    """The webhook parameters of a create (all required) or update (any) body."""
    known = {"include", "level", "url", "secret", "authorization"}
    values = {key: body[key] for key in known if key in body}
    missing = {"include", "level", "url"} - set(values)
    if not partial and missing:
        raise InvalidWebhook(f"missing parameters: {', '.join(sorted(missing))}")
    include = values.get("include", ["api:formation"])
    if not isinstance(include, list) or not include or not set(include) <= set(ENTITIES):
        raise InvalidWebhook(f"include must be a non-empty list of: {', '.join(ENTITIES)}")
    if values.get("level", "notify") not in ("notify", "sync"):
        raise InvalidWebhook("level must be notify or sync")
    url = values.get("url", "https://x")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidWebhook("url must be an http(s) URL")
    for key in ("secret", "authorization"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise InvalidWebhook(f"{key} must be a string or null")
    return values


class Webhooks:
    """Subscriptions per app and the delivery thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[str, Webhook] = {}
        self._log: list[dict[str, Any]] = []
        self._queue: queue.Queue[tuple[Webhook, bytes]] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self._hooks.clear()
            self._log.clear()

    def create(self, app_id: str, app_name: str, body: dict[str, Any]) -> Webhook:
        values = checked(body, partial=False)
        with self._lock:
            if any(h.app_id == app_id and h.url == values["url"] for h in self._hooks.values()):
                raise InvalidWebhook("Url has already been taken for this app's webhooks")
            hook = Webhook(app_id, app_name, **values)
            self._hooks[hook.id] = hook
            return hook

    def of_app(self, app_id: str) -> list[Webhook]:
        with self._lock:
            return [h for h in self._hooks.values() if h.app_id == app_id]

    def get(self, app_id: str, hook_id: str) -> Webhook | None:
        with self._lock:
            hook = self._hooks.get(hook_id)
            return hook if hook is not None and hook.app_id == app_id else None

    def update(self, hook: Webhook, body: dict[str, Any]) -> Webhook:
        values = checked(body, partial=True)
        with self._lock:
            for key, value in values.items():
                setattr(hook, key, value)
            hook.updated_at = heroku_now()
            return hook

    def delete(self, hook: Webhook) -> None:
        with self._lock:
            self._hooks.pop(hook.id, None)

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def formation_changed(self, app_id: str, formation: dict[str, Any], old: int) -> None:
        """Queue an api:formation update event for each subscription of the app."""
        for hook in self.of_app(app_id):
            if "api:formation" in hook.include:
                self._queue.put((hook, _event(hook, formation, old)))

    def _deliver_forever(self) -> None:
        while True:
            hook, body = self._queue.get()
            attempts = SYNC_ATTEMPTS if hook.level == "sync" else 1
            for attempt in range(attempts):
                if self._deliver(hook, body):
                    break
                if attempt + 1 < attempts:
                    time.sleep(1)

    def _deliver(self, hook: Webhook, body: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(hook.secret, body)
        if hook.authorization:
            headers["Authorization"] = hook.authorization
        entry: dict[str, Any] = {"at": time.time(), "webhook": hook.id, "app": hook.app_name}
        entry["url"] = hook.url
        try:
            answer = requests.post(
                hook.url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS
            )
            entry["status"] = answer.status_code
        except requests.RequestException as error:
            entry["error"] = f"{type(error).__name__}: {error}"
        with self._lock:
            self._log.append(entry)
        return 200 <= entry.get("status", 0) < 300


def _event(hook: Webhook, formation: dict[str, Any], old: int) -> bytes:
    event_id = str(uuid.uuid4())
    stamp = heroku_now()
    body = {
        "action": "update",
        "actor": {"email": "owner@example.com", "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "owner"))},
        "created_at": stamp,
        "data": formation,
        "id": event_id,
        "previous_data": {"quantity": old},
        "published_at": stamp,
        "resource": "formation",
        "sequence": None,
        "updated_at": stamp,
        "version": "application/vnd.heroku+json; version=3",
        "webhook_metadata": {
            "attempt": {"id": str(uuid.uuid4())},
            "delivery": {"id": str(uuid.uuid4())},
            "event": {"id": event_id, "include": "api:formation"},
            "webhook": {"id": hook.id},
        },
    }
    return json.dumps(body).encode("utf-8")
