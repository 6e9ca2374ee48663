"""Demo web dynos: gunicorn processes serving a WSGI app timed by exporter.web, and the
router in front of them.

A web dyno (`python -m dynoscaler.demo.web dyno ...`) boots for `--boot` seconds,
then serves the demo app under gunicorn (one process, `--concurrency` threads:
the dyno's c slots; requests beyond them wait in its listen queue, as on
Heroku) on a port of its own, which it adds to the Redis set `demo:web:ports`
while it serves. The app sleeps a service time (lognormal, mean
DEMO_WEB_SERVICE seconds, cv 1) and is wrapped in exporter.web.WsgiTimer, so
its queue and service times reach the Redis hash the exporter reads.

The router (`python -m dynoscaler.demo.web router ...`) is a threaded HTTP
proxy: each request goes to one of the serving dynos chosen at random (as
Heroku's router does), stamped with X-Request-Start (milliseconds); no dyno
serving is a 503. WebLoad, in the demo process, sends GETs to it as a Poisson
stream at the scenario's rate.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
import requests
from gunicorn.app.base import BaseApplication

from dynoscaler.demo.supervisor import free_port
from exporter.web import RequestTimes, WsgiTimer

PORTS_KEY = "demo:web:ports"
CONNECT_TRIES = 3
SERVICE_ENV = "DEMO_WEB_SERVICE"
DEFAULT_SERVICE_SECONDS = 0.1
_SIGMA = math.sqrt(math.log(2))  # a lognormal of cv 1


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    mean = float(os.environ.get(SERVICE_ENV, DEFAULT_SERVICE_SECONDS))
    time.sleep(random.lognormvariate(-_SIGMA * _SIGMA / 2, _SIGMA) * mean)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class _Gunicorn(BaseApplication):
    def __init__(self, app: Any, port: int, threads: int, ready: Callable[[], None]) -> None:
        self.app, self.port, self.threads, self.ready = app, port, threads, ready
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": f"127.0.0.1:{self.port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": self.threads,
            "backlog": 2048,
            "accesslog": None,
            "loglevel": "warning",
            "graceful_timeout": 10,
            "when_ready": lambda server: self.ready(),  # listening: the router may send
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.app


def _dyno(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if stop.wait(args.boot):  # stopped while booting: never served
        return 0
    client = redis.Redis.from_url(args.redis)
    port = free_port()
    app = WsgiTimer(_app, times=RequestTimes(client, role=args.role))
    try:
        _Gunicorn(app, port, args.concurrency, lambda: client.sadd(PORTS_KEY, port)).run()
    finally:
        client.srem(PORTS_KEY, port)
    return 0


def _router(args: argparse.Namespace) -> int:
    client = redis.Redis.from_url(args.redis)

    class Route(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            stamp = str(int(time.time() * 1000))
            # A dyno that refuses the connection (stopping) is tried no more; the
            # request goes to another, as Heroku's router retries a connect error.
            for port in client.srandmember(PORTS_KEY, -CONNECT_TRIES):
                upstream = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
                try:
                    upstream.connect()
                except OSError:
                    continue
                try:
                    upstream.request("GET", self.path, headers={"X-Request-Start": stamp})
                    answer = upstream.getresponse()
                    self._answer(answer.status, answer.read())
                except OSError:
                    self._answer(503, b"the dyno closed the connection\n")
                finally:
                    upstream.close()
                return
            self._answer(503, b"no web dyno serving\n")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Route)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"demo router listening on http://127.0.0.1:{args.port}/", flush=True)
    server.serve_forever()
    return 0


def web_dyno_argv(redis_url: str, role: str, concurrency: int, boot: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dynoscaler.demo.web",
        "dyno",
        "--redis",
        redis_url,
        "--role",
        role,
        "--concurrency",
        str(concurrency),
        "--boot",
        str(boot),
    ]


def router_argv(redis_url: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dynoscaler.demo.web",
        "router",
        "--redis",
        redis_url,
        "--port",
        str(port),
    ]


class WebLoad:
    """GETs to the router as a Poisson stream at rate(t) requests/s (t from start()),
    each on a thread of its own pool; counts answers by status."""

    def __init__(self, url: str, rate: Callable[[float], float], duration: float) -> None:
        self.url, self.rate, self.duration = url, rate, duration
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def start(self) -> WebLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        session = requests.Session()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=128) as pool:
            while not self._stop.is_set():
                elapsed = time.monotonic() - started
                if elapsed >= self.duration:
                    break
                rate = max(self.rate(elapsed), 0.1)
                self._stop.wait(random.expovariate(rate))
                pool.submit(self._get, session)

    def _get(self, session: requests.Session) -> None:
        try:
            status = session.get(self.url, timeout=35).status_code
        except requests.RequestException:
            status = 0
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dyno = commands.add_parser("dyno")
    dyno.add_argument("--redis", required=True)
    dyno.add_argument("--role", default="web")
    dyno.add_argument("--concurrency", type=int, default=4)
    dyno.add_argument("--boot", type=float, default=0)
    router = commands.add_parser("router")
    router.add_argument("--redis", required=True)
    router.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return _dyno(args) if args.command == "dyno" else _router(args)


if __name__ == "__main__":
    sys.exit(main())
