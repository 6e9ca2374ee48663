"""Serve a local fake of the Heroku Platform API (apps, formation, rate limits) over HTTP.

It serves every app and role of a settings file, each formation starting at the
role's min_dynos, over real HTTP, and behaves like api.heroku.com where
dynoscaler depends on it:

- apps and formations by name or UUID: GET /apps/{app}, GET /apps/{app}/formation,
  GET|PATCH /apps/{app}/formation/{type}, PATCH /apps/{app}/formation (batch
  {"updates": [{"type", "quantity"[, "size"]}]}), GET /account/rate-limits
  (which takes no token, as on Heroku);
- config vars: GET /apps/{app}/config-vars (the object of every var, {} for a new
  app), PATCH /apps/{app}/config-vars with a JSON object of names (word
  characters) to a string value or null (null removes the var; the other vars
  stay), answered 200 with every var after the change; anything else is 422
  invalid_params and changes nothing;
- dyno restart: DELETE /apps/{app}/dynos/{type}.{n} for a running dyno (n up to the
  formation's quantity), answered 202 {} and listed in `restarts`; else 404;
- app webhooks (scaler/fake_heroku_webhooks.py): POST|GET /apps/{app}/webhooks,
  GET|PATCH|DELETE /apps/{app}/webhooks/{id}, and a signed api:formation
  delivery to each subscription on every formation change;
- `Accept: application/vnd.heroku+json; version=3` (variants like 3.cedar-acm
  allowed) or 400 missing_version; basic auth (any user, the key as password) or
  Bearer, checked against the key, or 401 unauthorized;
- errors as JSON {"id", "message"}: not_found 404, invalid_params 422,
  cannot_run_above_limit 422 (a quantity above the dyno limit: --dyno-limit, or
  one set per app; the body carries "limit" and "size" beside the message, as
  Heroku's does), rate_limit 429;
- a token bucket of --rate-limit requests per hour, refilled gradually, with
  RateLimit-Remaining and Request-Id headers on every response, and on a 429
  Retry-After: the seconds until a token is back (Heroku documents no
  Retry-After; a client must cope with it present or absent).

Admin endpoints outside Heroku's API, without authentication (bind to localhost):

  POST /__fake__/faults    queue faults for the next API requests; one JSON object or a list:
                           {"status": 503, "count": 2}        answer with an error
                           {"latency": 1.5, "count": 3}       delay, then answer normally
                           {"timeout": true, "seconds": 30}   hold the request, then 504
                           {"hang": true, "seconds": 30}      hold the connection without
                                                              answering, then close it
                                                              (the request is not carried out)
                           {"status": 429, "retry_after": 5}  a 429 with Retry-After: 5
                           optional "method": "PATCH" applies a fault to that method only,
                           "path": "text" to requests whose path contains the text,
                           "app": "name" to requests for that app (by name or id)
  POST /__fake__/rate-limit {"remaining": n}  set the token bucket (0 to force 429s)
  POST /__fake__/dyno-limit {"limit": n[, "app": name]}  the most dynos of one process
                           type (of its size), for every app or one app
  GET  /__fake__/state     formations, remaining rate limit, pending faults
  GET  /__fake__/requests  every PATCH received: at (unix time), method, path, body, status
                           (None: hung up without an answer)
  GET  /__fake__/deliveries every webhook delivery attempt: at, webhook, app, url, status
  POST /__fake__/reset     formations back to min_dynos, no faults, empty log, full bucket,
                           no webhooks, no config vars

In-process users (the demo) register formation listeners, called after each
change as listener(app_name, process_type, old_quantity, new_quantity).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from dynoscaler import config
from dynoscaler.config import ConfigError
from scaler.fake_heroku_webhooks import InvalidWebhook, Webhooks, heroku_now

DEFAULT_RATE_LIMIT = 4500  # requests per hour per token, as on api.heroku.com
DEFAULT_DYNO_LIMIT = 100  # Heroku's default scaling limit for standard dynos per process type
DEFAULT_SIZE = "standard-1X"
# The Common Runtime's sizes; the fake's apps run there (no space).
SIZES = (
    "eco",
    "basic",
    "standard-1X",
    "standard-2X",
    "performance-M",
    "performance-L",
    "performance-L-RAM",
    "performance-XL",
    "performance-2XL",
)
# Sizes that exist on Heroku but only in Private or Shield Spaces.
SPACE_SIZES = ("private-S", "private-M", "private-L", "shield-S", "shield-M", "shield-L")
# Heroku runs an app's eco or basic dynos or its professional ones, never both.
_HOBBY_SIZES = ("eco", "basic")
_ACCEPT = re.compile(r"application/vnd\.heroku\+json;\s*version=3(\.[\w-]+)?(\s*[;,]|\s*$)")
_CONFIG_VAR_NAME = re.compile(r"^\w+$", re.ASCII)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Stable ids: the same app name gets the same UUID in every run.
_NAMESPACE = uuid.UUID("5b1f0f5e-6a8e-4c55-9a43-6f3e4d1c2b7a")

Listener = Callable[[str, str, int, int], None]
log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered the way Heroku does: a status and a JSON body with id and message."""

    def __init__(self, status: int, error_id: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message, self.extra = status, error_id, message, extra


@dataclass
class Formation:
    app_id: str
    app_name: str
    type: str
    quantity: int
    created_at: str
    updated_at: str
    size: str = DEFAULT_SIZE

    @property
    def id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.app_name}/{self.type}"))

    def to_json(self) -> dict[str, Any]:
        return {
            "app": {"id": self.app_id, "name": self.app_name},
            "command": f"bin/{self.type}",
            "created_at": self.created_at,
            "dyno_size": {"id": str(uuid.uuid5(_NAMESPACE, self.size)), "name": self.size},
            "id": self.id,
            "quantity": self.quantity,
            "size": self.size,
            "type": self.type,
            "updated_at": self.updated_at,
        }


