"""Benchmark the SQL sources' read on tables holding many finished jobs and a large backlog."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql

from dynoscaler.benchstats import percentile, positive_whole
from exporter.collectors import PartialRead, Queue
from exporter.collectors.sql_source import SqlSource, connect
from exporter.sql_libraries import create

QUEUES = 4  # the rows are spread over queue_0 .. queue_3, all read at each scrape
GOAL_MS = 50.0
TIMEOUT = 2.0  # source_timeout's default: statements are cut off at 1.6 s

# Per library and dialect: the statements that fill its table with `finished` rows
# that are done (or, for Delayed Job, which deletes what succeeds, failed and kept)
# and `ready` rows waiting, spread over the queues, as the library writes them.
# {rows} is a row source of `i` from 1 to the count, {queue} the queue of row i,
# {ago} a time i seconds (mod a day) before now, in UTC.
_FILL: dict[tuple[str, str], list[str]] = {
    ("solid_queue", "any"): [
        "INSERT INTO solid_queue_jobs (queue_name, class_name, priority, scheduled_at, "
        "finished_at, created_at, updated_at) SELECT {queue}, 'ReportJob', 0, {ago}, {ago}, "
        "{ago}, {ago} FROM {finished}",
        "INSERT INTO solid_queue_jobs (queue_name, class_name, priority, scheduled_at, "
        "created_at, updated_at) SELECT {queue}, 'ReportJob', 0, {ago}, {ago}, {ago} FROM {ready}",
        "INSERT INTO solid_queue_ready_executions (job_id, queue_name, priority, created_at) "
        "SELECT id, queue_name, priority, created_at FROM solid_queue_jobs "
        "WHERE finished_at IS NULL",
    ],
    ("good_job", "postgresql"): [
        "INSERT INTO good_jobs (queue_name, priority, serialized_params, scheduled_at, "
        "performed_at, finished_at, created_at, updated_at, job_class) SELECT {queue}, 0, "
        "'{{}}', {ago}, {ago}, {ago}, {ago}, {ago}, 'ReportJob' FROM {finished}",
        "INSERT INTO good_jobs (queue_name, priority, serialized_params, scheduled_at, "
        "created_at, updated_at, job_class) SELECT {queue}, 0, '{{}}', {ago}, {ago}, {ago}, "
        "'ReportJob' FROM {ready}",
    ],
    ("delayed_job", "any"): [
        "INSERT INTO delayed_jobs (priority, attempts, handler, last_error, run_at, failed_at, "
        "queue, created_at, updated_at) SELECT 0, 25, 'x', 'Boom', {ago}, {ago}, {queue}, "
        "{ago}, {ago} FROM {finished}",
        "INSERT INTO delayed_jobs (priority, attempts, handler, run_at, queue, created_at, "
        "updated_at) SELECT 0, 0, 'x', {ago}, {queue}, {ago}, {ago} FROM {ready}",
    ],
    ("que", "postgresql"): [
        "INSERT INTO que_jobs (queue, run_at, job_class, job_schema_version, finished_at) "
        "SELECT {queue}, {ago}, 'Report', 2, {ago} FROM {finished}",
        "INSERT INTO que_jobs (queue, run_at, job_class, job_schema_version) "
        "SELECT {queue}, {ago}, 'Report', 2 FROM {ready}",
    ],
}
_WORDS = {
    "postgresql": {
        "queue": "'queue_' || (i % 4)",
        "ago": "(now() AT TIME ZONE 'UTC') - (i % 86400) * interval '1 second'",
        "rows": "generate_series(1, {count}) AS i",
    },
    "mysql": {
        "queue": "CONCAT('queue_', i % 4)",
        "ago": "UTC_TIMESTAMP(6) - INTERVAL (i % 86400) SECOND",
        "rows": "(SELECT seq AS i FROM seq_1_to_{count}) AS numbers",
    },
}
# Per library: the peer each read is measured against, alternately on a second connection:
# a plain count of the rows the library's waiting jobs are among (the unfinished ones), the
# least an exact count of them costs here, so that the machine's load can be told apart.
_PEER = {
    "solid_queue": "SELECT count(*) FROM solid_queue_ready_executions",
    "good_job": "SELECT count(*) FROM good_jobs WHERE finished_at IS NULL",
    "delayed_job": "SELECT count(*) FROM delayed_jobs WHERE failed_at IS NULL",
    "que": "SELECT count(*) FROM que_jobs WHERE finished_at IS NULL AND expired_at IS NULL",
}
# The libraries measured on each database, in order (one database per dialect).
RUNS = {
    "postgresql": ("solid_queue", "good_job", "delayed_job", "que"),
    "mysql": ("solid_queue", "delayed_job"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finished", type=positive_whole, default=1_000_000, help="finished rows")
    parser.add_argument("--ready", type=positive_whole, default=100_000, help="waiting rows")
    parser.add_argument("--scrapes", type=positive_whole, default=50, help="reads per library")
    parser.add_argument(
        "--database", default="dynoscaler_bench_sql", help="created and dropped by every run"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL allowed to create databases",
    )
    parser.add_argument(
        "--mysql", default="mysql://root@127.0.0.1:3306/", help="a MySQL/MariaDB URL, likewise"
    )
    parser.add_argument(
        "--extra-indexes",
        action="store_true",
        help="also create the index each library lacks (exporter.sql_libraries.EXTRA_INDEXES)",
    )


def run(args: argparse.Namespace) -> int:
    print(
        f"{args.finished:,} finished and {args.ready:,} waiting rows over {QUEUES} queues, "
        f"{args.scrapes} reads each; goal {GOAL_MS:g} ms"
        f"{'; with the extra indexes' if args.extra_indexes else ''}"
    )
    print(
        "server CPU: the database server's own CPU time per read (PostgreSQL: the session's "
        "backend process; MariaDB/MySQL: the whole server), what the read costs on a quiet "
        "machine; '-' for a server not on this machine\n"
        f"load average at the start: {_load()}"
    )
    print(
        "peer: a plain SELECT count(*) of the unfinished rows, measured alternately with the "
        "reads; x peer: the read's median over the peer's"
    )
    header = (
        f"{'library':<12} {'database':<10} {'fill s':>7} {'median ms':>10} {'p99 ms':>8} "
        f"{'server CPU ms':>13} {'peer ms':>8} {'x peer':>7}"
    )
    print(f"{header}  depth read\n{'-' * (len(header) + 12)}", flush=True)
    wrong = False
    for dialect, libraries in RUNS.items():
        with _database(args, dialect) as (url, cursor):
            for library in libraries:
                started = time.perf_counter()
                _fill(cursor, library, dialect, args.finished, args.ready, args.extra_indexes)
                filled = time.perf_counter() - started
                times, cpu, depth, failed, peer = _measure(url, library, args.scrapes)
                wrong |= depth != args.ready
                read = "none" if depth is None else f"{depth:,}"
                median, peer_median = statistics.median(times), statistics.median(peer)
                print(
                    f"{library:<12} {dialect:<10} {filled:>7.1f} "
                    f"{median:>10.1f} {percentile(times, 99):>8.1f} "
                    f"{'-' if cpu is None else f'{cpu:.1f}':>13} {peer_median:>8.1f} "
                    f"{median / peer_median:>7.2f}  {read}"
                    f"{'' if depth == args.ready else ' WRONG'}"
                    f"{f' ({failed} reads cut off by the statement time-out)' if failed else ''}",
                    flush=True,
                )
    print(f"load average at the end: {_load()}")
    return 1 if wrong else 0


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def _fill(
    cursor: Any, library: str, dialect: str, finished: int, ready: int, extra_index: bool
) -> None:
    create(cursor, library, dialect, extra_index)
    words = _WORDS[dialect]
    statements = _FILL.get((library, dialect)) or _FILL[(library, "any")]
    for statement in statements:
        cursor.execute(
            statement.format(
                queue=words["queue"],
                ago=words["ago"],
                finished=words["rows"].format(count=finished),
                ready=words["rows"].format(count=ready),
            )
        )
    # What autovacuum would have done to a table this old: statistics, visibility map.
    for table in _tables(cursor, dialect, library):
        cursor.execute(
            f"{'VACUUM ANALYZE' if dialect == 'postgresql' else 'ANALYZE TABLE'} {table}"
        )
        if dialect == "mysql":
            cursor.fetchall()


def _tables(cursor: Any, dialect: str, library: str) -> list[str]:
    """The library's tables (their names start with its own)."""
    if dialect == "postgresql":
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    else:
        cursor.execute("SHOW TABLES")
    return [row[0] for row in cursor.fetchall() if row[0].startswith(library.split("_")[0])]


