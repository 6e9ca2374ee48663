"""The jobs running on a role now, read from Prometheus for `scale_down_when_busy`.

The exporter publishes dynoscaler_queue_in_progress per queue, and
dynoscaler_queue_oldest_in_progress_age_seconds where a backend tells when its
running jobs started. A query that fails or finds nothing leaves the value
unknown, and scaler.guardrails.busy_refusal then holds the scale-down.
"""

from __future__ import annotations

import logging
import math

from scaler.guardrails import Busy
from scaler.prometheus import PrometheusError, query

log = logging.getLogger("dynoscaler.scaler")

# A scale-down is decided within the request's Heroku budget: the two queries
# may take this long each.
BUSY_QUERY_TIMEOUT_SECONDS = 2.0
IN_PROGRESS = 'sum(dynoscaler_queue_in_progress{{app="{app}", role="{role}"}})'
OLDEST = 'max(dynoscaler_queue_oldest_in_progress_age_seconds{{app="{app}", role="{role}"}})'


class BusyReader:
    """Callable (app, role) -> Busy, asking Prometheus at `prometheus_url`."""

    def __init__(self, prometheus_url: str, timeout: float = BUSY_QUERY_TIMEOUT_SECONDS) -> None:
        self.prometheus_url = prometheus_url
        self.timeout = timeout

    def __call__(self, app: str, role: str) -> Busy:
        return Busy(self._value(IN_PROGRESS, app, role), self._value(OLDEST, app, role))

    def _value(self, template: str, app: str, role: str) -> float | None:
        promql = template.format(app=app, role=role)
        try:
            result = query(self.prometheus_url, promql, self.timeout)
        except PrometheusError as error:
            log.warning("%s/%s: cannot tell the jobs in progress: %s", app, role, error)
            return None
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None
