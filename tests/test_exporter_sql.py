"""The SQL job backends against the real PostgreSQL and MariaDB of this machine.

Each run creates its own databases (dropped after), the libraries' tables from
their published schemas (exporter/sql_libraries.py), and rows as each library
writes them; the expected figures are each library's own definition of
waiting, running and finished applied to those rows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg import ClientCursor

from dynoscaler.config import ConfigError, parse
from exporter import bench_sql
from exporter.collectors import PartialRead, Queue, delayed_job, good_job, que, solid_queue
from exporter.collectors.sql import POSTGRESQL
from exporter.collectors.sql_source import FINISHED_LAG, SqlSource
from exporter.metrics import QUEUE_LABELS, Sample
from exporter.sql_libraries import EXTRA_INDEXES, create
from tests.exporter_helpers import exporter, queue_figures, write_config
from tests.rules_support import probe, selector, values

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}
DATABASE = f"dynoscaler_sql_test_{os.getpid()}"
POSTGRES_URL = f"postgresql://postgres:hunter2@127.0.0.1:5432/{DATABASE}"
MARIADB_URL = f"mysql://root@127.0.0.1:3306/{DATABASE}"
TIMEOUT = 2.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[psycopg.Connection]:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
        try:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                for library in ("solid_queue", "good_job", "delayed_job", "que"):
                    create(connection.cursor(), library, "postgresql")
                yield connection
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.fixture(scope="module")
def mariadb() -> Iterator[pymysql.Connection]:
    connection = pymysql.connect(**MARIADB, autocommit=True)
    cursor = connection.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    cursor.execute(f"CREATE DATABASE {DATABASE}")
    try:
        connection.select_db(DATABASE)
        cursor.execute("SET time_zone = '+00:00'")
        for library in ("solid_queue", "delayed_job"):
            create(cursor, library, "mysql")
        yield connection
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        connection.close()


@pytest.fixture(params=["postgresql", "mysql"])
def database(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(url, cursor) of PostgreSQL, then of MariaDB, with the tables emptied."""
    if request.param == "postgresql":
        connection = request.getfixturevalue("postgres")
        url = POSTGRES_URL
    else:
        connection = request.getfixturevalue("mariadb")
        url = MARIADB_URL
    cursor = connection.cursor()
    # MySQL's tables here have no foreign keys to cascade: each is emptied
    for table in ("jobs", "ready_executions", "scheduled_executions", "blocked_executions",
                  "claimed_executions", "failed_executions", "processes", "pauses"):  # fmt: skip
        cursor.execute(f"DELETE FROM solid_queue_{table}")
    cursor.execute("DELETE FROM delayed_jobs")
    return url, cursor


