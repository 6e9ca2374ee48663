"""Benchmark the exporter against prometheus-redis-exporter on the same Redis lists."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import requests
import yaml

from dynoscaler.benchstats import percentile, positive_whole, positive_wholes
from dynoscaler.processes import free_port, start_announced, stop, wait_until_answering

BENCH_DB = 2  # the exporter benchmark's Redis database (flushed by every run)
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
# The kernel refuses a single argument above 128 KiB (MAX_ARG_STRLEN).
MAX_ARGUMENT = 128 * 1024 - 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        type=positive_wholes,
        default="10,100,1000,10000",
        help="queue counts to measure (comma separated)",
    )
    parser.add_argument(
        "--scrapes", type=positive_whole, default=20, help="scrapes per size and exporter"
    )
    parser.add_argument("--redis", default="127.0.0.1:6379", help="Redis host:port (DB 2 is used)")


@dataclass
class Figures:
    median_ms: float
    p95_ms: float
    rss_mb: float


def run(args: argparse.Namespace) -> int:
    if not os.access(REDIS_EXPORTER, os.X_OK):
        print(
            f"dynoscaler bench: {REDIS_EXPORTER} is missing (apt install prometheus-redis-exporter)"
        )
        return 1
    client = redis.Redis.from_url(f"redis://{args.redis}/{BENCH_DB}")
    header = (
        f"{'queues':>7} | {'ours median':>11} {'p95':>8} {'RSS':>7} | "
        f"{'redis_exporter median':>21} {'p95':>8} {'RSS':>7} | {'speed-up':>8}"
    )
    print(f"{args.scrapes} scrapes of each, taking turns; times in ms, RSS in MB\n{header}")
    print("-" * len(header))
    try:
        for size in args.sizes:
            names = _fill(client, size)
            with (
                _our_exporter(args.redis, names) as mine,
                _redis_exporter(args.redis, names) as peer,
            ):
                ours, theirs = _measure([mine, peer], args.scrapes)
            print(
                f"{size:>7} | {ours.median_ms:>11.1f} {ours.p95_ms:>8.1f} {ours.rss_mb:>7.1f} | "
                f"{theirs.median_ms:>21.1f} {theirs.p95_ms:>8.1f} {theirs.rss_mb:>7.1f} | "
                f"{theirs.median_ms / ours.median_ms:>7.1f}x",
                flush=True,
            )
    finally:
        client.flushdb()
        client.close()
    return 0


def _fill(client: redis.Redis, size: int) -> list[str]:
    """`size` lists q0, q1, ... of 1 to 5 items each, in a fresh DB 2."""
    client.flushdb()
    names = [f"q{i}" for i in range(size)]
    pipe = client.pipeline(transaction=False)
    for i, name in enumerate(names):
        pipe.rpush(name, *range(1 + i % 5))
    pipe.execute()
    return names


@contextmanager
def _our_exporter(address: str, names: list[str]) -> Iterator[tuple[int, str]]:
    url = f"redis://{address}/{BENCH_DB}"
    queues = [{"name": name, "backend": "redis_list", "url": url} for name in names]
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "bench.yml"
        config.write_text(
            yaml.safe_dump({"apps": {"bench": {"roles": {"worker": {"queues": queues}}}}})
        )
        command = [sys.executable, "-m", "dynoscaler", "exporter", "--config", str(config)]
        command += ["--port", "0", "--bind", "127.0.0.1"]
        environment = {k: v for k, v in os.environ.items() if k != "HEROKU_API_KEY"}
        # its first line: "... listening on http://127.0.0.1:PORT/metrics"
        process, url = start_announced(
            command, "listening on", stderr=subprocess.DEVNULL, env=environment
        )
        try:
            yield process.pid, url
        finally:
            stop(process)


@contextmanager
def _redis_exporter(address: str, names: list[str]) -> Iterator[tuple[int, str]]:
    keys = ",".join(f"db{BENCH_DB}={name}" for name in names)
    # Too many keys for one argument: let it find the same lists by pattern instead.
    flag = (
        ["-check-single-keys", keys]
        if len(keys) <= MAX_ARGUMENT
        else ["-check-keys", f"db{BENCH_DB}=q*"]
    )
    port = free_port()
    process = subprocess.Popen(
        [REDIS_EXPORTER, "-redis.addr", f"redis://{address}", *flag]
        + ["-web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until_answering(url.replace("/metrics", "/health"), process, timeout=15.0)
        yield process.pid, url
    finally:
        stop(process)


def _measure(exporters: list[tuple[int, str]], scrapes: int) -> list[Figures]:
    """Scrape the exporters in turn, so both see the same load on a shared machine."""
    times: list[list[float]] = [[] for _ in exporters]
    with requests.Session() as session:
        for _, url in exporters:
            session.get(url, timeout=60).raise_for_status()  # warm-up: connections, first reads
        for _ in range(scrapes):
            for index, (_, url) in enumerate(exporters):
                started = time.perf_counter()
                response = session.get(url, timeout=60)
                response.raise_for_status()
                times[index].append((time.perf_counter() - started) * 1000)
    return [
        Figures(statistics.median(taken), percentile(taken, 95), _rss_mb(pid))
        for (pid, _), taken in zip(exporters, times, strict=True)
    ]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
