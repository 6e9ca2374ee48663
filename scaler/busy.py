"""The jobs running on a role now, read from Prometheus for `scale_down_when_busy`.

The exporter publishes dynoscaler_queue_in_progress per queue,
dynoscaler_queue_oldest_in_progress_age_seconds where a backend tells when its
running jobs started, and dynoscaler_dyno_in_progress per dyno number where it
tells which dyno runs them (Sidekiq). A query that fails or finds nothing leaves
the value unknown: for the jobs in progress, scaler.guardrails.busy_refusal then
holds the scale-down; for the dynos' jobs, it falls back to the count.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from scaler.guardrails import Busy
from scaler.prometheus import PrometheusError, query

log = logging.getLogger("dynoscaler.scaler")

# A scale-down is decided within the request's Heroku budget: the two queries
# may take this long each.
BUSY_QUERY_TIMEOUT_SECONDS = 2.0
IN_PROGRESS = 'sum(dynoscaler_queue_in_progress{{app="{app}", role="{role}"}})'
OLDEST = 'max(dynoscaler_queue_oldest_in_progress_age_seconds{{app="{app}", role="{role}"}})'
BY_DYNO = 'sum by (dyno) (dynoscaler_dyno_in_progress{{app="{app}", role="{role}"}})'


class BusyReader:
    """Callable (app, role) -> Busy, asking Prometheus at `prometheus_url`."""

    def __init__(self, prometheus_url: str, timeout: float = BUSY_QUERY_TIMEOUT_SECONDS) -> None:
        self.prometheus_url = prometheus_url
        self.timeout = timeout

    def __call__(self, app: str, role: str) -> Busy:
        return Busy(
            self._value(IN_PROGRESS, app, role),
            self._value(OLDEST, app, role),
            self._by_dyno(app, role),
        )

    def _value(self, template: str, app: str, role: str) -> float | None:
        result = self._query(template, app, role)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def _by_dyno(self, app: str, role: str) -> dict[int, float] | None:
        result = self._query(BY_DYNO, app, role)
        if not result:
            return None
        by_dyno = {}
        for series in result:
            dyno, value = series["metric"].get("dyno", ""), float(series["value"][1])
            if not dyno.isdigit() or not math.isfinite(value):
                log.warning("%s/%s: dynoscaler_dyno_in_progress unusable: %s", app, role, series)
                return None
            by_dyno[int(dyno)] = value
        return by_dyno

    def _query(self, template: str, app: str, role: str) -> list[dict[str, Any]] | None:
        promql = template.format(app=app, role=role)
        try:
            return query(self.prometheus_url, promql, self.timeout)
        except PrometheusError as error:
            log.warning("%s/%s: cannot tell the jobs in progress: %s", app, role, error)
            return None
