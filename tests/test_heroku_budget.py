"""The API budget: the formation poller's spend at fleet size, against the fake's bucket."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import yaml
from exporter_helpers import fresh_budget_view
from prometheus_client import REGISTRY, generate_latest
from scaler_support import prometheus_scraping
from support import metrics_page

from dynoscaler import config, heroku, heroku_budget
from dynoscaler.config import HerokuSettings
from dynoscaler.heroku_budget import Budget, ChangeRate, ScalerSpend
from exporter.collectors import StaleRead
from exporter.collectors.formation import FormationSource
from scaler.actuator import Actuator
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.prometheus import query

pytestmark = pytest.mark.timeout(90)

KEY = "test-key-budget"
# Scaled down 80 times so a test runs in seconds: 100 tokens a second.
RATE_LIMIT = 360_000
APPS = 100


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    apps = {f"app-{i:03d}": {"roles": {"web": {"requests": "router"}}} for i in range(APPS)}
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump({"apps": apps, "heroku": {"rate_limit": RATE_LIMIT}}))
    settings = config.load(path)
    server = FakeHerokuServer(FakeHeroku(settings, KEY, rate_limit=RATE_LIMIT), access_log=False)
    server.start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", KEY)
    fresh_budget_view(monkeypatch)
    # Not a full bucket, so the refill is not capped and the spend shows in it.
    server.fake.bucket.set(200_000)
    try:
        yield settings, server
    finally:
        server.stop()


def _spent(client: str, kind: str) -> float:
    return heroku_budget.REQUESTS.labels(client, kind)._value.get()


def test_a_fleet_of_100_apps_is_read_within_the_budget_and_stays_fresh(fleet):
    settings, server = fleet
    budget = Budget(settings.heroku)
    roles = [role.key for role in settings.roles]
    # A 10 ms interval per app would be 10,000 reads a second without the budget.
    source = FormationSource(roles, interval=0.01, timeout=5, budget=budget)
    app_reads = _spent("exporter", "app")
    source.start()  # every app once, back to back: the bucket holds more than others are owed
    try:
        assert len(source.read()) > 2 * APPS  # every app's dynos, no StaleRead
        assert _spent("exporter", "app") == app_reads  # by name: no GET /apps/{name}
        remaining, reads = server.fake.bucket.remaining(), _spent("exporter", "formation_read")
        started = time.monotonic()
        time.sleep(6)
        elapsed = time.monotonic() - started
        spent = remaining + elapsed * RATE_LIMIT / 3600 - server.fake.bucket.remaining()
        counted = _spent("exporter", "formation_read") - reads
        poller_share = settings.heroku.share * (1 - heroku_budget.SCALER_RESERVE)
        allowed = poller_share * RATE_LIMIT / 3600  # 37.5 a second
        print(
            f"spent {spent / elapsed:.1f}/s (counted {counted / elapsed:.1f}/s), "
            f"poller's budget {allowed:.1f}/s"
        )
        assert spent / elapsed <= allowed * 1.05
        assert counted / elapsed <= allowed * 1.05
        assert spent / elapsed >= allowed * 0.5  # it keeps its pace
        # A round of 100 apps takes 2.7 s, longer than the 10 ms interval: still fresh.
        assert source.period() == pytest.approx(APPS / allowed, rel=0.01)
        assert len(source.read()) > 2 * APPS
    finally:
        source.stop()


def _spend_rates(source: FormationSource, scale) -> dict[str, float]:
    """Formation reads and PATCHes a second of the exporter and the scaler while `source`
    polls and `scale(actuator, n)` plays the scaler's n-th request, 15 a second."""
    stop = threading.Event()

    def scaler_loop() -> None:
        actuator, n = Actuator(lambda: heroku.client(user="scaler")), 0
        while not stop.is_set():
            scale(actuator, n)
            n += 1
            stop.wait(1 / 15)

    kinds = ("formation_read", "formation_update")
    scaler = threading.Thread(target=scaler_loop, daemon=True)
    source.start()
    scaler.start()
    try:
        time.sleep(4)  # the window fills
        spend = source.scaler_spend
        while spend.prometheus_url is not None and spend.measured is None:
            time.sleep(0.1)  # and Prometheus has scraped the scaler's count twice
        before = {c: sum(_spent(c, k) for k in kinds) for c in ("exporter", "scaler")}
        started = time.monotonic()
        time.sleep(6)
        elapsed = time.monotonic() - started
        return {
            c: (sum(_spent(c, k) for k in kinds) - before[c]) / elapsed
            for c in ("exporter", "scaler")
        }
    finally:
        stop.set()
        scaler.join(timeout=10)
        source.stop()


