"""The actuator against `dynoscaler fake-heroku` over real HTTP: batches, retries, limits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from scaler_support import HEROKU_KEY, FakeHerokuProcess, write_settings

from dynoscaler import heroku
from dynoscaler.config import HerokuSettings
from dynoscaler.heroku_budget import Budget
from scaler.actuator import PROBE_INTERVAL_SECONDS, TOKEN_SECONDS, Actuator, HerokuError
from scaler.deadline import Deadline

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Iterator[FakeHerokuProcess]:
    directory = tmp_path_factory.mktemp("fake")
    process = FakeHerokuProcess(write_settings(directory, "sqlite:///unused"), "--dyno-limit", "8")
    yield process
    process.close()


@pytest.fixture
def actuator(fake, monkeypatch) -> Actuator:
    fake.admin("POST", "reset")
    monkeypatch.setenv("HEROKU_API_URL", fake.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    return Actuator(lambda: heroku.client(timeout=0.5), base_delay=0.01, max_delay=0.05)


def count(app: str, outcome: str) -> float:
    labels = {"app": app, "outcome": outcome}
    return REGISTRY.get_sample_value("dynoscaler_scaler_actuations_total", labels) or 0.0


def spent(kind: str) -> float:
    labels = {"client": "scaler", "kind": kind}
    return REGISTRY.get_sample_value("dynoscaler_heroku_api_requests_total", labels) or 0.0


def test_formation_and_batch_scale_in_one_patch(fake, actuator) -> None:
    calls = {kind: spent(kind) for kind in ("app", "formation_read", "formation_update")}
    assert actuator.formation("shop") == {"web": 2, "worker": 1}
    before = count("shop", "success")
    result = actuator.scale("shop", {"worker": 3, "web": 4})
    assert (result.outcome, result.counts) == ("success", {"worker": 3, "web": 4})
    assert result.answer["ratelimit_remaining"] < 4500
    [patch] = fake.patches()
    assert patch["body"] == {
        "updates": [{"type": "worker", "quantity": 3}, {"type": "web", "quantity": 4}]
    }
    assert patch["path"] == "/apps/shop/formation"  # by name: Heroku takes it in every path
    # one token a read and one a change: never a GET /apps/{name} to learn the id
    assert {kind: spent(kind) - n for kind, n in calls.items()} == {
        "app": 0,
        "formation_read": 1,
        "formation_update": 1,
    }
    assert (fake.quantity("shop", "worker"), fake.quantity("shop", "web")) == (3, 4)
    assert count("shop", "success") == before + 1


@pytest.mark.parametrize(
    "faults",
    [
        [{"status": 429, "count": 2, "method": "PATCH"}],
        [{"status": 500, "count": 1, "method": "PATCH"}, {"status": 503, "count": 2}],
        [{"timeout": True, "seconds": 1, "count": 1, "method": "PATCH"}],
        [{"latency": 0.2, "count": 2}],
    ],
    ids=["429", "5xx", "time-out", "slow"],
)
def test_transient_faults_are_retried_to_the_right_count(fake, actuator, faults) -> None:
    actuator.formation("shop")  # the app lookup is cached; faults hit the PATCH
    fake.admin("POST", "faults", faults)
    result = actuator.scale("shop", {"worker": 5})
    assert (result.outcome, result.counts) == ("success", {"worker": 5})
    assert fake.quantity("shop", "worker") == 5


def test_persistent_failure_is_reported_and_leaves_the_count(fake, actuator) -> None:
    actuator.formation("shop")
    fake.admin("POST", "faults", {"status": 500, "count": 4, "method": "PATCH"})
    before = count("shop", "failure")
    result = actuator.scale("shop", {"worker": 6})
    assert result.outcome == "failure"
    assert result.counts == {}
    assert result.answer["attempts"] == 4
    assert result.answer["status"] == 500
    assert fake.quantity("shop", "worker") == 1
    assert len(fake.patches()) == 4
    assert count("shop", "failure") == before + 1


def test_dyno_limit_is_a_limit_and_not_retried(fake, actuator) -> None:
    before = count("shop", "limit")
    result = actuator.scale("shop", {"worker": 9})
    assert result.outcome == "limit"
    assert result.answer["error"] == "limit"
    assert result.answer["attempts"] == 1
    assert "cannot_run_above_limit" in result.answer["message"]
    # Heroku's error names the limit (and the size): the caller can scale to it.
    assert (result.answer["limit"], result.answer["size"]) == (8, "Standard-1X")
    assert result.limits == {"worker": 8}
    assert len(fake.patches()) == 1
    assert fake.quantity("shop", "worker") == 1
    assert count("shop", "limit") == before + 1


def test_limit_holds_only_the_roles_of_the_size_it_names(fake, actuator) -> None:
    fake.admin("POST", "dyno-limit", {"limit": 4, "app": "shop"})
    actuator.formation("shop")  # the sizes come from the last formation read
    result = actuator.scale("shop", {"worker": 6, "web": 3})
    assert (result.outcome, result.limits) == ("limit", {"worker": 4})


def test_retry_after_is_honoured(fake, actuator) -> None:
    actuator.formation("shop")
    fake.admin("POST", "faults", {"status": 429, "retry_after": 1, "method": "PATCH"})
    result = actuator.scale("shop", {"worker": 3})
    assert result.outcome == "success"
    first, second = fake.patches()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["at"] - first["at"] >= 1.0  # not 0.3, 0.6, 1.4 s as before


def test_429_without_retry_after_waits_for_the_bucket_to_refill(fake, monkeypatch) -> None:
    monkeypatch.setenv("HEROKU_API_URL", fake.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    fake.admin("POST", "reset")
    actuator = Actuator(heroku.client)  # the shipped back-off
    actuator.formation("shop")
    fake.admin("POST", "faults", {"status": 429, "count": 2, "method": "PATCH"})
    assert actuator.scale("shop", {"worker": 3}).outcome == "success"
    at = [p["at"] for p in fake.patches()]
    # One token every 0.8 s (4,500 an hour), doubling: no retry storm.
    assert at[1] - at[0] >= TOKEN_SECONDS
    assert at[2] - at[1] >= 2 * TOKEN_SECONDS


def test_429_waits_for_the_refill_of_the_accounts_rate_limit(fake, monkeypatch) -> None:
    monkeypatch.setenv("HEROKU_API_URL", fake.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    fake.admin("POST", "reset")
    slow = Budget(HerokuSettings(rate_limit=1800))  # one token every 2 s
    actuator = Actuator(heroku.client, refill=slow.refill)
    fake.admin("POST", "faults", {"status": 429, "count": 1, "method": "PATCH"})
    assert actuator.scale("shop", {"worker": 3}).outcome == "success"
    first, second = fake.patches()
    assert second["at"] - first["at"] >= 2.0  # not the 0.8 s of 4,500 an hour


def test_retry_after_past_the_budget_gives_up_at_once_and_holds_calls(fake, actuator) -> None:
    actuator.formation("shop")
    fake.admin("POST", "faults", {"status": 429, "retry_after": 30, "method": "PATCH"})
    started = time.monotonic()
    result = actuator.scale("shop", {"worker": 3})
    assert time.monotonic() - started < 1
    assert result.outcome == "failure"
    assert (result.answer["error"], result.answer["retry_after"]) == ("rate_limit", 30)
    assert "given up" in result.answer["message"]
    assert 29 < actuator.held_for() <= 30
    # Until then this process sends nothing: another request fails at once, uncalled.
    again = actuator.scale("shop", {"worker": 3})
    assert (again.outcome, again.answer["attempts"]) == ("failure", 0)
    with pytest.raises(HerokuError):
        actuator.formation("shop")
    assert len(fake.patches()) == 1


def test_one_deadline_bounds_every_attempt_of_a_hanging_heroku(fake, actuator) -> None:
    actuator.formation("shop")
    fake.admin("POST", "faults", {"hang": True, "seconds": 20, "count": 10})
    deadline = Deadline(budget=2.0)
    started = time.monotonic()
    result = actuator.scale("shop", {"worker": 3}, deadline)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 2.5  # 4 attempts at 20 s each took 43 s and more before
    assert result.outcome == "failure"
    assert result.answer["error"] == "timeout"
    assert fake.quantity("shop", "worker") == 1


def test_the_health_check_never_waits_on_a_hanging_heroku(fake, actuator) -> None:
    actuator.check()  # a first answer
    fake.admin("POST", "faults", {"hang": True, "seconds": 10, "count": 5})
    time.sleep(PROBE_INTERVAL_SECONDS)
    waits = []
    for _ in range(30):
        started = time.monotonic()
        with contextlib.suppress(HerokuError):
            actuator.check()
        waits.append(time.monotonic() - started)
        time.sleep(0.1)
    assert max(waits) < 0.1
    with pytest.raises(HerokuError, match="Heroku unreachable"):
        actuator.check()  # the probe's own time-out has passed by now


def test_unknown_app_and_bad_key_fail_without_retry(fake, actuator, monkeypatch) -> None:
    with pytest.raises(HerokuError) as error:
        actuator.formation("ghost")
    assert (error.value.kind, error.value.status, error.value.attempts) == ("client", 404, 1)
    monkeypatch.setenv("HEROKU_API_KEY", "wrong")
    with pytest.raises(HerokuError) as error:
        Actuator(base_delay=0.01).check()
    assert error.value.status == 401
