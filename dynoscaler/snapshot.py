"""Snapshot: a role's drill-down panels rendered from Prometheus to one PNG.

The dynos (current, desired, needed, max), the slots (required, drain), λ and
its look-ahead, S and S99, the backlog and the oldest job against the
deadline; with --config, the scale actions of the decision log marked and
explained as the annotations API explains them (scaler/explain.py). For an
incident note, a Slack message (the Slack notifier attaches it to
DeadlineUnmeetable) or the README.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dynoscaler import config, role_chart, role_series
from dynoscaler.config import ConfigError
from dynoscaler.durations import duration_seconds
from scaler import explain
from scaler.prometheus import PrometheusError
from scaler.store import Store

POINTS = 600  # samples per line, as a Grafana panel of that width asks for
MAX_EXPLAINED = 6  # the newest actions listed under the chart


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", help="Prometheus URL (default: the config's)")
    parser.add_argument("--app", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--since", default="1h", help="how far back, a Prometheus duration")
    parser.add_argument("-o", "--output", help="the PNG (default: APP-ROLE.png)")
    parser.add_argument("--config", help="autoscale.yml: mark the decision log's actions")


def run(args: argparse.Namespace) -> int:
    try:
        since = duration_seconds(args.since)
    except ValueError as error:
        raise ConfigError(f"--since: {error}") from None
    settings = config.load(args.config) if args.config else None
    url = args.prometheus or (settings.scaler.prometheus_url if settings else None)
    if not url:
        raise ConfigError("--prometheus is needed (or --config with scaler.prometheus_url)")
    decisions: list[dict[str, Any]] = []
    end = time.time()
    if settings is not None:
        if settings.role(args.app, args.role) is None:
            raise ConfigError(f"{settings.path}: no role {args.app}/{args.role}")
        store = Store(settings.scaler.store)
        decisions = store.decisions(args.app, args.role, 1000, since=end - since, until=end)
    path = Path(args.output or f"{args.app}-{args.role}.png")
    try:
        texts = render(url, args.app, args.role, end - since, end, path, decisions)
    except PrometheusError as error:
        print(f"dynoscaler snapshot: Prometheus at {url}: {error}", file=sys.stderr)
        return 1
    print(path)
    for number, text in enumerate(texts, 1):
        print(f"\n{number}: {text}")
    return 0


def render(
    url: str,
    app: str,
    role: str,
    start: float,
    end: float,
    path: Path,
    decisions: Sequence[dict[str, Any]] = (),
) -> list[str]:
    """Draw the panels into `path`; returns the explanations listed under them
    (the actions among `decisions`, newest last). Raises PrometheusError."""
    step = max(5.0, math.ceil((end - start) / POINTS))
    series = role_series.read(url, app, role, start, end, step)
    actions = [d for d in decisions if d["to_count"] is not None][-MAX_EXPLAINED:]
    actions.sort(key=lambda d: d["time"])
    texts = [annotation["text"] for annotation in explain.annotations(actions, url)]
    fig, panels = role_chart.figure(5, f"{app}/{role}", height=2.4)
    dynos, slots, rate, duration, queue = panels
    role_chart.series_panel(
        dynos,
        series,
        ("formation", "desired", "needed", "max_dynos"),
        "dynos",
        steps=("formation",),
    )
    for number, d in enumerate(actions, 1):
        role_chart.mark(dynos, d["time"], f"{number}: {d['from_count']}->{d['to_count']}")
    role_chart.series_panel(slots, series, ("required_slots", "drain_slots"), "slots")
    role_chart.series_panel(rate, series, ("arrival_rate", "lookahead"), "jobs/s")
    role_chart.series_panel(duration, series, ("processing", "processing_p99"), "seconds")
    values = series.values
    role_chart.queue_panel(
        queue,
        role_chart.clock(series.times),
        values["depth"],
        values["oldest"],
        values["deadline"],
    )
    role_chart.utc_axis(queue)
    note = "\n".join(
        textwrap.fill(f"{n}: {text.replace(chr(10), ' | ')}", 150, subsequent_indent="    ")
        for n, text in enumerate(texts, 1)
    )
    if not series.has_data():
        note = f"no data in Prometheus for {app}/{role} in this range\n{note}"
    role_chart.save(fig, path, note)
    return texts
