"""Serve the scaler's webhook API with gunicorn (Alertmanager -> POST /alerts).

gthread workers: each worker process answers on several threads, so a request
waiting on Heroku (at most scaler.deadline.HEROKU_BUDGET_SECONDS) holds one
thread, and /healthz, /metrics and other apps' alerts are answered meanwhile.
The store gives each thread its own connection; its per-app lock (SQLite's
write lock, PostgreSQL's row locks) is held only while deciding, never while
Heroku is called.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from dynoscaler import config
from dynoscaler.config import ConfigError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A gthread worker's heartbeat comes from its main loop, not from the requests'
# threads (each bounded by the Heroku budget anyway): this only catches a stuck
# worker process.
WORKER_TIMEOUT_SECONDS = 30
# Threads per worker: room for several apps' deliveries each waiting on Heroku.
DEFAULT_THREADS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8080")), help="default: $PORT"
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address (0.0.0.0 on Heroku)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="threads per worker (gthread)"
    )


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    if not os.environ.get("DYNOSCALER_WEBHOOK_TOKEN"):
        raise ConfigError("DYNOSCALER_WEBHOOK_TOKEN is not set: the scaler needs a secret")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, not {args.threads}")
    # Create the store's tables once, before workers race to do it.
    from scaler.store import Store

    Store(settings.scaler.store).close()
    _multiprocess_metrics()
    _Server(args).run()
    return 0


def _multiprocess_metrics() -> None:
    """Each worker writes its metrics to files that /metrics merges.

    prometheus_client picks its value class when first imported, and the CLI
    imports it before this runs, so the choice is made again here; every
    scaler metric has labels, so no value was created before this point.
    """
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="dynoscaler-metrics-")
    for name in os.listdir(os.environ[MULTIPROC_ENV]):
        if name.endswith(".db"):
            os.remove(os.path.join(os.environ[MULTIPROC_ENV], name))
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class _Server(BaseApplication):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": f"{self.args.bind}:{self.args.port}",
            "workers": self.args.workers,
            "worker_class": "gthread",
            "threads": self.args.threads,
            "timeout": WORKER_TIMEOUT_SECONDS,
            "child_exit": _child_exit,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "dynoscaler-scaler",
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after the fork: its own store connection and threads.
        from dynoscaler.heroku_budget import Budget
        from scaler.actuator import Actuator
        from scaler.app import create_app
        from scaler.deadline import RequestDeadline
        from scaler.store import Store

        settings = config.load(self.args.config)
        store = Store(settings.scaler.store)
        # a 429 holds every worker, and waits for the account's refill
        actuator = Actuator(holds=store, refill=Budget(settings.heroku).refill)
        if not settings.scaler.dry_run:
            actuator.start_probe()  # /healthz then never waits for a first answer
        return RequestDeadline(create_app(settings, store=store, actuator=actuator))
