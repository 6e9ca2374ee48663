"""The Heroku router log drain: POST /logs/<app> with Logplex framing."""

from __future__ import annotations

import pytest
import requests
from exporter_helpers import DRAIN_AUTH, DRAIN_TOKEN, exporter, labels, write_config

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
