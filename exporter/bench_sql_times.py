"""Benchmark the read of the SQL libraries' enqueue-to-done times (sql_job_times) per scrape.

On `dynoscaler bench sql`'s tables (its options: `--finished` done jobs spread over a
day, about 11.6 a second at 1,000,000, and `--ready` waiting ones), for Solid Queue and
GoodJob on PostgreSQL and Solid Queue on MySQL/MariaDB: the plan of the times read over
one scrape's window of finished jobs (`--window` seconds, a minute before the newest
finished row), then `--scrapes` reads of it alternately with the library's queue read
(the rest of a scrape's SQL read, the peer): their medians and ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from dynoscaler.benchstats import percentile
from exporter import bench_sql
from exporter.collectors.sql import MYSQL, POSTGRESQL, Dialect
from exporter.collectors.sql_job_times import statement
from exporter.collectors.sql_source import BACKENDS, FINISHED_LAG, connect

RUNS = {"postgresql": ("solid_queue", "good_job"), "mysql": ("solid_queue",)}
TABLES = {"solid_queue": "solid_queue_jobs", "good_job": "good_jobs"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bench_sql.add_arguments(parser)
    parser.add_argument("--window", type=float, default=15.0, help="seconds of finished jobs")


def run(args: argparse.Namespace) -> int:
    print(
        f"{args.finished:,} finished rows over a day, {args.window:g} s of them per read, "
        f"{args.scrapes} reads each; load average at the start: {bench_sql._load()}"
    )
    for dialect_name, libraries in RUNS.items():
        dialect = POSTGRESQL if dialect_name == "postgresql" else MYSQL
        with bench_sql._database(args, dialect_name) as (url, cursor):
            for library in libraries:
                bench_sql._fill(
                    cursor, library, dialect_name, args.finished, args.ready, args.extra_indexes
                )
                _measure(url, dialect, library, args)
    print(f"load average at the end: {bench_sql._load()}")
    return 0


def _measure(url: str, dialect: Dialect, library: str, args: argparse.Namespace) -> None:
    database = connect(url, bench_sql.TIMEOUT)
    try:
        newest = f"SELECT {dialect.epoch('max(finished_at)')} FROM {TABLES[library]}"
        ((latest,),) = database.query(newest, {})
        until = float(latest) - 60
        parameters = {
            "names": [f"queue_{n}" for n in range(bench_sql.QUEUES)],
            "since": until - args.window,
            "until": until,
            "now": until + FINISHED_LAG,
        }
        times_read = statement(dialect, library)
        jobs = sum(int(row[2]) for row in database.query(times_read, parameters))
        print(f"\n{library} on {dialect.name}: {jobs} finished jobs in the window; plan:")
        print(_plan(database, dialect, times_read, parameters))
        queue_read = BACKENDS[library].statement(dialect)
        mine, peer = [], []
        for _ in range(args.scrapes):
            mine.append(_milliseconds(database, times_read, parameters))
            peer.append(_milliseconds(database, queue_read, parameters))
    finally:
        database.close()
    median, peer_median = statistics.median(mine), statistics.median(peer)
    print(
        f"times read: median {median:.2f} ms, p99 {percentile(mine, 99):.2f} ms; the "
        f"library's queue read (peer): median {peer_median:.2f} ms; ratio "
        f"{median / peer_median:.3f}",
        flush=True,
    )


def _plan(database: Any, dialect: Dialect, sql: str, parameters: dict[str, Any]) -> str:
    """PostgreSQL's EXPLAIN ANALYZE; MariaDB's ANALYZE, as the tables and keys it read."""
    if dialect is POSTGRESQL:
        rows = database.query(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", parameters)
        return "\n".join(f"  {line}" for (line,) in rows)
    ((text, *_),) = database.query(f"ANALYZE FORMAT=JSON {sql}", parameters)
    return "\n".join(
        f"  {table['table_name']}: {table['access_type']} on {table.get('key')}, "
        f"{table.get('r_rows')} rows read"
        for table in _tables(json.loads(text))
    )


def _tables(node: Any) -> list[dict[str, Any]]:
    """Every `table` entry of MariaDB's ANALYZE FORMAT=JSON, depth first."""
    if isinstance(node, dict):
        found = [node["table"]] if isinstance(node.get("table"), dict) else []
        return found + [t for value in node.values() for t in _tables(value)]
    if isinstance(node, list):
        return [t for value in node for t in _tables(value)]
    return []


def _milliseconds(database: Any, sql: str, parameters: dict[str, Any]) -> float:
    started = time.perf_counter()
    database.query(sql, parameters)
    return (time.perf_counter() - started) * 1000
