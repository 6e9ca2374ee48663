"""Heroku formation (dynos per process type), read in the background within the API budget.

Scrapes never call the Platform API: a thread reads GET /apps/<app>/formation
(heroku3, through dynoscaler.heroku.client(), by name: one token a read) one
app at a time, round-robin,
and a scrape publishes the last result. The pace is dynoscaler.heroku_budget's:
each app every `exporter.formation_interval` seconds while the poller's part of
the account's budget covers that many apps, slower beyond (500 apps at the
defaults: one read every 2.1 s, each app every 18 minutes), paused while the
bucket is low or after a 429. At start every app is read once back to back,
as far as the bucket holds more than the part others are owed; the rest come
in the round.

With formation webhooks (`apply`, exporter/formation_webhook.py) a change is
known at once and the reads are a slow reconciliation: each app at most every
WEBHOOK_RECONCILE_SECONDS. Every change learned (by webhook, or by a read that
finds new counts) is counted (heroku_budget.ChangeRate): the poller slows down
to leave the scaler what it spends, its own count read from Prometheus
(heroku_budget.ScalerSpend), or while Prometheus cannot tell, the most such
changes cost; so the two together stay within the budget at any spend of the
scaler's the poller's least share allows.

The source feeds every configured role of those apps; after a failed read of an
app, that app's roles are down (dynoscaler_source_up 0, so the rules hold them)
while its last values stay published. An app's values are fresh for
STALE_INTERVALS rounds of the reconciliation as it is paced now (so a slow
round never makes roles stale), counted from its last read or webhook delivery;
older ones are left out, so the scaler never acts on them, and one failing app
does not hide the others.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynoscaler import heroku, heroku_budget
from dynoscaler.config import HerokuSettings
from dynoscaler.heroku_budget import Budget
from dynoscaler.prices import Prices, UnknownDynoType
from exporter.collectors import Feed, StaleRead, address
from exporter.metrics import Sample

STALE_INTERVALS = 3
# Each app's read interval while webhooks push every change.
WEBHOOK_RECONCILE_SECONDS = 300.0


@dataclass
class _AppFormation:
    processes: dict[str, tuple[int, str]] = field(default_factory=dict)  # type: (quantity, size)
    confirmed_at: float | None = None  # monotonic time of the last good read or delivery
    error: str | None = "no formation read yet"


class FormationSource:
    def __init__(
        self,
        roles: Sequence[tuple[str, str]],
        interval: float,
        timeout: float,
        budget: Budget | None = None,
        webhooks: bool = False,
        prices: Prices | None = None,
        prometheus_url: str | None = None,
    ) -> None:
        """`roles`: the (app, role) pairs of the settings; their apps are read.

        `interval`: each app's read interval while the budget allows it; with
        `webhooks` at least WEBHOOK_RECONCILE_SECONDS. `prices`: each role's price
        per dyno-hour is published for its size (dynoscaler_dyno_hourly_price_dollars).
        `prometheus_url`: where the scaler's own count of its Heroku calls is read
        (heroku_budget.ScalerSpend; None: estimated from the changes learned).
        """
        self.prices = prices or Prices()
        self.address = address(heroku.api_url())
        self.feeds = tuple(sorted(Feed("heroku", app, role) for app, role in set(roles)))
        self.apps = tuple(dict.fromkeys(app for app, _ in roles))  # settings order, each once
        self.webhooks = webhooks
        self.interval = max(interval, WEBHOOK_RECONCILE_SECONDS) if webhooks else interval
        self.budget = budget or Budget(HerokuSettings())
        self.connection = heroku.client(timeout=timeout, user="exporter")
        self._formations = {app: _AppFormation() for app in self.apps}
        self.changes = heroku_budget.ChangeRate()
        self.scaler_spend = heroku_budget.ScalerSpend(prometheus_url)
        self._next = 0  # the round-robin's next app
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="formation-poller", daemon=True)

    def start(self) -> None:
        """Read the apps once as far as the bucket allows (so the first scrape has
        dynos), then one at a time in the background."""
        for _ in self.apps:
            if self._next and not self.budget.may_sweep():
                break
            self.read_next()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def gap(self) -> float:
        """Seconds until the next read: the budget's pace, or a pause it asks for."""
        scaler = self.scaler_spend.per_second(self.changes)
        return max(self.budget.read_gap(len(self.apps), self.interval, scaler), self.budget.pause())

    def period(self) -> float:
        """Seconds one round of every app takes at the current pace."""
        return max(self.interval, len(self.apps) * self.gap())

    def read(self) -> list[Sample]:
        """Every app's last fresh formation and the API spend; StaleRead naming the
        roles of failed apps."""
        now = time.monotonic()
        period = self.period()
        oldest = now - STALE_INTERVALS * period
        samples, errors = self._budget_samples(period), {}
        with self._lock:
            for app, formation in self._formations.items():
                confirmed = formation.confirmed_at
                fresh = confirmed is not None and confirmed >= oldest
                samples += _samples(app, formation.processes, self.prices) if fresh else []
                if confirmed is not None:
                    age = ("dynoscaler_heroku_formation_age_seconds", (app,), now - confirmed)
                    samples.append(Sample(*age))
                if formation.error is not None:
                    errors[app] = formation.error
                elif not fresh:
                    errors[app] = f"no formation read for {STALE_INTERVALS} rounds"
        if errors:
            message = "; ".join(f"{app}: {error}" for app, error in errors.items())
            down = frozenset((feed.app, feed.role) for feed in self.feeds if feed.app in errors)
            raise StaleRead(message, samples, down)
        return samples

    def _budget_samples(self, period: float) -> list[Sample]:
        spend = [
            Sample("dynoscaler_heroku_api_requests", (client, kind), value)
            for (client, kind), value in _metric_values(heroku_budget.REQUESTS).items()
        ]
        remaining = [
            Sample("dynoscaler_heroku_rate_limit_remaining", (client,), value)
            for (client,), value in _metric_values(heroku_budget.REMAINING).items()
        ]
        return [
            *spend,
            *remaining,
            Sample("dynoscaler_heroku_api_budget_per_minute", (), self.budget.tokens_per_minute),
            Sample("dynoscaler_heroku_formation_period_seconds", (), period),
            # the scaler reads the counts' currency from this (scaler/known_formation.py)
            Sample("dynoscaler_heroku_formation_webhooks", (), float(self.webhooks)),
        ]

    def poll(self) -> None:
        """Read every app's formation once, one after the other."""
        for _ in self.apps:
            self.read_next()

    def read_next(self) -> None:
        """Read the round-robin's next app; keep its result or error."""
        app = self.apps[self._next]
        self._next = (self._next + 1) % len(self.apps)
        try:
            processes = self._formation(app)
        except Exception as error:  # any failure of the API or the client: that app is down
            with self._lock:
                self._formations[app].error = f"{type(error).__name__}: {error}"
            return
        with self._lock:
            known = self._formations[app]
            if known.confirmed_at is not None and _counts(known.processes) != _counts(processes):
                self.changes.note(app)
            self._formations[app] = _AppFormation(processes, time.monotonic(), None)

    def apply(self, app: str, process_type: str, quantity: int, size: str) -> bool:
        """A formation change Heroku pushed (a webhook delivery): known at once, and the
        app's formation confirmed as of now. False for an app that is not configured."""
        if app not in self._formations:
            return False
        with self._lock:
            formation = self._formations[app]
            if formation.processes.get(process_type, (None,))[0] != quantity:
                self.changes.note(app)
            formation.processes[process_type] = (quantity, size)
            if formation.confirmed_at is not None:  # an app never read stays unknown
                formation.confirmed_at = time.monotonic()
        return True

    def _formation(self, app_name: str) -> dict[str, tuple[int, str]]:
        formation = heroku.app_by_name(self.connection, app_name).process_formation()
        return {p.type: (p.quantity, str(p.size)) for p in formation}

    def _loop(self) -> None:
        started = time.monotonic()  # reads start a gap apart, however long each takes
        while not self._stop.wait(max(0.0, started + self.gap() - time.monotonic())):
            started = time.monotonic()
            self.read_next()
            self.scaler_spend.refresh()


def _samples(app: str, processes: Mapping[str, tuple[int, str]], prices: Prices) -> list[Sample]:
    samples = []
    for process_type, (quantity, size) in processes.items():
        samples.append(Sample("dynoscaler_dynos", (app, process_type), quantity))
        samples.append(Sample("dynoscaler_dyno_size_info", (app, process_type, size), 1))
        with contextlib.suppress(UnknownDynoType):  # a size without a price: no cost series
            hourly = prices.hourly(size)
            samples.append(
                Sample("dynoscaler_dyno_hourly_price_dollars", (app, process_type), hourly)
            )
    return samples


def _counts(processes: Mapping[str, tuple[int, str]]) -> dict[str, int]:
    return {process_type: quantity for process_type, (quantity, _) in processes.items()}


def _metric_values(metric: Any) -> dict[tuple[str, ...], float]:
    """A labelled prometheus_client metric's values in this process, by label values."""
    values = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[tuple(sample.labels[name] for name in metric._labelnames)] = sample.value
    return values
