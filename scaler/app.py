"""The scaler's HTTP API (Flask app factory): Alertmanager webhook, health, metrics, log.

POST /alerts and GET /decisions need `Authorization: Bearer <token>` (or basic
auth with the token as password); GET /healthz, /metrics and /openapi.yml are
open. Every error is JSON {"error": ...}; a payload that can never succeed gets
a 4xx (Alertmanager retries only 5xx) and changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from importlib import resources
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from dynoscaler.config import Config, ConfigError
from dynoscaler.credentials import authorized
from scaler import explain, metrics
from scaler.actuator import Actuator, HerokuError
from scaler.alerts import PayloadError, parse
from scaler.notifiers import Notifiers
from scaler.service import Notify, Scaler
from scaler.store import STORE_ERRORS, Decision, Store

TOKEN_ENV = "DYNOSCALER_WEBHOOK_TOKEN"
MAX_BODY_BYTES = 1024 * 1024
# Alertmanager's payload nests 4 deep (payload, alerts, alert, labels). A bound far
# below the interpreter's recursion limit keeps decoding, validating and recording
# from recursing near it (a RecursionError would be a 500, retried forever).
MAX_JSON_DEPTH = 32
MAX_LIMIT = 1000


def create_app(
    config: Config,
    store: Store | None = None,
    actuator: Actuator | None = None,
    notify: Notify | None = None,
    token: str | None = None,
) -> Flask:
    """Build the app; the token defaults to DYNOSCALER_WEBHOOK_TOKEN (required)."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"{TOKEN_ENV} is not set: the scaler refuses to run without a secret")
    store = store or Store(config.scaler.store)
    actuator = actuator or Actuator()
    notify = notify or Notifiers(config.scaler.notifiers, config.scaler.prometheus_url)
    scaler = Scaler(config, store, actuator, notify)

    app = Flask("scaler")
    # One byte over the cap: a body sent without Content-Length (chunked) is cut
    # there, not refused, so `alerts` tells a body at the cap from a longer one.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    app.json.sort_keys = False

    @app.before_request
    def authenticate() -> Any:
        if request.endpoint in ("alerts", "decisions", "annotations") and not authorized(
            request.headers.get("Authorization", ""), token
        ):
            return _error(401, "missing or wrong credentials (Bearer token or basic auth)")
        return None

    @app.after_request
    def count(response: Response) -> Response:
        metrics.REQUESTS.labels(request.endpoint or "unknown", str(response.status_code)).inc()
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = _error(error.code or 500, error.description or error.name)
        # Keep werkzeug's headers (Allow on a 405), with a JSON body instead of HTML.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if isinstance(error, STORE_ERRORS):
            # Transient: a 5xx makes Alertmanager send the alerts again.
            app.logger.error("decision store unavailable: %s", error)
            return _error(503, f"decision store unavailable: {type(error).__name__}")
        app.logger.exception("unexpected error")
        return _error(500, f"internal error: {type(error).__name__}")

    @app.post("/alerts")
    def alerts() -> Any:
        body = request.get_data(cache=False)
        if len(body) > MAX_BODY_BYTES:
            raise RequestEntityTooLarge()
        problem = None
        try:
            payload = json.loads(body, parse_constant=_not_json)
            problem = _too_deep(payload)
            if problem is None:
                # JSON may escape lone surrogates, which are not text: refuse them here.
                json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            problem = f"nested deeper than {MAX_JSON_DEPTH} levels"
        except (ValueError, UnicodeError) as error:
            problem = str(error)
        if problem is not None:
            return _error(400, f"body is not JSON text: {problem}")
        now = time.time()
        try:
            parsed = parse(payload, config, now)
        except PayloadError as error:
            return _error(422, "payload refused, nothing done", problems=error.problems)
        decisions = [_ignored(alert, reason, now) for alert, reason in parsed.ignored]
        scaler.record(decisions)
        for alert in parsed.unmeetable:
            notify({"event": "deadline_unmeetable", **_labels(alert), **alert["annotations"]})
        for app_name, inputs in parsed.scale.items():
            decisions += scaler.apply(app_name, inputs, "webhook")
        failed = any(d.outcome == "failure" for d in decisions)
        # Heroku failing is transient: a 5xx makes Alertmanager send it again.
        status = 502 if failed else 200
        return jsonify(decisions=[_summary(d) for d in decisions]), status

    @app.get("/decisions")
    def decisions() -> Any:
        limit = _limit(request.args.get("limit", "100"))
        if limit is None:
            return _error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        rows = store.decisions(request.args.get("app"), request.args.get("role"), limit)
        return jsonify(decisions=rows)

    @app.get("/annotations")
    def annotations() -> Any:
        """Scale actions as Grafana annotations (the Infinity data source): a JSON array."""
        limit = _limit(request.args.get("limit", "100"))
        bounds = [_milliseconds(request.args.get(name)) for name in ("from", "to")]
        if limit is None or any(b is False for b in bounds):
            return _error(
                400,
                f"limit must be an integer from 1 to {MAX_LIMIT}; from and to Unix milliseconds",
            )
        since, until = (None if b is None else b / 1000 for b in bounds)
        args = (request.args.get("app"), request.args.get("role"), limit, since, until)
        rows = store.decisions(*args, actions=True)
        return jsonify(explain.annotations(rows, config.scaler.prometheus_url))

    @app.get("/healthz")
    def healthz() -> Any:
        checks = {"store": _check(store.check_writable)}
        checks["heroku"] = "dry run" if config.scaler.dry_run else _check(actuator.check)
        healthy = all(v in ("ok", "dry run") for v in checks.values())
        return jsonify(checks), 200 if healthy else 503

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.yml")
    def openapi() -> Response:
        text = resources.files("scaler").joinpath("openapi.yml").read_text(encoding="utf-8")
        return Response(text, content_type="application/yaml")

    return app


