"""The share of jobs done within their deadline, enqueue to done, from Prometheus.

The exporter counts it exactly where workers report each job's enqueue time
(exporter.timing): dynoscaler_jobs_within_deadline_total against
dynoscaler_job_total_seconds_count. prometheus/rules/qos.yml records it over
fixed windows; `dynoscaler cost` and `dynoscaler shadow-report` ask for their
own period with the same expression.
"""

from __future__ import annotations


def within_share_query(window: str) -> str:
    """Per app/role, the share of the jobs finished in `window` (a PromQL duration)
    that met the deadline; no series for a role without enqueue-to-done times."""
    return (
        f"sum by (app, role) (increase(dynoscaler_jobs_within_deadline_total[{window}]))"
        f" / sum by (app, role) (increase(dynoscaler_job_total_seconds_count[{window}]))"
    )
