"""Formation metrics through heroku3 against `dynoscaler fake-heroku` (real HTTP)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from exporter_helpers import (
    ROOT,
    exporter,
    labels,
    scale_by_hand,
    source_ups,
    wait_for,
    write_config,
)

from dynoscaler.heroku_webhooks import SECRET_ENV, SIGNATURE_HEADER, sign
from dynoscaler.processes import start_announced, stop

pytestmark = pytest.mark.timeout(90)

KEY = "test-key-formation"
SECRET = "formation-webhook-secret"
DIALER_REDIS = "redis://127.0.0.1:6379/1"
APPS = {
    "shop": {"roles": {"web": {"min_dynos": 2, "requests": "router"}}},
    "dialer": {"roles": {"worker": {"min_dynos": 1, "queues": [
        {"name": "calls", "backend": "redis_list", "url": DIALER_REDIS},
    ]}}},
}  # fmt: skip


@pytest.fixture
def fake_heroku(tmp_path) -> Iterator[str]:
    config = write_config(tmp_path, APPS)
    command = [sys.executable, "-m", "dynoscaler", "fake-heroku", "--config", str(config)]
    process, url = start_announced(
        [*command, "--port", "0", "--rate-limit", "3600"],
        "fake-heroku: serving",
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HEROKU_API_KEY": KEY},
    )
    try:
        yield url
    finally:
        stop(process)


def test_formation_is_polled_published_and_goes_stale(tmp_path, fake_heroku):
    directory = tmp_path / "exporter"
    directory.mkdir()
    config = write_config(directory, APPS, formation_interval=1)
    env = {"HEROKU_API_KEY": KEY, "HEROKU_API_URL": fake_heroku}
    dynos = "dynoscaler_dynos"
    up = (
        "dynoscaler_source_up",
        labels(source=fake_heroku, backend="heroku", app="shop", role="web"),
    )
    with exporter(config, env=env) as running:
        series = wait_for(lambda: (s := running.scrape()).get(up) == 1 and s)
        # The formation feeds every configured role of the apps it reads.
        assert source_ups(series) == {
            (fake_heroku, "heroku", "shop", "web"): 1,
            (fake_heroku, "heroku", "dialer", "worker"): 1,
            (DIALER_REDIS, "redis_list", "dialer", "worker"): 1,
        }
        assert series[(dynos, labels(app="shop", role="web"))] == 2
        assert series[(dynos, labels(app="dialer", role="worker"))] == 1
        size = labels(app="shop", role="web", size="standard-1X")
        assert series[("dynoscaler_dyno_size_info", size)] == 1

        # A scale through the API shows up within a poll interval or two.
        scale_by_hand(fake_heroku, KEY, "shop", "web", 5)
        wait_for(lambda: running.scrape()[(dynos, labels(app="shop", role="web"))] == 5)

        # Scrapes never call Heroku: 30 scrapes cost at most the one or two polls meanwhile.
        before = _remaining(fake_heroku)
        for _ in range(30):
            running.scrape()
        assert before - _remaining(fake_heroku) <= 4

        # Heroku fails: the source is down at once, the last count stays until it is stale.
        _fault(fake_heroku, {"status": 503, "count": 1000})
        series = wait_for(lambda: (s := running.scrape())[up] == 0 and s)
        assert source_ups(series)[(fake_heroku, "heroku", "dialer", "worker")] == 0
        assert series[(dynos, labels(app="shop", role="web"))] == 5
        wait_for(lambda: (dynos, labels(app="shop", role="web")) not in running.scrape())
        assert running.scrape()[up] == 0

        # Heroku answers again: back without a restart. The poller reads one app after
        # the other, so wait for a scrape that sees every app's formation again.
        requests.post(f"{fake_heroku}/__fake__/reset", timeout=5).raise_for_status()

        def heroku_up(series: dict) -> bool:
            return all(v == 1 for key, v in source_ups(series).items() if key[1] == "heroku")

        series = wait_for(lambda: heroku_up(s := running.scrape()) and s)
        assert series[(dynos, labels(app="shop", role="web"))] == 2
        source = f"source {fake_heroku} (heroku)"
        assert len(running.log_lines(f"{source} is down")) == 1
        assert len(running.log_lines(f"{source} is up again")) == 1


def _remaining(url: str) -> int:
    return requests.get(f"{url}/__fake__/state", timeout=5).json()["rate_limit_remaining"]


def _fault(url: str, fault: dict) -> None:
    requests.post(f"{url}/__fake__/faults", json=fault, timeout=5).raise_for_status()


def test_an_app_heroku_does_not_know_does_not_hide_the_others(tmp_path, fake_heroku):
    directory = tmp_path / "exporter"
    directory.mkdir()
    ghost = {"ghost": {"roles": {"web": {"requests": "router"}}}}
    config = write_config(directory, {**APPS, **ghost}, formation_interval=1)
    env = {"HEROKU_API_KEY": KEY, "HEROKU_API_URL": fake_heroku}
    with exporter(config, env=env) as running:
        series = running.scrape()
    # Only the unknown app's roles are down: the rules hold them alone.
    assert source_ups(series) == {
        (fake_heroku, "heroku", "ghost", "web"): 0,
        (fake_heroku, "heroku", "shop", "web"): 1,
        (fake_heroku, "heroku", "dialer", "worker"): 1,
        (DIALER_REDIS, "redis_list", "dialer", "worker"): 1,
    }
    assert series[("dynoscaler_dynos", labels(app="shop", role="web"))] == 2
    assert ("dynoscaler_dynos", labels(app="ghost", role="web")) not in series
    (line,) = running.log_lines("(heroku) is down")
    assert "ghost: HTTPError: 404" in line


def test_the_heroku_settings_set_the_pollers_budget(tmp_path, fake_heroku):
    directory = tmp_path / "exporter"
    directory.mkdir()
    heroku = {"budget_share": 0.2, "rate_limit": 9000}
    config = write_config(directory, APPS, heroku=heroku, formation_interval=1)
    env = {"HEROKU_API_KEY": KEY, "HEROKU_API_URL": fake_heroku}
    with exporter(config, env=env) as running:
        series = running.scrape()
    # 0.2 of 9,000 tokens an hour: 30 a minute (the defaults would give 37.5).
    assert series[("dynoscaler_heroku_api_budget_per_minute", labels())] == 30
    # Two apps, each every second, within the poller's 0.75 of 0.5 a second: 2.67 s a round.
    assert series[("dynoscaler_heroku_formation_period_seconds", labels())] == pytest.approx(
        2 / (0.2 * 9000 / 3600 * 0.75)
    )


def _subscribe(config, fake_heroku: str, url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), SECRET_ENV: SECRET}
    env |= {"HEROKU_API_URL": fake_heroku, "HEROKU_API_KEY": KEY}
    command = [sys.executable, "-m", "dynoscaler", "heroku", "webhooks", "--config", str(config)]
    done = subprocess.run(
        [*command, "--url", url], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": created (api:formation") == len(APPS)


def test_formation_webhooks_reach_metrics_in_milliseconds(tmp_path, fake_heroku):
    directory = tmp_path / "exporter"
    directory.mkdir()
    # An hour between reads (and 300 s at least with webhooks): no change below is a read.
    config = write_config(directory, APPS, formation_interval=3600)
    env = {"HEROKU_API_KEY": KEY, "HEROKU_API_URL": fake_heroku, SECRET_ENV: SECRET}
    web = ("dynoscaler_dynos", labels(app="shop", role="web"))
    with exporter(config, env=env) as running:
        series = running.scrape()
        assert series[web] == 2
        assert series[("dynoscaler_heroku_formation_period_seconds", labels())] >= 300
        receiver = f"{running.url}/heroku/formation"
        _subscribe(config, fake_heroku, receiver)

        delays = []
        for quantity in range(3, 23):
            started = time.monotonic()
            scale_by_hand(fake_heroku, KEY, "shop", "web", quantity)
            wait_for(lambda q=quantity: running.scrape()[web] == q, timeout=5, interval=0.01)
            delays.append(time.monotonic() - started)
        p50, worst = (f"{s * 1000:.0f} ms" for s in (statistics.median(delays), max(delays)))
        print(f"{len(delays)} changes by hand on /metrics: p50 {p50}, max {worst}")
        assert max(delays) < 2

        # A forged delivery (another secret) and an unsigned one: 401, nothing changes.
        body = json.dumps(
            {
                "resource": "formation",
                "action": "update",
                "data": {"app": {"name": "shop"}, "type": "web", "quantity": 40, "size": "eco"},
            }
        ).encode()
        for headers in ({SIGNATURE_HEADER: sign("not-the-secret", body)}, {}):
            forged = requests.post(receiver, data=body, headers=headers, timeout=5)
            assert forged.status_code == 401
        assert running.scrape()[web] == 22
        assert requests.get(receiver, timeout=5).status_code == 405
    deliveries = requests.get(f"{fake_heroku}/__fake__/deliveries", timeout=5).json()
    assert [d["status"] for d in deliveries] == [204] * 20


def test_without_the_secret_the_webhook_route_says_it_is_not_configured(tmp_path, fake_heroku):
    directory = tmp_path / "exporter"
    directory.mkdir()
    config = write_config(directory, APPS, formation_interval=1)
    env = {"HEROKU_API_KEY": KEY, "HEROKU_API_URL": fake_heroku}
    with exporter(config, env=env) as running:
        answer = requests.post(f"{running.url}/heroku/formation", data=b"{}", timeout=5)
        period = running.scrape()[("dynoscaler_heroku_formation_period_seconds", labels())]
    assert answer.status_code == 404
    assert f"formation webhooks are not configured (set {SECRET_ENV}" in answer.text
    assert period < 300  # polled at formation_interval: no webhook reconciliation pace