def _limit(text: str) -> int | None:
    """A limit from 1 to MAX_LIMIT, or None."""
    # Not str.isdigit: it accepts digits int() refuses, such as "²".
    if re.fullmatch(r"[0-9]{1,4}", text) and 1 <= int(text) <= MAX_LIMIT:
        return int(text)
    return None


def _milliseconds(text: str | None) -> int | None | bool:
    """Unix milliseconds (Grafana's ${__from}), None when absent, False when malformed."""
    if text is None:
        return None
    return int(text) if re.fullmatch(r"[0-9]{1,15}", text) else False


def _not_json(constant: str) -> Any:
    """json.loads' hook for NaN, Infinity and -Infinity, which JSON (RFC 8259) lacks."""
    raise ValueError(f"{constant} is not a JSON value")


def _too_deep(value: Any) -> str | None:
    """Why a decoded body nests too deep (None: it does not); walked without recursion."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_JSON_DEPTH:
                    return f"nested deeper than {MAX_JSON_DEPTH} levels"
                stack.append((child, depth + 1))
    return None


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


def _check(probe: Any) -> str:
    try:
        probe()
    except (HerokuError, ConfigError) as error:
        return f"failing: {error}"
    except Exception as error:  # noqa: BLE001 - any store failure is a failed check
        return f"failing: {type(error).__name__}: {error}"
    return "ok"


def _labels(alert: dict[str, Any]) -> dict[str, str]:
    return {k: alert["labels"][k] for k in ("app", "role", "alertname") if k in alert["labels"]}


def _ignored(alert: dict[str, Any], reason: str, now: float) -> Decision:
    keys = ("labels", "annotations", "startsAt", "endsAt", "fingerprint", "status")
    return Decision(
        time=now,
        source="webhook",
        app=alert["labels"].get("app", ""),
        role=alert["labels"].get("role", ""),
        inputs={"alerts": [{k: alert[k] for k in keys if k in alert}]},
        settings={},
        from_count=None,
        to_count=None,
        reason=reason,
        outcome="ignored",
    )


def _summary(d: Decision) -> dict[str, Any]:
    return {
        "app": d.app,
        "role": d.role,
        "from": d.from_count,
        "to": d.to_count,
        "reason": d.reason,
        "outcome": d.outcome,
    }


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
