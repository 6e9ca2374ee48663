"""Serve Prometheus metrics of queues, job timing, router traffic, dynos and policy."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

from dynoscaler import config
from dynoscaler.config import ConfigError
from dynoscaler.heroku_budget import Budget
from dynoscaler.heroku_webhooks import SECRET_ENV
from exporter.collector import ExporterCollector
from exporter.collectors import Queue, Source
from exporter.collectors.formation import FormationSource
from exporter.collectors.policy import policy_samples
from exporter.collectors.rabbitmq import rabbitmq_sources
from exporter.collectors.redis_source import BACKENDS, redis_sources
from exporter.collectors.sql_source import BACKENDS as SQL_BACKENDS
from exporter.collectors.sql_source import sql_sources
from exporter.collectors.web_timing import web_timing_sources
from exporter.formation_webhook import FormationWebhook
from exporter.logdrain import RouterStats
from exporter.otlp_metrics import ServiceTimes
from exporter.server import DRAIN_TOKEN_ENV, listen, serve

_log = logging.getLogger("dynoscaler.exporter")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml")
    parser.add_argument("--port", type=int, required=True, help="HTTP port (0: any free port)")
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")


@dataclass
class Exporter:
    """Everything one exporter process serves, built from the settings."""

    collector: ExporterCollector
    router: RouterStats
    web_metrics: ServiceTimes
    pollers: list[FormationSource] = field(default_factory=list)
    formation_webhook: FormationWebhook | None = None

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        return registry

    def start(self) -> None:
        for poller in self.pollers:
            poller.start()

    def close(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.collector.close()


def build(settings: config.Config) -> Exporter:
    timeout = settings.exporter.source_timeout
    pairs = [
        (
            queue.url,
            Queue(
                role.app,
                role.role,
                queue.name,
                queue.backend,
                prefix=queue.prefix,
                deadline=role.target_deadline,
            ),
        )
        for role in settings.roles
        for queue in role.queues
    ]
    sources: list[Source] = [
        *redis_sources([p for p in pairs if p[1].backend in BACKENDS], timeout),
        *rabbitmq_sources([p for p in pairs if p[1].backend == "rabbitmq"], timeout),
        *sql_sources([p for p in pairs if p[1].backend in SQL_BACKENDS], timeout),
        *web_timing_sources(
            [
                (r.middleware, r.app, r.role, r.target_deadline)
                for r in settings.roles
                if r.middleware
            ],
            timeout,
        ),
    ]
    pollers = []
    if os.environ.get("HEROKU_API_KEY"):
        pollers.append(
            FormationSource(
                [role.key for role in settings.roles],
                settings.exporter.formation_interval,
                timeout,
                budget=Budget(settings.heroku),
                webhooks=bool(os.environ.get(SECRET_ENV)),
                prices=settings.prices,
                prometheus_url=settings.scaler.prometheus_url,
            )
        )
    else:
        _log.warning("HEROKU_API_KEY is not set: no dynoscaler_dynos (formation) metrics")
    router_roles = [role.key for role in settings.roles if role.requests == "router"]
    router = RouterStats(router_roles)
    # Fir's OTLP HTTP server metrics: router roles whose middleware does not give them already
    web_metrics = ServiceTimes(
        role.key for role in settings.roles if role.requests and not role.middleware
    )
    collector = ExporterCollector(
        [*sources, *pollers],
        timeout,
        # schedules change the floor and budget in force: computed at each scrape
        extra=[router.samples, web_metrics.samples, lambda: policy_samples(settings, time.time())],
    )
    return Exporter(collector, router, web_metrics, pollers, _webhook(pollers))


def _webhook(pollers: list[FormationSource]) -> FormationWebhook | None:
    """The receiver of POST /heroku/formation, with the secret and the poller it feeds."""
    secret = os.environ.get(SECRET_ENV, "")
    if secret and pollers:
        return FormationWebhook(pollers[0], secret)
    if secret:
        _log.warning("%s is set but HEROKU_API_KEY is not: no formation webhooks", SECRET_ENV)
    return None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    drain_token = os.environ.get(DRAIN_TOKEN_ENV, "")
    settings = config.load(args.config)
    if not drain_token and any(role.requests == "router" for role in settings.roles):
        raise ConfigError(
            f"{DRAIN_TOKEN_ENV} is not set: roles with `requests: router` take the router log "
            "drain, which needs a secret (docs/exporter.md)"
        )
    try:
        listener = listen(args.bind, args.port)
    except OSError as error:
        print(
            f"dynoscaler exporter: cannot listen on {args.bind}:{args.port}: {error}",
            file=sys.stderr,
        )
        return 1
    port = listener.getsockname()[1]
    # gunicorn, one worker: the exporter is built there (docs/exporter.md, "The HTTP server").
    # SIGTERM (Heroku, systemd, tests) and Ctrl-C stop it cleanly.
    serve(
        listener,
        lambda: build(settings),
        drain_token,
        announce=f"dynoscaler exporter listening on http://{args.bind}:{port}/metrics",
    )
    return 0