@dataclass
class App:
    name: str
    created_at: str
    formations: dict[str, Formation] = field(default_factory=dict)
    config_vars: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, self.name))

    def to_json(self) -> dict[str, Any]:
        region = {"id": str(uuid.uuid5(_NAMESPACE, "us")), "name": "us"}
        stack = {"id": str(uuid.uuid5(_NAMESPACE, "heroku-24")), "name": "heroku-24"}
        return {
            "acm": False,
            "archived_at": None,
            "build_stack": stack,
            "buildpack_provided_description": None,
            "created_at": self.created_at,
            "generation": "cedar",
            "git_url": f"https://git.heroku.com/{self.name}.git",
            "id": self.id,
            "internal_routing": None,
            "maintenance": False,
            "name": self.name,
            "organization": None,
            "owner": {"email": "owner@example.com", "id": str(uuid.uuid5(_NAMESPACE, "owner"))},
            "region": region,
            "released_at": self.created_at,
            "repo_size": None,
            "slug_size": None,
            "space": None,
            "stack": stack,
            "team": None,
            "updated_at": self.created_at,
            "web_url": f"https://{self.name}.herokuapp.com/",
        }


class TokenBucket:
    """Heroku's rate limit: `capacity` requests per hour, refilled continuously; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.tokens = float(capacity)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.capacity / 3600)
        self._stamp = now

    def take(self) -> bool:
        with self._lock:
            self._refill()
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    def remaining(self) -> int:
        with self._lock:
            self._refill()
            return int(self.tokens)

    def set(self, remaining: float) -> int:
        with self._lock:
            self._refill()
            self.tokens = max(0.0, min(float(self.capacity), remaining))
            return int(self.tokens)

    def seconds_to_token(self) -> int:
        """Whole seconds until one token is back (Retry-After), at least 1."""
        with self._lock:
            self._refill()
            return max(1, math.ceil((1 - self.tokens) * 3600 / self.capacity))


@dataclass
class Fault:
    status: int | None = None
    latency: float = 0.0
    timeout: bool = False
    hang: bool = False
    seconds: float = 30.0
    retry_after: float | None = None
    method: str | None = None
    path: str | None = None
    app: str | None = None
    count: int = 1

    _KEYS = (
        "status",
        "latency",
        "timeout",
        "hang",
        "seconds",
        "retry_after",
        "method",
        "path",
        "app",
    )

    @classmethod
    def parse(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise ApiError(422, "invalid_params", 'a fault is an object such as {"status": 500}')
        unknown = set(spec) - {*cls._KEYS, "count"}
        if unknown:
            raise ApiError(
                422, "invalid_params", f"unknown fault keys: {', '.join(sorted(unknown))}"
            )
        try:
            fault = cls(**spec)
            valid = (
                (fault.status is None or 400 <= int(fault.status) <= 599)
                and float(fault.latency) >= 0
                and float(fault.seconds) >= 0
                and (fault.retry_after is None or float(fault.retry_after) >= 0)
                and int(fault.count) >= 1
            )
        except (TypeError, ValueError):
            valid = False
        if not valid or not (fault.status or fault.latency or fault.timeout or fault.hang):
            raise ApiError(
                422,
                "invalid_params",
                "a fault needs status (400-599), latency (seconds), timeout: true or "
                "hang: true, and count >= 1",
            )
        fault.method = fault.method.upper() if fault.method else None
        return fault

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def applies(self, method: str, path: str, app: App | None) -> bool:
        return (
            self.method in (None, method)
            and (self.path is None or self.path in path)
            and (self.app is None or (app is not None and self.app in (app.name, app.id)))
        )


class FakeHeroku:
    """The state behind the fake API: apps, formations, rate limit, faults, PATCH log."""

    def __init__(
        self,
        settings: config.Config,
        api_key: str,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        dyno_limit: int = DEFAULT_DYNO_LIMIT,
    ) -> None:
        self.api_key = api_key
        self.dyno_limit = dyno_limit
        self.rate_limit = rate_limit
        self.listeners: list[Listener] = []
        self.webhooks = Webhooks()
        self._settings = settings
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        created = heroku_now()
        apps: dict[str, App] = {}
        for role in self._settings.roles:
            app = apps.setdefault(role.app, App(name=role.app, created_at=created))
            app.formations[role.role] = Formation(
                app_id=app.id,
                app_name=app.name,
                type=role.role,
                quantity=role.min_dynos,
                created_at=created,
                updated_at=created,
                **_first_size(role.sizes),
            )
        with self._lock:
            self.apps = apps
            self.app_limits: dict[str, int] = {}
            self.limit = self.dyno_limit
            self.bucket = TokenBucket(self.rate_limit)
            self.faults: list[Fault] = []
            self.requests: list[dict[str, Any]] = []
            self.restarts: list[tuple[str, str]] = []  # (app, dyno) restarted
        self.webhooks.reset()

    # -- lookups ---------------------------------------------------------------------------

    def app(self, id_or_name: str) -> App:
        if _UUID.match(id_or_name):
            found = next((a for a in self.apps.values() if a.id == id_or_name), None)
        else:
            found = self.apps.get(id_or_name)
        if found is None:
            raise ApiError(404, "not_found", "Couldn't find that app.", resource="app")
        return found

    def formation(self, app: App, id_or_type: str) -> Formation:
        found = next((f for f in app.formations.values() if id_or_type in (f.type, f.id)), None)
        if found is None:
            raise ApiError(404, "not_found", "Couldn't find that formation.", resource="formation")
        return found

    def formation_json(self, app: App, process: str | None = None) -> Any:
        """One formation (by type or id) or, without `process`, the app's list, as JSON."""
        with self._lock:
            if process is not None:
                return self.formation(app, process).to_json()
            return [f.to_json() for f in app.formations.values()]

    def config_vars(self, app: App, changes: dict[str, Any] | None = None) -> dict[str, str]:
        """The app's config vars after `changes` (name -> value, None removes), all or none."""
        changes = changes or {}
        for name, value in changes.items():
            if not _CONFIG_VAR_NAME.match(name) or not (value is None or isinstance(value, str)):
                raise ApiError(
                    422,
                    "invalid_params",
                    f"Invalid config var {name!r}: names are letters, digits and underscores, "
                    "values strings or null.",
                )
        with self._lock:
            for name, value in changes.items():
                if value is None:
                    app.config_vars.pop(name, None)
                else:
                    app.config_vars[name] = value
            return dict(app.config_vars)

    def quantities(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {
                (a.name, f.type): f.quantity
                for a in self.apps.values()
                for f in a.formations.values()
            }

    # -- changes ---------------------------------------------------------------------------

    def update(self, app: App, updates: list[dict[str, Any]]) -> list[Formation]:
        """Apply all updates or none (Heroku's batch update is atomic)."""
        with self._lock:
            planned = [(self.formation(app, u["type"]), *self._validate(app, u)) for u in updates]
            _check_tier(app, {f.type: size for f, _, size in planned if size is not None})
            changes = []
            stamp = heroku_now()
            for formation, quantity, size in planned:
                old = formation.quantity
                if quantity is not None:
                    formation.quantity = quantity
                if size is not None:
                    formation.size = size
                formation.updated_at = stamp
                changes.append((formation, old))
        for formation, old in changes:
            self.webhooks.formation_changed(app.id, formation.to_json(), old)
            if formation.quantity != old:
                self._notify(app.name, formation.type, old, formation.quantity)
        return [formation for formation, _ in changes]

    def _validate(self, app: App, update: dict[str, Any]) -> tuple[int | None, str | None]:
        quantity, size = update.get("quantity"), update.get("size")
        if quantity is None and size is None:
            raise ApiError(422, "invalid_params", "Provide a quantity or a size to update.")
        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0
        ):
            raise ApiError(422, "invalid_params", f"Invalid quantity: {quantity!r}.")
        if size is not None:
            asked = str(size).lower()
            if any(s.lower() == asked for s in SPACE_SIZES):
                raise ApiError(
                    422,
                    "invalid_params",
                    f"{update['size']} dynos can only be used in a Private or Shield Space.",
                )
            size = next((s for s in SIZES if s.lower() == asked), None)
            if size is None:
                raise ApiError(422, "invalid_params", f"Invalid size: {update['size']!r}.")
        limit = self.app_limits.get(app.name, self.limit)
        if quantity is not None and quantity > limit:
            size = size or self.formation(app, update["type"]).size
            shown = size[0].upper() + size[1:]
            raise ApiError(
                422,
                "cannot_run_above_limit",
                f"Cannot run more than {limit} {shown} size dynos.",
                limit=limit,
                size=shown,
                url="https://devcenter.heroku.com/articles/dyno-size#default-scaling-limits",
            )
        return quantity, size

    def _notify(self, app: str, process_type: str, old: int, new: int) -> None:
        for listener in list(self.listeners):
            try:
                listener(app, process_type, old, new)
            except Exception:  # a broken listener must not turn into a Heroku error
                log.exception("formation listener %r failed", listener)

    def add_faults(self, faults: list[Fault]) -> list[dict[str, Any]]:
        """Queue faults; the pending ones, oldest first."""
        with self._lock:
            self.faults.extend(faults)
            return [f.to_json() for f in self.faults]

    def set_limit(self, limit: int, app: str | None = None) -> dict[str, Any]:
        """The dyno limit of every app (app None) or of one app; the limits in force."""
        with self._lock:
            if app is None:
                self.limit = limit
            else:
                self.app_limits[self.app(app).name] = limit
            return {"dyno_limit": self.limit, "app_limits": dict(self.app_limits)}

    def next_fault(self, method: str, path: str) -> Fault | None:
        parts = path.split("/")
        app = None
        if len(parts) > 2 and parts[1] == "apps":
            with contextlib.suppress(ApiError):
                app = self.app(parts[2])
        with self._lock:
            for fault in self.faults:
                if fault.applies(method, path, app):
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def request_log(self) -> list[dict[str, Any]]:
        """Every PATCH received so far, oldest first."""
        with self._lock:
            return list(self.requests)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "apps": [
                    {
                        "name": a.name,
                        "id": a.id,
                        "formation": [
                            {"type": f.type, "quantity": f.quantity, "size": f.size}
                            for f in a.formations.values()
                        ],
                    }
                    for a in self.apps.values()
                ],
                "rate_limit_remaining": self.bucket.remaining(),
                "dyno_limit": self.limit,
                "app_limits": dict(self.app_limits),
                "faults": [f.to_json() for f in self.faults],
            }


