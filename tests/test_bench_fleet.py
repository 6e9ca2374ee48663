"""`dynoscaler bench fleet` at 2 apps: the whole loop answers a spike and sees a change by hand."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import redis
from rules_support import ROOT

from dynoscaler.bench_fleet import Workload, fleet
from exporter.timing import COUNT_FIELD, timing_key

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/15"


def test_the_workload_records_each_roles_finished_jobs_in_its_timing_hash() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    roles = fleet(2)
    keys = [timing_key(role.name) for role in roles]
    client.delete(*keys)
    workload = Workload(client, roles)
    try:
        for _ in range(50):
            workload.tick()
        counts = [int(client.hget(key, COUNT_FIELD) or 0) for key in keys]
    finally:
        client.delete(*keys)
    # 50 seconds of Poisson arrivals at 0.2-0.4 jobs/s per role
    for role, count in zip(roles, counts, strict=True):
        assert 0.3 * 50 * role.rate < count < 3 * 50 * role.rate, (role, count)


def test_bench_answers_a_spike_sees_a_change_by_hand_and_stays_in_budget() -> None:
    command = [sys.executable, "-m", "dynoscaler", "bench", "fleet", "--apps", "2"]
    command += ["--seconds", "6", "--warmup", "10", "--history", "300", "--event-every", "4"]
    command += ["--no-peer", "--redis-url", REDIS_URL]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    spikes = re.search(r"^spike to PATCH: p50 ([\d.]+) s.*\((\d+) of (\d+) answered\)$", out, re.M)
    assert spikes is not None and int(spikes[2]) >= 1, out
    hand = re.search(r"^change by hand to Prometheus: p50 ([\d.]+) s.*\((\d+) of", out, re.M)
    # a webhook delivery, then the next 5 s scrape
    assert hand is not None and float(hand[1]) < 10, out
    spend = re.search(r"= (\d+)% of the budget .*; 429s (\d+)/hour", out)
    assert spend is not None and int(spend[2]) == 0, out
    for group in ("dynoscaler_alerts", "dynoscaler_capacity"):
        assert re.search(rf"^group {group}: .* missed \d+$", out, re.M), out
    assert re.search(r"^  scaler +CPU [\d.]+ cores, \d+ MiB$", out, re.M), out
