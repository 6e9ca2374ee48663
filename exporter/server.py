"""The exporter's HTTP server: /metrics, /healthz, POST /logs/<app> (router log drain,
with the drain secret as bearer token or basic auth password: dynoscaler.credentials),
POST /otlp/<app>/v1/logs and /v1/metrics (Fir's telemetry drains, the same secret:
exporter.otlp, exporter.otlp_metrics)
and POST /heroku/formation (Heroku's formation webhooks: exporter.formation_webhook,
404 while DYNOSCALER_HEROKU_WEBHOOK_SECRET is not set).

gunicorn serves it with one asyncio (ASGI) worker process, so the drain's
counters, the collectors' caches and the formation poller stay in the one
process /metrics reads (docs/exporter.md, "The HTTP server"). A drain batch is
parsed on the event loop (tens of microseconds); a scrape, which waits on the
sources for up to `source_timeout`, runs in a thread so the drain keeps flowing.
"""

from __future__ import annotations

import asyncio
import io
import signal
import socket
import sys
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

from gunicorn.app.base import BaseApplication
from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from dynoscaler.credentials import authorized
from dynoscaler.heroku_webhooks import SECRET_ENV
from exporter import otlp, otlp_metrics
from exporter.formation_webhook import MAX_BODY_BYTES as WEBHOOK_BODY_BYTES
from exporter.formation_webhook import PATH as WEBHOOK_PATH
from exporter.logdrain import BadDrainBody, RouterStats
from exporter.otlp_metrics import ServiceTimes

MAX_DRAIN_BODY = 1 << 20  # Logplex batches are a few kilobytes
DRAIN_TOKEN_ENV = "DYNOSCALER_DRAIN_TOKEN"
# Connections the kernel holds for the worker to accept (Linux caps it at
# net.core.somaxconn, 4096 on current kernels). The old server's 5 reset
# Logplex connections under load.
BACKLOG = 2048
# Seconds an idle keep-alive connection stays open. Logplex keeps one
# connection per drain and sends batch after batch on it: a connection closed
# between two batches costs a new TCP (and TLS) handshake, and a batch sent as
# the server closes the connection fails and is sent again. As long as load
# balancers keep theirs (nginx's default); a stopping exporter closes idle
# connections at once.
KEEPALIVE_SECONDS = 75
# Seconds a drain batch's body may take to arrive once its headers have (Logplex
# sends a few kilobytes at once): a body that never completes is answered 408
# rather than holding its connection until the client gives up.
BODY_SECONDS = 15
# Seconds a stopping exporter gives requests in flight (a scrape takes at most
# source_timeout, a batch milliseconds), and idle keep-alive connections to close.
GRACEFUL_SECONDS = 10

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[..., Iterable[bytes]]


class Served(Protocol):
    """What the server serves: built in the worker process (exporter.cli.Exporter)."""

    router: RouterStats
    web_metrics: ServiceTimes
    formation_webhook: WSGIApp | None  # None: no secret (or no formation poller)

    def registry(self) -> CollectorRegistry: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


def asgi_app(
    registry: CollectorRegistry,
    router: RouterStats,
    drain_token: str,
    webhook: WSGIApp | None = None,
    web_metrics: ServiceTimes | None = None,
) -> ASGIApp:
    """/metrics and /healthz open; POST /logs/<app> and /otlp/<app>/v1/{logs,metrics} only
    with `drain_token`;
    POST /heroku/formation to `webhook` (which checks the signature)."""
    web_metrics = web_metrics or ServiceTimes(())
    metrics = _text_format(make_wsgi_app(registry))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/metrics":
            # The sources are read in a thread: the event loop keeps taking drain batches.
            loop = asyncio.get_running_loop()
            status, headers, body = await loop.run_in_executor(None, _call_wsgi, metrics, scope)
            await _send(send, status, headers, body)
        elif path == "/healthz":
            await _reply(send, 200, "ok")
        elif path.startswith(("/logs/", otlp.PREFIX)):
            if method != "POST":
                await _reply(send, 405, "POST a log drain batch")
                return
            credentials = _header(scope, b"authorization")
            if not drain_token or not authorized(credentials, drain_token):
                await _reply(
                    send,
                    401,
                    f"missing or wrong drain credentials (the {DRAIN_TOKEN_ENV} secret)",
                    [(b"www-authenticate", b'Basic realm="dynoscaler log drain"')],
                )
                return
            if path.startswith("/logs/"):
                await _drain(scope, receive, send, router, path.removeprefix("/logs/"))
            else:
                await _otlp(scope, receive, send, router, web_metrics, path)
        elif path == WEBHOOK_PATH:
            await _webhook(scope, receive, send, webhook)
        else:
            await _reply(
                send, 404, "try /metrics, /healthz, POST /logs/<app> or /otlp/<app>/v1/logs"
            )

    return app


