"""Shadow report: what dynoscaler would have set against the formation, minute by minute.

For a scaler running with `scaler.dry_run: true` (or any scaler): per role,
from Prometheus' recorded series and the decision log, each minute's formation
(app_role:dynoscaler_dynos, the exporter's formation gauge), the count the
rules asked for (app_role:dynoscaler_desired_dynos, what ScaleRole carries and
the scaler sets within max_step and its cooldown), the count the deadline
needed (app_role:dynoscaler_needed_dynos, unclamped), the queue and its oldest
job against the deadline (JobPastDeadline's condition). Prints each role's
dyno-hours, the minutes the formation was below the need and those with jobs
past the deadline, and the share of jobs done within the deadline where the
workers report enqueue-to-done times (dynoscaler.qos); writes a CSV of the
minutes and a PNG chart per role.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dynoscaler import config, role_chart, role_series
from dynoscaler.config import ConfigError, RoleSettings
from dynoscaler.durations import duration_seconds
from dynoscaler.qos import within_share_query
from scaler.prometheus import PrometheusError, query
from scaler.store import Store

MINUTE = 60
TERMS = ("formation", "desired", "needed", "max_dynos", "depth", "oldest", "deadline", "price")
# Decision outcomes that set (or, dry run, would have set) a count.
ACTIONS = ("dry_run", "success", "limit")


@dataclass(frozen=True)
class Minute:
    """The minute ending at `t` (Unix time): counts averaged, queue figures at their peak."""

    t: float
    formation: float | None
    would_be: float | None
    needed: float | None
    depth: float | None
    oldest: float | None
    deadline: float | None
    price: float | None = None  # dollars per dyno-hour of the formation's size

    @property
    def below_need(self) -> bool:
        return _below(self.formation, self.needed)

    @property
    def would_be_below_need(self) -> bool:
        return _below(self.would_be, self.needed)

    @property
    def past_deadline(self) -> bool:
        """JobPastDeadline's condition: the oldest waiting job waited longer than the deadline."""
        return None not in (self.oldest, self.deadline) and self.oldest > self.deadline


@dataclass
class RoleReport:
    app: str
    role: str
    minutes: list[Minute]
    decisions: list[dict[str, Any]]
    # Of the jobs finished in the period, the share within the deadline (None: no
    # enqueue-to-done times, or no job finished).
    within: float | None = None

    def dyno_hours(self, name: str) -> float:
        return sum(getattr(m, name) or 0.0 for m in self.minutes) / 60

    def dollars(self, name: str) -> float | None:
        """What the minutes' `name` dynos cost at the formation's price (None: no price)."""
        priced = [m for m in self.minutes if m.price is not None]
        if not priced:
            return None
        return sum((getattr(m, name) or 0.0) * m.price for m in priced) / 60

    def known(self, name: str) -> int:
        """Minutes with a value of `name`."""
        return sum(getattr(m, name) is not None for m in self.minutes)

    def actions(self) -> list[dict[str, Any]]:
        return [d for d in self.decisions if d["outcome"] in ACTIONS and d["to_count"] is not None]


def build(series: role_series.RoleSeries, decisions: list[dict[str, Any]]) -> RoleReport:
    """A role's report from its per-minute series (read with per_step) and decisions."""
    v = series.values
    minutes = [
        Minute(
            t,
            v["formation"][i],
            v["desired"][i],
            v["needed"][i],
            v["depth"][i],
            v["oldest"][i],
            v["deadline"][i],
            v["price"][i],
        )
        for i, t in enumerate(series.times)
    ]
    return RoleReport(series.app, series.role, minutes, sorted(decisions, key=lambda d: d["time"]))


def stretches(minutes: list[Minute], condition: Callable[[Minute], bool]) -> list[list[Minute]]:
    """Runs of consecutive minutes meeting `condition`."""
    runs: list[list[Minute]] = []
    for previous, minute in zip([None, *minutes], minutes, strict=False):
        if not condition(minute):
            continue
        if runs and previous is not None and condition(previous):
            runs[-1].append(minute)
        else:
            runs.append([minute])
    return runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml (roles, store, Prometheus)")
    parser.add_argument("--since", default="24h", help="how far back, a Prometheus duration")
    parser.add_argument("--app", help="only this app")
    parser.add_argument("--role", help="only this role")
    parser.add_argument("--prometheus", help="Prometheus URL (default: scaler.prometheus_url)")
    parser.add_argument(
        "-o", "--output", default="shadow-report", help="directory for the CSVs and charts"
    )


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    try:
        since = duration_seconds(args.since)
    except ValueError as error:
        raise ConfigError(f"--since: {error}") from None
    if since < MINUTE:
        raise ConfigError(f"--since must be at least 1m, not {args.since}")
    roles = [r for r in settings.roles if args.app in (None, r.app) and args.role in (None, r.role)]
    if not roles:
        raise ConfigError(f"{settings.path}: no role matches --app {args.app} --role {args.role}")
    url = args.prometheus or settings.scaler.prometheus_url
    store = Store(settings.scaler.store)
    end = math.floor(time.time() / MINUTE) * MINUTE
    start = end - math.ceil(since / MINUTE) * MINUTE + MINUTE
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for role in roles:
        try:
            report = role_report(url, store, role, start, end)
        except PrometheusError as error:
            print(f"dynoscaler shadow-report: Prometheus at {url}: {error}", file=sys.stderr)
            return 1
        print(summary(report, output))
    return 0