def utc(seconds: float) -> datetime:
    """A Rails `datetime` value: UTC, without a zone."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def figures(samples: list[Sample], name: str, backend: str) -> dict[str, float]:
    found = {s.metric: s.value for s in samples if s.labels[2:] == (name, backend)}
    return {metric.removeprefix("dynoscaler_"): value for metric, value in found.items()}


def read(url: str, queues: list[Queue]) -> list[Sample]:
    return SqlSource(url, queues, TIMEOUT).read()


@contextlib.contextmanager
def extra_index(cursor: Any, library: str, dialect: str = "postgresql") -> Iterator[str]:
    """The index docs/exporter.md recommends for `library`, dropped after."""
    ddl = EXTRA_INDEXES[(library, dialect)]
    index, table = ddl.split()[2], ddl.split()[4]
    cursor.execute(ddl)
    try:
        yield index
    finally:
        cursor.execute(f"DROP INDEX {index}" + ("" if dialect == "postgresql" else f" ON {table}"))


def with_and_without_index(url: str, cursor: Any, library: str, queue: Queue) -> list[dict]:
    """The queue's figures read on the shipped indexes and again with the extra index (read
    from its ranges): the same rows, so the same figures."""
    found = [figures(read(url, [queue]), queue.name, library)]
    with extra_index(cursor, library, "postgresql" if "postgresql" in url else "mysql"):
        found.append(figures(read(url, [queue]), queue.name, library))
    return found


# -- Solid Queue -------------------------------------------------------------------


def _solid_job(cursor: Any, queue: str, now: float, **columns: Any) -> int:
    """A solid_queue_jobs row as SolidQueue::Job.enqueue creates it."""
    values = {
        "queue_name": queue,
        "class_name": "ReportJob",
        "arguments": "{}",
        "priority": 0,
        "scheduled_at": utc(now),
        "created_at": utc(now),
        "updated_at": utc(now),
        **columns,
    }
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    cursor.execute(
        f"INSERT INTO solid_queue_jobs ({names}) VALUES ({marks})", list(values.values())
    )
    cursor.execute("SELECT max(id) FROM solid_queue_jobs")
    return int(cursor.fetchone()[0])


def _execution(cursor: Any, table: str, job: int, **columns: Any) -> None:
    names = ", ".join(["job_id", *columns])
    marks = ", ".join(["%s"] * (1 + len(columns)))
    cursor.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", [job, *columns.values()])


def _process(cursor: Any, heartbeat: float) -> int:
    cursor.execute(
        "INSERT INTO solid_queue_processes (kind, last_heartbeat_at, pid, hostname, "
        "created_at, name) VALUES ('Worker', %s, 4242, 'web.1', %s, %s)",
        [utc(heartbeat), utc(heartbeat), f"worker-{heartbeat}"],
    )
    cursor.execute("SELECT max(id) FROM solid_queue_processes")
    return int(cursor.fetchone()[0])


def test_solid_queue_counts_as_solid_queue_does(database: tuple[str, Any]) -> None:
    """Ready, due scheduled and expired blocked executions wait (no Solid Queue process runs
    to dispatch them: a role at zero dynos); claims of live processes run; a paused queue
    waits for nobody; finished and failed jobs count once."""
    url, cursor = database
    now = time.time()
    for _ in range(3):
        job = _solid_job(cursor, "default", now - 30)
        _execution(cursor, "solid_queue_ready_executions", job, queue_name="default",
                   priority=0, created_at=utc(now - 30))  # fmt: skip
    due = _solid_job(cursor, "default", now - 120, scheduled_at=utc(now - 10))
    later = _solid_job(cursor, "default", now - 120, scheduled_at=utc(now + 600))
    for job, at in ((due, now - 10), (later, now + 600)):
        _execution(cursor, "solid_queue_scheduled_executions", job, queue_name="default",
                   priority=0, scheduled_at=utc(at), created_at=utc(now - 120))  # fmt: skip
    for expires in (now - 50, now + 300):  # limits_concurrency: blocked until the lock expires
        job = _solid_job(cursor, "default", now - 200, concurrency_key="Report/1")
        _execution(cursor, "solid_queue_blocked_executions", job, queue_name="default",
                   priority=0, concurrency_key="Report/1", expires_at=utc(expires),
                   created_at=utc(now - 200))  # fmt: skip
    alive, dead = _process(cursor, now - 20), _process(cursor, now - 3600)
    for process in (alive, alive, dead):
        job = _solid_job(cursor, "default", now - 5)
        _execution(cursor, "solid_queue_claimed_executions", job, process_id=process,
                   created_at=utc(now - 5))  # fmt: skip
    for _ in range(2):
        job = _solid_job(cursor, "mail", now - 40)
        _execution(cursor, "solid_queue_ready_executions", job, queue_name="mail",
                   priority=0, created_at=utc(now - 40))  # fmt: skip
    cursor.execute(
        "INSERT INTO solid_queue_pauses (queue_name, created_at) VALUES ('mail', %s)", [utc(now)]
    )
    queues = [Queue("shop", "worker", name, "solid_queue") for name in ("default", "mail")]
    source = SqlSource(url, queues, TIMEOUT)
    default = figures(source.read(), "default", "solid_queue")
    assert default["queue_depth"] == 3 + 1 + 1
    assert abs(default["queue_oldest_age_seconds"] - (time.time() - (now - 50))) < 1
    assert default["queue_in_progress"] == 2
    assert default["queue_paused"] == 0
    assert default["jobs_completed"] == 0
    mail = figures(source.read(), "mail", "solid_queue")
    assert (mail["queue_depth"], mail["queue_oldest_age_seconds"], mail["queue_paused"]) == (
        0,
        0,
        1,
    )

    # Finished after the first read's window: counted once the lag has passed them.
    finished = time.time() - FINISHED_LAG + 0.2
    for _ in range(3):
        _solid_job(cursor, "default", finished - 1, finished_at=utc(finished))
    failed = _solid_job(cursor, "default", finished - 1)
    _execution(cursor, "solid_queue_failed_executions", failed, error="boom",
               created_at=utc(finished))  # fmt: skip
    time.sleep(0.3)
    assert figures(source.read(), "default", "solid_queue")["jobs_completed"] == 4
    assert figures(source.read(), "default", "solid_queue")["jobs_completed"] == 4


# -- Delayed Job -------------------------------------------------------------------


def _delayed_job(cursor: Any, queue: str | None, run_at: float, **columns: Any) -> None:
    """A delayed_jobs row as Delayed::Job.enqueue writes it (locked and failed as a worker does)."""
    values = {"priority": 0, "attempts": 0, "handler": "--- !ruby/object:Report {}\n",
              "run_at": utc(run_at), "queue": queue, "created_at": utc(run_at),
              "updated_at": utc(run_at), **columns}  # fmt: skip
    names, marks = ", ".join(values), ", ".join(["%s"] * len(values))
    cursor.execute(f"INSERT INTO delayed_jobs ({names}) VALUES ({marks})", list(values.values()))


def test_delayed_job_counts_what_ready_to_run_takes(database: tuple[str, Any]) -> None:
    """Due, unlocked, not failed jobs wait (a lock older than max_run_time is taken again);
    locked ones run; scheduled ones wait once due, with no worker running."""
    url, cursor = database
    now = time.time()
    _delayed_job(cursor, "default", now - 15)
    _delayed_job(cursor, "default", now - 15)
    _delayed_job(cursor, "default", now + 600)  # run_at later: not yet
    _delayed_job(cursor, "default", now - 30, locked_at=utc(now - 3), locked_by="host:web.1 pid:7")
    stale = now - 5 * 3600  # its worker died: Delayed Job takes it again after 4 hours
    _delayed_job(cursor, "default", stale, locked_at=utc(stale), locked_by="host:gone pid:1")
    _delayed_job(cursor, "default", now - 100, attempts=25, failed_at=utc(now - 50))
    _delayed_job(cursor, None, now - 100)  # no queue name: no configured queue's
    queue = Queue("shop", "worker", "default", "delayed_job")
    for default in with_and_without_index(url, cursor, "delayed_job", queue):
        assert default["queue_depth"] == 3
        assert abs(default["queue_oldest_age_seconds"] - (time.time() - stale)) < 1
        assert default["queue_in_progress"] == 1
        # Delayed Job deletes what succeeds: PostgreSQL counts the deletions, MariaDB cannot
        assert ("jobs_completed" in default) == url.startswith("postgresql")


# -- GoodJob and Que (PostgreSQL) --------------------------------------------------


def _good_job(cursor: Any, queue: str, now: float, **columns: Any) -> None:
    """A good_jobs row as GoodJob::Job.enqueue (and its performing and finishing) writes it."""
    values = {"queue_name": queue, "priority": 0, "serialized_params": "{}",
              "scheduled_at": utc(now), "created_at": utc(now), "updated_at": utc(now),
              "job_class": "ReportJob", "executions_count": 0, **columns}  # fmt: skip
    names, marks = ", ".join(values), ", ".join(["%s"] * len(values))
    cursor.execute(f"INSERT INTO good_jobs ({names}) VALUES ({marks})", list(values.values()))


def test_good_job_counts_by_its_scopes(postgres: psycopg.Connection) -> None:
    cursor = postgres.cursor()
    cursor.execute("DELETE FROM good_jobs")
    now = time.time()
    _good_job(cursor, "default", now - 20)  # queued
    _good_job(cursor, "default", now - 8)  # queued
    _good_job(cursor, "default", now - 300, scheduled_at=utc(now - 12))  # scheduled, due
    _good_job(cursor, "default", now - 60, scheduled_at=utc(now + 60))  # scheduled, not due
    _good_job(cursor, "default", now - 9, performed_at=utc(now - 4))  # running
    _good_job(cursor, "default", now - 90, performed_at=utc(now - 80), finished_at=utc(now - 70),
              error="Boom: discarded")  # fmt: skip
    _good_job(cursor, "default", now - 25, scheduled_at=None)  # an older GoodJob's: no time
    queue = Queue("shop", "worker", "default", "good_job")
    for default in with_and_without_index(POSTGRES_URL, cursor, "good_job", queue):
        assert default["queue_depth"] == 4
        assert abs(default["queue_oldest_age_seconds"] - (time.time() - (now - 25))) < 1
        assert default["queue_in_progress"] == 1
    source = SqlSource(POSTGRES_URL, [queue], TIMEOUT)
    source.read()
    finished = time.time() - FINISHED_LAG + 0.2
    _good_job(cursor, "default", finished - 1, performed_at=utc(finished - 1),
              finished_at=utc(finished))  # fmt: skip
    time.sleep(0.3)
    assert figures(source.read(), "default", "good_job")["jobs_completed"] == 1


def test_que_counts_locked_jobs_as_running(postgres: psycopg.Connection) -> None:
    """Que works a job while holding pg_advisory_lock(id): such a job runs, not waits."""
    cursor = postgres.cursor()
    cursor.execute("DELETE FROM que_jobs")
    now = datetime.now(UTC)
    insert = (
        "INSERT INTO que_jobs (queue, run_at, job_class, job_schema_version, finished_at, "
        "expired_at) VALUES (%s, now() + %s * interval '1 second', 'Report', 2, %s, %s) "
        "RETURNING id"
    )
    for offset in (-12, -3, 600):
        cursor.execute(insert, ["default", offset, None, None])
    cursor.execute(insert, ["default", -40, now, None])  # finished (kept by `finish`)
    cursor.execute(insert, ["default", -40, None, now])  # expired: out of retries
    cursor.execute(insert, ["default", -100, None, None])
    # an id past 32 bits: its lock's classid holds the high half (as in Que's own spec)
    running = 2**33 + 5
    cursor.execute("UPDATE que_jobs SET id = %s WHERE id = %s", [running, cursor.fetchone()[0]])
    with psycopg.connect(POSTGRES_URL, autocommit=True) as worker:
        worker.execute("SELECT pg_advisory_lock(%s)", [running])
        default = figures(read(POSTGRES_URL, [Queue("shop", "worker", "default", "que")]),
                          "default", "que")  # fmt: skip
    assert default["queue_depth"] == 2
    assert abs(default["queue_oldest_age_seconds"] - 12) < 1
    assert default["queue_in_progress"] == 1


def _completed(samples: list[Sample], backend: str) -> dict[tuple[str, ...], float]:
    return {
        s.labels: s.value
        for s in samples
        if s.metric == "dynoscaler_jobs_completed" and s.labels[3] == backend
    }


def test_deleted_jobs_count_as_completions_of_the_role_owning_the_table(
    postgres: psycopg.Connection,
) -> None:
    """Delayed Job and Que delete a finished job: the table's n_tup_del grows by one each,
    published under the only queue the role has there, or server-wide (queue "")."""
    postgres.execute("DELETE FROM delayed_jobs")
    postgres.execute("DELETE FROM que_jobs")
    postgres.execute("SELECT pg_stat_force_next_flush()")  # into the figures before
    queues = [
        Queue("shop", "worker", "default", "delayed_job"),
        Queue("shop", "worker", "mail", "que"),
        Queue("shop", "worker", "low", "que"),
    ]
    source = SqlSource(POSTGRES_URL, queues, TIMEOUT)
    before = {**_completed(source.read(), "delayed_job"), **_completed(source.read(), "que")}
    delayed, que = ("shop", "worker", "default", "delayed_job"), ("shop", "worker", "", "que")
    assert set(before) == {delayed, que}
    with psycopg.connect(POSTGRES_URL, autocommit=True) as worker:
        for _ in range(3):
            _delayed_job(worker.cursor(), "default", time.time() - 1)
        for queue in ("mail", "mail", "low", "low", "low"):
            worker.execute(
                "INSERT INTO que_jobs (queue, job_class, job_schema_version) "
                "VALUES (%s, 'Report', 2)",
                [queue],
            )
        # each job as its worker finishes it: DELETE ... WHERE id = $1
        for (id_,) in worker.execute("SELECT id FROM delayed_jobs").fetchall():
            worker.execute("DELETE FROM delayed_jobs WHERE id = %s", [id_])
        for (id_,) in worker.execute("SELECT id FROM que_jobs").fetchall():
            worker.execute("DELETE FROM que_jobs WHERE id = %s", [id_])
        worker.execute("SELECT pg_stat_force_next_flush()")  # else up to 1 s (10 s idle)
    deadline, after = time.monotonic() + 3, before
    while time.monotonic() < deadline and (after[delayed], after[que]) == (
        before[delayed],
        before[que],
    ):
        time.sleep(0.1)
        samples = source.read()
        after = {**_completed(samples, "delayed_job"), **_completed(samples, "que")}
    assert after[delayed] - before[delayed] == 3
    assert after[que] - before[que] == 5

    # The rules take the series as published: at 3 jobs a scrape (15 s), λ is 0.2/s.
    published = {
        s.metric: dict(zip(QUEUE_LABELS, s.labels, strict=True))
        for s in samples
        if s.labels == delayed
    }
    steps = range(30)
    series = {
        selector("dynoscaler_jobs_completed_total", published["dynoscaler_jobs_completed"]): (
            values(after[delayed] + 3 * step for step in steps)
        ),
        selector("dynoscaler_queue_depth", published["dynoscaler_queue_depth"]): (
            values(0 for _ in steps)
        ),
    }
    query = ("app_role:dynoscaler_arrival_rate:rate1m", 300)
    (rate,) = probe(series, [query])[query].values()
    assert rate == pytest.approx(0.2)


def test_a_table_several_roles_share_publishes_no_completions(
    postgres: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """n_tup_del is per table: with two roles' queues in it, it cannot be split between them."""
    queues = [Queue("shop", "worker", "default", "que"), Queue("shop", "mailer", "mail", "que")]
    source = SqlSource(POSTGRES_URL, queues, TIMEOUT)
    assert _completed(source.read(), "que") == {}
    assert "roles shop/mailer, shop/worker share it" in caplog.text
    assert "que on postgresql://127.0.0.1:5432/" in caplog.text