def _measure(
    url: str, library: str, scrapes: int
) -> tuple[list[float], float | None, int | None, int, list[float]]:
    """Milliseconds of each read (after one to connect), the server's CPU milliseconds per
    read, the depth the last whole read saw, how many reads failed (the statement
    time-out cut them off), and milliseconds of each peer count (_PEER) run after a read."""
    queues = [Queue("bench", "worker", f"queue_{n}", library) for n in range(QUEUES)]
    source = SqlSource(url, queues, TIMEOUT)
    peer_database = connect(url, TIMEOUT)
    times, depth, failed, peer = [], None, 0, []
    server, cpu_seconds, cpu_reads = None, 0.0, 0  # the server's CPU in the reads, not the peer's
    try:
        for scrape in range(scrapes + 1):
            cpu_before = _cpu_seconds(server)
            started = time.perf_counter()
            try:
                samples = source.read()
            except PartialRead:
                failed += 1
                samples = None
            if scrape:  # the first read also connects
                times.append((time.perf_counter() - started) * 1000)
                cpu_after = _cpu_seconds(server)
                if cpu_before is not None and cpu_after is not None:
                    cpu_seconds, cpu_reads = cpu_seconds + cpu_after - cpu_before, cpu_reads + 1
            else:
                server = _server_process(source)
            if samples is not None:
                depth = sum(int(s.value) for s in samples if s.metric == "dynoscaler_queue_depth")
            started = time.perf_counter()
            peer_database.query(_PEER[library], {})
            if scrape:
                peer.append((time.perf_counter() - started) * 1000)
    finally:
        source.close()
        peer_database.close()
    cpu = cpu_seconds * 1000 / cpu_reads if cpu_reads else None
    return times, cpu, depth, failed, peer


