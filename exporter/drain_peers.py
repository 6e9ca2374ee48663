"""Peers for `dynoscaler bench drain`: the exporter's drain behind other HTTP servers.

    python -m exporter.drain_peers stdlib|gthread CONFIG

serves /metrics and POST /logs/<app> on 127.0.0.1 (a free port, printed as
"... listening on http://127.0.0.1:PORT/metrics") with the exporter's own
RouterStats and collector, behind

- stdlib: the exporter's server until issue 15: the standard library's
  threading WSGI server (HTTP/1.0, a new connection per request, listen
  backlog 5);
- gthread: gunicorn's threaded WSGI worker, one process (the exporter's state
  must stay in one), 8 threads, keep-alive and the exporter's backlog.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from gunicorn.app.base import BaseApplication
from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from dynoscaler import config
from dynoscaler.credentials import authorized
from exporter.cli import Exporter, build
from exporter.logdrain import BadDrainBody
from exporter.server import BACKLOG, DRAIN_TOKEN_ENV, KEEPALIVE_SECONDS, MAX_DRAIN_BODY, listen

WSGIApp = Callable[..., Iterable[bytes]]


def wsgi_app(exporter: Exporter, drain_token: str) -> WSGIApp:
    """The drain as a WSGI app (bodies with a Content-Length, as the benchmark sends)."""
    metrics = make_wsgi_app(exporter.registry())
    router = exporter.router

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if not path.startswith("/logs/") or environ["REQUEST_METHOD"] != "POST":
            return _reply(start_response, "404 Not Found", "POST /logs/<app>")
        if not authorized(environ.get("HTTP_AUTHORIZATION", ""), drain_token):
            return _reply(start_response, "401 Unauthorized", "wrong drain credentials")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if not 0 <= length <= MAX_DRAIN_BODY:
            return _reply(start_response, "413 Content Too Large", "body over the cap")
        try:
            counted = router.receive(
                path.removeprefix("/logs/"), environ["wsgi.input"].read(length)
            )
        except BadDrainBody as error:
            return _reply(start_response, "400 Bad Request", str(error))
        return _reply(start_response, "200 OK", f"{counted} router request(s) counted")

    return app


def _reply(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _stdlib(exporter: Exporter, token: str) -> None:
    server = make_server("127.0.0.1", 0, wsgi_app(exporter, token), ThreadingWSGIServer, _Quiet)
    print(f"stdlib peer listening on http://127.0.0.1:{server.server_port}/metrics", flush=True)
    try:
        server.serve_forever()
    finally:
        exporter.close()


class _Gthread(BaseApplication):
    def __init__(self, settings: config.Config, token: str) -> None:
        listener = listen("127.0.0.1", 0)
        self.port = listener.getsockname()[1]
        listener.set_inheritable(True)
        self.fd = listener.detach()
        self.settings, self.token = settings, token
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": f"fd://{self.fd}",
            "backlog": BACKLOG,
            "workers": 1,
            "worker_class": "gthread",
            "threads": 8,
            "keepalive": KEEPALIVE_SECONDS,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "post_worker_init": lambda worker: print(
                f"gthread peer listening on http://127.0.0.1:{self.port}/metrics", flush=True
            ),
        }
        if "control_socket_disable" in self.cfg.settings:
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApp:
        return wsgi_app(build(self.settings), self.token)


def main(argv: list[str]) -> None:
    kind, path = argv
    settings, token = config.load(path), os.environ[DRAIN_TOKEN_ENV]
    if kind == "stdlib":
        _stdlib(build(settings), token)
    elif kind == "gthread":
        _Gthread(settings, token).run()
    else:
        raise SystemExit(f"unknown peer {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
