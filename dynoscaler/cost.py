"""What the dynos cost: dyno-hours and money per app and role, against fixed counts.

`dynoscaler cost --config F [--since 7d] [--before APP/ROLE=N ...]` reads, for
each configured role over the period:

- the dyno count over time from the decision log (scaler.store): each record's
  `from_count` is the count Heroku (or the store) had then, and a `success`
  record's `to_count` the count Heroku confirmed; the count holds until the next
  record, and before the first record of the period the last one before it holds
  (a role with no record before the period starts counting at its first);
- the dyno-hours from Prometheus too (`dynoscaler_dynos`, the exporter's
  formation reads, once a minute), as a check on the log;
- the role's dyno size from Prometheus (`dynoscaler_dyno_size_info`, the last
  one seen in the period; standard-1x when none was), priced by
  dynoscaler.prices with the settings' `prices:`; and the dollars Prometheus
  counts minute by minute (dynos × `dynoscaler_dyno_hourly_price_dollars`),
  which follow a role's size changes where the log's column takes the last size;
- the share of jobs within their deadline from Prometheus: exact where the
  workers report each job's enqueue-to-done time (dynoscaler.qos); otherwise
  estimated: of the jobs completed (app_role:dynoscaler_completions:rate1m, once
  a minute), those finishing while the oldest waiting job's age plus the mean
  processing time was within the deadline (FIFO: a job starting then has waited
  that long). The table says which.

It prints the money the dynos cost, what `max_dynos` (the configured budget)
would have cost at all times, and what the pre-dynoscaler count (`--before`)
would have cost. The exporter publishes each role's price per dyno-hour
(`dynoscaler_dyno_hourly_price_dollars`) so Grafana shows the same in dollars
an hour (grafana/dashboards/dynoscaler-overview.json, row Cost).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dynoscaler import config
from dynoscaler.config import Config, ConfigError, RoleSettings
from dynoscaler.durations import duration_seconds
from dynoscaler.prices import DEFAULT_SIZE, UnknownDynoType
from dynoscaler.qos import within_share_query
from scaler.prometheus import PrometheusError, query
from scaler.store import Store

# Every record of a week at one decision per 5 s, per role, and then some.
MAX_RECORDS = 1_000_000


@dataclass(frozen=True)
class RoleCost:
    app: str
    role: str
    size: str
    size_known: bool  # False: no size in Prometheus, DEFAULT_SIZE assumed
    hours: float  # of the period the decision log covers
    dyno_hours: float  # from the decision log
    prometheus_dyno_hours: float | None
    dollars: float
    prometheus_dollars: float | None
    at_max_dollars: float
    before_dollars: float | None
    within_share: float | None
    within_exact: bool  # from the enqueue-to-done counts, not the oldest-age estimate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml (store, Prometheus)")
    parser.add_argument(
        "--since", default="7d", help="the period up to now, a duration (default 7d)"
    )
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        metavar="APP/ROLE=N",
        help="the fixed count the role ran before dynoscaler (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    try:
        period = duration_seconds(args.since)
    except ValueError:
        raise ConfigError(f"--since: {args.since!r} is not a duration (7d, 24h, 90m)") from None
    if period <= 0:
        raise ConfigError(f"--since: {args.since!r} is not a duration above 0")
    before = parse_before(args.before, settings)
    end = time.time()
    try:
        costs = role_costs(settings, end - period, end, before)
    except PrometheusError as error:
        raise ConfigError(
            f"cannot read Prometheus at {settings.scaler.prometheus_url} "
            f"(scaler.prometheus_url): {error}"
        ) from None
    print(report(costs, args.since))
    return 0


def parse_before(values: Iterable[str], settings: Config) -> dict[tuple[str, str], int]:
    """--before APP/ROLE=N values, each naming a configured role and a whole count."""
    counts = {}
    for value in values:
        key, _, count = value.partition("=")
        app, _, role = key.partition("/")
        if settings.role(app, role) is None:
            raise ConfigError(f"--before {value!r}: no role {key!r} in {settings.path}")
        if not count.isdigit():
            raise ConfigError(f"--before {value!r}: the count must be a whole number (web/web=4)")
        counts[(app, role)] = int(count)
    return counts


def dyno_seconds(records: list[Mapping[str, Any]], start: float, end: float) -> tuple[float, float]:
    """(dyno-seconds, seconds covered) over [start, end] from decision records (any
    order) of one role: the count from each record on, the last one before `start`
    holding at `start`."""
    total = covered = 0.0
    count, since = None, start
    for record in sorted(records, key=lambda r: r["time"]):
        at = max(record["time"], start)
        if at > end:
            break
        if count is not None:
            total += count * (at - since)
            covered += at - since
        since = at
        if record["outcome"] == "success" and record["to_count"] is not None:
            count = record["to_count"]
        elif record["from_count"] is not None:
            count = record["from_count"]
    if count is not None:
        total += count * (end - since)
        covered += end - since
    return total, covered


def role_costs(
    settings: Config, start: float, end: float, before: Mapping[tuple[str, str], int]
) -> list[RoleCost]:
    logs = _decision_logs(settings, start, end)
    window = f"{max(60, round(end - start))}s"
    url = settings.scaler.prometheus_url
    sizes = _by_role(query(url, f"last_over_time(dynoscaler_dyno_size_info[{window}])"), "size")
    hours = _by_role(query(url, _per_minute("max by (app, role) (dynoscaler_dynos)", window)))
    estimated = _by_role(query(url, _within_query(window)))
    exact = _by_role(query(url, within_share_query(window)))
    spent = _by_role(query(url, _dollars_query(window)))
    costs = []
    for role in settings.roles:
        seconds, covered = dyno_seconds(logs[role.key], start, end)
        costs.append(
            _cost(
                role,
                settings,
                sizes.get(role.key),
                seconds,
                covered,
                None if role.key not in hours else float(hours[role.key]),
                before.get(role.key),
                *_within(exact.get(role.key), estimated.get(role.key)),
                spent.get(role.key),
            )
        )
    return costs


def _cost(
    role: RoleSettings,
    settings: Config,
    size: str | None,
    seconds: float,
    covered: float,
    prometheus_dyno_hours: float | None,
    before: int | None,
    within: float | None,
    within_exact: bool,
    spent: str | None,
) -> RoleCost:
    name = size or DEFAULT_SIZE
    try:
        hourly = settings.prices.hourly(name)
    except UnknownDynoType as error:
        raise ConfigError(f"{role.app}/{role.role}: {error}") from None
    return RoleCost(
        app=role.app,
        role=role.role,
        size=name,
        size_known=size is not None,
        hours=covered / 3600,
        dyno_hours=seconds / 3600,
        prometheus_dyno_hours=prometheus_dyno_hours,
        dollars=hourly * seconds / 3600,
        prometheus_dollars=None if spent is None else float(spent),
        at_max_dollars=hourly * role.max_dynos * covered / 3600,
        before_dollars=None if before is None else hourly * before * covered / 3600,
        within_share=within,
        within_exact=within_exact,
    )


def _decision_logs(
    settings: Config, start: float, end: float
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each role's records of the period and the last one before it (the store names
    a database it cannot open or read: ConfigError)."""
    store = Store(settings.scaler.store)
    try:
        return {
            role.key: store.decisions(role.app, role.role, MAX_RECORDS, since=start, until=end)
            + store.decisions(role.app, role.role, 1, until=start)
            for role in settings.roles
        }
    finally:
        store.close()


