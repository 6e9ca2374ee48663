"""Heroku's hard answers, through the real path: gunicorn -> service -> heroku3 -> fake Heroku.

Issue 15, "Heroku's answers": a 422 cannot_run_above_limit is remembered and
scaled to (not asked again every delivery); 429's Retry-After is honoured within
the request's budget; a hanging Heroku is cut off well below Alertmanager's
deadline while /healthz and other apps are answered; an in-flight mark left by
a killed worker does not hold a change back.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from scaler_support import (
    HEROKU_KEY,
    TOKEN,
    FakeHerokuProcess,
    ScalerProcess,
    alert,
    payload,
    scaler_environment,
    write_settings,
)
from support import Receiver

from dynoscaler import config, heroku
from scaler.actuator import Actuator
from scaler.deadline import ALERTMANAGER_DEADLINE_SECONDS, HEROKU_BUDGET_SECONDS
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.guardrails import IN_FLIGHT_EXPIRY_SECONDS, Request
from scaler.service import LIMIT_BACKOFF_SECONDS, RoleInput, Scaler
from scaler.store import Store

pytestmark = pytest.mark.timeout(120)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parent.parent


class Stack:
    def __init__(self, tmp_path, workers: int = 2) -> None:
        self.receiver = Receiver()
        self.store_url = f"sqlite:///{tmp_path / 's.sqlite3'}"
        settings = write_settings(
            tmp_path,
            self.store_url,
            notifiers=[{"type": "webhook", "url": f"{self.receiver.url}/events"}],
        )
        self.fake = FakeHerokuProcess(settings)
        try:
            self.scaler = ScalerProcess(settings, scaler_environment(self.fake, tmp_path), workers)
        except BaseException:
            self.fake.close()
            self.receiver.close()
            raise

    def post(self, desired: str, app: str = "shop", role: str = "worker", timeout: float = 30):
        return requests.post(
            f"{self.scaler.url}/alerts",
            json=payload(alert(app, role, desired)),
            headers=AUTH,
            timeout=timeout,
        )

    def last_decision(self, role: str = "worker") -> dict[str, Any]:
        url = f"{self.scaler.url}/decisions?role={role}&limit=1"
        return requests.get(url, headers=AUTH, timeout=10).json()["decisions"][0]

    def close(self) -> None:
        self.scaler.close()
        self.fake.close()
        self.receiver.close()


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    try:
        yield running
    finally:
        running.close()


def outcome(response: requests.Response, role: str = "worker") -> tuple:
    (d,) = [d for d in response.json()["decisions"] if d["role"] == role]
    return d["from"], d["to"], d["outcome"]


# -- item 3: 422 cannot_run_above_limit -------------------------------------------------


def test_limit_is_remembered_scaled_to_and_not_asked_again(stack) -> None:
    stack.fake.admin("POST", "dyno-limit", {"limit": 2, "app": "shop"})
    first = stack.post("4")
    assert first.status_code == 200
    assert outcome(first) == (1, 2, "limit")  # as high as the account allows
    assert stack.fake.quantity("shop", "worker") == 2
    refused, at_limit = stack.fake.patches()
    assert (refused["status"], refused["body"]["updates"][0]["quantity"]) == (422, 4)
    assert (at_limit["status"], at_limit["body"]["updates"][0]["quantity"]) == (200, 2)
    row = stack.last_decision()
    assert (row["answer"]["refused"]["limit"], row["answer"]["formation"]) == (2, {"worker": 2})
    # Alertmanager repeats the alert every 10 s: no repeat asks Heroku again.
    for _ in range(30):
        again = stack.post("4")
        assert outcome(again) == (2, None, "none")
    assert stack.last_decision()["reason"] == "at Heroku's limit 2: desired 4"
    assert len(stack.fake.patches()) == 2
    # One notification, and the actuation counter the ScalerActuationFailing alert reads.
    time.sleep(1)
    events = [r[2]["event"] for r in stack.receiver.requests]
    assert events.count("actuation_limit") == 1
    text = requests.get(f"{stack.scaler.url}/metrics", timeout=10).text
    assert 'dynoscaler_scaler_actuations_total{app="shop",outcome="limit"} 2.0' in text
    assert 'dynoscaler_scaler_actuations_total{app="shop",outcome="success"}' not in text


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_limit_is_asked_again_after_the_back_off_or_new_settings(tmp_path, monkeypatch) -> None:
    path = write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}")
    settings = config.load(path)
    fake = FakeHeroku(settings, HEROKU_KEY)
    server = FakeHerokuServer(fake, access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    fake.set_limit(2, "shop")
    clock, events = Clock(), []
    store = Store(settings.scaler.store)
    scaler = Scaler(settings, store, Actuator(heroku.client), events.append, clock)

    def deliver(scaler: Scaler, desired: int) -> tuple:
        (d,) = scaler.apply("shop", [RoleInput("worker", Request(desired, clock.now), {})], "test")
        return d.from_count, d.to_count, d.outcome

    def patches() -> int:
        return len(fake.request_log())

    try:
        assert deliver(scaler, 4) == (1, 2, "limit")
        assert patches() == 2
        clock.now += LIMIT_BACKOFF_SECONDS - 1
        assert deliver(scaler, 4)[2] == "none"
        assert patches() == 2
        clock.now += 2  # the back-off is over: asked again, refused again, not notified again
        assert deliver(scaler, 4) == (2, 4, "limit")
        assert patches() == 3
        assert [e["event"] for e in events] == ["actuation_limit"]
        clock.now += 2 * LIMIT_BACKOFF_SECONDS - 1  # the same limit again: twice the back-off
        assert deliver(scaler, 4)[2] == "none"
        assert patches() == 3
        # Someone raised the limit and max_dynos: new settings ask again at once.
        fake.set_limit(10, "shop")
        raised = write_settings(tmp_path, settings.scaler.store, {"max_dynos": 12})
        scaler = Scaler(config.load(raised), store, Actuator(heroku.client), events.append, clock)
        assert deliver(scaler, 4) == (2, 4, "success")
        assert store.states("shop")["worker"].limit is None
    finally:
        server.stop()


# -- item 4: Retry-After --------------------------------------------------------------------


def test_retry_after_is_honoured_within_the_budget_and_gives_up_past_it(tmp_path) -> None:
    one = Stack(tmp_path, workers=1)  # one process: its hold covers every request
    try:
        one.fake.admin("POST", "faults", {"status": 429, "retry_after": 2, "method": "PATCH"})
        started = time.monotonic()
        waited = one.post("2")
        assert outcome(waited) == (1, 2, "success")
        assert 2 <= time.monotonic() - started < HEROKU_BUDGET_SECONDS
        first, second = one.fake.patches()
        assert second["at"] - first["at"] >= 2

        one.fake.admin("POST", "faults", {"status": 429, "retry_after": 30, "count": 5})
        started = time.monotonic()
        refused = one.post("3")
        assert time.monotonic() - started < 1.5  # no waiting 30 s, no retry storm
        assert refused.status_code == 502  # Alertmanager delivers it again later
        row = one.last_decision()
        assert (row["outcome"], row["answer"]["retry_after"]) == ("failure", 30)
        held = one.post("3")  # within Retry-After: not sent at all
        assert held.status_code == 502
        assert one.last_decision()["answer"]["attempts"] == 0
        assert len(one.fake.patches()) == 2
    finally:
        one.close()


# -- item 5: a hanging Heroku ----------------------------------------------------------------


def test_a_hanging_heroku_is_cut_off_while_health_and_other_apps_are_served(stack) -> None:
    stack.fake.admin("POST", "faults", {"hang": True, "seconds": 40, "app": "shop", "count": 20})
    health: list[float] = []
    done = threading.Event()

    def probe_health() -> None:
        while not done.is_set():
            started = time.monotonic()
            answer = requests.get(f"{stack.scaler.url}/healthz", timeout=10)
            health.append(time.monotonic() - started)
            assert answer.status_code == 200
            time.sleep(0.05)

    def hung_delivery() -> tuple[int, float]:
        started = time.monotonic()
        response = stack.post("3")
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=3) as pool:
        prober = pool.submit(probe_health)
        # More hung deliveries than there are gunicorn workers.
        hung = [pool.submit(hung_delivery) for _ in range(2)]
        time.sleep(1)
        started = time.monotonic()
        other = stack.post("2", app="dialer", role="calls")
        other_seconds = time.monotonic() - started
        answers = [h.result() for h in hung]
        done.set()
        prober.result()
    assert outcome(other, "calls") == (1, 2, "success")
    assert other_seconds < 1
    for status, seconds in answers:
        assert status == 502
        assert seconds < HEROKU_BUDGET_SECONDS + 1.5 < ALERTMANAGER_DEADLINE_SECONDS
    assert stack.last_decision()["reason"].startswith("cannot read formation")
    print(
        f"\n/healthz while Heroku hangs: {len(health)} requests, median "
        f"{1000 * statistics.median(health):.1f} ms, max {1000 * max(health):.1f} ms; "
        f"hung deliveries answered after {', '.join(f'{s:.2f} s' for _, s in answers)}; "
        f"the other app's delivery took {1000 * other_seconds:.0f} ms; slowest "
        f"{[round(1000 * h) for h in sorted(health)[-5:]]} ms"
    )
    # The goal is under 100 ms; a loaded machine may stretch a rare one (41 s before).
    assert sorted(health)[int(0.95 * len(health))] < 0.1
    assert max(health) < 0.5


def test_healthz_stays_fast_while_every_heroku_call_hangs(stack) -> None:
    stack.fake.admin("POST", "faults", {"hang": True, "seconds": 40, "count": 50})
    health: list[float] = []
    statuses: set[int] = set()
    done = threading.Event()

    def probe_health() -> None:
        while not done.is_set():
            started = time.monotonic()
            statuses.add(requests.get(f"{stack.scaler.url}/healthz", timeout=10).status_code)
            health.append(time.monotonic() - started)
            time.sleep(0.05)

    with ThreadPoolExecutor(max_workers=3) as pool:
        prober = pool.submit(probe_health)
        hung = [pool.submit(stack.post, "3") for _ in range(2)]
        assert [h.result().status_code for h in hung] == [502, 502]
        time.sleep(2)  # past the background probe's own 2 s time-out
        done.set()
        prober.result()
    health.sort()
    print(
        f"\n/healthz while every Heroku call hangs: {len(health)} requests, median "
        f"{1000 * statistics.median(health):.1f} ms, p95 "
        f"{1000 * health[int(0.95 * len(health))]:.1f} ms, max {1000 * health[-1]:.1f} ms"
    )
    assert 503 in statuses  # it says Heroku is failing, and says it at once
    assert health[int(0.95 * len(health))] < 0.1
    assert health[-1] < 0.5


def test_a_hung_read_then_a_hung_patch_share_one_budget(stack) -> None:
    stack.fake.admin(
        "POST",
        "faults",
        [
            {"hang": True, "seconds": 40, "app": "shop", "method": "GET"},
            {"hang": True, "seconds": 40, "app": "shop", "method": "PATCH", "count": 4},
        ],
    )
    started = time.monotonic()
    response = stack.post("3")
    elapsed = time.monotonic() - started
    assert response.status_code == 502
    assert outcome(response) == (1, 3, "failure")
    assert elapsed < HEROKU_BUDGET_SECONDS + 1  # 75.6 s before
    assert stack.fake.quantity("shop", "worker") == 1


def test_an_action_carried_out_after_the_caller_gave_up_is_recorded_as_such(stack) -> None:
    stack.fake.admin("POST", "faults", {"latency": 3, "app": "shop", "method": "PATCH"})
    with pytest.raises(requests.Timeout):
        stack.post("3", timeout=1)
    deadline = time.monotonic() + 10
    while stack.fake.quantity("shop", "worker") != 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    row = stack.last_decision()
    assert row["outcome"] == "success"
    assert row["answer"]["caller_gone"] is True
    assert row["answer"]["request_seconds"] >= 3


# -- item 6: an in-flight mark left by a killed worker ----------------------------------------


def test_a_mark_left_by_a_killed_worker_does_not_hold_the_change(stack) -> None:
    stack.fake.admin("POST", "faults", {"hang": True, "seconds": 40, "method": "PATCH"})
    store = Store(stack.store_url)
    with ThreadPoolExecutor(max_workers=1) as pool:
        doomed = pool.submit(stack.post, "3")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stored = store.states("shop").get("worker")
            if stored is not None and stored.state.in_flight == 3:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the target was never marked in flight")
        pid = int(stored.in_flight_owner.split("|")[2])
        os.kill(pid, signal.SIGKILL)  # between marking and Heroku's answer
        with pytest.raises(requests.ConnectionError):
            doomed.result()
    again = stack.post("3")
    assert outcome(again) == (1, 3, "success")  # "3 already in flight" for 120 s before
    # Within the mark's expiry, so the dead owner released it, not the clock (gunicorn's
    # restart of the killed worker takes a few seconds on a busy machine).
    assert time.time() - stored.state.in_flight_since < IN_FLIGHT_EXPIRY_SECONDS
    assert stack.fake.quantity("shop", "worker") == 3


def test_the_budget_sits_below_the_shipped_alertmanager_deadline() -> None:
    shipped = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    (scale,) = [r for r in shipped["route"]["routes"] if r["matchers"] == ['severity="scale"']]
    assert scale["group_interval"] == f"{ALERTMANAGER_DEADLINE_SECONDS:g}s"
    assert HEROKU_BUDGET_SECONDS + 4 <= ALERTMANAGER_DEADLINE_SECONDS