async def _drain(scope: Scope, receive: Receive, send: Send, router: RouterStats, app: str) -> None:
    if app not in router.apps:
        await _reply(send, 404, _no_router_roles(app))
        return
    body = await _read_body(scope, receive, send)
    if body is None:
        return
    try:
        counted = router.receive(app, body)
    except BadDrainBody as error:
        await _reply(send, 400, f"not a Logplex body: {error}")
        return
    await _reply(send, 200, f"{counted} router request(s) counted")


async def _otlp(
    scope: Scope,
    receive: Receive,
    send: Send,
    router: RouterStats,
    web_metrics: ServiceTimes,
    path: str,
) -> None:
    """A Fir telemetry drain's OTLP logs (exporter.otlp) or metrics (exporter.otlp_metrics)
    request, decoded in a thread and answered with an Export*ServiceResponse in its own
    encoding."""
    found = otlp.route(path)
    if found is None or found[1] not in (otlp.LOGS, otlp.METRICS):
        message = (
            f"try POST {otlp.PREFIX}<app>{otlp.LOGS} or {otlp.METRICS}: --signals logs,metrics"
        )
        await _reply(send, 404, message)
        return
    app, signal = found
    if signal == otlp.LOGS and app not in router.apps:
        await _reply(send, 404, _no_router_roles(app))
        return
    if signal == otlp.METRICS and app not in web_metrics.apps:
        message = (
            f"app {app!r} has no role with `requests: router` and no middleware: in the settings"
        )
        await _reply(send, 404, message)
        return
    body = await _read_body(scope, receive, send)
    if body is None:
        return
    content_type, encoding = _header(scope, b"content-type"), _header(scope, b"content-encoding")
    # In a thread: a 1 MiB gzipped body may hold 16 MiB of records, seconds of decoding.
    loop = asyncio.get_running_loop()
    read, into = (
        (otlp.receive_logs, router)
        if signal == otlp.LOGS
        else (otlp_metrics.receive_metrics, web_metrics)
    )
    try:
        _, answer, media = await loop.run_in_executor(
            None, read, into, app, body, content_type, encoding
        )
    except otlp.BadOtlpBody as error:
        await _reply(send, _OTLP_REFUSALS.get(type(error), 400), str(error))
        return
    await _send(send, 200, [(b"content-type", media.encode())], answer)


_OTLP_REFUSALS = {otlp.UnsupportedMediaType: 415, otlp.TooLarge: 413}


def _no_router_roles(app: str) -> str:
    return f"app {app!r} has no role with `requests: router` in the settings"


async def _webhook(scope: Scope, receive: Receive, send: Send, webhook: WSGIApp | None) -> None:
    """A formation webhook delivery, answered by the receiver's WSGI app on the event
    loop (a signature check and a dict update: microseconds)."""
    if webhook is None:
        message = f"formation webhooks are not configured (set {SECRET_ENV} and HEROKU_API_KEY)"
        await _reply(send, 404, message)
        return
    body = b""
    if scope["method"] == "POST":
        body = await _read_body(scope, receive, send, WEBHOOK_BODY_BYTES)
        if body is None:
            return
    await _send(send, *_call_wsgi(webhook, scope, body))


async def _read_body(
    scope: Scope, receive: Receive, send: Send, limit: int = MAX_DRAIN_BODY
) -> bytes | None:
    """The request body, at most `limit` bytes, with or without Content-Length
    (chunked); None once a refusal is sent (or the client has gone)."""
    declared = _header(scope, b"content-length")
    if declared and not declared.isdigit():  # -1, 1e3, ... (gunicorn refuses them first)
        await _reply(send, 400, "Content-Length is not a number", close=True)
        return None
    if declared and (len(declared) > len(str(limit)) or int(declared) > limit):
        await _reply(send, 413, f"body over {limit} bytes", close=True)
        return None
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:  # chunked, without a length to check first
                    await _reply(send, 413, f"body over {limit} bytes", close=True)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        await _reply(send, 408, f"body not complete within {BODY_SECONDS} s", close=True)
        return None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _text_format(metrics: WSGIApp) -> WSGIApp:
    """prometheus_client's /metrics in the text format (0.0.4) whatever the Accept header.

    Prometheus asks for OpenMetrics first; prometheus_client renders the same samples
    (45,940 at 500 apps x 3 roles, compared one by one) in it about 1.3 times as slowly,
    which a 5 s scrape of a fleet's page cannot spare (docs/scaling.md, bench fleet).
    """

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["HTTP_ACCEPT"] = "text/plain; version=0.0.4"
        return metrics(environ, start_response)

    return app


