"""Run the whole loop at fleet size and report what it costs: N apps x 3 roles.

    dynoscaler bench fleet --apps 100
    dynoscaler bench fleet --apps 500 --seconds 3600 --no-peer

Every part is the real one, in its own process: `dynoscaler fake-heroku` (its
4,500-an-hour token bucket), the exporter, `scaler serve`, Alertmanager and
Prometheus with the project's rules and alertmanager.yml (only addresses
change), and an hour of job duration history backfilled with promtool (the
S99 rule reads an hour). Each app has three Sidekiq queue roles (worker,
urgent, mailers) on `--redis-url`, min 1 dyno each; a workload thread plays
their workers, recording each second's finished jobs (Poisson arrivals,
exponential lengths, about 1 busy slot per role) through the timing hashes
exporter.timing writes, so the fleet sits at its 1 dyno per role while
Prometheus models every role. With `--webhooks` (the default) every app is
subscribed to the exporter's formation webhook first (`dynoscaler heroku
webhooks`, whose token cost is printed apart).

After `--warmup`, for `--seconds`, every `--event-every` seconds one of two
events, in turn, on the next app of the round whose role is at rest (back at
its 1 dyno, no event pending; none: the event is skipped):
- a spike: 200 jobs pushed into the app's worker queue; its reaction time is
  from the push to the scaler's PATCH of that app at the fake (then the queue
  is emptied, as its dynos would);
- a change by hand: the app's mailers role set to 2 dynos through the API, as
  a person's CLI would; its visibility is from that PATCH to the first
  Prometheus sample of dynoscaler_dynos showing 2 (the scaler later scales it
  back down: normal traffic).

Printed: API calls per hour by client and kind and the bucket's fall against
the budget (heroku.budget_share of the refill), 429s, formation age p50/p99
(every app's dynoscaler_heroku_formation_age_seconds, sampled every 15 s),
rule evaluation per group as a share of its interval and missed iterations,
reaction and visibility times, and each process's CPU (cores) and memory.
With `--peer` (default when --apps > 1) the same measurement runs first at 1
app for `--peer-seconds`, and the fleet's reaction time and rule cost are
given as ratios against it. Every 5 minutes a line gives the figures so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dynoscaler import bench_rules, heroku_budget
from dynoscaler.benchstats import percentile
from dynoscaler.config import ConfigError, HerokuSettings
from dynoscaler.demo import configs
from dynoscaler.demo.supervisor import Child, Supervisor, free_port, http_ok
from dynoscaler.demo.workload import sidekiq_job
from dynoscaler.heroku_webhooks import SECRET_ENV
from exporter.metrics import bucket_index
from exporter.timing import BUCKET_FIELDS, COUNT_FIELD, SUM_FIELD, timing_key

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
ROLES = ("worker", "urgent", "mailers")
SETTINGS = {
    "min_dynos": 1,
    "max_dynos": 20,
    "target_deadline": 60,
    "boot_time": 10,
    "concurrency": 4,
    "miss_ratio": 0.01,
    "scale_down_window": 60,
}
SPIKE_JOBS = 1000  # about 40 busy slots of work: more dynos needed at once, not later
HISTORY_STEP = 15.0
SOURCE_TIMEOUT = 5.0
SPIKE_JOB_SECONDS = 2.0
BY_HAND = ("mailers", 2)  # the role a person scales by hand, and to what
AGE_SAMPLE_SECONDS = 15.0
# How often a run prints what it has measured so far (an hour-long run is read while it runs).
PROGRESS_SECONDS = 300.0
# How long the events of the last seconds may still be answered (spend is counted
# over the measured seconds only).
PENDING_GRACE_SECONDS = 45.0
API_KEY = "bench-fleet-key"
TOKEN = "bench-fleet-token"
WEBHOOK_SECRET = "bench-fleet-webhook-secret"


@dataclass(frozen=True)
class FleetRole:
    """One queue role, in the shape bench_rules' history writer reads: λ jobs/s of
    mean length S seconds; its queue is named after the app and role."""

    app: str
    role: str
    rate: float
    seconds: float
    depth: int = 0
    age: int = 0

    @property
    def name(self) -> str:
        return f"{self.app}-{self.role}"

    @property
    def labels(self) -> str:
        return f'app="{self.app}",role="{self.role}"'

    @property
    def queue(self) -> str:
        # The exporter's histogram labels (app, role, queue), so history and live series join.
        return f'{self.labels},queue="{self.name}"'


def fleet(apps: int) -> list[FleetRole]:
    """`apps` apps of the three roles; offered loads λ·S from 0.2 to 0.8 busy slots."""
    return [
        FleetRole(f"fleet-{n:04d}", role, 0.2 + 0.1 * ((n + i) % 3), 1.0 + 0.5 * ((n + 2 * i) % 3))
        for n in range(apps)
        for i, role in enumerate(ROLES)
    ]


def settings_document(
    roles: list[FleetRole], redis_url: str, prometheus_url: str
) -> dict[str, Any]:
    apps: dict[str, Any] = {}
    for r in roles:
        queue = {"name": r.name, "backend": "sidekiq", "url": redis_url}
        apps.setdefault(r.app, {"roles": {}})["roles"][r.role] = {"queues": [queue]}
    return {
        "defaults": SETTINGS,
        "apps": apps,
        # One Redis pipeline reads every queue: at 1,500 queues on a loaded machine
        # the default 2 s was seen running out.
        "exporter": {"source_timeout": SOURCE_TIMEOUT},
        # The scaler reads the exporter's webhook-fed counts (and the jobs in progress) there.
        "scaler": {"store": "sqlite:///decisions.sqlite3", "prometheus_url": prometheus_url},
    }


class Workload:
    """Plays every role's workers: each second, its finished jobs into its timing hash."""

    def __init__(self, client: redis.Redis, roles: list[FleetRole], seed: int = 1) -> None:
        self.client = client
        self.roles = roles
        self.random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-workload", daemon=True)

    def start(self) -> Workload:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def tick(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for role in self.roles:
            for _ in range(self._poisson(role.rate)):
                seconds = self.random.expovariate(1 / role.seconds)
                key = timing_key(role.name)
                pipe.hincrby(key, BUCKET_FIELDS[bucket_index(seconds)], 1)
                pipe.hincrbyfloat(key, SUM_FIELD, seconds)
                pipe.hincrby(key, COUNT_FIELD, 1)
        pipe.execute()

    def _poisson(self, mean: float) -> int:
        limit, count, product = math.exp(-mean), 0, self.random.random()
        while product > limit:
            count += 1
            product *= self.random.random()
        return count

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.tick()


@dataclass
class Figures:
    """What one measurement found (seconds unless named otherwise)."""

    apps: int
    seconds: float
    budget_per_hour: float
    startup: float = 0.0
    calls: dict[tuple[str, str], float] = field(default_factory=dict)  # per hour
    bucket: tuple[int, int] = (0, 0)  # RateLimit-Remaining at the start and the end
    webhook_setup_tokens: int = 0
    rate_limited: float = 0.0
    ages: list[float] = field(default_factory=list)
    reactions: list[float] = field(default_factory=list)
    spikes: int = 0
    visible: list[float] = field(default_factory=list)
    by_hand: int = 0
    rules: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    missed: dict[str, float] = field(default_factory=dict)
    iterations: dict[str, float] = field(default_factory=dict)
    processes: dict[str, tuple[float, float]] = field(default_factory=dict)  # cores, MiB

    @property
    def spend_per_hour(self) -> float:
        free = heroku_budget.FREE_KINDS
        return sum(v for (_, kind), v in self.calls.items() if kind not in free)

    @property
    def rule_share(self) -> float:
        """Median evaluation time over interval, summed over the groups."""
        return sum(
            statistics.median(r[""]) / r["interval"][0] for r in self.rules.values() if r[""]
        )


@dataclass
class _Pending:
    app: str
    at: float  # unix time of the push or the PATCH by hand


class Fleet:
    """The processes of one measurement, started in order, stopped together."""

    def __init__(self, roles: list[FleetRole], run_dir: Path, redis_url: str, webhooks: bool):
        self.roles = roles
        self.apps = sorted({r.app for r in roles})
        self.run_dir = run_dir
        self.redis_url = redis_url
        self.webhooks = webhooks
        self.ports = {
            name: free_port() for name in ("heroku", "exporter", "scaler", "am", "prometheus")
        }
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        env = {
            "PYTHONPATH": str(ROOT),
            "HEROKU_API_URL": self.urls["heroku"],
            "HEROKU_API_KEY": API_KEY,
            "DYNOSCALER_WEBHOOK_TOKEN": TOKEN,
        }
        if webhooks:
            env[SECRET_ENV] = WEBHOOK_SECRET
        self.supervisor = Supervisor(run_dir, env)
        self.children: dict[str, Child] = {}
        self.settings = run_dir / "autoscale.yml"
        document = settings_document(roles, redis_url, self.urls["prometheus"])
        self.settings.write_text(yaml.safe_dump(document))
        self.redis = redis.Redis.from_url(redis_url)
        self.webhook_setup_tokens = 0

    def start(self) -> None:
        """Start every process; those that need no other start together."""
        self.clean_redis()
        self._dynoscaler("heroku", "fake-heroku", "--port", str(self.ports["heroku"]))
        self._dynoscaler("scaler", "scaler", "serve", "--port", str(self.ports["scaler"]))
        self._alertmanager()
        self._prometheus()
        self._ready("heroku", self.fake("state"))
        if self.webhooks:
            self.subscribe()
        self._dynoscaler("exporter", "exporter", "--port", str(self.ports["exporter"]))
        self._ready("exporter", f"{self.urls['exporter']}/healthz")
        self._ready("scaler", f"{self.urls['scaler']}/openapi.yml")
        self._ready("alertmanager", f"{self.urls['am']}/-/ready")
        self._ready("prometheus", f"{self.urls['prometheus']}/-/ready")

    def _ready(self, name: str, url: str) -> None:
        self.supervisor.wait_ready(self.children[name], http_ok(url), timeout=300)

    def stop(self) -> None:
        self.supervisor.stop_all()
        with contextlib.suppress(redis.RedisError):
            self.clean_redis()
        self.redis.close()

    def clean_redis(self) -> None:
        """Only this fleet's keys: its queues and timing hashes."""
        keys = [f"queue:{r.name}" for r in self.roles] + [timing_key(r.name) for r in self.roles]
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])

    def fake(self, what: str) -> str:
        return f"{self.urls['heroku']}/__fake__/{what}"

    def remaining(self) -> int:
        return int(requests.get(self.fake("state"), timeout=10).json()["rate_limit_remaining"])

    def subscribe(self) -> None:
        before = self.remaining()
        url = f"{self.urls['exporter']}/heroku/formation"
        command = [sys.executable, "-m", "dynoscaler", "heroku", "webhooks"]
        command += ["--config", str(self.settings), "--url", url]
        subprocess.run(
            command,
            env=self.supervisor.env,
            cwd=self.run_dir,
            check=True,
            capture_output=True,
            timeout=600,
        )
        self.webhook_setup_tokens = before - self.remaining()

    def _dynoscaler(self, name: str, *command: str) -> None:
        argv = [sys.executable, "-m", "dynoscaler", *command, "--config", str(self.settings)]
        self.children[name] = self.supervisor.start(name, argv)

    def _alertmanager(self) -> None:
        source = ROOT / "alertmanager" / "alertmanager.yml"
        document = configs.alertmanager(source, f"{self.urls['scaler']}/alerts", TOKEN, 0)
        # The project's own grouping intervals, not the demo's faster ones.
        document["route"] = yaml.safe_load(source.read_text())["route"]
        path = configs.write(document, self.run_dir / "alertmanager.yml")
        argv = [
            ALERTMANAGER,
            f"--config.file={path}",
            f"--storage.path={self.run_dir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{self.ports['am']}",
            "--cluster.listen-address=",
        ]
        self.children["alertmanager"] = self.supervisor.start("alertmanager", argv)

    def _prometheus(self) -> None:
        document = configs.prometheus(
            ROOT / "prometheus" / "prometheus.yml",
            exporter=f"127.0.0.1:{self.ports['exporter']}",
            alertmanager=f"127.0.0.1:{self.ports['am']}",
            scaler=f"127.0.0.1:{self.ports['scaler']}",
            interval=bench_rules.INTERVAL,
        )
        # The project's scrape time-out (Prometheus' default), not the demo's shorter one:
        # the exporter's page of a large fleet takes longer.
        document["global"].pop("scrape_timeout", None)
        path = configs.write(document, self.run_dir / "prometheus.yml")
        argv = [
            bench_rules.PROMETHEUS,
            f"--config.file={path}",
            f"--storage.tsdb.path={self.run_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
            # README: a changed desired_dynos reaches Alertmanager at the next evaluation.
            "--rules.alert.resend-delay=5s",
        ]
        self.children["prometheus"] = self.supervisor.start("prometheus", argv)

    # -- what the bench reads --------------------------------------------------------------

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{self.urls['prometheus']}/api/v1/query", params={"query": expression}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def calls(self) -> tuple[dict[tuple[str, str], float], float]:
        """Heroku API calls so far by client and kind, read from the exporter's and the
        scaler's own /metrics (not Prometheus: exact at any moment), and when (monotonic,
        the middle of the reads: the exporter's page of a large fleet takes seconds, which
        counted as measured time would inflate a short run's calls an hour)."""
        asked = time.monotonic()
        found: dict[tuple[str, str], float] = {}
        for name in ("exporter", "scaler"):
            text = requests.get(f"{self.urls[name]}/metrics", timeout=30).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "dynoscaler_heroku_api_requests_total":
                        key = (sample.labels["client"], sample.labels["kind"])
                        found[key] = found.get(key, 0.0) + sample.value
        return found, (asked + time.monotonic()) / 2

    def quantities(self) -> dict[tuple[str, str], int]:
        state = requests.get(self.fake("state"), timeout=10).json()
        return {
            (app["name"], f["type"]): f["quantity"]
            for app in state["apps"]
            for f in app["formation"]
        }

    def patches(self) -> list[dict[str, Any]]:
        return requests.get(self.fake("requests"), timeout=10).json()

    def spike(self, app: str) -> float:
        now = time.time()
        queue = f"{app}-worker"
        jobs = [json.dumps(sidekiq_job(queue, SPIKE_JOB_SECONDS, now)) for _ in range(SPIKE_JOBS)]
        self.redis.lpush(f"queue:{queue}", *jobs)
        return now

    def drain(self, app: str) -> None:
        self.redis.delete(f"queue:{app}-worker")

    def by_hand(self, app: str) -> float:
        role, quantity = BY_HAND
        at = time.time()
        answer = requests.patch(
            f"{self.urls['heroku']}/apps/{app}/formation/{role}",
            json={"quantity": quantity},
            auth=("", API_KEY),
            headers={"Accept": "application/vnd.heroku+json; version=3"},
            timeout=10,
        )
        answer.raise_for_status()
        return at

    def seen_by_hand(self, app: str, at: float) -> float | None:
        """When Prometheus first scraped the count set by hand at `at` (the scaler may
        set it back seconds later), or None while it has not."""
        role, quantity = BY_HAND
        window = math.ceil(time.time() - at) + 10
        found = self.query(f'dynoscaler_dynos{{app="{app}",role="{role}"}}[{window}s]')
        scraped = [t for s in found for t, v in s["values"] if t >= at and float(v) == quantity]
        return min(scraped, default=None)

    def usage(self) -> dict[str, tuple[float, float]]:
        """CPU seconds so far and resident MiB now, per child (its whole process group)."""
        return {name: _group_usage(child.process.pid) for name, child in self.children.items()}