# -- faults -------------------------------------------------------------------------


def test_a_bad_row_or_a_missing_table_costs_only_its_own_queues(
    postgres: psycopg.Connection,
) -> None:
    """A waiting job without a readable time leaves out its queue only; a library whose
    tables are not in the database leaves out that library's queues only."""
    cursor = postgres.cursor()
    cursor.execute("DELETE FROM good_jobs")
    now = time.time()
    _good_job(cursor, "default", now - 5)
    _good_job(cursor, "bad", now)
    cursor.execute("UPDATE good_jobs SET scheduled_at = '-infinity' WHERE queue_name = 'bad'")
    queues = [
        Queue("shop", "worker", "default", "good_job"),
        Queue("shop", "mailer", "bad", "good_job"),
    ]
    source = SqlSource(POSTGRES_URL, queues, TIMEOUT)
    with pytest.raises(PartialRead) as partial:
        source.read()
    (error,) = partial.value.errors
    assert {(f.app, f.role) for f in error.feeds} == {("shop", "mailer")}
    assert "bad of shop/mailer" in error.message and "without a readable time" in error.message
    assert figures(partial.value.samples, "default", "good_job")["queue_depth"] == 1
    assert figures(partial.value.samples, "bad", "good_job") == {}

    # A database without Solid Queue's tables: its queues out, GoodJob's still read.
    cursor.execute("ALTER TABLE solid_queue_jobs RENAME TO solid_queue_jobs_gone")
    try:
        mixed = [queues[0], Queue("blog", "worker", "default", "solid_queue")]
        with pytest.raises(PartialRead) as partial:
            SqlSource(POSTGRES_URL, mixed, TIMEOUT).read()
    finally:
        cursor.execute("ALTER TABLE solid_queue_jobs_gone RENAME TO solid_queue_jobs")
    (error,) = partial.value.errors
    assert {(f.backend, f.app, f.role) for f in error.feeds} == {("solid_queue", "blog", "worker")}
    assert "UndefinedTable" in error.message
    assert figures(partial.value.samples, "default", "good_job")["queue_depth"] == 1


