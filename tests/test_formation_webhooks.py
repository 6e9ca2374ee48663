"""Formation changes pushed: the fake's signed api:formation deliveries, the receiver,
and `dynoscaler heroku webhooks` (real HTTP, the command as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from exporter_helpers import HEROKU_ACCEPT, fresh_budget_view, scale_by_hand
from werkzeug.serving import make_server

from dynoscaler import config
from dynoscaler.heroku_webhooks import SECRET_ENV, SIGNATURE_HEADER, sign
from exporter.collectors import StaleRead
from exporter.collectors.formation import FormationSource
from exporter.formation_webhook import PATH, FormationWebhook
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key-webhooks"
SECRET = "webhook-secret-0123"
SETTINGS = """
apps:
  shop:
    roles:
      web: {min_dynos: 2, requests: router}
      worker: {min_dynos: 1, requests: router}
  dialer:
    roles:
      calls: {requests: router}
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    path = tmp_path / "autoscale.yml"
    path.write_text(SETTINGS)
    fake = FakeHerokuServer(FakeHeroku(config.load(path), KEY), access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", fake.url)
    monkeypatch.setenv("HEROKU_API_KEY", KEY)
    fresh_budget_view(monkeypatch)
    roles = [role.key for role in config.load(path).roles]
    # An hour per app: every change seen below comes from a webhook, not a read.
    source = FormationSource(roles, interval=3600, timeout=5, webhooks=True)
    receiver = make_server("127.0.0.1", 0, FormationWebhook(source, SECRET), threaded=True)
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{receiver.server_port}{PATH}"
    source.start()
    try:
        yield path, fake, source, url
    finally:
        source.stop()
        receiver.shutdown()
        thread.join(timeout=5)
        fake.stop()


def subscribe(path: Path, fake: FakeHerokuServer, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), SECRET_ENV: SECRET}
    env |= {"HEROKU_API_URL": fake.url, "HEROKU_API_KEY": KEY}
    command = [sys.executable, "-m", "dynoscaler", "heroku", "webhooks", "--config", str(path)]
    return subprocess.run(
        [*command, "--url", url], env=env, capture_output=True, text=True, timeout=60
    )


def dynos(source: FormationSource) -> dict[tuple[str, ...], float]:
    try:
        samples = source.read()
    except StaleRead as stale:
        samples = stale.samples
    return {s.labels: s.value for s in samples if s.metric == "dynoscaler_dynos"}


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert result, f"not within {timeout} s"
    return result


def test_a_change_by_hand_is_pushed_in_seconds_once_subscribed(setup):
    path, fake, source, url = setup
    assert dynos(source)[("shop", "web")] == 2

    scale_by_hand(fake.url, KEY, "shop", "web", 3)  # no subscription yet: unseen for an hour
    time.sleep(1)
    assert dynos(source)[("shop", "web")] == 2

    first = subscribe(path, fake, url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": created (api:formation") == 2
    again = subscribe(path, fake, url)  # idempotent: the same subscriptions, updated
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": updated (api:formation") == 2
    listed = requests.get(f"{fake.url}/apps/shop/webhooks", auth=("", KEY), headers=HEROKU_ACCEPT)
    (hook,) = listed.json()
    assert (hook["url"], hook["include"], hook["level"]) == (url, ["api:formation"], "sync")
    assert "secret" not in hook

    started = time.monotonic()
    scale_by_hand(fake.url, KEY, "shop", "worker", 7)
    wait_for(lambda: dynos(source).get(("shop", "worker")) == 7)
    seen = time.monotonic() - started
    print(f"a change by hand seen {seen * 1000:.0f} ms after the PATCH's answer")
    assert seen < 2
    assert dynos(source)[("shop", "web")] == 2  # the earlier, unsubscribed change: not yet
    # the fake records a delivery once the receiver's answer is back: after the source saw it
    (delivery,) = wait_for(
        lambda: [d for d in fake.fake.webhooks.deliveries() if d["app"] == "shop"]
    )
    assert (delivery["url"], delivery["status"]) == (url, 204)


