"""One SQL database: every queue of every SQL job library on it, one statement per library.

The queue URL is the database's: `postgresql://` (or `postgres://`, read with
psycopg 3) or `mysql://` (also `mysql2://`, `trilogy://`, `mariadb://`, as Rails
and Heroku's add-ons write them; read with PyMySQL) for MySQL and MariaDB.
One connection per URL, opened on the first read and again after it breaks,
read-only, in UTC, each statement cut off at STATEMENT_SHARE of the source's
time-out (PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time`,
MySQL's `max_execution_time`), so a slow query ends on the server before the
scrape gives up on it.

Each library's statement (exporter/collectors/sql.py) is one SELECT for all its
queues in this database: one round trip and one snapshot per library. What one
statement cannot do costs only that library's queues here (a missing table:
their series left out, their roles' source_up 0); a queue whose figures cannot
be right (waiting jobs without a readable time: PostgreSQL's -infinity,
MariaDB's zero date) costs only its own queue. Both are ReadErrors, logged and
counted by the collector.

Completions: the libraries that keep finished jobs (Solid Queue, GoodJob) stamp
them with `finished_at`. The source counts, on each read, the jobs finished
between the end of the last counted window and FINISHED_LAG seconds ago, and
adds them to a counter of its own (0 when the exporter starts, a counter reset
for rate()). The lag leaves time for the worker's transaction to commit:
a job whose row commits more than FINISHED_LAG after its `finished_at`, or
whose worker's clock is that far behind the exporter's, is not counted.
The same window gives those jobs' enqueue-to-done times (sql_job_times).
The libraries that delete a finished job (Delayed Job, Que) are counted on
PostgreSQL by their table's deletions (sql.deletions), per table and not per
queue: published as the completions of the one app/role owning every queue
configured on that table here (with the queue's name when it is the only one,
else an empty queue label as Sidekiq's server-wide count), else not at all.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from dynoscaler.config import MYSQL_SCHEMES, POSTGRES_SCHEMES
from exporter.collectors import (
    Feed,
    PartialRead,
    Queue,
    ReadError,
    address,
    by_url,
    delayed_job,
    feeds,
    good_job,
    que,
    solid_queue,
    sql_job_times,
)
from exporter.collectors.sql import MYSQL, POSTGRESQL, Dialect, index_on
from exporter.metrics import HistogramSample, Sample

BACKENDS: dict[str, ModuleType] = {
    "solid_queue": solid_queue,
    "good_job": good_job,
    "delayed_job": delayed_job,
    "que": que,
}
STATEMENT_SHARE = 0.8
# The libraries that keep finished jobs with their finishing time.
COUNTS_COMPLETIONS = ("solid_queue", "good_job")
FINISHED_LAG = 5.0
# The libraries that delete a finished job: PostgreSQL counts the deletions.
COUNTS_DELETIONS = ("delayed_job", "que")

_log = logging.getLogger(__name__)


def dialect_of(url: str) -> Dialect | None:
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return POSTGRESQL
    return MYSQL if scheme in MYSQL_SCHEMES else None


class Database(Protocol):
    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]: ...

    def broken(self) -> bool: ...

    def close(self) -> None: ...


class _PostgreSQL:
    def __init__(self, url: str, timeout: float) -> None:
        psycopg = _driver("psycopg")
        statement_ms = max(1, int(timeout * STATEMENT_SHARE * 1000))
        self.connection = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, math.ceil(timeout)),
            # a server that stops answering mid-read (statement_timeout cannot
            # fire there): the connection breaks instead of hanging the source
            tcp_user_timeout=max(1, int(timeout * 1000)),
            keepalives_idle=max(1, math.ceil(timeout)),
            keepalives_interval=1,
            keepalives_count=2,
            application_name="dynoscaler-exporter",
            options=(
                f"-c statement_timeout={statement_ms} -c default_transaction_read_only=on "
                # parallel workers are the application's, not a monitor's to take; JIT
                # compiling (past jit_above_cost: a pass over a few million rows) costs
                # more than the short read it would speed up
                "-c TimeZone=UTC -c max_parallel_workers_per_gather=0 -c jit=off"
            ),
        )

    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()

    def broken(self) -> bool:
        return self.connection.broken or self.connection.closed

    def close(self) -> None:
        self.connection.close()


class _MySQL:
    def __init__(self, url: str, timeout: float) -> None:
        pymysql = _driver("pymysql")
        parts = urlsplit(url)
        socket = parse_qs(parts.query).get("socket") or parse_qs(parts.query).get("unix_socket")
        self.connection = pymysql.connect(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/")) or None,
            unix_socket=socket[0] if socket else None,
            connect_timeout=max(1, math.ceil(timeout)),
            read_timeout=math.ceil(timeout),
            write_timeout=math.ceil(timeout),
            autocommit=True,
        )
        seconds = timeout * STATEMENT_SHARE
        limit = (
            f"max_statement_time = {seconds:.3f}"
            if "MariaDB" in self.connection.get_server_info()
            else f"max_execution_time = {max(1, int(seconds * 1000))}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(f"SET SESSION time_zone = '+00:00', SESSION {limit}")
            cursor.execute("SET SESSION TRANSACTION READ ONLY")

    def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())

    def broken(self) -> bool:
        return not self.connection.open

    def close(self) -> None:
        if self.connection.open:
            self.connection.close()


class SqlSource:
    def __init__(self, url: str, queues: Sequence[Queue], timeout: float) -> None:
        dialect = dialect_of(url)
        if dialect is None:
            raise ValueError(f"{address(url)} is not a PostgreSQL or MySQL URL")
        self.address = address(url)
        self.feeds = feeds(queues)
        self.url, self.timeout, self.dialect = url, timeout, dialect
        self.parts = [
            (backend, BACKENDS[backend], [q for q in queues if q.backend == backend])
            for backend in sorted({queue.backend for queue in queues})
        ]
        self.database: Database | None = None
        self.indexes_looked_at = False  # logged once, at the first connection
        # per backend: the end of the last window of finished jobs counted
        self.counted_until: dict[str, float] = {}
        self.completed: Counter[tuple[str, ...]] = Counter()
        # per backend: the labels its table's deletions are published with
        self.deletions_of: dict[str, tuple[str, ...]] = {}
        self.job_times = sql_job_times.JobTimes()
        if dialect is POSTGRESQL:
            for backend, _, backend_queues in self.parts:
                if backend in COUNTS_DELETIONS:
                    self._own_deletions(backend, backend_queues)

    def read(self) -> list[Sample | HistogramSample]:
        if self.database is None or self.database.broken():
            self._connect()
        now = time.time()
        until = now - FINISHED_LAG
        samples: list[Sample | HistogramSample] = []
        errors: list[ReadError] = []
        for backend, module, queues in self.parts:
            parameters = {
                "names": [queue.name for queue in queues],
                "now": now,
                "since": self.counted_until.get(backend, until),
                "until": until,
            }
            try:
                rows = self._query(module.statement(self.dialect), parameters)
            except _StatementFailed as failure:
                errors.append(_queues_left_out(backend, backend, failure, queues))
                continue
            self.counted_until[backend] = until
            if backend in sql_job_times.BACKENDS:
                samples += self._job_times(backend, queues, until, errors)
            found = {str(row[0]): row for row in rows if row[0] is not None}
            deleted = [row[5] for row in rows if row[0] is None and row[5] is not None]
            if deleted and backend in self.deletions_of:
                labels = self.deletions_of[backend]
                samples.append(Sample("dynoscaler_jobs_completed", labels, int(deleted[0])))
            for queue in queues:
                row = found.get(queue.name, (queue.name, 0, None, 0, 0, 0))
                try:
                    samples += self._samples(queue, row, now)
                except ValueError as problem:
                    where = f"queue {queue.name} of {queue.app}/{queue.role}"
                    message = f"{backend}: {problem}: {where} left out"
                    errors.append(ReadError(backend, message, frozenset({_feed(queue)})))
        if errors:
            raise PartialRead(list(samples), errors)
        return samples

    def close(self) -> None:
        if self.database is not None:
            self.database.close()

    def _job_times(
        self, backend: str, queues: list[Queue], until: float, errors: list[ReadError]
    ) -> list[Sample | HistogramSample]:
        """The enqueue-to-done times of the finished jobs the library keeps (sql_job_times)."""
        parameters = {"names": [q.name for q in queues], **self.job_times.window(backend, until)}
        try:
            rows = self._query(sql_job_times.statement(self.dialect, backend), parameters)
        except _StatementFailed as failure:
            read = f"{backend} enqueue-to-done times"
            errors.append(_queues_left_out(backend, read, failure, queues))
            return []
        return self.job_times.add(backend, queues, rows, until)

    def _own_deletions(self, backend: str, queues: Sequence[Queue]) -> None:
        owners = sorted({(q.app, q.role) for q in queues})
        if len(owners) == 1:
            (app, role), names = owners[0], {q.name for q in queues}
            name = names.pop() if len(names) == 1 else ""
            self.deletions_of[backend] = (app, role, name, backend)
            return
        roles = ", ".join(f"{app}/{role}" for app, role in owners)
        _log.warning(
            "%s on %s: no dynoscaler_jobs_completed_total: the table's deletions count the "
            "finished jobs of every queue together, and roles %s share it",
            backend,
            self.address,
            roles,
        )

    def _connect(self) -> None:
        self.close()
        self.database = None
        self.database = connect(self.url, self.timeout)
        if not self.indexes_looked_at and self.dialect is POSTGRESQL:
            self._say_which_lack_their_index()
            self.indexes_looked_at = True

    def _say_which_lack_their_index(self) -> None:
        """Log once, at the first connection, each library here without the index its reads
        use for a deep backlog (docs/exporter.md gives its DDL): its reads pass over the
        waiting rows, exact but slower."""
        for backend, module, _ in self.parts:
            waiting_index = getattr(module, "WAITING_INDEX", None)
            if waiting_index is None:
                continue
            table, columns = waiting_index
            try:
                ((present,),) = self._query(f"SELECT {index_on(table, columns)}", {})
            except _StatementFailed:
                continue  # no such table: the read says so
            if not present:
                _log.info(
                    "%s on %s: no index on %s starting (%s): each read passes over the "
                    "waiting jobs (exact; about 0.5 ms a 1,000 of them); for a backlog of "
                    "100,000 add the index in docs/exporter.md",
                    backend,
                    self.address,
                    table,
                    ", ".join(columns),
                )

    def _query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        assert self.database is not None
        try:
            return self.database.query(sql, parameters)
        except Exception as error:
            if self.database.broken():
                raise  # the connection is gone: the whole source is down, reconnect next read
            raise _StatementFailed(_first_line(error)) from error

    def _samples(self, queue: Queue, row: tuple[Any, ...], now: float) -> list[Sample]:
        _, depth, since, busy, paused, finished = row
        depth, busy, finished, paused = int(depth), int(busy), int(finished), int(paused)
        labels = queue.labels
        self.completed[labels] += finished  # counted once, whatever else the row holds
        if depth > 0 and (since is None or not math.isfinite(float(since))):
            raise ValueError(f"{depth} waiting job(s) without a readable time")
        if paused:  # its jobs wait for someone to resume the queue, not for a dyno
            depth, since = 0, None
        age = 0.0 if depth == 0 else max(0.0, now - float(since))
        samples = [
            Sample("dynoscaler_queue_depth", labels, depth),
            Sample("dynoscaler_queue_oldest_age_seconds", labels, age),
            Sample("dynoscaler_queue_in_progress", labels, busy),
        ]
        if queue.backend == "solid_queue":
            samples.append(Sample("dynoscaler_queue_paused", labels, paused))
        if queue.backend in COUNTS_COMPLETIONS:
            samples.append(Sample("dynoscaler_jobs_completed", labels, self.completed[labels]))
        return samples


def connect(url: str, timeout: float) -> Database:
    """A read-only connection in UTC to a PostgreSQL or MySQL URL, each statement cut off
    at STATEMENT_SHARE of `timeout` (also `dynoscaler init`'s look at the libraries' tables)."""
    opened = _PostgreSQL if dialect_of(url) is POSTGRESQL else _MySQL
    return opened(url, timeout)


class _StatementFailed(Exception):
    """One statement failed on a connection that still works (a missing table, a time-out)."""


def _driver(name: str) -> ModuleType:
    """The database driver, imported only where a database of its kind is configured."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise RuntimeError(f"{name} is not installed: pip install 'dynoscaler[sql]'") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _feed(queue: Queue) -> Feed:
    return Feed(queue.backend, queue.app, queue.role)


def _queues_left_out(
    backend: str, read: str, failure: object, queues: Sequence[Queue]
) -> ReadError:
    """The error of a `read` that failed for all these queues of `backend`."""
    names = ", ".join(f"{q.name} of {q.app}/{q.role}" for q in queues)
    message = f"{read}: {failure}: queues {names} left out"
    return ReadError(backend, message, frozenset(_feed(q) for q in queues))


def sql_sources(queues: Sequence[tuple[str, Queue]], timeout: float) -> list[SqlSource]:
    """One source per database URL, from (url, queue) pairs of the BACKENDS."""
    return [SqlSource(url, group, timeout) for url, group in by_url(queues).items()]