def test_a_zero_date_on_mariadb_costs_only_its_queue(mariadb: pymysql.Connection) -> None:
    cursor = mariadb.cursor()
    cursor.execute("DELETE FROM delayed_jobs")
    _delayed_job(cursor, "default", time.time() - 5)
    cursor.execute("SET SESSION sql_mode = ''")  # what lets an old app write a zero date
    cursor.execute(
        "INSERT INTO delayed_jobs (handler, queue, run_at) VALUES ('x', 'bad', '0000-00-00')"
    )
    queues = [Queue("shop", "worker", n, "delayed_job") for n in ("default", "bad")]
    with pytest.raises(PartialRead) as partial:
        read(MARIADB_URL, queues)
    assert [e.message.split(": queue ")[1] for e in partial.value.errors] == [
        "bad of shop/worker left out"
    ]
    assert figures(partial.value.samples, "default", "delayed_job")["queue_depth"] == 1


def test_a_dropped_connection_is_a_down_source_then_reconnected(
    postgres: psycopg.Connection,
) -> None:
    source = SqlSource(POSTGRES_URL, [Queue("shop", "worker", "default", "que")], TIMEOUT)
    source.read()
    postgres.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'dynoscaler-exporter' AND datname = %s",
        [DATABASE],
    )
    with pytest.raises(psycopg.OperationalError):
        source.read()
    assert figures(source.read(), "default", "que")["queue_depth"] >= 0
    refused = SqlSource("postgresql://postgres:hunter2@127.0.0.1:1/x", [], TIMEOUT)
    assert refused.address == "postgresql://127.0.0.1:1/x"
    with pytest.raises(psycopg.OperationalError) as down:
        refused.read()
    assert "hunter2" not in str(down.value)


