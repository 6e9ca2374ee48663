"""The whole scaler path for real: gunicorn -> guardrails -> store -> heroku3 -> fake Heroku.

Includes faults on the fake (retried to the right count, or reported without a
wrong count), the account dyno limit (notified), and an HA pair of scalers on
one PostgreSQL store taking one action for duplicated alerts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from exporter_helpers import wait_for
from scaler_support import (
    FIXTURES,
    TOKEN,
    FakeHerokuProcess,
    ScalerProcess,
    alert,
    payload,
    postgres_database,
    scaler_environment,
    write_settings,
)
from support import Receiver

from scaler.actuator import PROBE_INTERVAL_SECONDS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack(tmp_path) -> Iterator[tuple[ScalerProcess, FakeHerokuProcess, Receiver]]:
    receiver = Receiver()
    settings = write_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 's.sqlite3'}",
        notifiers=[{"type": "webhook", "url": f"{receiver.url}/events"}],
    )
    fake = FakeHerokuProcess(settings, "--dyno-limit", "8")
    try:
        scaler = ScalerProcess(settings, scaler_environment(fake, tmp_path))
        try:
            yield scaler, fake, receiver
        finally:
            scaler.close()
    finally:
        fake.close()
        receiver.close()


def outcomes(response: requests.Response) -> dict[str, tuple]:
    return {d["role"]: (d["from"], d["to"], d["outcome"]) for d in response.json()["decisions"]}


def test_alertmanager_payload_scales_in_one_batch_and_once(stack) -> None:
    scaler, fake, _ = stack
    firing = json.loads((FIXTURES / "alertmanager_scale_firing.json").read_text())
    first = scaler.post(firing)
    assert first.status_code == 200
    assert outcomes(first) == {"web": (2, 3, "success"), "worker": (1, 4, "success")}
    [patch] = fake.patches()
    assert sorted(patch["body"]["updates"], key=lambda u: u["type"]) == [
        {"type": "web", "quantity": 3},
        {"type": "worker", "quantity": 4},
    ]
    assert (fake.quantity("shop", "web"), fake.quantity("shop", "worker")) == (3, 4)
    # Heroku failing every call cannot matter: repeats are answered from the
    # store's recently confirmed counts, sparing Heroku's rate limit.
    fake.admin("POST", "faults", {"status": 500, "count": 50})
    for _ in range(5):
        again = scaler.post(firing)
        assert outcomes(again) == {"web": (3, None, "none"), "worker": (4, None, "none")}
    fake.admin("POST", "reset")
    # /healthz gives the last background probe's answer (one every PROBE_INTERVAL_SECONDS
    # per worker); a probe that ran among the faults answers 500 until the next one.
    healthy = {"store": "ok", "heroku": "ok"}

    def health() -> dict[str, str] | None:
        answer = requests.get(f"{scaler.url}/healthz", timeout=10).json()
        return answer if answer == healthy else None

    assert wait_for(health, timeout=3 * PROBE_INTERVAL_SECONDS, interval=0.5) == healthy


def test_transient_faults_end_at_the_right_count(stack) -> None:
    scaler, fake, _ = stack
    fake.admin("POST", "faults", [{"status": 500, "count": 1}, {"status": 429, "count": 1}])
    response = scaler.post(payload(alert("shop", "worker", "3")))
    assert outcomes(response) == {"worker": (1, 3, "success")}
    assert fake.quantity("shop", "worker") == 3


def test_persistent_failure_is_a_502_without_a_wrong_count(stack) -> None:
    scaler, fake, receiver = stack
    fake.admin("POST", "faults", {"status": 503, "count": 4, "method": "PATCH"})
    body = payload(alert("shop", "worker", "3"))
    failed = scaler.post(body)
    assert failed.status_code == 502
    assert outcomes(failed) == {"worker": (1, 3, "failure")}
    assert fake.quantity("shop", "worker") == 1
    text = requests.get(f"{scaler.url}/metrics", timeout=10).text
    assert 'dynoscaler_scaler_actuations_total{app="shop",outcome="failure"} 1.0' in text
    assert receiver.arrived.wait(10)
    assert receiver.requests[0][2]["event"] == "actuation_failure"
    # Alertmanager re-sends after a 5xx: the in-flight mark is gone, so it acts.
    retried = scaler.post(body)
    assert outcomes(retried) == {"worker": (1, 3, "success")}
    assert fake.quantity("shop", "worker") == 3


def test_dyno_limit_is_recorded_and_notified(stack) -> None:
    scaler, fake, receiver = stack
    scaler.post(payload(alert("shop", "worker", "7")))
    assert fake.quantity("shop", "worker") == 4  # max_step 3
    limited = scaler.post(payload(alert("shop", "worker", "10")))
    assert limited.status_code == 200  # a limit cannot succeed on retry: no 5xx
    assert outcomes(limited) == {"worker": (4, 7, "success")}
    over = scaler.post(payload(alert("shop", "worker", "10")))
    # Refused at 10, then scaled to the limit Heroku's error named.
    assert outcomes(over) == {"worker": (7, 8, "limit")}
    assert fake.quantity("shop", "worker") == 8
    assert receiver.arrived.wait(10)
    event = receiver.requests[0][2]
    assert (event["event"], event["targets"], event["limits"]) == (
        "actuation_limit",
        {"worker": 10},
        {"worker": 8},
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rows = requests.get(f"{scaler.url}/decisions?role=worker&limit=1", headers=headers, timeout=10)
    [row] = rows.json()["decisions"]
    refused = row["answer"]["refused"]
    assert (row["outcome"], refused["error"], refused["attempts"], refused["limit"]) == (
        "limit",
        "limit",
        1,
        8,
    )
    text = requests.get(f"{scaler.url}/metrics", timeout=10).text
    # the API budget's gauge (dynoscaler.heroku_budget), shared with the exporter
    assert re.search(r'dynoscaler_heroku_rate_limit_remaining\{client="scaler"\} 4\d\d\d', text)


@pytest.fixture
def postgres_store() -> Iterator[str]:
    with postgres_database("dynoscaler_live") as url:
        yield url


def test_ha_pair_on_postgresql_takes_one_action(tmp_path, postgres_store) -> None:
    settings = write_settings(tmp_path, postgres_store)
    fake = FakeHerokuProcess(settings)
    pair: list[ScalerProcess] = []
    try:
        pair = [ScalerProcess(settings, scaler_environment(fake, tmp_path)) for _ in range(2)]
        body = payload(alert("shop", "worker", "4"), alert("shop", "web", "5"))
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda i: pair[i % 2].post(body), range(16)))
        assert [a.status_code for a in answers] == [200] * 16
        acted = [d for a in answers for d in a.json()["decisions"] if d["to"] is not None]
        assert sorted((d["role"], d["to"]) for d in acted) == [("web", 5), ("worker", 4)]
        assert len(fake.patches()) == 1
        assert (fake.quantity("shop", "worker"), fake.quantity("shop", "web")) == (4, 5)
    finally:
        for scaler in pair:
            scaler.close()
        fake.close()