def _group_usage(group: int) -> tuple[float, float]:
    ticks, pages = 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:  # pgrp: the supervisor starts each child in its own
            ticks += int(fields[11]) + int(fields[12])
            pages += int(fields[21])
    return ticks / os.sysconf("SC_CLK_TCK"), pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def backfill(roles: list[FleetRole], span: float, scrape: str, data: Path) -> None:
    """`span` seconds of each role's job duration histogram, up to now, as TSDB blocks
    under `data`; `scrape`: the job and instance labels Prometheus will give the
    exporter's series, so history and live samples are one series each."""
    source = data.parent / "history.om"
    end = time.time() - HISTORY_STEP
    origin = end - span - 60
    times = [end - span + i * HISTORY_STEP for i in range(int(span // HISTORY_STEP) + 1)]
    with source.open("w", encoding="utf-8") as out:
        for role in roles:
            rows = [bench_rules.histogram(role, at - origin) for at in times]
            for index, (series, _) in enumerate(rows[0]):
                labelled = f"{series[:-1]},{scrape}}}"
                out.write(
                    "".join(
                        f"{labelled} {row[index][1]:.6f} {at:.3f}\n"
                        for row, at in zip(rows, times, strict=True)
                    )
                )
        out.write("# EOF\n")
    command = [bench_rules.PROMTOOL, "tsdb", "create-blocks-from", "openmetrics"]
    subprocess.run(
        [*command, str(source), str(data)], check=True, capture_output=True, timeout=3600
    )
    source.unlink()


def measure(options: argparse.Namespace, apps: int, seconds: float) -> Figures:
    roles = fleet(apps)
    budget = HerokuSettings()
    figures = Figures(apps, seconds, budget.share * budget.rate_limit)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as name:
        run_dir = Path(name)
        fleet_ = Fleet(roles, run_dir, options.redis_url, options.webhooks)
        if options.history > 0:
            exporter = f'job="dynoscaler-exporter",instance="127.0.0.1:{fleet_.ports["exporter"]}"'
            backfill(roles, options.history, exporter, run_dir / "data")
        workload = Workload(fleet_.redis, roles)
        try:
            started = time.monotonic()
            fleet_.start()
            figures.startup = time.monotonic() - started
            workload.start()
            time.sleep(options.warmup)
            _run_events(fleet_, figures, options.event_every, seconds)
        finally:
            try:
                workload.stop()
            finally:
                fleet_.stop()  # whatever failed: no process is left behind
    return figures


def _run_events(fleet: Fleet, figures: Figures, every: float, seconds: float) -> None:
    figures.webhook_setup_tokens = fleet.webhook_setup_tokens
    rules: dict[str, dict[str, list[float]]] = {}
    sampler = threading.Thread(
        target=lambda: rules.update(bench_rules.sample(fleet.urls["prometheus"], seconds)),
        daemon=True,
    )
    (calls, counted_at), remaining, usage = fleet.calls(), fleet.remaining(), fleet.usage()
    started = time.monotonic()
    sampler.start()
    spikes: list[_Pending] = []
    hands: list[_Pending] = []
    spike_next = hand_next = 0  # each event takes the next app of its round at rest
    kinds = iter(range(10**9))
    next_event, next_age = started + 1, started
    next_progress = started + PROGRESS_SECONDS
    while (now := time.monotonic()) < started + seconds:
        if now >= next_progress:
            print(_progress(fleet, figures, (calls, counted_at), now - started), flush=True)
            next_progress += PROGRESS_SECONDS
        if now >= next_age:
            figures.ages += [float(s["value"][1]) for s in fleet.query(_AGE)]
            next_age += AGE_SAMPLE_SECONDS
        if now >= next_event:
            quantities = fleet.quantities()
            if next(kinds) % 2 == 0:
                busy = {p.app for p in spikes}
                app, spike_next = _at_rest(fleet.apps, spike_next, quantities, "worker", busy)
                if app is not None:
                    spikes.append(_Pending(app, fleet.spike(app)))
                    figures.spikes += 1
            else:
                busy = {p.app for p in hands}
                app, hand_next = _at_rest(fleet.apps, hand_next, quantities, BY_HAND[0], busy)
                if app is not None:
                    hands.append(_Pending(app, fleet.by_hand(app)))
                    figures.by_hand += 1
            next_event += every
        _settle(fleet, figures, spikes, hands)
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    ended, (after, after_at) = fleet.usage(), fleet.calls()
    hour = 3600 / (after_at - counted_at)
    figures.calls = {k: (v - calls.get(k, 0.0)) * hour for k, v in after.items()}
    figures.bucket = (remaining, fleet.remaining())
    figures.rate_limited = sum(
        v for (_, kind), v in figures.calls.items() if kind == "rate_limited"
    )
    figures.processes = {
        name: ((ended[name][0] - cpu) / elapsed, ended[name][1])
        for name, (cpu, _) in usage.items()
        if name in ended
    }
    url = fleet.urls["prometheus"]
    figures.missed = bench_rules.self_metrics(url, "prometheus_rule_group_iterations_missed_total")
    figures.iterations = bench_rules.self_metrics(url, "prometheus_rule_group_iterations_total")
    sampler.join(timeout=bench_rules.INTERVAL * 4)
    figures.rules = rules
    grace = time.monotonic() + PENDING_GRACE_SECONDS
    while (spikes or hands) and time.monotonic() < grace:
        time.sleep(1.0)
        _settle(fleet, figures, spikes, hands)
    for pending in spikes:
        fleet.drain(pending.app)


_AGE = "dynoscaler_heroku_formation_age_seconds"


def _progress(
    fleet: Fleet,
    figures: Figures,
    counted: tuple[dict[tuple[str, str], float], float],
    elapsed: float,
) -> str:
    """One line of the figures so far: spend per hour by client, 429s, reactions, missed."""
    calls, counted_at = counted
    now, now_at = fleet.calls()
    hour = 3600 / (now_at - counted_at)
    spent: dict[str, float] = {}
    limited = 0.0
    for (client, kind), value in now.items():
        per_hour = (value - calls.get((client, kind), 0.0)) * hour
        if kind == "rate_limited":
            limited += per_hour
        elif kind not in heroku_budget.FREE_KINDS:
            spent[client] = spent.get(client, 0.0) + per_hour
    missed = bench_rules.self_metrics(
        fleet.urls["prometheus"], "prometheus_rule_group_iterations_missed_total"
    )
    shown = ", ".join(f"{client} {n:.0f}" for client, n in sorted(spent.items()))
    return (
        f"-- {elapsed:.0f} s (load average {bench_rules._load()}): API {sum(spent.values()):.0f}"
        f"/hour ({shown}) of {figures.budget_per_hour:.0f}, 429s {limited:.0f}/hour;"
        f" spike to PATCH {_spread(figures.reactions)} ({len(figures.reactions)});"
        f" by hand seen {_spread(figures.visible)} ({len(figures.visible)});"
        f" missed iterations since start {sum(missed.values()):.0f}"
    )


def _at_rest(
    apps: list[str], start: int, quantities: dict[tuple[str, str], int], role: str, busy: set[str]
) -> tuple[str | None, int]:
    """The first app from `start` on (round-robin) whose `role` is back at its 1 dyno and
    that has no event pending (a spike on a role still scaled up measures its cooldown,
    not the loop), and where the next search starts; None when every app is busy."""
    for offset in range(len(apps)):
        index = (start + offset) % len(apps)
        app = apps[index]
        if app not in busy and quantities.get((app, role)) == SETTINGS["min_dynos"]:
            return app, index + 1
    return None, start


def _settle(
    fleet: Fleet,
    figures: Figures,
    spikes: list[_Pending],
    hands: list[_Pending],
) -> None:
    """Note the spikes the scaler answered (then empty their queues) and the changes
    by hand Prometheus shows."""
    if spikes:
        patched: dict[str, float] = {}
        for patch in fleet.patches():
            if _scales_worker(patch):
                app = patch["path"].split("/")[2]
                patched[app] = max(patched.get(app, 0.0), patch["at"])
        for pending in list(spikes):
            if patched.get(pending.app, 0.0) > pending.at:
                figures.reactions.append(patched[pending.app] - pending.at)
                fleet.drain(pending.app)
                spikes.remove(pending)
    for pending in list(hands):
        seen = fleet.seen_by_hand(pending.app, pending.at)
        if seen is not None:
            figures.visible.append(seen - pending.at)
            hands.remove(pending)


def _scales_worker(patch: dict[str, Any]) -> bool:
    """A batch PATCH (the scaler's) taken by the fake that changes the worker role."""
    updates = (patch.get("body") or {}).get("updates") or []
    worker = any(isinstance(u, dict) and u.get("type") == "worker" for u in updates)
    return patch.get("status") == 200 and patch["path"].endswith("/formation") and worker


def _spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 50):.1f} s, p99 {percentile(values, 99):.1f} s,"
        f" max {max(values):.1f} s"
    )