def test_the_session_is_read_only_and_cut_off_before_the_source_timeout(
    database: tuple[str, Any],
) -> None:
    url, _ = database
    source = SqlSource(url, [Queue("shop", "worker", "default", "delayed_job")], TIMEOUT)
    source.read()
    assert source.database is not None
    if url == POSTGRES_URL:
        (limit,), (read_only,), (jit,) = (
            source.database.query(f"SHOW {name}", {})[0]
            for name in ("statement_timeout", "default_transaction_read_only", "jit")
        )
        # no JIT: a plan whose estimate passes jit_above_cost compiles for seconds first
        assert (limit, read_only, jit) == ("1600ms", "on", "off")
        refused: type[Exception] = psycopg.errors.ReadOnlySqlTransaction
    else:
        ((limit, read_only),) = source.database.query(
            "SELECT @@max_statement_time, @@tx_read_only", {}
        )
        assert (float(limit), read_only) == (1.6, 1)
        refused = pymysql.err.OperationalError
    with pytest.raises(refused):
        source.database.query("DELETE FROM delayed_jobs", {})


def test_settings_name_a_url_the_library_cannot_use() -> None:
    def queue(backend: str, url: str) -> dict[str, Any]:
        worker = {"queues": [{"name": "default", "backend": backend, "url": url}]}
        return {"apps": {"shop": {"roles": {"worker": worker}}}}

    assert parse(queue("solid_queue", MARIADB_URL), "a.yml", {}).roles[0].queues[0].url
    with pytest.raises(ConfigError, match=r"queues.0.url: .* is not a PostgreSQL URL \(que\)"):
        parse(queue("que", "mysql://root:secret@db/app"), "a.yml", {})
    with pytest.raises(ConfigError, match="not a PostgreSQL or MySQL URL") as refused:
        parse(queue("delayed_job", "redis://:secret@cache:6379/0"), "a.yml", {})
    assert "secret" not in str(refused.value)