def _server_process(source: SqlSource) -> int | None:
    """The process doing the source's reads on the server: PostgreSQL's backend of the
    session, the MySQL/MariaDB server."""
    connection: Any = getattr(source.database, "connection", None)
    if isinstance(connection, psycopg.Connection):
        return connection.info.backend_pid
    if connection is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@pid_file")
            (pid_file,) = cursor.fetchone()
        try:
            with open(pid_file) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None
    return None


def _cpu_seconds(pid: int | None) -> float | None:
    """User and system CPU seconds of a process on this machine, or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _database(args: argparse.Namespace, dialect: str) -> Iterator[tuple[str, Any]]:
    """A new empty database, its URL and a cursor on it; dropped afterwards."""
    if dialect == "postgresql":
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {args.database}")
            url = urlsplit(args.postgres)._replace(path=f"/{args.database}").geturl()
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    yield url, connection.cursor()
            finally:
                admin.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        return
    parts = urlsplit(args.mysql)
    admin = pymysql.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
        password=parts.password or "", autocommit=True,
    )  # fmt: skip
    cursor = admin.cursor()
    try:
        cursor.execute(f"DROP DATABASE IF EXISTS {args.database}")
        cursor.execute(f"CREATE DATABASE {args.database}")
        admin.select_db(args.database)
        yield parts._replace(path=f"/{args.database}").geturl(), cursor
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS {args.database}")
        admin.close()
