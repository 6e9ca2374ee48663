"""The metric contract (docs/ARCHITECTURE.md) and the samples sources produce.

Sources return plain samples; the collector merges them into one family per
metric name, since several sources feed the same family and a family may appear
only once in an exposition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

# Upper bounds (seconds) of the job duration and router service histograms.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120,
    180, 300, 600,
)  # fmt: skip
# 15 to 180 s keep the 99th percentile the cold-start window reads from the job
# duration histogram close: histogram_quantile interpolates linearly inside a
# bucket, and with 60 and 120 s as neighbours it put the 99th percentile of jobs
# that are 5 s long nine times in ten and 55 s otherwise at 101 s instead of 69 s
# (now 81 s; lognormal 10 s jobs, cv 0.5: 29.8 s, now 28.8 s, for 26.8 s).

QUEUE_LABELS = ("app", "role", "queue", "backend")
ROLE_LABELS = ("app", "role")
SOURCE_LABELS = ("source", "backend")


@dataclass(frozen=True)
class Family:
    kind: str  # gauge, counter or histogram
    help: str
    labels: tuple[str, ...]


_POLICY_HELP = {
    "min_dynos": "Fewest dynos the role may run (setting, or its schedule's in force)",
    "max_dynos": "Most dynos the role may run (setting, or its schedule's in force)",
    "target_deadline_seconds": "Seconds from enqueue to done each job should meet (setting)",
    "target_queue_seconds": "Seconds the p95 of web request queue time should stay under (setting)",
    "concurrency": "Jobs one dyno processes at once (setting)",
    "sizes": "Dyno sizes the role may run at (setting; only for roles listing sizes)",
    "boot_seconds": "Seconds from a formation change to a dyno taking work (setting)",
    "miss_ratio": "Share of jobs allowed to finish after the deadline (setting)",
    "scale_down_window_seconds": "Seconds the need must stay lower before removing dynos (setting)",
}

FAMILIES: dict[str, Family] = {
    "dynoscaler_queue_depth": Family("gauge", "Jobs waiting in the queue", QUEUE_LABELS),
    "dynoscaler_queue_in_progress": Family("gauge", "Jobs being processed now", QUEUE_LABELS),
    "dynoscaler_dyno_in_progress": Family(
        "gauge",
        "Jobs being processed now on one dyno of the role (dyno: its number, worker.3: 3)",
        ("app", "role", "backend", "dyno"),
    ),
    "dynoscaler_queue_oldest_age_seconds": Family(
        "gauge", "Time in queue of the oldest waiting job (0 when empty)", QUEUE_LABELS
    ),
    "dynoscaler_queue_oldest_in_progress_age_seconds": Family(
        "gauge",
        "How long the oldest job in progress has run (Sidekiq; none while nothing runs)",
        QUEUE_LABELS,
    ),
    "dynoscaler_queue_paused": Family(
        "gauge",
        "1 while the library has the queue paused (its jobs then count as not waiting)",
        QUEUE_LABELS,
    ),
    "dynoscaler_queue_dead": Family(
        "gauge",
        "Jobs the library gave up on and keeps aside (dead set, dead letters); not waiting",
        QUEUE_LABELS,
    ),
    "dynoscaler_jobs_completed": Family(
        "counter", "Jobs finished, where the backend counts them", QUEUE_LABELS
    ),
    "dynoscaler_job_duration_seconds": Family(
        "histogram", "Job processing time reported by workers", ("app", "role", "queue")
    ),
    "dynoscaler_job_total_seconds": Family(
        "histogram",
        "Job time from enqueue to done reported by workers (bounds include the role's deadline)",
        ("app", "role", "queue"),
    ),
    "dynoscaler_jobs_within_deadline": Family(
        "counter",
        "Finished jobs whose enqueue-to-done time met the role's target_deadline",
        ("app", "role", "queue"),
    ),
    "dynoscaler_dynos": Family("gauge", "Current formation quantity", ROLE_LABELS),
    "dynoscaler_dyno_hourly_price_dollars": Family(
        "gauge",
        "Dollars per hour of one dyno of the formation's size (dynoscaler.prices)",
        ROLE_LABELS,
    ),
    "dynoscaler_schedule_active": Family(
        "gauge", "1 while a window of the role's schedule is open", (*ROLE_LABELS, "schedule")
    ),
    "dynoscaler_dyno_size_info": Family(
        "gauge", "Dyno size of the formation (always 1)", (*ROLE_LABELS, "size")
    ),
    **{
        f"dynoscaler_policy_{name}": Family("gauge", text, ROLE_LABELS)
        for name, text in _POLICY_HELP.items()
    },
    "dynoscaler_router_requests": Family(
        "counter", "Web requests seen in the Heroku router log drain", ROLE_LABELS
    ),
    "dynoscaler_router_service_seconds": Family(
        "histogram", "Heroku router service time of web requests", ROLE_LABELS
    ),
    "dynoscaler_web_queue_seconds": Family(
        "histogram",
        "Request queue time, X-Request-Start to the app (exporter.web middleware)",
        ROLE_LABELS,
    ),
    "dynoscaler_web_service_seconds": Family(
        "histogram", "Request service time in the app (exporter.web middleware)", ROLE_LABELS
    ),
    "dynoscaler_web_queue_skewed": Family(
        "counter",
        "Requests whose X-Request-Start gave a queue time below 0 or above 60 s (not recorded)",
        ROLE_LABELS,
    ),
    "dynoscaler_router_errors": Family(
        "counter",
        "Heroku error lines (H10, H12, R14, ...) in the router log drain per role and code",
        (*ROLE_LABELS, "code"),
    ),
    "dynoscaler_heroku_api_requests": Family(
        "counter",
        "Heroku Platform API calls of this process by client and kind (dynoscaler.heroku_budget)",
        ("client", "kind"),
    ),
    "dynoscaler_heroku_rate_limit_remaining": Family(
        "gauge", "RateLimit-Remaining of Heroku's last answer to the client", ("client",)
    ),
    "dynoscaler_heroku_api_budget_per_minute": Family(
        "gauge", "Heroku API tokens dynoscaler may spend a minute (heroku.budget_share)", ()
    ),
    "dynoscaler_heroku_formation_period_seconds": Family(
        "gauge", "Seconds one round of formation reads over every app takes at the current pace", ()
    ),
    "dynoscaler_heroku_formation_age_seconds": Family(
        "gauge", "Seconds since the app's formation was last read or pushed by a webhook", ("app",)
    ),
    "dynoscaler_heroku_formation_webhooks": Family(
        "gauge", "1 when formation webhooks keep the formation current between reads, else 0", ()
    ),
    "dynoscaler_source_up": Family(
        "gauge",
        "1 when the last read of the source worked, per app/role it feeds",
        (*SOURCE_LABELS, *ROLE_LABELS),
    ),
    "dynoscaler_source_scrape_duration_seconds": Family(
        "gauge", "Seconds the last read of the source took", SOURCE_LABELS
    ),
    "dynoscaler_source_read_errors": Family(
        "counter",
        "Keys or entries of the source that reads could not use (each costs only its own queue)",
        SOURCE_LABELS,
    ),
}


class Sample(NamedTuple):
    """One gauge or counter value; `metric` is a FAMILIES key (counters without _total)."""

    metric: str
    labels: tuple[str, ...]
    value: float


class HistogramSample(NamedTuple):
    """One histogram series; `buckets` are per-bucket (not cumulative) counts by upper bound."""

    metric: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]  # one count per bound, then the +Inf overflow
    sum: float
    bounds: tuple[float, ...] = DURATION_BUCKETS


def cumulative(
    counts: Sequence[float], bounds: Sequence[float] = DURATION_BUCKETS
) -> list[tuple[str, float]]:
    """Per-bucket counts (one per bound plus +Inf) as Prometheus buckets."""
    names = [*(str(float(b)) for b in bounds), "+Inf"]
    total, buckets = 0.0, []
    for bound, count in zip(names, counts, strict=True):
        total += count
        buckets.append((bound, total))
    return buckets


def bucket_index(seconds: float) -> int:
    """Index of the histogram bucket a duration falls in (len(DURATION_BUCKETS) = +Inf)."""
    return next(
        (i for i, bound in enumerate(DURATION_BUCKETS) if seconds <= bound), len(DURATION_BUCKETS)
    )


def families(samples: Iterable[Sample | HistogramSample]) -> list[Metric]:
    """Merge samples into one metric family per name, in FAMILIES order."""
    built: dict[str, Metric] = {}
    for sample in samples:
        family = FAMILIES[sample.metric]
        metric = built.get(sample.metric)
        if metric is None:
            metric = built[sample.metric] = _new_family(sample.metric, family)
        if isinstance(sample, HistogramSample):
            metric.add_metric(
                list(sample.labels), cumulative(sample.buckets, sample.bounds), sample.sum
            )
        else:
            metric.add_metric(list(sample.labels), sample.value)
    return [built[name] for name in FAMILIES if name in built]


_KINDS: dict[str, type[Metric]] = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "histogram": HistogramMetricFamily,
}


def _new_family(name: str, family: Family) -> Metric:
    return _KINDS[family.kind](name, family.help, labels=list(family.labels))