def role_report(url: str, store: Store, role: RoleSettings, start: float, end: float) -> RoleReport:
    series = role_series.read(url, role.app, role.role, start, end, MINUTE, TERMS, per_step=True)
    # The minute ending at `start` began one minute earlier.
    decisions = store.decisions(role.app, role.role, 100_000, since=start - MINUTE, until=end)
    report = build(series, decisions)
    report.within = _within(url, role, f"{round(end - start + MINUTE)}s")
    return report


def _within(url: str, role: RoleSettings, window: str) -> float | None:
    for series in query(url, within_share_query(window)):
        labels = series["metric"]
        if (labels.get("app"), labels.get("role")) == role.key:
            share = float(series["value"][1])
            return None if math.isnan(share) else share
    return None


def summary(report: RoleReport, output: Path) -> str:
    """The role's figures as text; writes its CSV and chart into `output` when it has data."""
    name = f"{report.app}/{report.role}"
    minutes = report.minutes
    span = f"{_when(minutes[0].t - MINUTE)} to {_when(minutes[-1].t)} UTC"
    if not report.known("formation") and not report.known("would_be"):
        return f"{name}: no data in Prometheus from {span}\n"
    lines = [
        f"{name}, {span}: {len(minutes)} minutes, formation known in "
        f"{report.known('formation')}, the rules' count in {report.known('would_be')}",
    ]
    actual, would_be = report.dyno_hours("formation"), report.dyno_hours("would_be")
    change = f" ({(would_be - actual) / actual:+.0%})" if actual else ""
    lines.append(
        f"  dyno-hours: formation {actual:.2f}, dynoscaler would have set {would_be:.2f}{change}"
    )
    cost = report.dollars("formation"), report.dollars("would_be")
    if None not in cost:
        lines.append(
            f"  at the formation's dyno price: ${cost[0]:.2f} against ${cost[1]:.2f}"
            f" (minutes with a price: {report.known('price')})"
        )
    actions = report.actions()
    outcomes = sorted({d["outcome"] for d in actions})
    lines.append(
        f"  scale actions in the decision log: {len(actions)}"
        + (f" ({', '.join(outcomes)})" if outcomes else "")
    )
    below = stretches(minutes, lambda m: m.below_need)
    lines.append(
        f"  minutes the formation was below the deadline's need: {sum(map(len, below))}"
        f" (dynoscaler's count: {sum(m.would_be_below_need for m in minutes)})"
    )
    lines += [f"    {_stretch(run)}" for run in below]
    late = [m for m in minutes if m.past_deadline]
    peak = max((m.depth or 0 for m in late), default=0)
    lines.append(
        f"  minutes with the oldest job past the deadline (JobPastDeadline): {len(late)}"
        + (f", up to {peak:.0f} jobs waiting then" if late else "")
    )
    lines.append(
        "  jobs done within the deadline, enqueue to done: "
        + (
            "unknown (no worker reports enqueue-to-done times: exporter.timing's job())"
            if report.within is None
            else f"{report.within:.1%} (dynoscaler_jobs_within_deadline_total)"
        )
    )
    stem = f"{report.app}-{report.role}"
    write_csv(report, output / f"{stem}.csv")
    draw(report, output / f"{stem}.png")
    lines.append(f"  minutes: {output / f'{stem}.csv'}, chart: {output / f'{stem}.png'}")
    return "\n".join(lines) + "\n"


def write_csv(report: RoleReport, path: Path) -> Path:
    columns = ("formation", "would_be", "needed", "depth", "oldest", "deadline", "price")
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(("minute_end_utc", *columns, "below_need", "past_deadline"))
        for m in report.minutes:
            values = ["" if getattr(m, c) is None else f"{getattr(m, c):g}" for c in columns]
            writer.writerow((_when(m.t), *values, int(m.below_need), int(m.past_deadline)))
    return path


def draw(report: RoleReport, path: Path) -> Path:
    minutes = report.minutes
    x = role_chart.clock([m.t for m in minutes])
    fig, (dynos, queue) = role_chart.figure(2, f"{report.app}/{report.role}: shadow report")
    role_chart.lines_panel(
        dynos,
        x,
        [
            ("formation (Heroku)", [m.formation for m in minutes]),
            ("dynoscaler would have set", [m.would_be for m in minutes]),
            ("needed for the deadline", [m.needed for m in minutes]),
        ],
        "dynos (minute mean)",
        steps=("formation (Heroku)",),
    )
    for d in report.actions():
        role_chart.mark(dynos, d["time"], f"{d['from_count']}->{d['to_count']}")
    role_chart.queue_panel(
        queue,
        x,
        [m.depth for m in minutes],
        [m.oldest for m in minutes],
        [m.deadline for m in minutes],
    )
    role_chart.utc_axis(queue)
    actual, would_be = report.dyno_hours("formation"), report.dyno_hours("would_be")
    note = f"dyno-hours: formation {actual:.2f}, dynoscaler {would_be:.2f}"
    return role_chart.save(fig, path, note)


def _below(count: float | None, needed: float | None) -> bool:
    return None not in (count, needed) and count < needed - 1e-9


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def _stretch(run: list[Minute]) -> str:
    first, last = run[0], run[-1]
    formation = min(m.formation for m in run)
    needed = max(m.needed for m in run)
    oldest = max((m.oldest or 0 for m in run), default=0)
    deadline = run[0].deadline
    waiting = max((m.depth or 0 for m in run), default=0)
    late = f" (deadline {deadline:g} s)" if deadline is not None else ""
    return (
        f"{_when(first.t - MINUTE)}-{_when(last.t)[11:]} ({len(run)} min): formation "
        f"{formation:g}, needed {needed:g}; oldest job {oldest:.0f} s{late}, "
        f"up to {waiting:.0f} waiting"
    )