def _per_minute(hourly: str, window: str) -> str:
    """The sum over the window of a per-hour series sampled once a minute (so / 60):
    dyno-hours from dynos, dollars from dollars an hour, for the part of the window
    the series covers."""
    return f"sum_over_time(({hourly})[{window}:1m]) / 60"


def _dollars_query(window: str) -> str:
    hourly = (
        "max by (app, role) (dynoscaler_dynos)"
        " * on (app, role) max by (app, role) (dynoscaler_dyno_hourly_price_dollars)"
    )
    return _per_minute(hourly, window)


def _within_query(window: str) -> str:
    late = (
        "((app_role:dynoscaler_queue_oldest_age_seconds + app_role:dynoscaler_processing_seconds)"
        " > bool app_role:dynoscaler_policy_target_deadline_seconds)"
    )
    completed = f"sum_over_time(app_role:dynoscaler_completions:rate1m[{window}:1m])"
    on_time = f"sum_over_time((app_role:dynoscaler_completions:rate1m * (1 - {late}))[{window}:1m])"
    return f"{on_time} / {completed}"


def _within(exact: str | None, estimated: str | None) -> tuple[float | None, bool]:
    """The exact share when Prometheus has one (not 0/0), else the estimate."""
    if exact is not None and not math.isnan(float(exact)):
        return float(exact), True
    if estimated is not None and not math.isnan(float(estimated)):
        return float(estimated), False
    return None, False


def _by_role(vector: list[dict[str, Any]], label: str | None = None) -> dict[tuple[str, str], Any]:
    """Each (app, role)'s value, or the value of its `label` (the last series wins)."""
    found = {}
    for series in vector:
        metric = series["metric"]
        if "app" in metric and "role" in metric:
            found[(metric["app"], metric["role"])] = metric[label] if label else series["value"][1]
    return found


def report(costs: list[RoleCost], since: str) -> str:
    """The table people read, one row per role and a total."""
    header = (
        "app/role",
        "size",
        "hours",
        "dyno-hours",
        "Prometheus",
        "cost $",
        "Prometheus $",
        "at max $",
        "before $",
        "saved vs max",
        "within deadline",
    )
    rows = [
        (
            f"{c.app}/{c.role}",
            c.size if c.size_known else f"{c.size} (assumed)",
            f"{c.hours:,.1f}",
            f"{c.dyno_hours:,.1f}",
            "-" if c.prometheus_dyno_hours is None else f"{c.prometheus_dyno_hours:,.1f}",
            f"{c.dollars:,.2f}",
            "-" if c.prometheus_dollars is None else f"{c.prometheus_dollars:,.2f}",
            f"{c.at_max_dollars:,.2f}",
            "-" if c.before_dollars is None else f"{c.before_dollars:,.2f}",
            _share(1 - c.dollars / c.at_max_dollars) if c.at_max_dollars else "-",
            "-" if c.within_share is None else _within_text(c),
        )
        for c in costs
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"Dyno cost over the last {since} (decision log; sizes and deadlines: Prometheus)"]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) for r in [header]]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    apps = {c.app: [d for d in costs if d.app == c.app] for c in costs}
    lines += [_total(f"app {app}", part) for app, part in apps.items()]
    lines.append(_total("total", costs))
    return "\n".join(line.rstrip() for line in lines)


def _total(what: str, costs: list[RoleCost]) -> str:
    total = sum(c.dollars for c in costs)
    at_max = sum(c.at_max_dollars for c in costs)
    before = [c.before_dollars for c in costs if c.before_dollars is not None]
    text = f"{what}: ${total:,.2f}, at max_dynos ${at_max:,.2f}"
    if len(before) == len(costs):  # every role's count before is known
        text += f", before dynoscaler ${sum(before):,.2f}"
    return text


def _within_text(cost: RoleCost) -> str:
    return f"{_share(cost.within_share or 0)} ({'exact' if cost.within_exact else 'estimate'})"


def _share(value: float) -> str:
    return f"{value:.1%}"