def create_app(fake: FakeHeroku) -> Flask:
    """The Flask application serving `fake` as the Heroku Platform API."""
    web = Flask(__name__)

    @web.before_request
    def gatekeeper() -> Response | None:
        g.request_id = str(uuid.uuid4())
        if request.path.startswith("/__fake__/"):
            return None
        if not _ACCEPT.search(request.headers.get("Accept", "")):
            raise ApiError(
                400,
                "missing_version",
                "Please specify a version along with Heroku's API MIME type. "
                "For example, `Accept: application/vnd.heroku+json; version=3`.",
            )
        if _presented_key() != fake.api_key:
            raise ApiError(401, "unauthorized", "Invalid credentials provided.")
        if request.path != "/account/rate-limits" and not fake.bucket.take():
            raise ApiError(
                429,
                "rate_limit",
                "Your account reached the API rate limit\n"
                "Please wait a few minutes before making new requests",
                retry_after=fake.bucket.seconds_to_token(),
            )
        _apply_fault(fake.next_fault(request.method, request.path))
        return None

    @web.after_request
    def headers(response: Response) -> Response:
        response.headers["Request-Id"] = g.get("request_id", str(uuid.uuid4()))
        response.headers["RateLimit-Remaining"] = str(fake.bucket.remaining())
        if request.method == "PATCH" and not request.path.startswith("/__fake__/"):
            fake.record(
                {
                    "at": time.time(),
                    "method": request.method,
                    "path": request.path,
                    "body": request.get_json(force=True, silent=True),
                    "status": None if g.get("hung") else response.status_code,
                }
            )
        return response

    @web.errorhandler(ApiError)
    def api_error(error: ApiError) -> tuple[Response, int]:
        extra = dict(error.extra)
        retry_after = extra.pop("retry_after", None)
        response = jsonify({**extra, "id": error.error_id, "message": error.message})
        if retry_after is not None:
            response.headers["Retry-After"] = f"{retry_after:g}"
        return response, error.status

    @web.errorhandler(_HangUp)
    def hang_up(error: _HangUp) -> Response:
        # No answer at all: the client sees the connection closed (werkzeug's
        # write of this response then fails quietly as a dropped connection).
        g.hung = True
        connection = request.environ.get("werkzeug.socket")
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return Response(status=504)

    @web.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        message = (
            "The requested API endpoint was not found. Are you using the right HTTP verb "
            "(i.e. `GET` vs. `POST`), and did you specify your intended version with the "
            "`Accept` header?"
        )
        status = error.code or 500
        body = {"id": "not_found", "message": message} if status in (404, 405) else None
        body = body or {"id": "bad_request", "message": error.description}
        return jsonify(body), 404 if status == 405 else status

    @web.get("/account/rate-limits")
    def rate_limits() -> Response:
        return jsonify({"remaining": fake.bucket.remaining()})

    @web.get("/apps/<app_id>")
    def app_info(app_id: str) -> Response:
        return jsonify(fake.app(app_id).to_json())

    @web.get("/apps/<app_id>/formation")
    def formation_list(app_id: str) -> Response:
        return jsonify(fake.formation_json(fake.app(app_id)))

    @web.get("/apps/<app_id>/formation/<process>")
    def formation_info(app_id: str, process: str) -> Response:
        return jsonify(fake.formation_json(fake.app(app_id), process))

    @web.patch("/apps/<app_id>/formation/<process>")
    def formation_update(app_id: str, process: str) -> Response:
        app = fake.app(app_id)
        body = _json_object()
        (updated,) = fake.update(app, [{**body, "type": process}])
        return jsonify(updated.to_json())

    @web.patch("/apps/<app_id>/formation")
    def formation_batch_update(app_id: str) -> Response:
        app = fake.app(app_id)
        updates = _json_object().get("updates")
        if not isinstance(updates, list) or not updates:
            raise ApiError(422, "invalid_params", "updates must be a non-empty list.")
        if not all(isinstance(u, dict) and isinstance(u.get("type"), str) for u in updates):
            raise ApiError(422, "invalid_params", "each update needs a type.")
        return jsonify([f.to_json() for f in fake.update(app, updates)])

    @web.delete("/apps/<app_id>/dynos/<dyno>")
    def dyno_restart(app_id: str, dyno: str) -> tuple[Response, int]:
        app = fake.app(app_id)
        process, _, number = dyno.rpartition(".")
        found = app.formations.get(process)
        if found is None or not number.isdigit() or not 1 <= int(number) <= found.quantity:
            raise ApiError(404, "not_found", "Couldn't find that dyno.", resource="dyno")
        fake.restarts.append((app.name, dyno))
        return jsonify({}), 202

    @web.get("/apps/<app_id>/config-vars")
    def config_var_info(app_id: str) -> Response:
        return jsonify(fake.config_vars(fake.app(app_id)))

    @web.patch("/apps/<app_id>/config-vars")
    def config_var_update(app_id: str) -> Response:
        app = fake.app(app_id)
        return jsonify(fake.config_vars(app, _json_object()))

    _add_webhook_routes(web, fake)
    _add_admin_routes(web, fake)
    return web


