"""The exporter's HTTP server: /metrics, /healthz and POST /logs/<app> (router log drain,
with the drain secret as bearer token or basic auth password: dynoscaler.credentials)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import CollectorRegistry

from dynoscaler.credentials import authorized
from exporter.logdrain import BadDrainBody, RouterStats

MAX_DRAIN_BODY = 1 << 20  # Logplex batches are a few kilobytes
DRAIN_TOKEN_ENV = "DYNOSCALER_DRAIN_TOKEN"

StartResponse = Callable[..., Any]
_log = logging.getLogger(__name__)


def wsgi_app(
    registry: CollectorRegistry, router: RouterStats, drain_token: str
) -> Callable[..., Iterable[bytes]]:
    """/metrics and /healthz open; POST /logs/<app> only with `drain_token`."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return _reply(start_response, "200 OK", "ok")
        if path.startswith("/logs/"):
            if method != "POST":
                return _reply(start_response, "405 Method Not Allowed", "POST a log drain batch")
            credentials = environ.get("HTTP_AUTHORIZATION", "")
            if not drain_token or not authorized(credentials, drain_token):
                return _reply(
                    start_response,
                    "401 Unauthorized",
                    f"missing or wrong drain credentials (the {DRAIN_TOKEN_ENV} secret)",
                    [("WWW-Authenticate", 'Basic realm="dynoscaler log drain"')],
                )
            return _drain(environ, start_response, router, path.removeprefix("/logs/"))
        return _reply(start_response, "404 Not Found", "try /metrics, /healthz or POST /logs/<app>")

    return app


def _drain(
    environ: dict[str, Any], start_response: StartResponse, router: RouterStats, app: str
) -> Iterable[bytes]:
    if app not in router.apps:
        message = f"app {app!r} has no role with `requests: router` in the settings"
        return _reply(start_response, "404 Not Found", message)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _reply(start_response, "400 Bad Request", "Content-Length is not a number")
    if length > MAX_DRAIN_BODY:
        return _reply(start_response, "413 Content Too Large", f"body over {MAX_DRAIN_BODY} bytes")
    body = environ["wsgi.input"].read(length)
    try:
        counted = router.receive(app, body)
    except BadDrainBody as error:
        return _reply(start_response, "400 Bad Request", f"not a Logplex body: {error}")
    return _reply(start_response, "200 OK", f"{counted} router request(s) counted")


def _reply(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = (text + "\n").encode()
    plain = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, plain + (headers or []))
    return [body]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(app: Callable[..., Iterable[bytes]], bind: str, port: int) -> WSGIServer:
    """A threaded WSGI server, bound but not yet serving (call serve_forever)."""
    return make_server(bind, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
