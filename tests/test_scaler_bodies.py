"""Hostile bodies against `dynoscaler scaler serve` (gunicorn, 2 workers, dry run).

Whatever the body, the answer is a 4xx and nothing is done: a 5xx would make
Alertmanager send it again for ever. Deep nesting (a RecursionError, 500, from
975 levels on) and bodies past the 1 MiB cap, with and without Content-Length.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from scaler_support import TOKEN, alert, dry_run_scaler, payload

pytestmark = pytest.mark.timeout(90)
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with dry_run_scaler(tmp_path_factory.mktemp("bodies")) as url:
        yield url


def send(server: str, body) -> requests.Response:
    return requests.post(f"{server}/alerts", data=body, headers=AUTH, timeout=30)


def logged(server: str) -> int:
    rows = requests.get(f"{server}/decisions?limit=1000", headers=AUTH, timeout=10).json()
    return len(rows["decisions"])


@pytest.mark.parametrize("depth", [900, 975, 1_000, 5_000, 100_000])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_is_a_400(server, depth, opener) -> None:
    closer = b"]" if opener == b"[" else b"}"
    before = logged(server)
    response = send(server, opener * depth + b"0" + closer * depth)
    assert response.status_code == 400
    assert response.json() == {"error": "body is not JSON text: nested deeper than 32 levels"}
    assert logged(server) == before


def test_deep_nesting_inside_an_alert_is_a_400(server) -> None:
    body = json.dumps(payload(alert("shop", "worker", "3")))
    deep = body.replace('"annotations": {', '"annotations": {"x": ' + "[" * 975 + "]" * 975 + ",")
    response = send(server, deep)
    assert response.status_code == 400
    assert response.json() == {"error": "body is not JSON text: nested deeper than 32 levels"}


def at_size(size: int) -> bytes:
    """A valid payload padded with spaces to `size` bytes (cut at the cap, still JSON)."""
    body = json.dumps(payload(alert("shop", "worker", "3"))).encode()
    return body + b" " * (size - len(body))


CAP = 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("size", [CAP + 1, CAP + 4096, 2 * CAP])
def test_over_one_mebibyte_is_a_413(server, chunked, size) -> None:
    """Chunked, a body was cut at 1 MiB and read as if it were whole."""
    before = logged(server)
    body = at_size(size)
    response = send(server, iter([body[:1000], body[1000:]]) if chunked else body)
    assert response.status_code == 413
    assert response.json() == {
        "error": "The data value transmitted exceeds the capacity limit.",
    }
    assert logged(server) == before


@pytest.mark.parametrize("chunked", [False, True])
def test_up_to_the_cap_is_read(server, chunked) -> None:
    body = at_size(CAP)
    response = send(server, iter([body[:1000], body[1000:]]) if chunked else body)
    assert response.status_code == 200, response.text
    assert response.json()["decisions"][0]["to"] in (3, None)


def test_the_workers_survive(server) -> None:
    assert requests.get(f"{server}/healthz", timeout=10).json() == {
        "store": "ok",
        "heroku": "dry run",
    }
