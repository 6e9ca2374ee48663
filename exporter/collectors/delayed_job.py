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
ships, and selects neither the queue nor `failed_at`: the single pass reads every
row that is due or locked, failed ones included. On PostgreSQL with an index
starting (queue, locked_at, run_at) (WAITING_INDEX, partial on `failed_at IS NULL`;
exporter.sql_libraries.EXTRA_INDEXES) each queue is read from its ranges instead:
an index-only count of the unlocked due range (its first entry the oldest), of the
expired locks and of the live ones. On MySQL/MariaDB, with an index starting
(failed_at, queue, locked_at, run_at) (MYSQL_WAITING_INDEX), the same three ranges
are covering range scans of all the queues.
"""

from __future__ import annotations

from exporter.collectors.sql import MYSQL, POSTGRESQL, Dialect, deletions, index_on, union

# Delayed::Worker::DEFAULT_MAX_RUN_TIME.
MAX_RUN_SECONDS = 4 * 3600
WAITING_INDEX = ("delayed_jobs", ("queue", "locked_at", "run_at"))
_INDEXED = index_on(*WAITING_INDEX)
# MySQL/MariaDB have no partial index: failed_at leads instead
MYSQL_WAITING_INDEX = ("delayed_jobs", ("failed_at", "queue", "locked_at", "run_at"))


def statement(dialect: Dialect) -> str:
    now, names = dialect.time("now"), dialect.names
    expired = dialect.seconds_before("now", MAX_RUN_SECONDS)
    ready = f"run_at <= {now} AND (locked_at IS NULL OR locked_at < {expired})"
    locked = f"locked_by IS NOT NULL AND locked_at >= {expired}"
    single_pass = (
        f"SELECT queue, SUM(CASE WHEN {ready} THEN 1 ELSE 0 END) AS depth, "
        f"MIN(CASE WHEN {ready} THEN run_at END) AS since, "
        f"SUM(CASE WHEN {locked} THEN 1 ELSE 0 END) AS busy, 0 AS paused, 0 AS finished "
        f"FROM delayed_jobs WHERE failed_at IS NULL AND queue {names} "
        f"AND (run_at <= {now} OR locked_at >= {expired})"
    )
    if dialect is not POSTGRESQL:
        return union(dialect, [f"{single_pass} AND NOT {_MYSQL_INDEXED} GROUP BY queue"]
                     + _by_range(dialect, now, expired))  # fmt: skip
    return union(
        dialect,
        [
            f"{single_pass} AND NOT {_INDEXED} GROUP BY queue",
            _per_queue(now, expired),
            deletions("delayed_jobs"),
        ],
    )


def _per_queue(now: str, expired: str) -> str:
    """PostgreSQL with WAITING_INDEX: each queue's ranges of it (a one-time filter runs this
    part or the single pass)."""
    of_queue = "FROM delayed_jobs WHERE failed_at IS NULL AND queue = q AND"
    unlocked = f"{of_queue} locked_at IS NULL AND run_at <= {now}"
    lock_expired = f"{of_queue} locked_at < {expired} AND run_at <= {now}"
    return (
        f"SELECT q, (SELECT count(*) {unlocked}) + (SELECT count(*) {lock_expired}), "
        # the first entry of the unlocked range (every locked_at there is NULL: the order is
        # run_at's, and the planner sees that it is the index's)
        f"LEAST((SELECT run_at {unlocked} ORDER BY locked_at, run_at LIMIT 1), "
        f"(SELECT min(run_at) {lock_expired})), "
        f"(SELECT count(*) {of_queue} locked_at >= {expired} AND locked_by IS NOT NULL), 0, 0 "
        f"FROM unnest(%(names)s::text[]) AS q WHERE {_INDEXED}"
    )


_MYSQL_INDEXED = index_on(*MYSQL_WAITING_INDEX, dialect=MYSQL)


def _by_range(dialect: Dialect, now: str, expired: str) -> list[str]:
    """MySQL/MariaDB with MYSQL_WAITING_INDEX: the queues' ranges of it, each counted by a
    covering range scan, three parts for all queues (a one-time filter runs these or the
    single pass)."""
    of_queues = (
        f"FROM delayed_jobs WHERE failed_at IS NULL AND queue {dialect.names} "
        f"AND {_MYSQL_INDEXED} AND"
    )
    return [
        f"SELECT queue, COUNT(*), MIN(run_at), 0, 0, 0 {of_queues} locked_at IS NULL "
        f"AND run_at <= {now} GROUP BY queue",
        f"SELECT queue, COUNT(*), MIN(run_at), 0, 0, 0 {of_queues} locked_at < {expired} "
        f"AND run_at <= {now} GROUP BY queue",
        f"SELECT queue, 0, NULL, COUNT(*), 0, 0 {of_queues} locked_at >= {expired} "
        "AND locked_by IS NOT NULL GROUP BY queue",
    ]
