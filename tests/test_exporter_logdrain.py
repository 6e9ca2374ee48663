"""The Heroku router log drain: POST /logs/<app> with Logplex framing."""

from __future__ import annotations

import base64
import math
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests
from exporter_helpers import (
    DRAIN_AUTH,
    DRAIN_TOKEN,
    exporter,
    hung_tcp_port,  # noqa: F401 (the hung_server fixture)
    labels,
    write_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.bench_drain import concurrent_load
from exporter.logdrain import STANDING_CODES, BadDrainBody, RouterStats
from exporter.server import BACKLOG, BODY_SECONDS, MAX_DRAIN_BODY

pytestmark = pytest.mark.timeout(60)

ROUTER = "<158>1 2026-11-23T10:00:0{n}.1+00:00 host heroku router - "
LINES = [
    ROUTER.format(n=1) + 'at=info method=GET path="/" host=shop.herokuapp.com '
    'request_id=a fwd="10.0.0.1" dyno=web.1 connect=1ms service=23ms status=200 bytes=512 '
    "protocol=https",
    ROUTER.format(n=2) + 'at=info method=POST path="/orders" host=shop.herokuapp.com '
    "request_id=b dyno=web.2 connect=0ms service=1500ms status=201 bytes=80 protocol=https",
    ROUTER.format(n=3) + 'at=error code=H12 desc="Request timeout" method=GET path="/slow" '
    "host=shop.herokuapp.com request_id=c dyno=web.1 connect=1ms service=30001ms status=503",
    ROUTER.format(n=4) + 'at=info method=GET path="/api" host=shop.herokuapp.com '
    "request_id=d dyno=api.1 connect=1ms service=4ms status=200 bytes=10 protocol=https",
    # No dyno took it (app crashed, H10): not a request of any role.
    ROUTER.format(n=5) + 'at=error code=H10 desc="App crashed" method=GET path="/" '
    "host=shop.herokuapp.com dyno= connect= service= status=503 bytes= protocol=https",
    # A role the settings do not scale on requests creates no series.
    ROUTER.format(n=6) + 'at=info method=GET path="/" host=shop.herokuapp.com '
    "request_id=e dyno=admin.1 connect=1ms service=9ms status=200 bytes=10 protocol=https",
    # The app's own output is not router traffic.
    "<190>1 2026-11-23T10:00:06+00:00 host app web.1 - service=5ms dyno=web.1 hello",
]


def logplex(lines: list[str]) -> bytes:
    """Logplex framing: each syslog line preceded by its length in octets."""
    return b"".join(f"{len(line.encode()) + 1} {line}\n".encode() for line in lines)


def post(url: str, body: bytes, auth: tuple[str, str] | None = DRAIN_AUTH) -> requests.Response:
    headers = {"Content-Type": "application/logplex-1", "Logplex-Msg-Count": "1"}
    return requests.post(url, data=body, headers=headers, auth=auth, timeout=5)


def test_router_lines_become_request_counts_and_service_times(tmp_path):
    config = write_config(
        tmp_path,
        {"shop": {"roles": {"web": {"requests": "router"}, "api": {"requests": "router"}}}},
    )
    with exporter(config) as running:
        before = running.scrape()
        first = post(f"{running.url}/logs/shop", logplex(LINES[:3]))
        second = post(f"{running.url}/logs/shop", logplex(LINES[3:]))
        series = running.scrape()
    assert (first.status_code, first.text) == (200, "3 router request(s) counted\n")
    assert (second.status_code, second.text) == (200, "1 router request(s) counted\n")

    web, api = labels(app="shop", role="web"), labels(app="shop", role="api")
    assert before[("dynoscaler_router_requests_total", web)] == 0
    assert series[("dynoscaler_router_requests_total", web)] == 3
    assert series[("dynoscaler_router_requests_total", api)] == 1

    def bucket(le: str) -> float:
        key = labels(app="shop", role="web", le=le)
        return series[("dynoscaler_router_service_seconds_bucket", key)]

    assert [bucket(le) for le in ("0.01", "0.025", "1.0", "2.5", "30.0", "60.0", "+Inf")] == [
        0, 1, 1, 2, 2, 3, 3,
    ]  # fmt: skip
    assert series[("dynoscaler_router_service_seconds_sum", web)] == pytest.approx(31.524)
    assert series[("dynoscaler_router_service_seconds_count", api)] == 1
    assert not [key for key in series if ("role", "admin") in key[1]]
    errors = "dynoscaler_router_errors_total"
    assert before[(errors, labels(app="shop", role="web", code="H12"))] == 0
    assert series[(errors, labels(app="shop", role="web", code="H12"))] == 1
    assert series[(errors, labels(app="shop", role="web", code="H10"))] == 1  # dyno= empty
    assert series[(errors, labels(app="shop", role="api", code="H12"))] == 0


DYNO = "<45>1 2026-11-23T10:00:07+00:00 host heroku {dyno} - Error {code} (Memory quota exceeded)"


@pytest.mark.parametrize(
    ("line", "counted"),
    [
        (LINES[2], ("web", "H12")),
        (LINES[4], ("web", "H10")),  # no dyno took it: the web role's
        (
            ROUTER.format(n=7) + 'at=error code=H13 desc="Connection closed without response" '
            "method=GET path=/ dyno=api.1 connect=0ms service=2ms status=503",
            ("api", "H13"),
        ),
        (DYNO.format(dyno="web.2", code="R14"), ("web", "R14")),
        (DYNO.format(dyno="web-12a34b56d-e78f9", code="R15"), ("web", "R15")),
        (DYNO.format(dyno="admin.1", code="R14"), None),  # a role not scaled on requests
        (LINES[0], None),
        # the app's own output, and codes in quoted values, are not Heroku's errors
        (DYNO.format(dyno="web.1", code="R14").replace("heroku web.1", "app web.1"), None),
        (ROUTER.format(n=8) + 'at=error desc="code=H12 x" dyno=web.1 service=1ms', None),
        (ROUTER.format(n=8) + "at=error code=H12x dyno=web.1 service=1ms", None),
        (ROUTER.format(n=8) + "at=error code=/etc/passwd dyno=web.1 service=1ms", None),
    ],
)
def test_error_lines_count_per_role_and_code(line, counted):
    stats = RouterStats([("shop", "web"), ("shop", "api")])
    stats.receive("shop", logplex([line]))
    errors = {
        s.labels[1:]: s.value for s in stats.samples() if s.metric == "dynoscaler_router_errors"
    }
    standing = {(role, code): 0 for role in ("web", "api") for code in STANDING_CODES}
    assert errors == (standing if counted is None else {**standing, counted: 1})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"hello world", "expected an octet count at byte 0, found b'hello'"),
        (b"500 <158>1 too short", "frame at byte 0 says 500 octets, body ends first"),
        (logplex(LINES[:1]) + b"x", "expected an octet count at byte"),
    ],
)
def test_bad_bodies_get_a_400_that_says_why(tmp_path, body, message):
    config = write_config(tmp_path, {"shop": {"roles": {"web": {"requests": "router"}}}})
    with exporter(config) as running:
        response = post(f"{running.url}/logs/shop", body)
        counted = running.scrape()[
            ("dynoscaler_router_requests_total", labels(app="shop", role="web"))
        ]
    assert response.status_code == 400
    assert message in response.text
    assert counted == 0  # a bad batch changes nothing, not even its good frames