def report(figures: Figures, peer: Figures | None = None) -> Iterator[str]:
    f = figures
    yield (
        f"== {f.apps} apps x {len(ROLES)} roles, {f.seconds:g} s measured"
        f" (load average {bench_rules._load()}); every process ready in {f.startup:.0f} s"
    )
    share = f.spend_per_hour / f.budget_per_hour
    yield (
        f"API spend {f.spend_per_hour:.0f} calls/hour = {100 * share:.0f}% of the budget"
        f" ({f.budget_per_hour:.0f}/hour); 429s {f.rate_limited:.0f}/hour; the bucket"
        f" {f.bucket[0]} at the start, {f.bucket[1]} at the end (changes by hand included)"
    )
    for (client, kind), per_hour in sorted(f.calls.items()):
        if per_hour:
            yield f"  {client:9} {kind:17} {per_hour:8.0f}/hour"
    if f.webhook_setup_tokens:
        yield f"webhook subscriptions at start: {f.webhook_setup_tokens} tokens"
    yield f"formation age over every app: {_spread(f.ages)} ({len(f.ages)} samples)"
    yield f"spike to PATCH: {_spread(f.reactions)} ({len(f.reactions)} of {f.spikes} answered)"
    yield (
        f"change by hand to Prometheus: {_spread(f.visible)} ({len(f.visible)} of {f.by_hand} seen)"
    )
    for line in bench_rules.report(f.rules, f.missed, f.iterations):
        if not line.startswith("  "):
            yield line
    for name, (cores, mib) in sorted(f.processes.items()):
        yield f"  {name:12} CPU {cores:.3f} cores, {mib:.0f} MiB"
    if peer is not None and peer.reactions and f.reactions:
        ratio = percentile(f.reactions, 50) / percentile(peer.reactions, 50)
        yield f"reaction p50 vs 1 app: x{ratio:.2f}"
    if peer is not None and peer.rule_share:
        yield f"rule evaluation vs 1 app: x{f.rule_share / peer.rule_share:.2f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apps", type=int, default=10, help="apps of 3 roles each")
    parser.add_argument("--seconds", type=float, default=300, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before measuring")
    parser.add_argument("--history", type=float, default=3600, help="seconds of job history")
    parser.add_argument("--event-every", type=float, default=20, help="seconds between events")
    parser.add_argument(
        "--webhooks", action=argparse.BooleanOptionalAction, default=True, help="formation hooks"
    )
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--peer-seconds", type=float, default=180, help="seconds at 1 app")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/13", help="where the queues live"
    )


def run(args: argparse.Namespace) -> int:
    if args.apps < 1 or args.seconds <= 0 or args.event_every <= 0:
        raise ConfigError("bench fleet: --apps must be >= 1, --seconds and --event-every > 0")
    peer = None
    if args.peer if args.peer is not None else args.apps > 1:
        peer = measure(args, 1, args.peer_seconds)
        for line in report(peer):
            print(line, flush=True)
    figures = measure(args, args.apps, args.seconds)
    for line in report(figures, peer):
        print(line, flush=True)
    return 0