def _within_the_budget(settings, rates: dict[str, float]) -> None:
    ours = settings.heroku.share * RATE_LIMIT / 3600  # 50 a second
    print(f"exporter {rates['exporter']:.1f}/s + scaler {rates['scaler']:.1f}/s of {ours:.0f}/s")
    assert rates["scaler"] > 0.3 * ours  # the scaler did spend a large part
    assert rates["exporter"] + rates["scaler"] <= ours * 1.05
    assert rates["exporter"] >= ours * heroku_budget.POLLER_MIN_SHARE * 0.8  # never starved


def test_the_poller_leaves_the_scalers_changes_their_tokens(fleet):
    """The scaler changes 15 formations a second (30 tokens: its read and its PATCH, 60%
    of dynoscaler's 50 a second): the poller, which counts the changes its reads find,
    slows to what is left, so the two together stay within the budget. (Its part
    alone, 37.5 a second, would make 67.5.)"""
    settings, _ = fleet
    roles = [role.key for role in settings.roles]
    source = FormationSource(roles, interval=0.01, timeout=5, budget=Budget(settings.heroku))
    source.changes = ChangeRate(window_seconds=3.0)  # the 600 s window, scaled down

    def scale(actuator: Actuator, n: int) -> None:  # each alert that asks for a change
        app = f"app-{n % APPS:03d}"
        actuator.formation(app)
        actuator.scale(app, {"web": 2 + (n // APPS) % 2})

    _within_the_budget(settings, _spend_rates(source, scale))


def test_the_poller_leaves_the_scaler_what_it_counted_itself(fleet, tmp_path):
    """The scaler spends 30 tokens a second on reads that change nothing (what a change
    count cannot see): the poller reads the scaler's own dynoscaler_heroku_api_requests_total
    from a real Prometheus scraping it and leaves it that. (Counting changes, it would
    take its full 37.5 a second: 67.5 in all.)"""
    settings, _ = fleet
    page = metrics_page(lambda: generate_latest(REGISTRY).decode())
    with prometheus_scraping(tmp_path, page.port) as url:
        roles = [role.key for role in settings.roles]
        source = FormationSource(roles, interval=0.01, timeout=5, budget=Budget(settings.heroku))
        # the 600 s window and the 30 s refresh, scaled down
        source.scaler_spend = ScalerSpend(url, window_seconds=3.0, refresh_seconds=0.5)

        def scale(actuator: Actuator, n: int) -> None:  # alerts answered without a change
            actuator.formation(f"app-{n % APPS:03d}")
            actuator.formation(f"app-{(n + 1) % APPS:03d}")

        try:
            rates = _spend_rates(source, scale)
        finally:
            page.close()
    _within_the_budget(settings, rates)


def _measured_and_mean(url: str, spend: ScalerSpend, burst: float) -> tuple[float, float]:
    """What `spend` leaves the scaler, and the scaler's plain rate over the window, while
    it reads formations at 30 a second, `burst` seconds on and `burst` seconds off."""
    stop = threading.Event()

    def scaler_loop() -> None:
        actuator, n, started = Actuator(lambda: heroku.client(user="scaler")), 0, time.monotonic()
        while not stop.is_set():
            if int((time.monotonic() - started) / burst) % 2 == 0:
                actuator.formation(f"app-{n % APPS:03d}")
                n += 1
            stop.wait(1 / 30)

    scaler = threading.Thread(target=scaler_loop, daemon=True)
    scaler.start()
    try:
        time.sleep(spend.window + 4)  # the window fills and is scraped
        spend.refresh()
        calls = 'dynoscaler_heroku_api_requests_total{client="scaler", kind="formation_read"}'
        mean = float(query(url, f"sum(rate({calls}[{spend.window:g}s]))")[0]["value"][1])
    finally:
        stop.set()
        scaler.join(timeout=10)
    assert spend.measured is not None
    return spend.measured, mean


@pytest.mark.timeout(120)
def test_the_poller_leaves_a_bursty_scaler_a_margin_its_scatter_measures(fleet, tmp_path):
    """The scaler's spend over the window is taken with its standard error, from the
    scatter of its rate over the window's parts: a scaler that reads in 6 s bursts is
    left well above its mean rate, a steady one about its mean."""
    page = metrics_page(lambda: generate_latest(REGISTRY).decode())
    with prometheus_scraping(tmp_path, page.port) as url:
        try:
            # the 600 s window scaled down to 15 s: 5 parts of 3 s, each 3 scrapes
            spend = ScalerSpend(url, window_seconds=15.0, refresh_seconds=0.0)
            bursty, bursty_mean = _measured_and_mean(url, spend, burst=6.0)
            steady, steady_mean = _measured_and_mean(url, spend, burst=1e6)
        finally:
            page.close()
    print(
        f"bursty {bursty:.1f}/s (mean {bursty_mean:.1f}), steady {steady:.1f}/s "
        f"(mean {steady_mean:.1f})"
    )
    assert bursty >= bursty_mean * 1.2
    assert steady == pytest.approx(steady_mean, rel=0.1)


def test_changes_are_counted_once_per_app_and_batch():
    changes = ChangeRate(window_seconds=10.0)
    for _ in ("web", "worker", "mailers"):  # one batch PATCH: three deliveries
        changes.note("shop")
    changes.note("blog")
    assert changes.per_second() == pytest.approx(2 / 10)


def test_a_low_bucket_and_a_429_pause_the_poller_for_the_refill(fleet):
    settings, server = fleet
    roles = [role.key for role in settings.roles]
    source = FormationSource(roles, interval=0.01, timeout=5, budget=Budget(settings.heroku))
    source.start()
    try:
        server.fake.bucket.set(0)  # someone else emptied it
        before = {k: _spent("exporter", k) for k in ("formation_read", "rate_limited")}
        time.sleep(3)
        after = {k: _spent("exporter", k) for k in ("formation_read", "rate_limited")}
        # At most one read finds the empty bucket; then the poller waits for the refill
        # to bring it back to the floor (7,200 tokens at 100 a second: 72 s), no retries.
        assert after["rate_limited"] - before["rate_limited"] <= 1
        assert after["formation_read"] - before["formation_read"] <= 1
        assert source.budget.pause() > 60
        # The pause stretches the round, so the apps not refused stay fresh.
        try:
            samples = source.read()
        except StaleRead as stale:
            assert len(stale.roles or ()) <= 1  # only the app the 429 answered
            samples = stale.samples
        assert len([s for s in samples if s.metric == "dynoscaler_dynos"]) >= APPS - 1
    finally:
        source.stop()


def test_the_rate_limit_endpoint_takes_no_token(fleet):
    _, server = fleet
    before = server.fake.bucket.remaining()
    for _ in range(20):
        answer = requests.get(
            f"{server.url}/account/rate-limits",
            auth=("", KEY),
            headers={"Accept": "application/vnd.heroku+json; version=3"},
            timeout=5,
        )
        assert answer.status_code == 200
    assert server.fake.bucket.remaining() >= before


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", "https://api.heroku.com/apps/shop/formation", "formation_read"),
        ("PATCH", "https://api.heroku.com/apps/0a1b/formation", "formation_update"),
        ("PATCH", "https://api.heroku.com/apps/shop/formation/web", "formation_update"),
        ("GET", "https://api.heroku.com/apps/shop", "app"),
        ("GET", "https://api.heroku.com/account/rate-limits", "rate_limits"),
        ("POST", "https://api.heroku.com/apps/shop/webhooks", "webhooks"),
        ("GET", "https://api.heroku.com/apps/shop/releases", "other"),
    ],
)
def test_each_call_is_counted_by_kind(method, url, kind):
    assert heroku_budget.kind(method, url) == kind


def test_the_poller_pace_adapts_to_the_fleet_and_the_bucket():
    observed = heroku_budget._Observed()
    budget = Budget(HerokuSettings(), observed)  # 4,500 an hour, half of it ours
    assert budget.tokens_per_minute == pytest.approx(37.5)
    assert budget.read_gap(4, 10) == 2.5  # few apps: each every 10 s
    assert budget.read_gap(5, 10) == pytest.approx(60 / 28.125)  # from 5 on, slower
    assert budget.read_gap(500, 10) == pytest.approx(60 / 28.125)  # the poller's 28/min
    assert budget.pause() == 0
    observed.note(45.0, None)  # below the floor of 90: wait for 45 tokens of refill
    assert budget.pause() == pytest.approx(36, abs=0.1)
    observed.note(0.0, 120.0)  # a 429 asking for 120 s
    assert budget.pause() == pytest.approx(120, abs=0.1)
    assert not budget.may_sweep()
    # the poller leaves the scaler's tokens a second room, down to its least
    assert budget.poller_rate(0.0) == pytest.approx(0.46875)  # 28.125 a minute
    assert budget.poller_rate(0.2) == pytest.approx(0.625 - 0.2)
    assert budget.poller_rate(2.0) == pytest.approx(0.625 * heroku_budget.POLLER_MIN_SHARE)
    # the scaler's own count where Prometheus gave it, else 2 tokens per change learned
    changes, spend = ChangeRate(window_seconds=10.0), ScalerSpend()
    changes.note("shop")
    assert spend.per_second(changes) == pytest.approx(2 / 10)
    spend.measured = 0.05
    assert spend.per_second(changes) == 0.05
    dedicated = Budget(HerokuSettings(token_scope="dedicated"))
    assert dedicated.tokens_per_minute == pytest.approx(67.5)