def test_the_exporter_serves_sql_queues_without_their_password(
    postgres: psycopg.Connection, tmp_path: Path
) -> None:
    cursor = postgres.cursor()
    cursor.execute("DELETE FROM que_jobs")
    started = time.monotonic()
    cursor.execute(
        "INSERT INTO que_jobs (queue, run_at, job_class, job_schema_version) "
        "VALUES ('default', now() - interval '7 seconds', 'Report', 2)"
    )
    queues = [{"name": "default", "backend": "que", "url": "${DATABASE_URL}"}]
    config = write_config(tmp_path, {"shop": {"roles": {"worker": {"queues": queues}}}})
    with exporter(config, env={"DATABASE_URL": POSTGRES_URL}) as running:
        series = running.scrape()
        text = running.log.read_text()
    found = queue_figures(series, "default", "que")
    assert found["depth"] == 1 and found["in_progress"] == 0
    assert 7 <= (found["oldest_age_seconds"] or 0) <= 7 + time.monotonic() - started
    source = POSTGRES_URL.replace("postgres:hunter2@", "")
    up = ("dynoscaler_source_up", frozenset({("source", source), ("backend", "que"),
                                              ("app", "shop"), ("role", "worker")}))  # fmt: skip
    assert series[up] == 1
    assert "hunter2" not in repr(series) and "hunter2" not in text


def test_bench_sql_reads_every_waiting_row_of_each_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A small `dynoscaler bench sql`: each library's depth is the rows it filled as waiting."""
    parser = argparse.ArgumentParser()
    bench_sql.add_arguments(parser)
    arguments = ["--finished", "1000", "--ready", "100", "--scrapes", "2"]
    assert bench_sql.run(parser.parse_args([*arguments, "--database", f"{DATABASE}_b"])) == 0
    libraries = ("solid_queue", "good_job", "delayed_job", "que")
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(row[0], row[1], row[-1]) for row in rows if row[0].startswith(libraries)] == [
        (library, dialect, "100")
        for dialect, libraries_there in bench_sql.RUNS.items()
        for library in libraries_there
    ]


