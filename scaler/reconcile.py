"""Reconcile: ask Prometheus for the desired dyno counts and act as the webhook would.

Queries app_role:dynoscaler_desired_dynos, the sample times behind it and
dynoscaler_source_up, then takes the same decision path as POST /alerts
(scaler.service.Scaler): the same guardrails, store and actuator. Data older
than scaler.stale_after, or from a source that is down, never scales down.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
from collections import defaultdict
from typing import Any

from dynoscaler import config
from dynoscaler.config import Config
from dynoscaler.heroku_budget import Budget
from scaler.actuator import Actuator
from scaler.guardrails import Request
from scaler.notifiers import Notifiers
from scaler.prometheus import PrometheusError, query
from scaler.service import RoleInput, Scaler
from scaler.store import STORE_ERRORS, Store

log = logging.getLogger("dynoscaler.reconcile")

DESIRED = "app_role:dynoscaler_desired_dynos"
QUERIES = {
    "desired": DESIRED,
    "desired_at": f"timestamp({DESIRED})",
    "dynos_at": "timestamp(dynoscaler_dynos)",
    "down": "dynoscaler_source_up == 0",
    # Roles with sizes: the slots they need, as ResizeRole carries them.
    "slots": "app_role:dynoscaler_required_slots"
    " and on (app, role) app_role:dynoscaler_needed_dynos",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = config.load(args.config)
    scaler = build_scaler(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        ok = reconcile_once(settings, scaler)
        if args.once:
            return 0 if ok else 1
        if stop.wait(settings.scaler.reconcile_interval):
            return 0


def build_scaler(settings: Config) -> Scaler:
    store = Store(settings.scaler.store)
    actuator = Actuator(holds=store, refill=Budget(settings.heroku).refill)
    return Scaler(settings, store, actuator, Notifiers(settings.scaler.notifiers))


def reconcile_once(settings: Config, scaler: Scaler) -> bool:
    """One pass over every app; False when Prometheus or the store failed (nothing done)."""
    try:
        results = {name: query(settings.scaler.prometheus_url, q) for name, q in QUERIES.items()}
    except PrometheusError as error:
        log.error("reconcile skipped: %s", error)
        return False
    ok = True
    for app, inputs in role_inputs(settings, results).items():
        try:
            decisions = scaler.apply(app, inputs, "reconcile")
        except STORE_ERRORS as error:
            log.error("reconcile of %s skipped: decision store unavailable: %s", app, error)
            ok = False
            continue
        for d in decisions:
            print(f"{d.app}/{d.role}: {d.reason} ({d.outcome})", flush=True)
            ok = ok and d.outcome != "failure"
    return ok


def role_inputs(
    settings: Config, results: dict[str, list[dict[str, Any]]]
) -> dict[str, list[RoleInput]]:
    """Turn query results into one RoleInput per configured role that has a desired count."""
    desired_at = _by_role(results["desired_at"])
    dynos_at = _by_role(results["dynos_at"])
    down = _sources_down_by_role(results["down"])
    slots = _by_role(results["slots"])
    inputs: dict[str, list[RoleInput]] = defaultdict(list)
    for sample in results["desired"]:
        app, role = sample["metric"].get("app"), sample["metric"].get("role")
        settings_of_role = settings.role(app, role)
        if settings_of_role is None:
            log.warning("%s for %s/%s: not in %s, ignored", DESIRED, app, role, settings.path)
            continue
        value = float(sample["value"][1])
        desired = math.ceil(value) if math.isfinite(value) and value >= 0 else None
        times = [desired_at.get((app, role)), dynos_at.get((app, role))]
        sources_down = sorted(down.get((app, role), ()))
        fresh = None not in times and not sources_down
        recorded = {
            "query": DESIRED,
            "value": sample["value"][1],
            "desired_at": times[0],
            "dynos_at": times[1],
            "sources_down": sources_down,
        }
        observed_at = min(times) if fresh else None
        request = Request(desired, observed_at)
        if settings_of_role.sizes:  # the scaler chooses size and count from the slots
            needed = slots.get((app, role))
            recorded["slots"] = needed
            request = Request(None, observed_at, slots=needed)
        inputs[app].append(RoleInput(role, request, recorded))
    return dict(inputs)


def _sources_down_by_role(vector: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """The sources reporting dynoscaler_source_up 0, per (app, role) they feed."""
    down: dict[tuple[str, str], set[str]] = defaultdict(set)
    for sample in vector:
        labels = sample["metric"]
        down[(labels.get("app"), labels.get("role"))].add(labels.get("source", "?"))
    return down


def _by_role(vector: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Sample value per (app, role); the oldest when several series share a role."""
    found: dict[tuple[str, str], float] = {}
    for sample in vector:
        key = (sample["metric"].get("app"), sample["metric"].get("role"))
        value = float(sample["value"][1])
        found[key] = min(value, found.get(key, value))
    return found