def test_unknown_app_and_wrong_method(tmp_path):
    config = write_config(tmp_path, {"shop": {"roles": {"web": {"requests": "router"}}}})
    with exporter(config) as running:
        unknown = post(f"{running.url}/logs/other", logplex(LINES[:1]))
        wrong = requests.get(f"{running.url}/logs/shop", timeout=5)
    message = "app 'other' has no role with `requests: router` in the settings\n"
    assert (unknown.status_code, unknown.text) == (404, message)
    assert wrong.status_code == 405


def test_the_drain_takes_only_batches_that_carry_its_secret(tmp_path):
    config = write_config(tmp_path, {"shop": {"roles": {"web": {"requests": "router"}}}})
    body = logplex(LINES[:1])
    with exporter(config) as running:
        url = f"{running.url}/logs/shop"
        anonymous = post(url, body, auth=None)
        wrong = post(url, body, auth=("heroku", "guess"))
        unknown_app = post(f"{running.url}/logs/other", body, auth=None)
        bearer = requests.post(
            url, data=body, headers={"Authorization": f"Bearer {DRAIN_TOKEN}"}, timeout=5
        )
        basic = post(url, body)
        counted = running.scrape()[
            ("dynoscaler_router_requests_total", labels(app="shop", role="web"))
        ]
    for refused in (anonymous, wrong, unknown_app):  # no answer tells which apps exist
        assert refused.status_code == 401
        assert "DYNOSCALER_DRAIN_TOKEN" in refused.text
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="dynoscaler log drain"'
    assert (bearer.status_code, basic.status_code) == (200, 200)
    assert counted == 2  # the refused batches counted nothing


