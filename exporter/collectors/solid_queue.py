"""Solid Queue (Rails 8's default): its execution tables, as its own models define them.

- depth: `solid_queue_ready_executions` of the queue, plus the scheduled
  executions that are due (`scheduled_at` <= now) and the blocked executions
  whose concurrency lock has expired (`expires_at` <= now). Solid Queue's
  dispatcher, which moves due and expired ones to ready, runs in a Solid Queue
  process: with none running (a role at zero dynos) they would never count.
- oldest age: since the earliest of the ready executions' `created_at` (when the
  job became ready), the due scheduled ones' `scheduled_at` and the expired
  blocked ones' `expires_at`. Solid Queue's own `Queue#size` and `#latency`
  (app/models/solid_queue/queue.rb) are the ready part: the count and the
  earliest `created_at` of the queue's ready executions.
- in progress: `solid_queue_claimed_executions` (joined to their job for its
  queue) of processes whose heartbeat is younger than Solid Queue's
  `process_alive_threshold` (5 minutes): a claim of a dead process is released
  or failed by the next supervisor that prunes it, it is not running.
- paused: a row in `solid_queue_pauses`. Workers take nothing from a paused
  queue, so its waiting jobs wait for a person, not a dyno: depth and oldest age
  are 0 and `dynoscaler_queue_paused` is 1.
- completed: jobs whose `finished_at` (kept while `preserve_finished_jobs`, the
  default) or failed execution's `created_at` falls in the window the source
  counts.

Indexes used: `index_solid_queue_poll_by_queue` (queue_name, priority, job_id),
`index_solid_queue_dispatch_all` (scheduled_at, ...),
`index_solid_queue_blocked_executions_for_maintenance` (expires_at, ...),
`index_solid_queue_jobs_for_filtering` (queue_name, finished_at). No shipped index
holds the ready executions' `created_at`: their count and earliest time are one pass
over the queue's rows, unless the app adds a (queue_name, created_at) index (PostgreSQL:
then read per queue, an index-only count and the first entry; 48 -> 16 ms of server CPU
at 100,000 ready rows, docs/exporter.md).
"""

from __future__ import annotations

from exporter.collectors.sql import Dialect, index_on, union

# SolidQueue.process_alive_threshold's default.
PROCESS_ALIVE_SECONDS = 300


# PostgreSQL: a (queue_name, created_at) index on the ready executions (any name;
# exporter.sql_libraries.EXTRA_INDEXES), so that each queue's count is an index-only scan of
# its range and its earliest created_at the range's first entry. Without one, a single pass
# over the ready rows (count and min together) is the cheaper plan.
WAITING_INDEX = ("solid_queue_ready_executions", ("queue_name", "created_at"))
_AGE_INDEXED = index_on(*WAITING_INDEX)


def statement(dialect: Dialect) -> str:
    now, names = dialect.time("now"), dialect.names
    since, until = dialect.time("since"), dialect.time("until")
    alive = dialect.seconds_before("now", PROCESS_ALIVE_SECONDS)
    return union(
        dialect,
        [
            *_ready(dialect),
            "SELECT queue_name, COUNT(*), MIN(scheduled_at), 0, 0, 0 "
            f"FROM solid_queue_scheduled_executions WHERE scheduled_at <= {now} "
            f"AND queue_name {names} GROUP BY queue_name",
            "SELECT queue_name, COUNT(*), MIN(expires_at), 0, 0, 0 "
            f"FROM solid_queue_blocked_executions WHERE expires_at <= {now} "
            f"AND queue_name {names} GROUP BY queue_name",
            "SELECT j.queue_name, 0, NULL, COUNT(*), 0, 0 FROM solid_queue_claimed_executions c "
            "JOIN solid_queue_jobs j ON j.id = c.job_id "
            "JOIN solid_queue_processes p ON p.id = c.process_id "
            f"WHERE p.last_heartbeat_at > {alive} AND j.queue_name {names} "
            "GROUP BY j.queue_name",
            f"SELECT queue_name, 0, NULL, 0, 1, 0 FROM solid_queue_pauses WHERE queue_name {names}",
            "SELECT queue_name, 0, NULL, 0, 0, COUNT(*) FROM solid_queue_jobs "
            f"WHERE finished_at > {since} AND finished_at <= {until} AND queue_name {names} "
            "GROUP BY queue_name",
            "SELECT j.queue_name, 0, NULL, 0, 0, COUNT(*) FROM solid_queue_failed_executions f "
            "JOIN solid_queue_jobs j ON j.id = f.job_id "
            f"WHERE f.created_at > {since} AND f.created_at <= {until} AND j.queue_name {names} "
            "GROUP BY j.queue_name",
        ],
    )


def _ready(dialect: Dialect) -> list[str]:
    """The ready executions' part: on PostgreSQL, two parts of which a one-time filter runs
    one, the per-queue index reads when the (queue_name, created_at) index is there."""
    single_pass = (
        "SELECT queue_name AS queue, COUNT(*) AS depth, MIN(created_at) AS since, "
        "0 AS busy, 0 AS paused, 0 AS finished FROM solid_queue_ready_executions "
        f"WHERE queue_name {dialect.names}"
    )
    if dialect.name != "postgresql":
        return [f"{single_pass} GROUP BY queue_name"]
    ready = "FROM solid_queue_ready_executions r WHERE r.queue_name = q"
    return [
        f"{single_pass} AND NOT {_AGE_INDEXED} GROUP BY queue_name",
        f"SELECT q, (SELECT count(*) {ready}), (SELECT min(r.created_at) {ready}), 0, 0, 0 "
        f"FROM unnest(%(names)s::text[]) AS q WHERE {_AGE_INDEXED}",
    ]
