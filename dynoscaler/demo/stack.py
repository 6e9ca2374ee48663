"""The whole closed loop on one machine: fake Heroku + dynos, exporter, Prometheus,
Alertmanager and the scaler (or its reconcile loop), started in order and stopped together.

The demo and the end-to-end tests both run the loop through Stack.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import requests

from dynoscaler import config
from dynoscaler.demo import configs, measure
from dynoscaler.demo.supervisor import (
    Child,
    DemoError,
    Supervisor,
    check_ports_free,
    free_port,
    http_ok,
)
from dynoscaler.demo.web import web_dyno_argv
from dynoscaler.demo.workers import DynoPool, dyno_argv
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
# Databases the demo may empty: the demo's (3) and the end-to-end tests' (4, 8, 9, 10).
DEMO_REDIS_DBS = (3, 4, 8, 9, 10)


@dataclass(frozen=True)
class Ports:
    prometheus: int
    alertmanager: int
    exporter: int
    scaler: int
    heroku: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(base, base + 3, base + 10, base + 20, base + 30)

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


@dataclass
class StackOptions:
    settings: Path
    run_dir: Path
    ports: Ports
    redis_url: str = "redis://127.0.0.1:6379/3"
    mode: str = "alertmanager"  # or "reconcile": the scaler queries Prometheus itself
    interval: float = 2.0  # Prometheus scrape and rule evaluation, seconds
    group_wait: float = 1.0  # Alertmanager's, seconds
    api_key: str = "demo-heroku-key"
    token: str = "demo-webhook-token"
    drain_token: str = "demo-drain-token"  # the exporter's router log drain


class Stack:
    """Start with `with Stack(options) as stack:`; everything stops on exit, even on errors."""

    def __init__(self, options: StackOptions) -> None:
        if options.mode not in ("alertmanager", "reconcile"):
            raise DemoError(f"unknown mode {options.mode!r}: alertmanager or reconcile")
        self.options = options
        self.urls = {
            name: f"http://127.0.0.1:{port}"
            for name, port in dataclasses.asdict(options.ports).items()
        }
        self.store = f"sqlite:///{options.run_dir / 'decisions.sqlite3'}"
        self.env = {
            "PYTHONPATH": str(ROOT),
            "HEROKU_API_URL": self.urls["heroku"],
            "HEROKU_API_KEY": options.api_key,
            "DYNOSCALER_WEBHOOK_TOKEN": options.token,
            "DYNOSCALER_DRAIN_TOKEN": options.drain_token,
            "DYNOSCALER_STORE": self.store,
            "PROMETHEUS_URL": self.urls["prometheus"],
            "DEMO_REDIS_URL": options.redis_url,
        }
        self.settings = config.load(options.settings, environ=self.env)
        self.supervisor = Supervisor(options.run_dir, self.env)
        self.redis = redis.Redis.from_url(options.redis_url)
        self.children: dict[str, Child] = {}
        self.heroku: FakeHerokuServer | None = None
        self.pool = DynoPool(self.supervisor, self._dyno_commands())

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- start and stop --------------------------------------------------------------------

    def start(self) -> None:
        options = self.options
        ports = dataclasses.asdict(options.ports)
        if options.mode == "reconcile":
            ports.pop("alertmanager")
        check_ports_free(ports)
        self._clean_redis()
        fake = FakeHeroku(self.settings, options.api_key)
        self.heroku = FakeHerokuServer(fake, port=options.ports.heroku, access_log=False).start()
        fake.listeners.append(self.pool)
        for (app, role), quantity in fake.quantities().items():
            self.pool.scale(app, role, quantity)
        self.start_exporter()
        self.start_scaler()
        if options.mode == "alertmanager":
            self._start_alertmanager()
        self._start_prometheus()

    def stop(self) -> None:
        self.supervisor.stop_all()
        if self.heroku:
            self.heroku.stop()
            self.heroku = None
        self.redis.close()

    def start_exporter(self) -> None:
        argv = self._dynoscaler("exporter", "--port", str(self.options.ports.exporter))
        child = self._start("exporter", argv)
        self.supervisor.wait_ready(child, http_ok(f"{self.urls['exporter']}/metrics"))

    def stop_exporter(self) -> None:
        self.supervisor.stop(self.children.pop("exporter"))

    def start_scaler(self) -> None:
        if self.options.mode == "alertmanager":
            argv = self._dynoscaler("scaler", "serve", "--port", str(self.options.ports.scaler))
            child = self._start("scaler", argv)
            self.supervisor.wait_ready(child, lambda: _listening(self.options.ports.scaler))
        else:
            self._start("scaler", self._dynoscaler("scaler", "reconcile"))

    def stop_scaler(self) -> None:
        self.supervisor.stop(self.children.pop("scaler"))

    def _start_prometheus(self) -> None:
        options = self.options
        scaler = None if options.mode == "reconcile" else f"127.0.0.1:{options.ports.scaler}"
        alertmanager = (
            f"127.0.0.1:{options.ports.alertmanager}" if options.mode == "alertmanager" else None
        )
        document = configs.prometheus(
            ROOT / "prometheus" / "prometheus.yml",
            exporter=f"127.0.0.1:{options.ports.exporter}",
            alertmanager=alertmanager,
            scaler=scaler,
            interval=options.interval,
        )
        path = configs.write(document, options.run_dir / "prometheus.yml")
        argv = [
            PROMETHEUS,
            f"--config.file={path}",
            f"--storage.tsdb.path={options.run_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{options.ports.prometheus}",
            # Prometheus re-sends a firing alert, with its new annotations (desired_dynos),
            # only every resend-delay (1m by default): as often as it evaluates here.
            f"--rules.alert.resend-delay={configs.duration(options.interval)}",
        ]
        child = self._start("prometheus", argv)
        self.supervisor.wait_ready(child, http_ok(f"{self.urls['prometheus']}/-/ready"))

    def _start_alertmanager(self) -> None:
        options = self.options
        document = configs.alertmanager(
            ROOT / "alertmanager" / "alertmanager.yml",
            scaler_url=self.urls["scaler"],
            token=options.token,
            group_wait=options.group_wait,
        )
        path = configs.write(document, options.run_dir / "alertmanager.yml")
        argv = [
            ALERTMANAGER,
            f"--config.file={path}",
            f"--storage.path={options.run_dir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{options.ports.alertmanager}",
            "--cluster.listen-address=",  # no HA gossip port: one instance, nothing to clash
        ]
        child = self._start("alertmanager", argv)
        self.supervisor.wait_ready(child, http_ok(f"{self.urls['alertmanager']}/-/ready"))

    def _start(self, name: str, argv: list[str]) -> Child:
        child = self.supervisor.start(name, argv)
        self.children[name] = child
        return child

    def _dynoscaler(self, *command: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dynoscaler",
            *command,
            "--config",
            str(self.options.settings),
        ]

    def _dyno_commands(self) -> dict[tuple[str, str], list[str]]:
        return {
            role.key: dyno_argv(
                self.options.redis_url,
                [queue.name for queue in role.queues],
                role.concurrency,
                role.boot_time,
                role.target_deadline,
            )
            for role in self.settings.roles
            if role.queues
        } | {
            role.key: web_dyno_argv(
                self.options.redis_url, role.role, role.concurrency, role.boot_time
            )
            for role in self.settings.roles
            if role.middleware and not role.queues
        }

    def _clean_redis(self) -> None:
        db = int(urlsplit(self.options.redis_url).path.strip("/") or 0)
        if db not in DEMO_REDIS_DBS:
            raise DemoError(
                f"the demo empties its Redis database first; {self.options.redis_url} is "
                f"database {db}, not one of the demo's own ({', '.join(map(str, DEMO_REDIS_DBS))})"
            )
        try:
            self.redis.flushdb()
        except redis.RedisError as error:
            raise DemoError(f"Redis at {self.options.redis_url}: {error}") from None

    # -- what the loop is doing ------------------------------------------------------------

    @property
    def reaction_floor(self) -> float:
        """The fastest possible load-to-PATCH time: one scrape, one rule evaluation, then
        Alertmanager's group_wait (or one reconcile interval)."""
        options = self.options
        if options.mode == "alertmanager":
            return 2 * options.interval + options.group_wait
        return 2 * options.interval + self.settings.scaler.reconcile_interval

    def describe_reaction(self, reaction: float | None) -> str:
        """A reaction time beside its floor, as the demo and the tests report it."""
        shown = "no scale-up" if reaction is None else f"{reaction:.1f} s"
        if self.options.mode == "alertmanager":
            parts = "scrape + evaluation + group_wait"
            scale_up_hold = self.alert_hold("ScaleRole")
            hold = f"; ScaleRole's for: adds {scale_up_hold:g} s" if scale_up_hold else ""
        else:
            parts, hold = "scrape + evaluation + reconcile interval", ""
        return f"{shown} (floor {self.reaction_floor:g} s = {parts}{hold})"

    def alert_hold(self, alert: str) -> float:
        """The `for:` of an alert in the project's rules, seconds (0 when absent)."""
        return measure.alert_for_seconds(
            sorted((ROOT / "prometheus" / "rules").glob("*.yml")), alert
        )

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant PromQL query; the result vector."""
        answer = requests.get(
            f"{self.urls['prometheus']}/api/v1/query", params={"query": expression}, timeout=5
        )
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now (its API v2)."""
        answer = requests.get(f"{self.urls['alertmanager']}/api/v2/alerts", timeout=5)
        answer.raise_for_status()
        return [a for a in answer.json() if name is None or a["labels"].get("alertname") == name]

    def formation(self) -> dict[tuple[str, str], int]:
        assert self.heroku is not None
        return self.heroku.fake.quantities()

    def patches(self) -> list[dict[str, Any]]:
        """Every formation PATCH the fake Heroku received, with its unix time `at`."""
        assert self.heroku is not None
        return self.heroku.fake.request_log()

    def crashed(self) -> list[Child]:
        return self.supervisor.dead(self.children)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