def test_a_forged_or_unsigned_delivery_is_401_and_changes_nothing(setup):
    _, fake, source, url = setup
    body = json.dumps(
        {
            "action": "update",
            "resource": "formation",
            "data": {"app": {"name": "shop"}, "type": "web", "quantity": 9, "size": "eco"},
        }
    ).encode()
    for headers in ({}, {SIGNATURE_HEADER: sign("wrong-secret", body)}, {SIGNATURE_HEADER: "é"}):
        answer = requests.post(url, data=body, headers=headers, timeout=5)
        assert answer.status_code == 401
    assert dynos(source)[("shop", "web")] == 2
    signed = {SIGNATURE_HEADER: sign(SECRET, body)}
    assert requests.post(url, data=body, headers=signed, timeout=5).status_code == 204
    assert dynos(source)[("shop", "web")] == 9
    # Signed, but not a formation Heroku could send, or not ours: nothing changes.
    bad = json.dumps({"resource": "formation", "data": {"type": "web"}}).encode()
    answer = requests.post(url, data=bad, headers={SIGNATURE_HEADER: sign(SECRET, bad)})
    assert answer.status_code == 400
    release = json.dumps({"resource": "release", "data": {}}).encode()
    answer = requests.post(url, data=release, headers={SIGNATURE_HEADER: sign(SECRET, release)})
    assert answer.status_code == 202
    assert requests.get(url, timeout=5).status_code == 405


def test_a_delivery_keeps_a_formation_fresh_past_the_reconciliation(setup, monkeypatch):
    _, fake, source, url = setup
    # Pretend the reconciliation is due every 0.5 s (stale after three: 1.5 s) ...
    source.interval = 0.5
    monkeypatch.setattr(source, "gap", lambda: 0.25)
    monkeypatch.setattr(source, "read_next", lambda: None)  # ... and never comes
    time.sleep(2)
    with pytest.raises(StaleRead, match="no formation read for 3 rounds"):
        source.read()
    body = json.dumps(
        {
            "resource": "formation",
            "data": {"app": {"name": "dialer"}, "type": "calls", "quantity": 4, "size": "eco"},
        }
    ).encode()
    signed = {SIGNATURE_HEADER: sign(SECRET, body)}
    assert requests.post(url, data=body, headers=signed, timeout=5).status_code == 204
    with pytest.raises(StaleRead) as stale:
        source.read()
    # dialer's formation is confirmed as of the delivery; shop's is still stale.
    assert stale.value.roles == {("shop", "web"), ("shop", "worker")}
    assert dynos(source) == {("dialer", "calls"): 4}


def test_the_fakes_webhook_endpoints_answer_as_herokus(setup):
    _, fake, _, url = setup
    base = f"{fake.url}/apps/dialer/webhooks"

    def call(method: str, where: str, body=None) -> requests.Response:
        return requests.request(method, where, json=body, auth=("", KEY), headers=HEROKU_ACCEPT)

    hook = {"include": ["api:formation"], "level": "notify", "url": url, "secret": SECRET}
    created = call("POST", base, hook)
    assert created.status_code == 201
    assert call("POST", base, hook).status_code == 422  # the same URL twice
    assert call("POST", base, {**hook, "level": "often"}).status_code == 422
    assert call("POST", base, {**hook, "include": ["api:nope"]}).status_code == 422
    assert call("POST", base, {"level": "sync"}).status_code == 422
    hook_url = f"{base}/{created.json()['id']}"
    assert call("PATCH", hook_url, {"level": "sync"}).json()["level"] == "sync"
    assert call("GET", f"{fake.url}/apps/shop/webhooks/{created.json()['id']}").status_code == 404
    assert call("DELETE", hook_url).status_code == 200
    assert call("GET", base).json() == []
