"""The actuator against `dynoscaler fake-heroku` over real HTTP: batches, retries, limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from scaler_support import HEROKU_KEY, FakeHerokuProcess, write_settings

from dynoscaler import heroku
from scaler.actuator import Actuator, HerokuError

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


def test_formation_and_batch_scale_in_one_patch(fake, actuator) -> None:
    assert actuator.formation("shop") == {"web": 2, "worker": 1}
    before = count("shop", "success")
    result = actuator.scale("shop", {"worker": 3, "web": 4})
    assert (result.outcome, result.counts) == ("success", {"worker": 3, "web": 4})
    assert result.answer["ratelimit_remaining"] < 4500
    [patch] = fake.patches()
    assert patch["body"] == {
        "updates": [{"type": "worker", "quantity": 3}, {"type": "web", "quantity": 4}]
    }
    assert patch["path"].startswith("/apps/2a40ad5b-")  # heroku3 addresses the app by id
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
    assert len(fake.patches()) == 1
    assert fake.quantity("shop", "worker") == 1
    assert count("shop", "limit") == before + 1


def test_unknown_app_and_bad_key_fail_without_retry(fake, actuator, monkeypatch) -> None:
    with pytest.raises(HerokuError) as error:
        actuator.formation("ghost")
    assert (error.value.kind, error.value.status, error.value.attempts) == ("client", 404, 1)
    monkeypatch.setenv("HEROKU_API_KEY", "wrong")
    with pytest.raises(HerokuError) as error:
        Actuator(base_delay=0.01).check()
    assert error.value.status == 401
