"""The fake Heroku Platform API, driven through heroku3 as the project builds it (real HTTP)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import heroku3
import pytest
import requests

from dynoscaler import config, heroku
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key-0123"
SETTINGS = """
apps:
  shop:
    roles:
      worker:
        min_dynos: 1
        queues: [{name: default, backend: sidekiq, url: "redis://127.0.0.1:6379/4"}]
      web:
        min_dynos: 2
        requests: router
  dialer:
    roles:
      twilio:
        queues: [{name: twilio, backend: resque, url: "redis://127.0.0.1:6379/4"}]
"""
ACCEPT = "application/vnd.heroku+json; version=3"


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "autoscale.yml"
    path.write_text(SETTINGS)
    return path


@pytest.fixture
def fake(settings_file: Path):
    server = FakeHerokuServer(FakeHeroku(config.load(settings_file), KEY, dyno_limit=5)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(fake: FakeHerokuServer, monkeypatch: pytest.MonkeyPatch) -> heroku3.api.Heroku:
    monkeypatch.setenv("HEROKU_API_URL", fake.url)
    monkeypatch.setenv("HEROKU_API_KEY", KEY)
    return heroku.client(timeout=5)


def admin(fake: FakeHerokuServer, method: str, path: str, json=None) -> requests.Response:
    response = requests.request(method, f"{fake.url}/__fake__/{path}", json=json, timeout=5)
    response.raise_for_status()
    return response


def quantities(fake: FakeHerokuServer) -> dict[tuple[str, str], int]:
    return fake.fake.quantities()


def test_serves_every_role_at_min_dynos_with_heroku_shapes(api, fake):
    app = api.app("shop")
    assert app.name == "shop"
    assert uuid.UUID(app.id).version == 5
    assert app.created_at is not None
    formation = {f.type: (f.quantity, f.size) for f in app.process_formation()}
    assert formation == {"worker": (1, "standard-1X"), "web": (2, "standard-1X")}
    assert quantities(fake) == {("shop", "worker"): 1, ("shop", "web"): 2, ("dialer", "twilio"): 0}

    raw = requests.get(
        f"{fake.url}/apps/{app.id}/formation/worker", auth=("", KEY), headers={"Accept": ACCEPT}
    ).json()
    assert set(raw) >= {"id", "type", "quantity", "size", "command", "app", "created_at"}
    assert raw["app"] == {"id": app.id, "name": "shop"}
    assert api.app(app.id).name == "shop"  # by UUID as well as by name


def test_app_ids_are_stable_across_restarts(settings_file):
    first = FakeHeroku(config.load(settings_file), KEY).app("shop").id
    assert FakeHeroku(config.load(settings_file), KEY).app("shop").id == first


def test_batch_scale_changes_the_formation_and_is_logged(api, fake):
    app = api.app("shop")
    result = app.batch_scale_formation_processes({"worker": 4, "web": 3})
    assert sorted((f.type, f.quantity) for f in result) == [("web", 3), ("worker", 4)]
    assert quantities(fake)[("shop", "worker")] == 4
    assert quantities(fake)[("shop", "web")] == 3

    (entry,) = admin(fake, "GET", "requests").json()
    assert entry["method"] == "PATCH"
    assert entry["path"] == f"/apps/{app.id}/formation"
    assert entry["body"] == {
        "updates": [{"type": "worker", "quantity": 4}, {"type": "web", "quantity": 3}]
    }
    assert entry["status"] == 200
    assert abs(entry["at"] - time.time()) < 60


def test_single_scale_by_app_id_and_by_formation_object(api, fake):
    app = api.app("shop")
    assert app.scale_formation_process("worker", 2).quantity == 2
    (web,) = [f for f in app.process_formation() if f.type == "web"]
    assert web.scale(0).quantity == 0
    assert quantities(fake)[("shop", "worker")] == 2
    assert quantities(fake)[("shop", "web")] == 0


def test_formation_listeners_see_each_change(api, fake):
    seen = []
    fake.fake.listeners.append(lambda *change: seen.append(change))
    app = api.app("shop")
    app.batch_scale_formation_processes({"worker": 3})
    app.batch_scale_formation_processes({"worker": 3})  # no change: no call
    app.scale_formation_process("worker", 1)
    assert seen == [("shop", "worker", 1, 3), ("shop", "worker", 3, 1)]


def test_wrong_key_is_401_and_bearer_is_accepted(fake, monkeypatch):
    monkeypatch.setenv("HEROKU_API_URL", fake.url)
    monkeypatch.setenv("HEROKU_API_KEY", "not-the-key")
    with pytest.raises(requests.HTTPError) as caught:
        heroku.client().app("shop")
    assert caught.value.response.status_code == 401
    assert caught.value.response.json() == {
        "id": "unauthorized",
        "message": "Invalid credentials provided.",
    }
    bearer = {"Accept": ACCEPT, "Authorization": f"Bearer {KEY}"}
    assert requests.get(f"{fake.url}/apps/shop", headers=bearer, timeout=5).status_code == 200
    anonymous = requests.get(f"{fake.url}/apps/shop", headers={"Accept": ACCEPT}, timeout=5)
    assert anonymous.status_code == 401


def test_heroku3_accept_header_passes_and_a_missing_version_is_400(api, fake):
    assert api._session.headers["Accept"] == "application/vnd.heroku+json; version=3.cedar-acm"
    assert api.is_authenticated  # GET /account/rate-limits with heroku3's own headers
    response = requests.get(
        f"{fake.url}/apps/shop", auth=("", KEY), headers={"Accept": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["id"] == "missing_version"


def test_unknown_app_formation_and_bad_quantity(api, fake):
    with pytest.raises(requests.HTTPError) as caught:
        api.app("nope")
    assert caught.value.response.status_code == 404
    assert caught.value.response.json()["id"] == "not_found"
    app = api.app("shop")
    with pytest.raises(requests.HTTPError) as caught:
        app.scale_formation_process("clock", 1)
    assert caught.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as caught:
        app.scale_formation_process("worker", -1)
    assert caught.value.response.status_code == 422
    assert caught.value.response.json()["id"] == "invalid_params"
    assert quantities(fake)[("shop", "worker")] == 1


def test_above_the_dyno_limit_is_422_and_the_batch_changes_nothing(api, fake):
    app = api.app("shop")
    with pytest.raises(requests.HTTPError) as caught:
        app.batch_scale_formation_processes({"web": 3, "worker": 6})
    body = caught.value.response.json()
    assert caught.value.response.status_code == 422
    assert body["id"] == "cannot_run_above_limit"
    assert body["limit"] == 5
    assert body["message"] == "Cannot run more than 5 Standard-1X size dynos."
    assert quantities(fake)[("shop", "web")] == 2
    assert quantities(fake)[("shop", "worker")] == 1
    assert app.scale_formation_process("worker", 5).quantity == 5


def test_rate_limit_header_counts_down_and_empty_bucket_raises(api, fake):
    api.app("shop")
    first = int(api._ratelimit_remaining)
    api.app("shop")
    assert int(api._ratelimit_remaining) == first - 1
    admin(fake, "POST", "rate-limit", {"remaining": 0})
    with pytest.raises(heroku3.api.RateLimitExceeded, match="rate_limit"):
        api.app("shop")
    assert api._ratelimit_remaining == "0"


def test_the_bucket_refills_gradually(settings_file):
    # 36,000/hour refills 10 tokens a second.
    fake = FakeHeroku(config.load(settings_file), KEY, rate_limit=36_000)
    fake.bucket.set(0)
    assert not fake.bucket.take()
    time.sleep(0.25)
    assert fake.bucket.take()
    assert fake.bucket.remaining() <= 2


def test_status_faults_are_consumed_in_order(api, fake):
    admin(fake, "POST", "faults", {"status": 503, "count": 2, "method": "PATCH"})
    app = api.app("shop")  # a GET: the PATCH-only fault does not apply
    for _ in range(2):
        with pytest.raises(requests.HTTPError) as caught:
            app.scale_formation_process("worker", 3)
        assert caught.value.response.status_code == 503
    assert quantities(fake)[("shop", "worker")] == 1
    assert app.scale_formation_process("worker", 3).quantity == 3
    statuses = [entry["status"] for entry in admin(fake, "GET", "requests").json()]
    assert statuses == [503, 503, 200]
    assert admin(fake, "GET", "state").json()["faults"] == []


def test_latency_and_timeout_faults(api, fake, monkeypatch):
    admin(fake, "POST", "faults", [{"latency": 0.4}, {"timeout": True, "seconds": 2}])
    started = time.monotonic()
    api.app("shop")
    assert time.monotonic() - started >= 0.4
    impatient = heroku.client(timeout=0.3)
    with pytest.raises(requests.Timeout):
        impatient.app("shop")


def test_bad_fault_specs_are_rejected(fake):
    response = requests.post(f"{fake.url}/__fake__/faults", json={"status": 200}, timeout=5)
    assert response.status_code == 422
    response = requests.post(f"{fake.url}/__fake__/faults", json={"colour": "red"}, timeout=5)
    assert response.status_code == 422
    assert "colour" in response.json()["message"]


def test_reset_restores_min_dynos_and_clears_the_log(api, fake):
    api.app("shop").batch_scale_formation_processes({"worker": 4})
    admin(fake, "POST", "faults", {"status": 500})
    state = admin(fake, "POST", "reset").json()
    assert state["faults"] == []
    assert quantities(fake)[("shop", "worker")] == 1
    assert admin(fake, "GET", "requests").json() == []


def test_command_line_serves_until_terminated(settings_file, monkeypatch):
    env = {"PYTHONPATH": str(ROOT), "HEROKU_API_KEY": KEY, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "dynoscaler", "fake-heroku", "--config", str(settings_file)]
    process = subprocess.Popen(
        [*command, "--port", "0"], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("fake-heroku: serving shop, dialer on http://127.0.0.1:")
        monkeypatch.setenv("HEROKU_API_URL", line.rsplit(" ", 1)[1].strip())
        monkeypatch.setenv("HEROKU_API_KEY", KEY)
        assert heroku.client().app("dialer").process_formation()[0].quantity == 0
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()


def test_command_line_without_a_key_is_a_clear_error(settings_file):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "dynoscaler", "fake-heroku", "--config", str(settings_file)]
        + ["--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == "dynoscaler: fake-heroku: give --api-key or set HEROKU_API_KEY\n"


def test_a_hang_holds_the_connection_then_closes_it_unanswered(api, fake):
    app = api.app("shop")
    admin(fake, "POST", "faults", {"hang": True, "seconds": 1.0, "method": "PATCH"})
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        app.batch_scale_formation_processes({"worker": 3})
    assert 1.0 <= time.monotonic() - started < 3
    assert quantities(fake)[("shop", "worker")] == 1  # never carried out
    (entry,) = admin(fake, "GET", "requests").json()
    assert entry["status"] is None
    impatient = heroku.client(timeout=0.3)  # a client's time-out cuts a hang short
    admin(fake, "POST", "faults", {"hang": True, "seconds": 5})
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        impatient.app("shop")
    assert time.monotonic() - started < 1


def test_faults_can_be_aimed_at_one_app_or_path(api, fake):
    shop, dialer = api.app("shop"), api.app("dialer")
    admin(fake, "POST", "faults", {"status": 503, "app": "shop", "count": 2})
    assert dialer.process_formation()[0].quantity == 0
    with pytest.raises(requests.HTTPError):
        shop.process_formation()  # by name
    with pytest.raises(requests.HTTPError):
        shop.batch_scale_formation_processes({"worker": 2})  # by id
    assert shop.process_formation()[0].quantity == 1
    admin(fake, "POST", "faults", {"status": 503, "path": "/formation"})
    api.app("shop")  # GET /apps/shop: not aimed at
    with pytest.raises(requests.HTTPError):
        dialer.process_formation()


def test_429_carries_retry_after_from_the_bucket_or_the_fault(fake):
    headers = {"Accept": ACCEPT}
    admin(fake, "POST", "faults", {"status": 429, "retry_after": 5})
    refused = requests.get(f"{fake.url}/apps/shop", auth=("", KEY), headers=headers, timeout=5)
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "5")
    assert refused.json()["id"] == "rate_limit"
    admin(fake, "POST", "rate-limit", {"remaining": 0})
    empty = requests.get(f"{fake.url}/apps/shop", auth=("", KEY), headers=headers, timeout=5)
    # 4,500 an hour: a token every 0.8 s, so one second.
    assert (empty.status_code, empty.headers["Retry-After"]) == (429, "1")


def test_dyno_limit_is_set_per_app_and_carried_in_the_422(api, fake):
    state = admin(fake, "POST", "dyno-limit", {"limit": 3, "app": "shop"}).json()
    assert state == {"dyno_limit": 5, "app_limits": {"shop": 3}}
    with pytest.raises(requests.HTTPError) as caught:
        api.app("shop").batch_scale_formation_processes({"worker": 4})
    assert caught.value.response.json() == {
        "id": "cannot_run_above_limit",
        "message": "Cannot run more than 3 Standard-1X size dynos.",
        "limit": 3,
        "size": "Standard-1X",
        "url": "https://devcenter.heroku.com/articles/dyno-size#default-scaling-limits",
    }
    assert api.app("dialer").batch_scale_formation_processes({"twilio": 5})[0].quantity == 5
    admin(fake, "POST", "dyno-limit", {"limit": 6})
    assert api.app("dialer").batch_scale_formation_processes({"twilio": 6})[0].quantity == 6
    bad = requests.post(f"{fake.url}/__fake__/dyno-limit", json={"limit": -1}, timeout=5)
    assert bad.status_code == 422
    assert admin(fake, "POST", "reset").json()["dyno_limit"] == 5


def test_config_vars_read_set_and_removed_as_heroku_does(api, fake):
    app = api.app("shop")
    assert app.config().to_dict() == {}
    raw = requests.patch(
        f"{fake.url}/apps/shop/config-vars",
        auth=("", KEY),
        headers={"Accept": ACCEPT},
        json={"REDIS_URL": "redis://h:6379", "SIDEKIQ_CONCURRENCY": "10"},
        timeout=5,
    )
    assert raw.status_code == 200
    assert raw.json() == {"REDIS_URL": "redis://h:6379", "SIDEKIQ_CONCURRENCY": "10"}
    # heroku3 PATCHes by the app's id; null removes one var and leaves the rest
    updated = app.update_config({"SIDEKIQ_CONCURRENCY": None, "WEB_CONCURRENCY": "3"})
    assert updated.to_dict() == {"REDIS_URL": "redis://h:6379", "WEB_CONCURRENCY": "3"}
    assert api.app("shop").config().to_dict() == updated.to_dict()
    assert api.app("dialer").config().to_dict() == {}  # each app its own


def test_bad_config_var_changes_are_422_and_change_nothing(api, fake):
    app = api.app("shop")
    app.update_config({"KEEP": "1"})
    for body in ({"OK": "x", "BAD-NAME": "y"}, {"COUNT": 3}, ["REDIS_URL"], {"OK": {"a": 1}}):
        response = requests.patch(
            f"{fake.url}/apps/{app.id}/config-vars",
            auth=("", KEY),
            headers={"Accept": ACCEPT},
            json=body,
            timeout=5,
        )
        assert response.status_code == 422, body
        assert response.json()["id"] == "invalid_params"
    assert app.config().to_dict() == {"KEEP": "1"}
    with pytest.raises(requests.HTTPError) as caught:
        api._session.get(f"{fake.url}/apps/nope/config-vars").raise_for_status()
    assert caught.value.response.status_code == 404
    admin(fake, "POST", "reset")
    assert app.config().to_dict() == {}
