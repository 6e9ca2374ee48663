"""The scaler's side of the Heroku API budget (issue 16), against the fake Heroku over HTTP.

One 429 holds every process on the same decision store; below the bucket's
floor the scaler spends its tokens on PATCHes, not on reads; the retry of a
limit already known after its back-off is counted as `held`, not as a new
`limit` (ScalerActuationFailing fires once per limit: prometheus/tests/alerts_test.yml).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from scaler_support import HEROKU_KEY, postgres_database, write_settings

from dynoscaler import config, heroku
from dynoscaler.heroku_budget import Budget
from scaler.actuator import Actuator
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer, Fault
from scaler.guardrails import Request
from scaler.service import FORMATION_REUSE_SECONDS, LIMIT_BACKOFF_SECONDS, RoleInput, Scaler
from scaler.store import Store

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Iterator[tuple[FakeHeroku, config.Config]]:
    settings = config.load(write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}"))
    fake = FakeHeroku(settings, HEROKU_KEY)
    server = FakeHerokuServer(fake, access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    try:
        yield fake, settings
    finally:
        server.stop()


def counted(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def deliver(scaler: Scaler, clock: Clock, desired: int) -> tuple:
    (d,) = scaler.apply("shop", [RoleInput("worker", Request(desired, clock.now), {})], "test")
    return d.from_count, d.to_count, d.outcome


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_one_429_holds_every_process_on_the_store(fake, tmp_path, database) -> None:
    heroku_fake, _ = fake
    heroku_fake.add_faults([Fault.parse({"status": 429, "retry_after": 30, "method": "PATCH"})])
    with store_on(database, tmp_path) as store:
        worker, other = Actuator(heroku.client, holds=store), Actuator(heroku.client, holds=store)
        refused = worker.scale("shop", {"worker": 3})
        assert (refused.outcome, refused.answer["attempts"]) == ("failure", 1)
        # another gunicorn worker, or the reconcile loop: no call at all while held
        held = other.scale("shop", {"worker": 3})
        assert (held.outcome, held.answer["attempts"]) == ("failure", 0)
        assert 25 < other.held_for() <= 30
        assert len(heroku_fake.request_log()) == 1
        # an actuator on no store only knows its own holds
        assert Actuator(heroku.client).held_for() == 0


def test_below_the_floor_the_scaler_patches_on_its_stored_counts_without_reading(fake) -> None:
    heroku_fake, settings = fake
    clock = Clock()
    scaler = Scaler(settings, Store(settings.scaler.store), Actuator(heroku.client), print, clock)

    def spent(kind: str) -> float:
        return counted("dynoscaler_heroku_api_requests_total", client="scaler", kind=kind)

    assert deliver(scaler, clock, 2) == (1, 2, "success")
    floor = Budget(settings.heroku).floor
    heroku_fake.bucket.set(floor - 5)  # the next answers show the bucket below the floor
    clock.now += FORMATION_REUSE_SECONDS + 1
    reads, patches = spent("formation_read"), spent("formation_update")
    assert deliver(scaler, clock, 3) == (2, 3, "success")  # read (bucket seen low), PATCH
    assert (spent("formation_read") - reads, spent("formation_update") - patches) == (1, 1)
    clock.now += FORMATION_REUSE_SECONDS + 1
    reads, patches = spent("formation_read"), spent("formation_update")
    assert deliver(scaler, clock, 5) == (3, 5, "success")  # the PATCH alone
    assert (spent("formation_read") - reads, spent("formation_update") - patches) == (0, 1)
    assert heroku_fake.quantities()[("shop", "worker")] == 5
    # the bucket refilled: the PATCH's answer shows it, and the next change reads first
    heroku_fake.bucket.set(4000)
    clock.now += FORMATION_REUSE_SECONDS + 1
    assert deliver(scaler, clock, 6) == (5, 6, "success")
    clock.now += FORMATION_REUSE_SECONDS + 1
    reads = spent("formation_read")
    assert deliver(scaler, clock, 7) == (6, 7, "success")
    assert spent("formation_read") - reads == 1


def test_a_known_limit_met_again_after_its_back_off_counts_as_held(fake) -> None:
    heroku_fake, settings = fake
    heroku_fake.set_limit(2, "shop")
    clock = Clock()
    scaler = Scaler(settings, Store(settings.scaler.store), Actuator(heroku.client), print, clock)

    def actuations(outcome: str) -> float:
        return counted("dynoscaler_scaler_actuations_total", app="shop", outcome=outcome)

    before = {o: actuations(o) for o in ("limit", "held", "success")}
    assert deliver(scaler, clock, 4) == (1, 2, "limit")  # refused, then sent at the limit
    after = {o: actuations(o) - before[o] for o in before}
    assert after == {"limit": 2, "held": 0, "success": 0}
    clock.now += LIMIT_BACKOFF_SECONDS + 1
    assert deliver(scaler, clock, 4) == (2, 4, "limit")  # asked again: the same limit
    after = {o: actuations(o) - before[o] for o in before}
    assert after == {"limit": 2, "held": 1, "success": 0}
    # Heroku's limit rises to 3, below what is asked: news, counted as limit again
    heroku_fake.set_limit(3, "shop")
    clock.now += 2 * LIMIT_BACKOFF_SECONDS + 1
    assert deliver(scaler, clock, 4) == (2, 3, "limit")
    assert actuations("limit") - before["limit"] == 4


@contextlib.contextmanager
def store_on(database: str, tmp_path) -> Iterator[Store]:
    if database == "sqlite":
        yield Store(f"sqlite:///{tmp_path / 'holds.sqlite3'}")
        return
    with postgres_database("dynoscaler_holds") as url:
        store = Store(url)
        try:
            yield store
        finally:
            store.close()
