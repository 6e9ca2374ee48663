"""Delayed Job (delayed_job_active_record): the `delayed_jobs` table, by its `ready_to_run`.

- depth: rows with `run_at` <= now, `failed_at` null, and not locked: `locked_at`
  null or older than the workers' `max_run_time` (4 hours, Delayed::Worker's
  default), after which Delayed Job takes the job again. Jobs with a later
  `run_at` (scheduled, or retries waiting out their back-off) count once due,
  with or without a worker running.
- oldest age: since the earliest `run_at` of those rows.
- in progress: rows locked by a worker (`locked_by` set, `locked_at` within
  `max_run_time`), not failed.
- completed: Delayed Job deletes a job when it succeeds (and a failed one
  after `max_attempts` while `destroy_failed_jobs`, the default), so on
  PostgreSQL the table's deletions count them (sql.deletions; the source
  publishes them only for a table one role owns). MySQL keeps no such count.
Jobs whose `queue` is NULL (no queue name) belong to no configured queue.

Index: `delayed_jobs_priority` (priority, run_at) is the only one the library
ships; the query reads the rows that are due.
"""

from __future__ import annotations

from exporter.collectors.sql import POSTGRESQL, Dialect, deletions, union

# Delayed::Worker::DEFAULT_MAX_RUN_TIME.
MAX_RUN_SECONDS = 4 * 3600


def statement(dialect: Dialect) -> str:
    now, names = dialect.time("now"), dialect.names
    expired = dialect.seconds_before("now", MAX_RUN_SECONDS)
    ready = f"run_at <= {now} AND (locked_at IS NULL OR locked_at < {expired})"
    locked = f"locked_by IS NOT NULL AND locked_at >= {expired}"
    deleted = [deletions("delayed_jobs")] if dialect is POSTGRESQL else []
    return union(
        dialect,
        [
            f"SELECT queue, SUM(CASE WHEN {ready} THEN 1 ELSE 0 END) AS depth, "
            f"MIN(CASE WHEN {ready} THEN run_at END) AS since, "
            f"SUM(CASE WHEN {locked} THEN 1 ELSE 0 END) AS busy, 0 AS paused, 0 AS finished "
            f"FROM delayed_jobs WHERE failed_at IS NULL AND queue {names} "
            f"AND (run_at <= {now} OR locked_at >= {expired}) GROUP BY queue",
            *deleted,
        ],
    )
