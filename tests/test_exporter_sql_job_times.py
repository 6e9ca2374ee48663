"""Enqueue-to-done times of the SQL libraries' kept finished jobs
(exporter.collectors.sql_job_times) against the real PostgreSQL and MariaDB of this
machine, in tests/test_exporter_sql.py's databases (the libraries' published tables,
dropped after)."""

from __future__ import annotations

import argparse
import bisect
import re
import time
from typing import Any

import psycopg
import pytest

from exporter import bench_sql_times
from exporter.collectors import PartialRead, Queue
from exporter.collectors.sql_job_times import grid_case
from exporter.collectors.sql_source import FINISHED_LAG, SqlSource
from exporter.metrics import DURATION_BUCKETS, HistogramSample, Sample
from exporter.timing import TOTAL_BOUNDS
from tests import test_exporter_sql as sql_tests
from tests.test_exporter_sql import POSTGRES_URL, TIMEOUT, utc

# tests/test_exporter_sql.py's fixtures: its databases with the libraries' tables
database, postgres, mariadb = sql_tests.database, sql_tests.postgres, sql_tests.mariadb

DEADLINE = 30.0
# enqueue-to-done seconds of the jobs each test finishes: both sides of the deadline, of a
# grid bound and of the grid's end
TIMES = (0.3, 12, 29.5, 30, 30.5, 95, 4000, 90_000)


def insert(cursor: Any, table: str, **values: Any) -> None:
    names, marks = ", ".join(values), ", ".join(["%s"] * len(values))
    cursor.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(values.values()))


def solid_job(cursor: Any, queue: str, enqueued: float, finished: float | None) -> int:
    """A solid_queue_jobs row enqueued at `enqueued` (its scheduled_at: Solid Queue sets it to
    the creation time of a job not scheduled for later), finished at `finished`."""
    insert(cursor, "solid_queue_jobs", queue_name=queue, class_name="ReportJob",
                  arguments="{}", priority=0, scheduled_at=utc(enqueued),
                  created_at=utc(enqueued), updated_at=utc(enqueued),
                  finished_at=None if finished is None else utc(finished))  # fmt: skip
    cursor.execute("SELECT max(id) FROM solid_queue_jobs")
    return int(cursor.fetchone()[0])


def good_job(cursor: Any, enqueued: float, finished: float, **columns: Any) -> None:
    values = {"queue_name": "default", "priority": 0, "serialized_params": "{}",
              "scheduled_at": utc(enqueued), "created_at": utc(enqueued),
              "updated_at": utc(finished), "job_class": "ReportJob", "executions_count": 1,
              "performed_at": utc(finished - 0.1), "finished_at": utc(finished),
              **columns}  # fmt: skip
    insert(cursor, "good_jobs", **values)


def expected(times: list[float]) -> tuple[tuple[float, ...], float]:
    """Per-bucket counts on the duration buckets plus the deadline, and the jobs within it."""
    bounds = sorted({*DURATION_BUCKETS, DEADLINE})
    counts = [0.0] * (len(bounds) + 1)
    for seconds in times:
        counts[bisect.bisect_left(bounds, seconds)] += 1
    return tuple(counts), float(sum(1 for seconds in times if seconds <= DEADLINE))


def times_of(samples: list[Any], queue: str) -> tuple[tuple[float, ...], float, float]:
    """(bucket counts, sum, within deadline) of a queue's series."""
    (histogram,) = [s for s in samples if isinstance(s, HistogramSample) and s.labels[2] == queue]
    (within,) = [
        s.value
        for s in samples
        if isinstance(s, Sample) and s.metric == "dynoscaler_jobs_within_deadline"
        and s.labels[2] == queue
    ]  # fmt: skip
    assert histogram.bounds == tuple(sorted({*DURATION_BUCKETS, DEADLINE}))
    return histogram.buckets, histogram.sum, within


def finish_jobs(cursor: Any, queue: str, until: float) -> list[float]:
    """Jobs of TIMES finished in whole seconds just before `until`, a job scheduled for later
    (counted from its scheduled_at) and a failed one; their enqueue-to-done times."""
    done = float(int(until) - 1)
    for seconds in TIMES:
        solid_job(cursor, queue, done - seconds, done)
    later = solid_job(cursor, queue, done - 500, done)  # created 500 s ago, due 7 s ago
    cursor.execute(
        "UPDATE solid_queue_jobs SET scheduled_at = %s WHERE id = %s", [utc(done - 7), later]
    )
    failed = solid_job(cursor, queue, done - 45, None)
    insert(cursor, "solid_queue_failed_executions", job_id=failed, error="boom",
           created_at=utc(done))  # fmt: skip
    return [*TIMES, 7, 45]


def test_the_grid_in_sql_is_exporter_timing_grid(postgres: psycopg.Connection) -> None:
    """Every bound, just above and below it, below 0 and past the grid's end: the bound
    PostgreSQL computes is the one exporter.timing counts the time under."""
    values = sorted({0.0, -3.0, 1e6, *map(float, TOTAL_BOUNDS), *(b + 1e-4 for b in TOTAL_BOUNDS),
                     *(b - 1e-4 for b in TOTAL_BOUNDS)})  # fmt: skip
    rows = postgres.execute(
        f"SELECT t, {grid_case('t')} FROM unnest(%s::float8[]) AS t", [values]
    ).fetchall()
    for seconds, bound in rows:
        index = bisect.bisect_left(TOTAL_BOUNDS, seconds)
        assert bound == (TOTAL_BOUNDS[index] if index < len(TOTAL_BOUNDS) else None), seconds


