"""`dynoscaler bench webhook` runs end to end at a small load and prints its figures."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_bench_against_fake_heroku_prints_figures_for_scaler_and_peer() -> None:
    command = [sys.executable, "-m", "dynoscaler", "bench", "webhook"]
    result = subprocess.run(
        [*command, "--rate", "20", "--duration", "1", "--fake-heroku"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["target", "sent", "errors", "req/s", "p50", "ms", "p90", "ms",
                                "p99", "ms", "max", "ms"]  # fmt: skip
    scaler, peer = lines[2].split(), lines[3].split()
    assert scaler[:5] == ["scaler", "POST", "/alerts", "20", "0"], result.stdout
    assert peer[:5] == ["peer", "trivial", "WSGI", "20", "0"], result.stdout
    assert lines[4].startswith("p50 ratio scaler/peer: ")
    assert lines[5].startswith("p99 ratio scaler/peer: ")
