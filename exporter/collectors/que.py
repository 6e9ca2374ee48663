"""Que (PostgreSQL): the `que_jobs` table and the advisory locks its workers hold.

- depth: rows with `finished_at` and `expired_at` null and `run_at` <= now that
  no worker holds: Que locks a job it works with `pg_try_advisory_lock(id)`, so
  a job is running exactly while that lock is in `pg_locks` (as Que's own
  `job_stats` reads it, lib/que/utils/introspection.rb; here only granted locks
  of this database). Retries (a later `run_at`) count once due, with or
  without a worker running.
- oldest age: since the earliest `run_at` of those rows.
- in progress: unfinished jobs whose advisory lock is held.
- completed: Que destroys a job that returns without `finish` (the default),
  so finished rows are not a count of completions; the table's deletions are
  (sql.deletions; the source publishes them only for a table one role owns).

Index: `que_poll_idx` (queue, priority, run_at, id) WHERE finished_at IS NULL AND
expired_at IS NULL.
"""

from __future__ import annotations

from exporter.collectors.sql import Dialect, deletions, union


def statement(dialect: Dialect) -> str:
    now, names = dialect.time("now"), dialect.names
    waiting = f"l.id IS NULL AND j.run_at <= {now}"
    return union(
        dialect,
        [
            f"SELECT j.queue AS queue, count(*) FILTER (WHERE {waiting}) AS depth, "
            f"min(j.run_at) FILTER (WHERE {waiting}) AS since, "
            "count(l.id) AS busy, 0 AS paused, 0 AS finished "
            "FROM que_jobs j LEFT JOIN ("
            # a bigint key: classid holds its high 32 bits, objid the low ones
            "SELECT DISTINCT (classid::bigint << 32) | objid::bigint AS id FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ") l ON l.id = j.id "
            f"WHERE j.finished_at IS NULL AND j.expired_at IS NULL AND j.queue {names} "
            f"AND (j.run_at <= {now} OR l.id IS NOT NULL) GROUP BY j.queue",
            deletions("que_jobs"),
        ],
    )
