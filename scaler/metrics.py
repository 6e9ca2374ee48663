"""The scaler's own Prometheus metrics (names are part of the metric contract).

Every metric carries labels, so no value exists before first use: `dynoscaler
scaler serve` can switch prometheus_client to multiprocess mode (one file per
gunicorn worker in PROMETHEUS_MULTIPROC_DIR) before any value is created.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "dynoscaler_scaler_requests",
    "HTTP requests answered by the scaler",
    ["endpoint", "status"],
)
DECISIONS = Counter(
    "dynoscaler_scaler_decisions",
    "Decisions taken, by outcome (none, success, failure, limit, dry_run)",
    ["app", "role", "source", "outcome"],
)
# The alert rules use exactly this name and its outcome values.
ACTUATIONS = Counter(
    "dynoscaler_scaler_actuations",
    "Formation changes sent to Heroku, by outcome (success, failure, limit, held)",
    ["app", "outcome"],
)
ACTUATION_SECONDS = Histogram(
    "dynoscaler_scaler_actuation_seconds",
    "Time from the first attempt to Heroku's final answer, retries included",
    ["app"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HEROKU_ERRORS = Counter(
    "dynoscaler_scaler_heroku_errors",
    "Failed Heroku API attempts, by kind (rate_limit, server, timeout, client, limit)",
    ["app", "kind"],
)
FORMATION_READS = Counter(
    "dynoscaler_scaler_formation_reads",
    "The formation read before a change, by outcome (read, spared) and reason",
    ["outcome", "reason"],
)
NOTIFICATIONS = Counter(
    "dynoscaler_scaler_notifications",
    "Notifications sent, by notifier kind and outcome (sent, failed)",
    ["kind", "outcome"],
)