def _add_webhook_routes(web: Flask, fake: FakeHeroku) -> None:
    def hook_of(app_id: str, hook_id: str) -> Any:
        hook = fake.webhooks.get(fake.app(app_id).id, hook_id)
        if hook is None:
            raise ApiError(404, "not_found", "Couldn't find that webhook.", resource="webhook")
        return hook

    def invalid(error: InvalidWebhook) -> ApiError:
        return ApiError(422, "invalid_params", str(error))

    @web.post("/apps/<app_id>/webhooks")
    def webhook_create(app_id: str) -> tuple[Response, int]:
        app = fake.app(app_id)
        try:
            hook = fake.webhooks.create(app.id, app.name, _json_object())
        except InvalidWebhook as error:
            raise invalid(error) from None
        return jsonify(hook.to_json()), 201

    @web.get("/apps/<app_id>/webhooks")
    def webhook_list(app_id: str) -> Response:
        return jsonify([h.to_json() for h in fake.webhooks.of_app(fake.app(app_id).id)])

    @web.get("/apps/<app_id>/webhooks/<hook_id>")
    def webhook_info(app_id: str, hook_id: str) -> Response:
        return jsonify(hook_of(app_id, hook_id).to_json())

    @web.patch("/apps/<app_id>/webhooks/<hook_id>")
    def webhook_update(app_id: str, hook_id: str) -> Response:
        hook = hook_of(app_id, hook_id)
        try:
            return jsonify(fake.webhooks.update(hook, _json_object()).to_json())
        except InvalidWebhook as error:
            raise invalid(error) from None

    @web.delete("/apps/<app_id>/webhooks/<hook_id>")
    def webhook_delete(app_id: str, hook_id: str) -> Response:
        hook = hook_of(app_id, hook_id)
        fake.webhooks.delete(hook)
        return jsonify(hook.to_json())


