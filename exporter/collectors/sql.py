"""What the SQL job libraries' queries share: the row they return and the two SQL dialects.

Every backend module (solid_queue, good_job, delayed_job, que) has
`statement(dialect) -> str` (the databases each library runs on are
dynoscaler.config.SQL_SCHEMES, checked with the settings): one SELECT for all
the configured queues of that library in one database, with the parameters
`names` (the queue names), `now`, and `since`/`until` (the window of finished
jobs to count), giving one row per queue that has anything:

    queue, depth, since (epoch seconds of the oldest waiting job's time, or
    NULL), in_progress, paused (0 or 1), finished (jobs finished in the window)

On PostgreSQL, the libraries that delete a finished job (Delayed Job, Que)
add `deletions(table)`: one more row, whose queue is NULL (every other part
keeps only the configured names), with the table's deletions in `finished`.

`union(dialect, parts)` adds up the per-table parts of a backend into that row.
Times are passed in and read back as epoch seconds: a value the exporter's
Python could not hold (PostgreSQL's -infinity, MariaDB's zero date) becomes a
number or NULL the source can refuse for its own queue, never a failed fetch.
Rails writes its `datetime` columns in UTC; the sessions run in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str  # "postgresql" or "mysql" (MySQL and MariaDB)
    _time: str  # a time from an epoch-seconds parameter
    _epoch: str  # a time as epoch seconds
    names: str  # "column <names>": the column is one of the configured queues

    def time(self, parameter: str) -> str:
        return self._time.format(f"%({parameter})s")

    def epoch(self, expression: str) -> str:
        return self._epoch.format(expression)

    def seconds_before(self, parameter: str, seconds: int) -> str:
        if self.name == "postgresql":
            return f"({self.time(parameter)} - interval '{seconds} seconds')"
        return f"({self.time(parameter)} - INTERVAL {seconds} SECOND)"


POSTGRESQL = Dialect(
    "postgresql",
    # a `timestamp` (Rails' datetime, in UTC), as the columns it is compared with: against a
    # timestamptz each row's value would be converted first (about 20 ns a row here)
    "(to_timestamp({}) AT TIME ZONE 'UTC')",
    "extract(epoch from {})::float8",
    "= ANY(%(names)s)",
)
MYSQL = Dialect("mysql", "FROM_UNIXTIME({})", "UNIX_TIMESTAMP({})", "IN %(names)s")


def deletions(table: str) -> str:
    """The rows deleted from `table` since PostgreSQL's statistics were last reset, as a part
    with a NULL queue: `pg_stat_user_tables.n_tup_del`, cumulative, a counter for rate().

    NULL on a standby: recovery does not count the deletions it replays there.
    """
    return (
        "SELECT NULL, 0, NULL, 0, 0, CASE WHEN pg_is_in_recovery() THEN NULL ELSE n_tup_del END "
        f"FROM pg_stat_user_tables WHERE relid = to_regclass('{table}')"
    )


def index_on(table: str, columns: Sequence[str], dialect: Dialect = POSTGRESQL) -> str:
    """A condition true while `table` has a valid index (of any name) whose key starts with
    `columns`, such as the one docs/exporter.md recommends for a library.

    A backend's statement uses it as a one-time filter to pick its per-queue reads of that
    index or its single pass over the rows (MariaDB evaluates the uncorrelated subquery
    while planning: the part it rules out is an "Impossible WHERE"); the source logs its
    absence at connect (PostgreSQL).
    """
    if dialect is MYSQL:
        pairs = ", ".join(f"({n}, '{column}')" for n, column in enumerate(columns, 1))
        return (
            "EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND TABLE_NAME = '{table}' AND (SEQ_IN_INDEX, COLUMN_NAME) IN ({pairs}) "
            f"GROUP BY INDEX_NAME HAVING COUNT(*) = {len(columns)})"
        )
    leading = " AND ".join(
        f"EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = i.indrelid "
        f"AND a.attnum = i.indkey[{position}] AND a.attname = '{column}')"
        for position, column in enumerate(columns)
    )
    return (
        f"EXISTS (SELECT FROM pg_index i WHERE i.indrelid = to_regclass('{table}') "
        f"AND i.indisvalid AND {leading})"
    )


def union(dialect: Dialect, parts: Sequence[str]) -> str:
    """One row per queue from parts that each select (queue, depth, since, busy, paused, finished).

    `since` in the parts is a time; the result gives the earliest as epoch seconds.
    """
    body = "\n  UNION ALL\n  ".join(parts)
    return (
        "SELECT queue, SUM(depth), "
        f"{dialect.epoch('MIN(since)')}, SUM(busy), MAX(paused), SUM(finished)\n"
        f"FROM (\n  {body}\n) AS parts\nGROUP BY queue"
    )