# --- the body: its length, chunked transfer, the cap -------------------------------------

SHOP_WEB = {"shop": {"roles": {"web": {"requests": "router"}}}}
WEB = ("dynoscaler_router_requests_total", labels(app="shop", role="web"))


def raw_post(url: str, headers: str, body: bytes, timeout: float = 5.0) -> tuple[int, str]:
    """POST /logs/shop on a socket of its own: any header, any body; (status, text) of the
    answer, read while this side keeps the connection open (socket.timeout if none comes)."""
    host, port = url.removeprefix("http://").split(":")
    secret = base64.b64encode(f"heroku:{DRAIN_TOKEN}".encode()).decode()
    head = f"POST /logs/shop HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {secret}\r\n"
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall((head + headers + "\r\n").encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


def padded_body(size: int) -> bytes:
    """A valid Logplex body of exactly `size` bytes: three router lines, then app output."""
    body = logplex(LINES[:3])
    while len(body) < size:
        room = min(size - len(body), 60_000)
        filler = "x" * max(1, room - len(str(room)) - 2)
        frame = f"{len(filler) + 1} {filler}\n".encode()
        if len(frame) > size - len(body):  # the last few bytes: blank padding between frames
            frame = b"\n" * (size - len(body))
        body += frame
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 65536):
    """The body as a generator: requests sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_content_length_minus_one_is_refused_at_once(tmp_path):
    # The old server read a body of length -1 up to the end of the stream: past the cap,
    # and holding the connection until the client closed it.
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        status, _ = raw_post(running.url, "Content-Length: -1\r\n", logplex(LINES[:3]) * 500)
        counted = running.scrape()[WEB]
    assert 400 <= status < 500
    assert counted == 0


def test_a_content_length_too_long_to_be_a_number_is_refused(tmp_path):
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        status, text = raw_post(running.url, "Content-Length: 99999999999999\r\n", b"12 <158>1 x")
    assert (status, text) == (413, f"body over {MAX_DRAIN_BODY} bytes\n")


def test_a_chunked_body_is_read_and_counted(tmp_path):
    # The old server took the missing Content-Length for 0: 200, and its lines were lost.
    body = logplex(LINES[:3]) * 40  # 120 router lines in several chunks
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        response = post(f"{running.url}/logs/shop", chunks(body, 1000))
        counted = running.scrape()[WEB]
    assert "Content-Length" not in response.request.headers
    assert (response.status_code, response.text) == (200, "120 router request(s) counted\n")
    assert counted == 120


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_a_body_of_exactly_the_cap_is_counted_and_one_byte_more_is_refused(tmp_path, transfer):
    at_cap, over = padded_body(MAX_DRAIN_BODY), padded_body(MAX_DRAIN_BODY + 1)
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        url = f"{running.url}/logs/shop"
        accepted = post(url, at_cap if transfer == "content-length" else chunks(at_cap))
        refused = post(url, over if transfer == "content-length" else chunks(over))
        counted = running.scrape()[WEB]
    assert (accepted.status_code, accepted.text) == (200, "3 router request(s) counted\n")
    assert (refused.status_code, refused.text) == (413, f"body over {MAX_DRAIN_BODY} bytes\n")
    assert counted == 3  # the refused body counted nothing


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_a_5_mb_body_gets_413_and_the_sender_reads_it(tmp_path, transfer):
    # The old server answered 413 to a long Content-Length without reading the body and
    # closed: the sender, still writing, got a reset instead of the answer.
    body = logplex(LINES[:3]) * 5000  # about 5 MB
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        response = post(
            f"{running.url}/logs/shop", body if transfer == "content-length" else chunks(body)
        )
        after = requests.get(f"{running.url}/healthz", timeout=5)
        counted = running.scrape()[WEB]
    assert (response.status_code, response.text) == (413, f"body over {MAX_DRAIN_BODY} bytes\n")
    assert after.status_code == 200
    assert counted == 0


@pytest.mark.slow
def test_a_body_that_never_completes_gets_408(tmp_path):
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        started = time.monotonic()
        status, text = raw_post(
            running.url, "Content-Length: 1000\r\n", b"100 <158>1", timeout=BODY_SECONDS + 10
        )
    assert (status, text) == (408, f"body not complete within {BODY_SECONDS} s\n")
    assert BODY_SECONDS <= time.monotonic() - started < BODY_SECONDS + 5


# --- no body gets a 5xx ------------------------------------------------------------------

ODD_BODIES = {
    "binary": bytes(range(256)) * 4,
    "NULs": b"\0" * 1000,
    "not UTF-8": b"20 <158>1 \xff\xfe\xfd heroku router\n",
    "a 5000-digit octet count": b"9" * 5000 + b" x",
    "a huge octet count": b"99999999999999999999999999 x",
    "a count with a sign": b"-5 hello",
    "carriage returns only": b"\r\r\r",
    "a 400-digit service time": logplex(
        [LINES[0].replace("service=23ms", "service=" + "9" * 400 + "ms")]
    ),
    "a router line cut short": logplex([LINES[0][:60]]),
    "quotes left open": logplex([LINES[0].replace('fwd="10.0.0.1"', 'fwd="10.0.0.1')]),
}


def test_no_body_gets_a_5xx(tmp_path):
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        answers = {
            name: post(f"{running.url}/logs/shop", body).status_code
            for name, body in ODD_BODIES.items()
        }
        counted = running.scrape()[WEB]
    assert all(status in (200, 400) for status in answers.values()), answers
    assert answers["a 400-digit service time"] == 200  # no service time: not counted
    assert counted == 1  # the line whose quote is left open before dyno= and service=


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        # valid bodies with bytes changed, cut or added
        st.tuples(
            st.lists(st.sampled_from(LINES), min_size=1, max_size=6),
            st.lists(st.tuples(st.integers(0, 2000), st.binary(max_size=3)), max_size=4),
        ).map(lambda case: _mutated(logplex(case[0]), case[1])),
    )
)
def test_any_body_is_counted_or_refused_as_not_logplex(body):
    stats = RouterStats([("shop", "web"), ("shop", "api")])
    try:
        counted = stats.receive("shop", body)
    except BadDrainBody:
        counted = 0  # a refused body changes nothing
    requests_total = sum(
        s.value for s in stats.samples() if s.metric == "dynoscaler_router_requests"
    )
    histograms = [s for s in stats.samples() if s.metric == "dynoscaler_router_service_seconds"]
    assert requests_total == sum(sum(h.buckets) for h in histograms) == counted
    assert all(math.isfinite(h.sum) for h in histograms)


def _mutated(body: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    for at, new in edits:
        at %= len(body) + 1
        body = body[:at] + new + body[at + len(new) :]
    return body


# --- the server: keep-alive, many senders, the backlog, scrapes, shutdown ----------------


def test_one_connection_carries_batch_after_batch(tmp_path):
    batch = logplex(LINES[:3])
    secret = base64.b64encode(f"heroku:{DRAIN_TOKEN}".encode()).decode()
    request = (
        f"POST /logs/shop HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {secret}\r\n"
        f"Content-Length: {len(batch)}\r\n\r\n"
    ).encode() + batch
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        host, port = running.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            answers = b""
            for _ in range(3):
                sock.sendall(request)
                while answers.count(b"counted") < answers.count(b"HTTP/1.1") or not answers:
                    answers += sock.recv(65536)
                time.sleep(0.05)
            while answers.count(b"counted\n") < 3:
                answers += sock.recv(65536)
        counted = running.scrape()[WEB]
    assert answers.count(b"HTTP/1.1 200 OK") == 3
    assert counted == 9


def test_128_senders_at_once_get_no_connection_reset_and_every_line_counts(tmp_path):
    # The old server's listen backlog was 5: with 32 concurrent senders, some POSTs got a
    # connection reset. Here 128 senders start together, a new connection for each POST.
    with exporter(
        write_config(tmp_path, {"bench": {"roles": {"web": {"requests": "router"}}}})
    ) as running:
        load = concurrent_load(
            f"{running.url}/logs/bench", lines=10, senders=128, posts=4, token=DRAIN_TOKEN
        )
    assert load.posts == 512
    assert dict(load.errors) == {}  # no reset, refusal, time-out or early close
    assert (load.server_errors, load.other_answers) == (0, 0)
    assert load.counted == load.lines_sent == 5120


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_listen_backlog_is_the_exporters(tmp_path):
    # gunicorn's asyncio worker would have asyncio listen() again with 100.
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        port = running.url.rsplit(":", 1)[1]
        listing = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
    assert listing[0] == "LISTEN"
    assert int(listing[2]) == BACKLOG  # a listening socket's Send-Q is its backlog


def test_batches_are_answered_while_a_scrape_waits_on_a_hung_source(tmp_path, hung_server):
    queue = {"name": "jobs", "backend": "redis_list", "url": f"redis://127.0.0.1:{hung_server}/0"}
    apps = {"shop": {"roles": {"web": {"requests": "router"}, "worker": {"queues": [queue]}}}}
    config = write_config(tmp_path, apps, source_timeout=2)
    with exporter(config) as running:
        scrape = threading.Thread(target=running.scrape)
        scrape.start()
        time.sleep(0.3)  # the scrape is waiting on the hung Redis now
        started = time.monotonic()
        answers = [post(f"{running.url}/logs/shop", logplex(LINES[:3])) for _ in range(5)]
        took = time.monotonic() - started
        still_scraping = scrape.is_alive()
        scrape.join()
    assert [answer.status_code for answer in answers] == [200] * 5
    assert still_scraping and took < 1.0


def test_sigterm_stops_the_exporter_cleanly_with_an_idle_connection_open(tmp_path):
    with exporter(write_config(tmp_path, SHOP_WEB)) as running:
        host, port = running.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(1000).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            running.process.terminate()
            code = running.process.wait(timeout=15)
            took = time.monotonic() - started
    assert code == 0
    assert took < 8  # the idle keep-alive connection closes within KEEPALIVE_SECONDS
    assert "Traceback" not in running.log.read_text()


def test_sigterm_lets_a_scrape_in_progress_finish(tmp_path, hung_server):
    queue = {"name": "jobs", "backend": "redis_list", "url": f"redis://127.0.0.1:{hung_server}/0"}
    config = write_config(
        tmp_path, {"shop": {"roles": {"worker": {"queues": [queue]}}}}, source_timeout=2
    )
    scraped: list[int] = []
    with exporter(config) as running:
        scrape = threading.Thread(
            target=lambda: scraped.append(
                requests.get(f"{running.url}/metrics", timeout=10).status_code
            )
        )
        scrape.start()
        time.sleep(0.5)  # the scrape waits on the hung Redis
        running.process.terminate()
        code = running.process.wait(timeout=15)
        scrape.join()
    assert code == 0
    assert scraped == [200]
