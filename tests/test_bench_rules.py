"""`dynoscaler bench rules` runs and reports itself complete (no timings asserted)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import head_start
import pytest
from rules_support import ROOT

from dynoscaler.bench_rules import WINDOWS, histogram, recorded_ranges, roles, write_history
from dynoscaler.processes import stop

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

GROUPS = (
    "dynoscaler_alerts",
    "dynoscaler_capacity",
    "dynoscaler_duration_tail",
    "dynoscaler_heroku_budget",
    "dynoscaler_policy",
)


def test_history_is_one_block_of_samples_per_series_in_time_order() -> None:
    out = io.StringIO()
    count = write_history(out, roles(2), origin=0.0, end=1000.0, span=900.0, step=300.0)
    lines = out.getvalue().splitlines()
    assert lines[-1] == "# EOF" and len(lines) == count + 1
    bucket = [line for line in lines if 'app="app0",role="worker"' in line and 'le="+Inf"' in line]
    # the histogram gets the whole span (4 samples), the others the last 10 minutes (3)
    assert [line.rsplit(" ", 1)[1] for line in bucket] == [
        "100.000",
        "400.000",
        "700.000",
        "1000.000",
    ]
    depth = [
        line for line in lines if line.startswith('dynoscaler_queue_depth{app="app0",role="worker"')
    ]
    assert [line.rsplit(" ", 1)[1] for line in depth] == ["400.000", "700.000", "1000.000"]


def test_history_has_the_scrape_labels_and_the_recorded_ranges_at_the_interval() -> None:
    ranges = recorded_ranges(ROOT / "prometheus" / "rules")
    # each scale-down branch of desired_dynos reads its window step's roles over the step
    windowed = "app_role_window:dynoscaler_desired_dynos:unstabilised"
    assert ranges[windowed, "1h"] == 3600 and ranges[windowed, "30s"] == 30
    assert ranges["app_role:dynoscaler_arrival_rate:rate1m", ""] == 300  # [4m] offset 1m
    assert all(span <= 3600 for span in ranges.values())  # qos' 30 d is not backfilled
    out = io.StringIO()
    scrape = 'job="dynoscaler-exporter",instance="127.0.0.1:1"'
    history = {("app_role:x:y", ""): 10.0, ("app_role_w:x:y", "30s"): 5.0, ("w:x", "1h"): 5.0}
    write_history(out, roles(1), 0.0, 1000.0, 900.0, 300.0, scrape, history)
    lines = out.getvalue().splitlines()[:-1]
    raw = [line for line in lines if line.startswith("dynoscaler_")]
    assert raw and all(scrape + "}" in line for line in raw)
    recorded = [line for line in lines if line.startswith("app_role:x:y")]
    # 10 s of history at the 5 s evaluation interval, without the scrape's labels
    assert [line.rsplit(" ", 2)[0] for line in recorded] == [
        'app_role:x:y{app="app0",role="worker"}'
    ] * 3
    assert [line.rsplit(" ", 1)[1] for line in recorded] == ["990.000", "995.000", "1000.000"]
    # the role's window is 30 s: its series of that step only
    windowed = [line.rsplit(" ", 2)[0] for line in lines if "window=" in line]
    assert windowed == ['app_role_w:x:y{app="app0",role="worker",window="30s"}'] * 2


def test_roles_take_every_scale_down_window_step_in_turn() -> None:
    assert [role.window for role in roles(len(WINDOWS))] == list(WINDOWS)


def test_histogram_buckets_are_cumulative_up_to_the_count() -> None:
    values = [value for _, value in histogram(roles(1)[0], 60.0)]
    buckets, total, count = values[:-2], values[-2], values[-1]
    assert buckets == sorted(buckets) and buckets[-1] == count == 60.0
    assert total == pytest.approx(count * 2.0)


@contextmanager
def settling() -> Iterator[Callable[[], tuple[int, str, str]]]:
    """The bench, started when the session is collected (head_start.py); yields its wait."""
    command = [sys.executable, "-m", "dynoscaler", "bench", "rules", "--roles", "20"]
    # a minute of sampling: the once-a-minute group runs at least once
    command += ["--history", "300", "--warmup", "5", "--seconds", "62"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        bench = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True)

        def finished() -> tuple[int, str, str]:
            code = bench.wait(timeout=150)
            out.seek(0)
            err.seek(0)
            return code, out.read(), err.read()

        try:
            yield finished
        finally:
            stop(bench, timeout=15)


def test_bench_reports_every_group_with_no_missed_iteration() -> None:
    code, out, err = head_start.running(sys.modules[__name__])()
    assert code == 0, err
    for group in GROUPS:
        line = re.search(rf"^group {group}: .* missed (\d+)$", out, re.M)
        assert line is not None, out
        assert line[1] == "0", out
    assert re.search(r"^ +[0-9.]+ ms  app_role:dynoscaler_desired_dynos$", out, re.M), out
    assert re.search(r"^ +[0-9.]+ ms  ScaleRole$", out, re.M), out  # one rule, both directions
    assert re.search(r"^all groups: [0-9.]+% of the time", out, re.M), out
    firing = re.search(r"^ScaleRole firing: (\d+);", out, re.M)
    assert firing is not None and int(firing[1]) > 0, out