def test_the_first_connection_says_which_library_lacks_its_index(
    postgres: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    queues = [Queue("shop", "worker", "default", b) for b in ("good_job", "delayed_job", "que")]
    with extra_index(postgres.cursor(), "delayed_job"), caplog.at_level("INFO"):
        source = SqlSource(POSTGRES_URL, queues, TIMEOUT)
        source.read()
        source.database.close()  # type: ignore[union-attr]
        source.read()  # reconnected: not said again
    said = [r.getMessage() for r in caplog.records if "no index on" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("good_job on postgresql://127.0.0.1:5432/")
    assert "good_jobs starting (queue_name, performed_at, scheduled_at)" in said[0]


def test_solid_queue_reads_the_same_with_the_age_index(postgres: psycopg.Connection) -> None:
    """With a (queue_name, created_at) index the ready executions are read per queue from it:
    the same depth and oldest age as the single pass, an empty queue still 0."""
    cursor = postgres.cursor()
    cursor.execute("DELETE FROM solid_queue_jobs")  # the executions go with their jobs
    cursor.execute("DELETE FROM solid_queue_pauses")
    now = time.time()
    for queue, ago in (("default", 30), ("default", 75), ("default", 5), ("mail", 12)):
        job = _solid_job(cursor, queue, now - ago)
        _execution(cursor, "solid_queue_ready_executions", job, queue_name=queue,
                   priority=0, created_at=utc(now - ago))  # fmt: skip
    queues = [Queue("shop", "worker", n, "solid_queue") for n in ("default", "mail", "low")]

    def depth_and_age() -> list[tuple[float, float]]:
        samples = SqlSource(POSTGRES_URL, queues, TIMEOUT).read()
        found = [figures(samples, q.name, "solid_queue") for q in queues]
        return [(f["queue_depth"], f["queue_oldest_age_seconds"]) for f in found]

    single_pass = depth_and_age()
    ddl = EXTRA_INDEXES[("solid_queue", "postgresql")].replace("INDEX", "INDEX ready_age", 1)
    cursor.execute(ddl.replace(ddl.split()[3], "", 1))  # any name will do
    try:
        indexed = depth_and_age()
    finally:
        cursor.execute("DROP INDEX ready_age")
    assert [depth for depth, _ in single_pass] == [depth for depth, _ in indexed] == [3, 1, 0]
    for (_, before), (_, after), ago in zip(single_pass, indexed, (75, 12, None), strict=True):
        expected = 0.0 if ago is None else time.time() - (now - ago)
        assert abs(before - expected) < 1 and abs(after - expected) < 1


# Per library: rows as the bench fills them on queue_0..queue_3: Solid Queue's 2,000 ready,
# the others' 1,501 due (the 4 oldest running) and 999 due an hour or more later (a Que
# worker's locks below).
_PLAN_ROWS = {
    "solid_queue": [
        "INSERT INTO solid_queue_jobs (queue_name, class_name, created_at, updated_at) "
        "SELECT 'queue_' || i % 4, 'R', now() - i * interval '1 s', now() "
        "FROM generate_series(1, 2000) i",
        "INSERT INTO solid_queue_ready_executions (job_id, queue_name, priority, created_at) "
        "SELECT id, queue_name, 0, created_at FROM solid_queue_jobs",
    ],
    "good_job": [
        "INSERT INTO good_jobs (queue_name, scheduled_at, created_at, updated_at) "
        "SELECT 'queue_' || i % 4, now() + (1000 - i) * interval '1 h', now(), now() "
        "FROM generate_series(1, 2500) i",
        "UPDATE good_jobs SET performed_at = now() WHERE id IN "
        "(SELECT id FROM good_jobs ORDER BY scheduled_at LIMIT 4)",
    ],
    "delayed_job": [
        "INSERT INTO delayed_jobs (handler, run_at, queue) SELECT 'x', "
        "now() AT TIME ZONE 'UTC' + (1000 - i) * interval '1 h', 'queue_' || i % 4 "
        "FROM generate_series(1, 2500) i",
        "UPDATE delayed_jobs SET locked_at = now() AT TIME ZONE 'UTC', locked_by = 'w' "
        "WHERE id IN (SELECT id FROM delayed_jobs ORDER BY run_at LIMIT 4)",
    ],
    "que": [
        "INSERT INTO que_jobs (queue, run_at, job_class, job_schema_version) "
        "SELECT 'queue_' || i % 4, now() + (1000 - i) * interval '1 h', 'R', 2 "
        "FROM generate_series(1, 2500) i",
    ],
}
_TABLES = {"solid_queue": "solid_queue_ready_executions", "good_job": "good_jobs",
           "delayed_job": "delayed_jobs", "que": "que_jobs"}  # fmt: skip


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("library", list(_PLAN_ROWS))
def test_the_read_counts_the_index_without_passing_over_other_rows(
    postgres: psycopg.Connection, library: str
) -> None:
    """With the index each library needs (Que's own `que_poll_idx`), the read touches the
    waiting jobs' index entries, one each, and little else: no heap row, no entry of a job
    due later, no join fed the waiting jobs (Que's locks are a hashed look-up and a part of
    their own), whatever the planner estimates."""
    table = _TABLES[library]
    postgres.execute(f"TRUNCATE {table} CASCADE")
    for statement in _PLAN_ROWS[library]:
        postgres.execute(statement)
    queues = [Queue("shop", "worker", f"queue_{n}", library) for n in range(4)]
    explain = ClientCursor(postgres)  # the parameters written into the EXPLAINed text
    module = {"solid_queue": solid_queue, "good_job": good_job,
              "delayed_job": delayed_job, "que": que}[library]  # fmt: skip
    now = time.time()
    parameters = {"names": [q.name for q in queues], "now": now, "since": now - 9, "until": now}
    with contextlib.ExitStack() as stack, psycopg.connect(POSTGRES_URL) as worker:
        if library != "que":
            stack.enter_context(extra_index(postgres.cursor(), library))
        else:  # a Que worker holds the 4 oldest jobs
            worker.execute("SELECT pg_advisory_lock(id) FROM que_jobs ORDER BY run_at LIMIT 4")
        postgres.execute(f"VACUUM ANALYZE {table}")  # the visibility map, as autovacuum leaves it
        depth = sum(figures(read(POSTGRES_URL, queues), q.name, library)["queue_depth"]
                    for q in queues)  # fmt: skip
        # the plans a table of 1,000,000 rows gets (bench sql), not those of 2,500 rows; JIT
        # off as in the exporter's session (the disabled scans' cost would set it compiling)
        explain.execute("SET enable_seqscan = off")
        explain.execute("SET enable_bitmapscan = off")
        explain.execute("SET jit = off")
        sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + module.statement(POSTGRESQL)
        ((plan,),) = explain.execute(sql, parameters).fetchall()
        explain.execute("RESET ALL")
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    # the nodes that ran (the one-time filter leaves the single pass's never executed)
    on_table = [n for n in nodes if n.get("Relation Name") == table and n["Actual Loops"]]
    # the entries each node read: those it returned and those its filter dropped (per loop)
    entries = sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in on_table
    )
    assert depth == (2000 if library == "solid_queue" else 1501 - 4)
    # rows of the heap only by key: the finished window's, the locked Que jobs'
    passes = [n for n in on_table if n["Actual Rows"] * n["Actual Loops"] > 8]
    assert all(n["Node Type"] == "Index Only Scan" and n["Heap Fetches"] == 0 for n in passes)
    # the Rails libraries' `timestamp` columns against a timestamp: no conversion a row
    # (Que's are timestamptz)
    conditions = " ".join(n.get("Index Cond", "") for n in passes)
    assert (library == "que") == ("with time zone" in conditions), conditions
    # each waiting job once, the 4 running ones once more, a first entry per queue
    assert depth <= entries <= depth + 2 * 4 + len(queues), on_table
    joined = [n for n in nodes if "Join" in n["Node Type"]]
    assert all(n["Actual Rows"] * n["Actual Loops"] <= 8 for n in joined), joined


def test_delayed_job_on_mariadb_reads_the_ranges_of_its_index(
    mariadb: pymysql.Connection,
) -> None:
    """MariaDB with its Delayed Job index: the read's index entries (InnoDB's handler reads)
    are the waiting and running jobs', not the jobs due later."""
    cursor = mariadb.cursor()
    cursor.execute("DELETE FROM delayed_jobs")
    cursor.execute(
        "INSERT INTO delayed_jobs (handler, run_at, queue) SELECT 'x', "
        "UTC_TIMESTAMP(6) + INTERVAL (1000 - CAST(seq AS SIGNED)) HOUR, "
        "CONCAT('queue_', seq % 4) FROM seq_1_to_2500"
    )  # 1,501 due, 999 due an hour or more later
    cursor.execute(  # another app's queue: with it the table is big enough for range scans
        "INSERT INTO delayed_jobs (handler, run_at, queue) SELECT 'x', UTC_TIMESTAMP(6), "
        "'other' FROM seq_1_to_20000"
    )
    cursor.execute(
        "UPDATE delayed_jobs SET locked_at = UTC_TIMESTAMP(6), locked_by = 'w' "
        "ORDER BY run_at LIMIT 4"
    )
    queues = [Queue("shop", "worker", f"queue_{n}", "delayed_job") for n in range(4)]
    with extra_index(cursor, "delayed_job", "mysql"):
        # the statistics InnoDB recalculates in the background after such a change, now
        cursor.execute("ANALYZE TABLE delayed_jobs")
        cursor.fetchall()
        source = SqlSource(MARIADB_URL, queues, TIMEOUT)
        source.read()  # connected
        assert source.database is not None

        def handler_reads() -> int:
            status = source.database.query("SHOW SESSION STATUS LIKE 'Handler_read%%'", {})
            return sum(int(value) for _, value in status)

        before = handler_reads()
        samples = source.read()
        entries = handler_reads() - before
    found = [figures(samples, q.name, "delayed_job") for q in queues]
    depth, busy = (sum(f[name] for f in found) for name in ("queue_depth", "queue_in_progress"))
    assert (depth, busy) == (1501 - 4, 4)
    # each waiting and running entry once, a few more to find each range's ends
    assert depth + busy <= entries <= depth + busy + 100, entries
