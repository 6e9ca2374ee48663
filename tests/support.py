"""HTTP servers run inside the test process: a metrics page, a webhook receiver.

Child processes (free ports, readiness, stopping) are dynoscaler.processes.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log every request to stderr."""

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """A client that hung up (Prometheus cancelling a scrape) is no error. Printing its
        traceback from this thread could also crash pytest: Python 3.11's traceback module
        parses source with `ast`, which is not thread-safe (CPython gh-106905), and pytest
        parses a failure's source at the same moment."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    """A ThreadingHTTPServer on a free 127.0.0.1 port, serving from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = _Server(("127.0.0.1", 0), handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def metrics_page(render: Callable[[], str]) -> LocalServer:
    """A server answering every GET with `render()` as Prometheus text exposition."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return LocalServer(Handler)


class Receiver(LocalServer):
    """Records each JSON POST as (path, headers, body) in `requests`; sets `arrived`."""

    def __init__(self, hold: threading.Event | None = None, status: int = 200) -> None:
        """hold: each request waits for it (at most 10 s) before being answered."""
        self.requests: list[tuple[str, dict[str, str], object]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hold is not None:
                    hold.wait(10)
                receiver.requests.append((self.path, dict(self.headers), body))
                receiver.arrived.set()
                self.send_response(status)
                self.end_headers()

        super().__init__(Handler)
