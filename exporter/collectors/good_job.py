"""GoodJob (PostgreSQL): the `good_jobs` table, by GoodJob::Job's own scopes
(`queued`, `running`, `finished`: app/models/good_job/job.rb).

- depth: `queued`: `performed_at` and `finished_at` null and
  coalesce(`scheduled_at`, `created_at`) <= now. Scheduled jobs and retries
  (GoodJob re-enqueues a retry in the same row with a later `scheduled_at`)
  count once due, with or without a GoodJob process running.
- oldest age: since the earliest coalesce(`scheduled_at`, `created_at`) of the
  queued jobs (a scheduled job waits from its due time).
- in progress: `running`: `performed_at` set, `finished_at` null.
- completed: jobs whose `finished_at` (succeeded or discarded; kept while
  `preserve_job_records`, the default) falls in the window the source counts.
  Discarded jobs never count as waiting or running.

Indexes used: `index_good_jobs_on_queue_name_and_scheduled_at` (queue_name,
scheduled_at) WHERE finished_at IS NULL, and
`index_good_jobs_jobs_on_finished_at_only` for the finished window.
"""

from __future__ import annotations

from exporter.collectors.sql import Dialect, union


def statement(dialect: Dialect) -> str:
    now, names = dialect.time("now"), dialect.names
    since, until = dialect.time("since"), dialect.time("until")
    queued = f"performed_at IS NULL AND coalesce(scheduled_at, created_at) <= {now}"
    return union(
        dialect,
        [
            f"SELECT queue_name AS queue, count(*) FILTER (WHERE {queued}) AS depth, "
            f"min(coalesce(scheduled_at, created_at)) FILTER (WHERE {queued}) AS since, "
            "count(*) FILTER (WHERE performed_at IS NOT NULL) AS busy, 0 AS paused, "
            f"0 AS finished FROM good_jobs WHERE finished_at IS NULL AND queue_name {names} "
            "GROUP BY queue_name",
            "SELECT queue_name, 0, NULL, 0, 0, count(*) FROM good_jobs "
            f"WHERE finished_at > {since} AND finished_at <= {until} AND queue_name {names} "
            "GROUP BY queue_name",
        ],
    )