def test_solid_queue_jobs_counted_by_bucket_once(database: tuple[str, Any]) -> None:
    """Known times: exact counts by bucket and within the deadline; a second read adds
    nothing; a row committed after a read but finished inside its lag counts once; another
    role's queue has its own counts."""
    url, cursor = database
    queues = [
        Queue("shop", "worker", "default", "solid_queue", deadline=DEADLINE),
        Queue("shop", "mailer", "mail", "solid_queue", deadline=DEADLINE),
    ]
    source = SqlSource(url, queues, TIMEOUT)
    first = source.read()
    assert times_of(first, "default") == (expected([])[0], 0.0, 0.0)
    start = source.job_times.counted_until["solid_queue"]
    done = finish_jobs(cursor, "default", start + 2)
    solid_job(cursor, "mail", start, start + 1)
    time.sleep(start + 2 + FINISHED_LAG - time.time())
    counts, total, within = times_of(source.read(), "default")
    assert (counts, within) == expected(done)
    assert total == pytest.approx(sum(done))
    assert times_of(source.read(), "default") == (counts, total, within)
    assert times_of(source.read(), "mail")[0] == expected([1])[0]

    # finished 4.8 s before the read that just ran, committed after it: the next read has it
    read_until = source.job_times.counted_until["solid_queue"]
    solid_job(cursor, "default", read_until - 19.3, read_until + 0.2)
    time.sleep(0.3)
    assert times_of(source.read(), "default")[0] == expected([*done, 19.5])[0]
    assert times_of(source.read(), "default")[0] == expected([*done, 19.5])[0]


def test_good_job_counts_finished_and_discarded_jobs_once(postgres: psycopg.Connection) -> None:
    """A retry counts from its scheduled_at (re-enqueued in the same row); a discarded job
    counts; an older GoodJob's retried row (retried_good_job_id set) does not."""
    cursor = postgres.cursor()
    cursor.execute("DELETE FROM good_jobs")
    queue = Queue("shop", "worker", "default", "good_job", deadline=DEADLINE)
    source = SqlSource(POSTGRES_URL, [queue], TIMEOUT)
    source.read()
    done = float(int(source.job_times.counted_until["good_job"]) + 1)
    good_job(cursor, done - 12, done)
    good_job(cursor, done - 50, done, error="Boom: discarded")
    good_job(cursor, done - 900, done, scheduled_at=utc(done - 25))  # retried, due 25 s ago
    good_job(cursor, done - 3, done, error="Boom", retried_good_job_id=
             "00000000-0000-0000-0000-000000000001")  # fmt: skip
    time.sleep(done + FINISHED_LAG + 0.1 - time.time())
    counts, total, within = times_of(source.read(), "default")
    assert (counts, within) == expected([12, 50, 25])
    assert total == pytest.approx(87)


def test_a_missing_column_costs_only_its_librarys_queues(postgres: psycopg.Connection) -> None:
    """GoodJob's table without a column the read needs: its queues' times are left out and
    their roles held (a ReadError naming them); Solid Queue's in the same database still read."""
    cursor = postgres.cursor()
    cursor.execute("ALTER TABLE good_jobs RENAME COLUMN retried_good_job_id TO gone")
    try:
        queues = [
            Queue("shop", "worker", "default", "good_job", deadline=DEADLINE),
            Queue("shop", "mailer", "mail", "solid_queue", deadline=DEADLINE),
        ]
        with pytest.raises(PartialRead) as partial:
            SqlSource(POSTGRES_URL, queues, TIMEOUT).read()
    finally:
        cursor.execute("ALTER TABLE good_jobs RENAME COLUMN gone TO retried_good_job_id")
    (error,) = partial.value.errors
    assert "good_job enqueue-to-done times" in error.message
    assert "retried_good_job_id" in error.message
    assert {(feed.backend, feed.role) for feed in error.feeds} == {("good_job", "worker")}
    samples = partial.value.samples
    histograms = {s.labels[2] for s in samples if isinstance(s, HistogramSample)}
    assert histograms == {"mail"}
    depths = {s.labels[2] for s in samples if s.metric == "dynoscaler_queue_depth"}
    assert depths == {"default", "mail"}


def test_bench_sql_times_reads_one_windows_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    """A small `dynoscaler bench sql-times`: bench sql's rows finish one a second, so a 15 s
    window holds 15 of them for each library and database."""
    parser = argparse.ArgumentParser()
    bench_sql_times.add_arguments(parser)
    arguments = ["--finished", "1000", "--ready", "10", "--scrapes", "2", "--window", "15"]
    database_name = f"{sql_tests.DATABASE}_t"
    assert bench_sql_times.run(parser.parse_args([*arguments, "--database", database_name])) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^(\w+) on (\w+): (\d+) finished jobs", out, re.MULTILINE) == [
        ("solid_queue", "postgresql", "15"),
        ("good_job", "postgresql", "15"),
        ("solid_queue", "mysql", "15"),
    ]
    assert out.count("times read: median") == 3