def _add_admin_routes(web: Flask, fake: FakeHeroku) -> None:
    @web.post("/__fake__/faults")
    def add_faults() -> Response:
        body = request.get_json(force=True, silent=True)
        faults = [Fault.parse(spec) for spec in (body if isinstance(body, list) else [body])]
        return jsonify(fake.add_faults(faults))

    @web.post("/__fake__/dyno-limit")
    def set_dyno_limit() -> Response:
        body = request.get_json(force=True, silent=True)
        limit = body.get("limit") if isinstance(body, dict) else None
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ApiError(422, "invalid_params", "limit must be an integer >= 0.")
        app = body.get("app")
        if app is not None and not isinstance(app, str):
            raise ApiError(422, "invalid_params", "app must be an app's name.")
        return jsonify(fake.set_limit(limit, app))

    @web.post("/__fake__/rate-limit")
    def set_rate_limit() -> Response:
        body = request.get_json(force=True, silent=True)
        remaining = body.get("remaining") if isinstance(body, dict) else None
        if isinstance(remaining, bool) or not isinstance(remaining, int | float):
            raise ApiError(422, "invalid_params", "remaining must be a number.")
        return jsonify({"remaining": fake.bucket.set(remaining)})

    @web.get("/__fake__/state")
    def state() -> Response:
        return jsonify(fake.state())

    @web.get("/__fake__/requests")
    def requests_log() -> Response:
        return jsonify(fake.request_log())

    @web.get("/__fake__/deliveries")
    def deliveries() -> Response:
        return jsonify(fake.webhooks.deliveries())

    @web.post("/__fake__/reset")
    def reset() -> Response:
        fake.reset()
        return jsonify(fake.state())


