"""dynoscaler shadow-report against a real Prometheus holding two hours of synthetic
recorded series (history_support.spike_history) and a real decision store
(SQLite) where the scaler, in dry run, recorded 2 -> 8 and 8 -> 2.
"""

from __future__ import annotations

import csv
import math
import time

import pytest
from history_support import LATE, MINUTES, prometheus_with_history, spike_history, spike_times
from scaler_support import write_settings

from dynoscaler import cli, config, role_series, shadow_report
from scaler.store import Decision, Store


@pytest.fixture(scope="module")
def shadow(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shadow")
    end = math.floor(time.time() / 60) * 60 - 120
    start = end - (MINUTES - 1) * 60
    store_url = f"sqlite:///{directory / 'decisions.sqlite3'}"
    store = Store(store_url)
    decisions = [
        (start + 59 * 60 + 10, 2, 8, "dry run: scale 2 -> 8", "dry_run"),
        (start + 62 * 60, 8, None, "already at 8", "none"),
        (start + 70 * 60 + 10, 8, 2, "dry run: scale 8 -> 2", "dry_run"),
        (start - 3600, 4, 2, "dry run: scale 4 -> 2", "dry_run"),  # before the window
    ]
    store.record(
        [
            Decision(at, "webhook", "shop", "worker", {}, {}, a, b, reason, outcome)
            for at, a, b, reason, outcome in decisions
        ]
    )
    times = spike_times(start)
    history = {**spike_history(start), **enqueue_to_done(start, times[0])}
    with prometheus_with_history(directory, history, times) as url:
        yield url, store, store_url, start, end, directory


def enqueue_to_done(start: float, first: float) -> dict:
    """The exporter's enqueue-to-done counts: 20 jobs a minute, 10 a minute late in LATE."""
    queue = {"app": "shop", "role": "worker", "queue": "default"}

    def late(t: float) -> float:
        return 10 * min(max((t - start - (LATE.start - 1) * 60) / 60, 0), len(LATE))

    return {
        "dynoscaler_job_total_seconds_count": (queue, lambda t: 20 * (t - first) / 60),
        "dynoscaler_jobs_within_deadline_total": (
            queue,
            lambda t: 20 * (t - first) / 60 - late(t),
        ),
    }


def test_minute_by_minute_against_the_formation(shadow):
    url, store, _, start, end, directory = shadow
    settings = config.load(write_settings(directory, "sqlite:///x.sqlite3")).role("shop", "worker")
    report = shadow_report.role_report(url, store, settings, start, end)
    assert len(report.minutes) == MINUTES
    assert report.known("formation") == report.known("would_be") == MINUTES
    assert report.dyno_hours("formation") == pytest.approx(4 * MINUTES / 60)
    assert report.dyno_hours("would_be") == pytest.approx((2 * 110 + 8 * 10) / 60)
    below = shadow_report.stretches(report.minutes, lambda m: m.below_need)
    assert [(int((r[0].t - start) / 60), len(r)) for r in below] == [(60, 10)]
    assert not any(m.would_be_below_need for m in report.minutes)
    assert [int((m.t - start) / 60) for m in report.minutes if m.past_deadline] == list(LATE)
    assert [(d["from_count"], d["to_count"]) for d in report.actions()] == [(2, 8), (8, 2)]


def test_the_command_prints_figures_and_writes_csv_and_chart(shadow, capsys):
    url, _, store_url, _, _, directory = shadow
    path = write_settings(directory, store_url, prometheus_url=url)
    output = directory / "out"
    arguments = ["--config", str(path), "--since", "3h", "-o", str(output)]
    code = cli.main(["shadow-report", *arguments])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "dyno-hours: formation 8.00, dynoscaler would have set 5.00 (-38%)" in printed
    # 8 and 5 dyno-hours at $25/720 an hour
    assert (
        "at the formation's dyno price: $0.28 against $0.17 (minutes with a price: 120)" in printed
    )
    assert "scale actions in the decision log: 2 (dry_run)" in printed
    assert "below the deadline's need: 10 (dynoscaler's count: 0)" in printed
    assert "(JobPastDeadline): 5, up to 400 jobs waiting then" in printed
    # 50 late of 2,390 over the samples' 7,170 s
    assert "within the deadline, enqueue to done: 97.9% (dynoscaler_jobs" in printed
    # The roles without series say so instead of failing.
    assert "dialer/calls: no data in Prometheus" in printed
    with (output / "shop-worker.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert sum(int(r["below_need"]) for r in rows) == 10
    assert (output / "shop-worker.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_dead_prometheus_is_a_message_not_a_traceback(shadow, capsys):
    _, _, store_url, _, _, directory = shadow
    path = write_settings(directory, store_url, prometheus_url="http://127.0.0.1:9")
    code = cli.main(["shadow-report", "--config", str(path), "-o", str(directory / "dead")])
    assert code == 1
    assert "Prometheus at http://127.0.0.1:9" in capsys.readouterr().err


def test_a_bad_since_names_the_option(shadow, capsys):
    _, _, store_url, _, _, directory = shadow
    path = write_settings(directory, store_url)
    assert cli.main(["shadow-report", "--config", str(path), "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err


def test_terms_read_at_an_instant(shadow):
    url, _, _, start, _, _ = shadow
    spike = role_series.at(url, "shop", "worker", start + 65 * 60)
    assert spike["desired"] == 8 and spike["needed"] == 7 and spike["depth"] == 400
    assert spike["arrival_rate"] == 12
    assert spike["processing_p99"] is None  # not recorded in this history
