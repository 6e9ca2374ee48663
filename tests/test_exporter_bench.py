"""`dynoscaler bench exporter` runs both exporters and prints a row per size (no timings)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from exporter_helpers import ROOT


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
