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
scheduled_at) WHERE finished_at IS NULL (one pass over the unfinished jobs, with
their rows for `performed_at` and `created_at`), and
`index_good_jobs_jobs_on_finished_at_only` for the finished window. On PostgreSQL
with an index starting (queue_name, performed_at, scheduled_at) (WAITING_INDEX;
exporter.sql_libraries.EXTRA_INDEXES) each queue is read from its ranges instead:
an index-only count of the queued range (`performed_at` null, `scheduled_at` <= now;
its first entry the oldest), of the running range (`performed_at` set) and of the
few entries without a `scheduled_at`.
"""

from __future__ import annotations

from exporter.collectors.sql import Dialect, index_on, union

WAITING_INDEX = ("good_jobs", ("queue_name", "performed_at", "scheduled_at"))
_INDEXED = index_on(*WAITING_INDEX)


def statement(dialect: Dialect) -> str:
    now, names = dialect.time("now"), dialect.names
    since, until = dialect.time("since"), dialect.time("until")
    return union(
        dialect,
        [
            *_unfinished(now, names),
            "SELECT queue_name, 0, NULL, 0, 0, count(*) FROM good_jobs "
            f"WHERE finished_at > {since} AND finished_at <= {until} AND queue_name {names} "
            "GROUP BY queue_name",
        ],
    )


def _unfinished(now: str, names: str) -> list[str]:
    """The queued and running jobs: two parts of which a one-time filter runs one, the
    per-queue index ranges when WAITING_INDEX is there, else a single pass."""
    queued = f"performed_at IS NULL AND coalesce(scheduled_at, created_at) <= {now}"
    single_pass = (
        f"SELECT queue_name AS queue, count(*) FILTER (WHERE {queued}) AS depth, "
        f"min(coalesce(scheduled_at, created_at)) FILTER (WHERE {queued}) AS since, "
        "count(*) FILTER (WHERE performed_at IS NOT NULL) AS busy, 0 AS paused, "
        f"0 AS finished FROM good_jobs WHERE finished_at IS NULL AND queue_name {names} "
        f"AND NOT {_INDEXED} GROUP BY queue_name"
    )
    of_queue = "FROM good_jobs WHERE finished_at IS NULL AND queue_name = q AND"
    due = f"{of_queue} performed_at IS NULL AND scheduled_at <= {now}"
    unscheduled = (
        f"{of_queue} performed_at IS NULL AND scheduled_at IS NULL AND created_at <= {now}"
    )
    per_queue = (
        f"SELECT q, (SELECT count(*) {due}) + (SELECT count(*) {unscheduled}), "
        # the first entry of the queued range (every performed_at there is NULL: the order is
        # scheduled_at's, and the planner sees that it is the index's)
        f"LEAST((SELECT scheduled_at {due} ORDER BY performed_at, scheduled_at LIMIT 1), "
        f"(SELECT min(created_at) {unscheduled})), "
        f"(SELECT count(*) {of_queue} performed_at IS NOT NULL), 0, 0 "
        f"FROM unnest(%(names)s::text[]) AS q WHERE {_INDEXED}"
    )
    return [single_pass, per_queue]
