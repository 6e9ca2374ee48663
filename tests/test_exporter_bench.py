"""The benchmarks run and check themselves (no timings): `dynoscaler bench exporter` prints a
row per size; `dynoscaler bench drain` counts every line and sees no reset nor 5xx."""

from __future__ import annotations

import subprocess
import sys

import pytest
from exporter_helpers import ROOT, write_config

from exporter.bench_drain import APP, ROLE, concurrent_load, drain_server, keepalive_load


@pytest.mark.timeout(120)
def test_bench_prints_a_row_per_size():
    result = subprocess.run(
        [sys.executable, "-m", "dynoscaler", "bench", "exporter", "--sizes", "3,20"]
        + ["--scrapes", "3"],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.splitlines() if line.count("|") == 3]
    assert [row[0].strip() for row in rows] == ["queues", "3", "20"]
    for row in rows[1:]:
        assert row[3].strip().endswith("x")  # the speed-up against the peer


@pytest.mark.timeout(120)
def test_drain_bench_loads_count_every_line_without_resets_or_5xx(tmp_path):
    config = write_config(tmp_path, {APP: {"roles": {ROLE: {"requests": "router"}}}})
    with drain_server("ours", config) as server:
        loads = [keepalive_load(server.url, n, connections=4, seconds=0.5) for n in (10, 25)]
        loads += [concurrent_load(server.url, 10, senders=n, posts=3) for n in (32, 128)]
        assert server.cpu_seconds() > 0  # the worker's CPU time is found and read
    for load in loads:
        assert load.posts > 0
        assert dict(load.errors) == {}
        assert (load.server_errors, load.other_answers) == (0, 0)
        assert load.answered == load.posts
        assert load.counted == load.lines_sent  # every line answered for was counted


@pytest.mark.timeout(240)
def test_drain_bench_prints_throughput_and_concurrency_rows_against_a_peer():
    result = subprocess.run(
        [sys.executable, "-m", "dynoscaler", "bench", "drain", "--batches", "10,25"]
        + ["--seconds", "0.3", "--rounds", "1", "--senders", "8,32", "--posts", "2"]
        + ["--peers", "stdlib"],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr  # non-zero: ours miscounted
    lines = result.stdout.splitlines()
    assert lines[0].startswith("load average at start:")
    assert lines[-1].startswith("load average at end:")
    throughput = [line.split("|") for line in lines if line.count("|") == 5]
    assert [(row[0].strip(), row[1].strip()) for row in throughput[1:]] == [
        ("10", "ours"), ("10", "stdlib"), ("25", "ours"), ("25", "stdlib"),
    ]  # fmt: skip
    for row in throughput[1:]:
        if row[1].strip() == "stdlib":
            assert row[5].strip().endswith("x")  # ours against stdlib, same run
    concurrency = [line.split("|") for line in lines if line.count("|") == 8]
    assert [(row[0].strip(), row[1].strip()) for row in concurrency[1:]] == [
        ("8", "ours"), ("8", "stdlib"), ("32", "ours"), ("32", "stdlib"),
    ]  # fmt: skip
    for row in concurrency[1:]:
        if row[1].strip() == "ours":
            assert (row[3].strip(), row[4].strip()) == ("0", "0")  # no connection error, no 5xx
            assert "(!)" not in row[7]  # every line counted