def _presented_key() -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_params", "The request body must be a JSON object.")
    return body


def _apply_fault(fault: Fault | None) -> None:
    if fault is None:
        return
    if fault.latency:
        time.sleep(fault.latency)
    if fault.hang:
        time.sleep(fault.seconds)
        raise _HangUp
    if fault.timeout:
        time.sleep(fault.seconds)
        raise ApiError(504, "timeout", "The request timed out (injected by the fake).")
    if fault.status:
        extra = {} if fault.retry_after is None else {"retry_after": fault.retry_after}
        message = "Injected fault."
        raise ApiError(fault.status, _STATUS_IDS.get(fault.status, "error"), message, **extra)


class _HangUp(Exception):
    """A hang fault ran out: close the connection without an answer."""


_STATUS_IDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    422: "invalid_params",
    429: "rate_limit",
    500: "internal_server_error",
    503: "service_unavailable",
}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class FakeHerokuServer:
    """The fake served by werkzeug's threaded server in a background thread."""

    def __init__(
        self, fake: FakeHeroku, host: str = "127.0.0.1", port: int = 0, access_log: bool = True
    ) -> None:
        self.fake = fake
        handler = WSGIRequestHandler if access_log else _QuietHandler
        try:
            self._server: BaseWSGIServer = make_server(
                host, port, create_app(fake), threaded=True, request_handler=handler
            )
        except OSError as error:
            where = f"{host}:{port}"
            raise ConfigError(f"fake-heroku: cannot listen on {where}: {error.strerror}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}"

    def start(self) -> FakeHerokuServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="autoscale.yml: the apps and roles to serve"
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any free)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--api-key", help="the key clients must present (default: $HEROKU_API_KEY)")
    parser.add_argument(
        "--rate-limit", type=int, default=DEFAULT_RATE_LIMIT, help="requests per hour"
    )
    parser.add_argument(
        "--dyno-limit",
        type=int,
        default=DEFAULT_DYNO_LIMIT,
        help="most dynos per process type (above: 422 cannot_run_above_limit)",
    )


