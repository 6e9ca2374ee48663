"""The scaler's formation read spared where the exporter's webhook-fed count confirms the
stored one (issue 16): the fake Heroku over HTTP delivering signed api:formation events to
the exporter's real receiver and formation source, a real Prometheus scraping its samples,
and the scaler reading them back through scaler.known_formation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from exporter_helpers import fresh_budget_view, scale_by_hand
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from scaler_support import HEROKU_KEY, prometheus_scraping, write_settings
from support import metrics_page
from werkzeug.serving import make_server

from dynoscaler import config, heroku
from dynoscaler.heroku_webhooks import subscribe
from exporter.collectors import StaleRead
from exporter.collectors.formation import FormationSource
from exporter.formation_webhook import PATH, FormationWebhook
from exporter.metrics import families
from scaler.actuator import Actuator
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.guardrails import Request
from scaler.known_formation import KnownFormation
from scaler.service import RoleInput, Scaler
from scaler.store import Store

pytestmark = pytest.mark.timeout(90)

SECRET = "known-formation-secret"


class _Page:
    """The exporter's formation samples as its /metrics serves them."""

    def __init__(self, source: FormationSource) -> None:
        self.source = source

    def collect(self):
        try:
            samples = self.source.read()
        except StaleRead as stale:
            samples = stale.samples
        return families(samples)

    def render(self) -> str:
        registry = CollectorRegistry()
        registry.register(self)
        return generate_latest(registry).decode()


@dataclass
class Loop:
    fake: FakeHerokuServer
    source: FormationSource
    known: KnownFormation
    scaler: Scaler
    clock: list[float]

    def deliver(self, desired: int) -> tuple:
        self.clock[0] += 61  # past the cooldown, and past FORMATION_REUSE_SECONDS
        request = Request(desired, self.clock[0])
        (d,) = self.scaler.apply("shop", [RoleInput("worker", request, {})], "test")
        return d.from_count, d.to_count, d.outcome

    def known_worker(self, count: int) -> None:
        """Wait until Prometheus shows the exporter's webhook-fed count."""
        deadline = time.monotonic() + 20
        while self.known("shop").get("worker") != count:
            assert time.monotonic() < deadline, f"never known: {self.known('shop')}"
            time.sleep(0.2)


def spent(kind: str) -> float:
    labels = {"client": "scaler", "kind": kind}
    return REGISTRY.get_sample_value("dynoscaler_heroku_api_requests_total", labels) or 0.0


def counted(outcome: str, reason: str) -> float:
    """The scaler's dynoscaler_scaler_formation_reads_total{outcome, reason}."""
    labels = {"outcome": outcome, "reason": reason}
    return REGISTRY.get_sample_value("dynoscaler_scaler_formation_reads_total", labels) or 0.0


@pytest.fixture
def loop(tmp_path, monkeypatch) -> Iterator[Loop]:
    store = f"sqlite:///{tmp_path / 's.sqlite3'}"
    # The exporter's page, scraped every second; the scaler's settings point at its Prometheus.
    page: list[_Page] = []
    server = metrics_page(lambda: page[0].render() if page else "")
    with prometheus_scraping(tmp_path, server.port) as prometheus_url:
        settings = config.load(write_settings(tmp_path, store, prometheus_url=prometheus_url))
        fake = FakeHerokuServer(FakeHeroku(settings, HEROKU_KEY), access_log=False).start()
        monkeypatch.setenv("HEROKU_API_URL", fake.url)
        monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
        fresh_budget_view(monkeypatch)
        roles = [role.key for role in settings.roles]
        source = FormationSource(roles, interval=3600, timeout=5, webhooks=True)
        receiver = make_server("127.0.0.1", 0, FormationWebhook(source, SECRET), threaded=True)
        thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        hook_url = f"http://127.0.0.1:{receiver.server_port}{PATH}"
        subscribe(heroku.client(user="cli"), "shop", hook_url, SECRET, "sync")
        source.start()
        page.append(_Page(source))
        known = KnownFormation(prometheus_url)
        clock = [time.time()]
        actuator = Actuator(heroku.client)
        scaler = Scaler(settings, Store(store), actuator, print, lambda: clock[0], known=known)
        try:
            yield Loop(fake, source, known, scaler, clock)
        finally:
            source.stop()
            receiver.shutdown()
            thread.join(timeout=5)
            fake.stop()
            server.close()


def test_a_change_on_counts_the_webhooks_confirmed_costs_its_patch_alone(loop) -> None:
    # Nothing stored yet: the exporter's count (its first read) stands for Heroku's.
    loop.known_worker(1)
    spared = counted("spared", "webhook_counts")
    reads, patches = spent("formation_read"), spent("formation_update")
    assert loop.deliver(3) == (1, 3, "success")
    assert (spent("formation_read") - reads, spent("formation_update") - patches) == (0, 1)
    # The exporter hears of the PATCH by webhook; once Prometheus shows it, the stored
    # count is confirmed and the next change is its PATCH alone.
    loop.known_worker(3)
    reads, patches = spent("formation_read"), spent("formation_update")
    assert loop.deliver(5) == (3, 5, "success")
    assert (spent("formation_read") - reads, spent("formation_update") - patches) == (0, 1)
    loop.known_worker(5)
    assert loop.deliver(2) == (5, 2, "success")  # down alike
    assert (spent("formation_read") - reads, spent("formation_update") - patches) == (0, 2)
    assert loop.fake.fake.quantities()[("shop", "worker")] == 2
    assert counted("spared", "webhook_counts") - spared == 3  # each read spared, counted


def test_a_change_by_hand_the_exporter_saw_is_read_before_acting(loop) -> None:
    assert loop.deliver(3) == (1, 3, "success")
    loop.known_worker(3)
    scale_by_hand(loop.fake.url, HEROKU_KEY, "shop", "worker", 8)  # a person, by the CLI
    loop.known_worker(8)
    reads, unconfirmed = spent("formation_read"), counted("read", "unconfirmed")
    # The stored 3 and the exporter's 8 differ: Heroku is read, and the change is
    # decided from 8 (max_step 3), not sent from the stored 3.
    assert loop.deliver(10) == (8, 10, "success")
    assert spent("formation_read") - reads == 1
    assert counted("read", "unconfirmed") - unconfirmed == 1


def test_without_webhooks_or_prometheus_the_scaler_reads(loop) -> None:
    assert loop.deliver(3) == (1, 3, "success")
    loop.known_worker(3)
    loop.source.webhooks = False  # an exporter without webhooks: its counts are its reads'
    deadline = time.monotonic() + 20
    while loop.known("shop"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    reads, unconfirmed = spent("formation_read"), counted("read", "unconfirmed")
    assert loop.deliver(5) == (3, 5, "success")
    assert spent("formation_read") - reads == 1
    assert counted("read", "unconfirmed") - unconfirmed == 1
    loop.source.webhooks = True
    loop.known_worker(5)
    loop.scaler.known = KnownFormation("http://127.0.0.1:9")  # Prometheus unreachable
    assert loop.deliver(2) == (5, 2, "success")
    assert spent("formation_read") - reads == 2
