"""The formation the exporter knows, read from Prometheus, to spare the scaler's formation read.

With formation webhooks the exporter hears of every change at once (the
scaler's own PATCHes, changes by hand, deploys), so its `dynoscaler_dynos` is
Heroku's count as of its last scrape, however long ago its last read. Where
that count equals the one the scaler stored from Heroku's own answers, nothing
changed in between that the scaler does not know of, and the count stands for
a formation read (scaler.service.Scaler); so it does where none is stored
yet. Without webhooks the exporter's counts are as old as its last read of
the app, which at fleet size is many minutes: no count is given then, and the
scaler reads.

What a query cannot show: a change made since the exporter's last scrape (5 s,
and the delivery's own delay) is not known before a change is sent.
"""

from __future__ import annotations

import logging
import math

from scaler.prometheus import PrometheusError, query

log = logging.getLogger("dynoscaler.scaler")

# The query is made within the request's Heroku budget (scaler.deadline): a slow
# Prometheus costs this much at most before the scaler reads Heroku instead.
KNOWN_QUERY_TIMEOUT_SECONDS = 1.0
# Counts only from an exporter that takes formation webhooks (exporter/collectors/formation.py).
KNOWN = 'dynoscaler_dynos{{app="{app}"}} and on () (dynoscaler_heroku_formation_webhooks == 1)'


class KnownFormation:
    """Callable app -> {role: count} of the roles whose count the exporter holds
    current through webhooks ({} when it holds none, or Prometheus cannot tell)."""

    def __init__(self, prometheus_url: str, timeout: float = KNOWN_QUERY_TIMEOUT_SECONDS) -> None:
        self.prometheus_url = prometheus_url
        self.timeout = timeout

    def __call__(self, app: str) -> dict[str, int]:
        try:
            result = query(self.prometheus_url, KNOWN.format(app=app), self.timeout)
        except PrometheusError as error:
            log.info("%s: the exporter's formation unknown, Heroku is read: %s", app, error)
            return {}
        counts: dict[str, int] = {}
        for series in result:
            role, value = series["metric"].get("role"), float(series["value"][1])
            if role is None or not math.isfinite(value) or value != int(value):
                return {}
            if counts.setdefault(role, int(value)) != int(value):
                return {}  # two exporters that disagree: read Heroku
        return counts