def run(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get("HEROKU_API_KEY")
    if not api_key:
        raise ConfigError("fake-heroku: give --api-key or set HEROKU_API_KEY")
    if args.rate_limit < 1 or args.dyno_limit < 0:
        raise ConfigError("fake-heroku: --rate-limit must be >= 1 and --dyno-limit >= 0")
    fake = FakeHeroku(config.load(args.config), api_key, args.rate_limit, args.dyno_limit)
    server = FakeHerokuServer(fake, args.bind, args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"fake-heroku: serving {', '.join(fake.apps)} on {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def _first_size(sizes: tuple[config.SizeOption, ...]) -> dict[str, str]:
    """A role listing sizes starts at the first, in Heroku's spelling when known."""
    if not sizes:
        return {}
    name = sizes[0].size
    return {"size": next((s for s in SIZES if s.lower() == name.lower()), name)}


def _check_tier(app: App, sizes: dict[str, str]) -> None:
    """Refuse a formation mixing eco or basic dynos with professional ones (422)."""
    after = {f.type: sizes.get(f.type, f.size) for f in app.formations.values()}
    hobby = {t for t, size in after.items() if size.lower() in _HOBBY_SIZES}
    if hobby and len(hobby) < len(after):
        raise ApiError(
            422,
            "invalid_params",
            "Cannot mix Eco or Basic dynos with Standard or Performance dynos in one app "
            f"({', '.join(f'{t}: {after[t]}' for t in sorted(after))}).",
        )
