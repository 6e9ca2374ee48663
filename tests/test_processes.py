"""dynoscaler.processes: waiting for a child server to answer."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from dynoscaler.processes import wait_until_answering


class _SlowFirstAnswer(http.server.BaseHTTPRequestHandler):
    """Holds its first request past the waiter's 1 s read time-out, then answers at once."""

    answered = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).answered += 1
        if type(self).answered == 1:
            time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    _SlowFirstAnswer.answered = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowFirstAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_server_slow_to_answer_its_first_request_is_waited_for(slow_server: str) -> None:
    # A loaded machine can hold a starting server's first answer past the read
    # time-out; that is a server not answering yet, not a failure.
    wait_until_answering(slow_server, timeout=10, ok_only=True)
    assert _SlowFirstAnswer.answered >= 2
