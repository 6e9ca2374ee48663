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
expired_at IS NULL, which holds every column read: one index-only pass over the due
jobs counts them all and takes the earliest `run_at` of those not locked (a hashed
look-up in the few locked ids); a second part takes the locked jobs, from `pg_locks`
to their rows by primary key, off the count and counts them as running.
"""

from __future__ import annotations

from exporter.collectors.sql import Dialect, deletions, union


def statement(dialect: Dialect) -> str:
    # Que's columns are timestamptz, unlike the Rails libraries' (dialect.time)
    now, names = "to_timestamp(%(now)s)", dialect.names
    unfinished = f"j.finished_at IS NULL AND j.expired_at IS NULL AND j.queue {names}"
    # read once, so that both parts see the same locks
    return f"WITH locked (id) AS MATERIALIZED ({_LOCKED})\n" + union(
        dialect,
        [
            "SELECT j.queue AS queue, count(*) AS depth, "
            f"min(j.run_at) FILTER (WHERE j.id NOT IN (SELECT id FROM locked)) AS since, "
            "0 AS busy, 0 AS paused, 0 AS finished "
            f"FROM que_jobs j WHERE {unfinished} AND j.run_at <= {now} GROUP BY j.queue",
            f"SELECT j.queue, -count(*) FILTER (WHERE j.run_at <= {now}), NULL, count(*), 0, 0 "
            "FROM que_jobs j WHERE j.id IN (SELECT id FROM locked) "
            f"AND {unfinished} GROUP BY j.queue",
            deletions("que_jobs"),
        ],
    )


# The ids of the jobs Que's workers hold: granted advisory locks of this database, whose
# bigint key has its high 32 bits in classid and its low ones in objid.
_LOCKED = (
    "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
    "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
