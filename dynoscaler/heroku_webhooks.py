"""Subscribe every configured app's formation changes (api:formation webhooks) to a URL.

Heroku app webhooks POST an event to the URL on every formation change (by
hand, by a deploy, by the scaler), signed with the subscription's secret:
`Heroku-Webhook-Hmac-SHA256` is base64(HMAC-SHA256(secret, raw body)). The
signing, the check and the event's reading live here, used by the exporter's
receiver (exporter/formation_webhook.py) and by `dynoscaler fake-heroku`.

`dynoscaler heroku webhooks --config F --url URL` creates the subscription of
each app, or updates the one already pointing at URL (idempotent): two calls
per app (list, then create or update), with the secret of
DYNOSCALER_HEROKU_WEBHOOK_SECRET.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

import requests

from dynoscaler import config, heroku
from dynoscaler.config import ConfigError

SIGNATURE_HEADER = "Heroku-Webhook-Hmac-SHA256"
SECRET_ENV = "DYNOSCALER_HEROKU_WEBHOOK_SECRET"
INCLUDE = ("api:formation",)
LEVELS = ("notify", "sync")


def sign(secret: str, body: bytes) -> str:
    """The signature Heroku sends for `body`: base64 of its HMAC-SHA256 under `secret`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verified(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is `body`'s under `secret`, compared in constant time."""
    if not secret or signature is None:
        return False
    expected = sign(secret, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


@dataclass(frozen=True)
class FormationEvent:
    """One process type's formation as an api:formation event carries it."""

    app: str
    type: str
    quantity: int
    size: str


def formation_event(body: Any) -> FormationEvent | None:
    """The formation an event carries; None for an event of another resource.

    Raises ValueError for a formation event without an app name, type, size and
    a whole quantity of at least 0.
    """
    if not isinstance(body, dict) or body.get("resource") != "formation":
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    app = data.get("app") if isinstance(data.get("app"), dict) else {}
    name, process_type, size = app.get("name"), data.get("type"), data.get("size")
    quantity = data.get("quantity")
    if not (isinstance(name, str) and isinstance(process_type, str) and isinstance(size, str)):
        raise ValueError("a formation event needs data.app.name, data.type and data.size")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValueError(f"data.quantity {quantity!r} is not a whole number >= 0")
    return FormationEvent(name, process_type, quantity, size)


def subscribe(connection: Any, app: str, url: str, secret: str, level: str) -> str:
    """Create `app`'s subscription to `url`, or update the one there; "created" or "updated"."""
    session, base = connection._session, connection._url_for("apps", app, "webhooks")
    listed = session.get(base)
    listed.raise_for_status()
    existing = next((hook for hook in listed.json() if hook.get("url") == url), None)
    body = {"include": list(INCLUDE), "level": level, "secret": secret}
    if existing is None:
        answer = session.post(base, json={**body, "url": url})
    else:
        answer = session.patch(f"{base}/{existing['id']}", json=body)
    answer.raise_for_status()
    return "created" if existing is None else "updated"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml: the apps to subscribe")
    parser.add_argument(
        "--url", required=True, help="the exporter's receiver, https://.../heroku/formation"
    )
    parser.add_argument(
        "--level", choices=LEVELS, default="sync", help="sync: Heroku retries failed deliveries"
    )


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ConfigError(f"{SECRET_ENV} is not set: deliveries are signed with it")
    if problem := config.http_url_problem(args.url):
        raise ConfigError(f"--url: {problem}")
    connection = heroku.client(user="cli")
    failed = 0
    for app in settings.apps:
        try:
            done = subscribe(connection, app, args.url, secret, args.level)
        except requests.RequestException as error:
            print(f"{app}: failed: {error}")
            failed += 1
            continue
        print(f"{app}: {done} (api:formation -> {args.url}, {args.level})")
    return 1 if failed else 0