def _call_wsgi(wsgi: WSGIApp, scope: Scope, body: bytes = b"") -> tuple[int, list, bytes]:
    """Call a WSGI app (prometheus_client's /metrics, the formation webhook) for an
    ASGI request whose body, if any, is read already."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"],
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": scope.get("scheme", "http"),
    }
    for key, value in scope["headers"]:
        name = key.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = f"HTTP_{name}"
        environ[name] = value.decode("latin-1")
    environ["CONTENT_LENGTH"] = str(len(body))  # the body as read, chunked or not
    answer: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer[:] = [int(status.split(" ", 1)[0]), headers]

    body = b"".join(wsgi(environ, start_response))
    status, headers = answer
    return status, [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], body


async def _reply(
    send: Send,
    status: int,
    text: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
) -> None:
    plain = [(b"content-type", b"text/plain; charset=utf-8")]
    if close:  # the rest of the body stays unread: this connection cannot carry another request
        plain.append((b"connection", b"close"))
    await _send(send, status, plain + (headers or []), (text + "\n").encode())


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [h for h in headers if h[0] != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def listen(bind: str, port: int) -> socket.socket:
    """A TCP socket bound to bind:port (0: any free port), listening with BACKLOG."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    return socket.create_server((bind, port), family=family, backlog=BACKLOG)


def serve(
    listener: socket.socket, build: Callable[[], Served], drain_token: str, announce: str
) -> None:
    """Serve on `listener` with gunicorn until SIGTERM or SIGINT; never returns (SystemExit).

    `build` runs in the worker process: what it builds (and starts) lives there,
    where the requests are answered. `announce` is printed once the worker serves.
    """
    _Gunicorn(listener, build, drain_token, announce).run()


class _Connections:
    """The worker's connections, so that a stopping exporter closes the idle ones at once.

    gunicorn's asyncio worker, stopping, waits for every open connection to close;
    a keep-alive connection between two requests (Prometheus' between scrapes,
    Logplex's between batches) would close only when its keep-alive runs out.
    Connections are known by their protocol objects (asyncio's protocol factory),
    requests in progress by their client's address (the ASGI scope's "client").
    """

    def __init__(self) -> None:
        self.protocols: weakref.WeakSet[Any] = weakref.WeakSet()
        self.busy: Counter[tuple[Any, ...]] = Counter()

    def factory(self, make: Callable[[], Any]) -> Callable[[], Any]:
        def tracked() -> Any:
            protocol = make()
            self.protocols.add(protocol)
            return protocol

        return tracked

    def app(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            client = tuple(scope.get("client") or ())[:2]
            self.busy[client] += 1
            try:
                await inner(scope, receive, send)
            finally:
                self.busy[client] -= 1
                if not self.busy[client]:
                    del self.busy[client]

        return app

    def close_idle(self) -> None:
        for protocol in list(self.protocols):
            transport = getattr(protocol, "transport", None)
            if transport is None or transport.is_closing():
                continue
            if tuple(transport.get_extra_info("peername") or ())[:2] not in self.busy:
                transport.close()


class _Gunicorn(BaseApplication):
    def __init__(
        self,
        listener: socket.socket,
        build: Callable[[], Served],
        drain_token: str,
        announce: str,
    ) -> None:
        listener.set_inheritable(True)
        # gunicorn takes the descriptor over (and closes it when it stops).
        self.fd = listener.detach()
        self.build, self.drain_token, self.announce = build, drain_token, announce
        self.served: Served | None = None
        self.connections = _Connections()
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": f"fd://{self.fd}",
            "backlog": BACKLOG,
            # One process: the drain's counters, the collectors and the poller
            # live where /metrics is answered (more workers would split them).
            "workers": 1,
            "worker_class": "asgi",
            "asgi_lifespan": "off",
            "keepalive": KEEPALIVE_SECONDS,
            "graceful_timeout": GRACEFUL_SECONDS,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "dynoscaler-exporter",
            "post_worker_init": self._worker_ready,
            "worker_exit": self._close,
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
            # No ~/.gunicorn/gunicorn.ctl: it would clash with any other gunicorn here.
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> ASGIApp:
        # Runs in the worker after the fork: the sources' clients and the poller thread live there.
        self.served = self.build()
        self.served.start()
        served = self.served
        app = asgi_app(
            served.registry(),
            served.router,
            self.drain_token,
            served.formation_webhook,
            served.web_metrics,
        )
        return self.connections.app(app)

    def _worker_ready(self, worker: Any) -> None:
        """In the worker, before it serves: asyncio's server gets the backlog and the
        connection tracking, SIGTERM closes idle connections; then the announcement."""
        loop, create_server = worker.loop, worker.loop.create_server

        async def serving(protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
            # gunicorn's ASGI worker passes no backlog, and asyncio then calls listen(100)
            # on the listener again: 128 senders connecting at once overflowed that queue
            # (a dropped SYN is sent again a second later). create_server's own parameter
            # keeps ours.
            kwargs.setdefault("backlog", BACKLOG)
            return await create_server(self.connections.factory(protocol_factory), *args, **kwargs)

        def stop() -> None:
            worker.handle_exit_signal()  # gunicorn's own: stop accepting, finish, exit
            self.connections.close_idle()

        loop.create_server = serving
        loop.add_signal_handler(signal.SIGTERM, stop)
        print(self.announce, flush=True)

    def _close(self, server: Any, worker: Any) -> None:
        if self.served is not None:
            self.served.close()
