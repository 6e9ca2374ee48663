"""scale_down_when_busy (issue 18, item 3): scale-downs that wait for running jobs, with the
jobs in progress read from a real Prometheus scraping exporter-shaped series."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from scaler_support import HEROKU_KEY, prometheus_scraping
from support import metrics_page

from dynoscaler import config, heroku
from scaler.actuator import Actuator
from scaler.busy import BusyReader
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.guardrails import Busy, Request, busy_refusal
from scaler.service import RoleInput, Scaler
from scaler.store import Store

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("mode", "busy", "target", "refused"),
    [
        ("allow", Busy(None), 0, None),
        ("allow", Busy(50, 600), 0, None),
        ("wait", Busy(None), 3, "jobs in progress unknown"),
        ("wait", Busy(7, None), 3, "7 job(s) in progress, 3 dyno(s) have 6 slot(s)"),
        ("wait", Busy(6, None), 3, None),
        ("wait", Busy(1, 900), 1, None),  # wait looks at counts only
        # Per dyno: Heroku stops the highest numbers, so those must be idle, whatever
        # the count; the dynos that stay may run any number of jobs.
        ("wait", Busy(1, None, {1: 0, 2: 0, 3: 1}), 2, "1 job(s) in progress on dyno(s) 3,"),
        ("wait", Busy(2, None, {3: 1, 4: 1}), 2, "on dyno(s) 3, 4, which a scale-down to 2"),
        ("wait", Busy(5, None, {1: 2, 2: 3, 3: 0}), 2, None),
        ("wait_long", Busy(1, None, {4: 1}), 3, "on dyno(s) 4"),  # no age: as wait
        ("wait_long", Busy(1, 10, {4: 1}), 3, None),
        ("wait_long", Busy(1, 45), 3, "a job has run 45s, longer than Heroku's 30s"),
        ("wait_long", Busy(7, 20), 1, None),  # short jobs finish within the grace
        ("wait_long", Busy(0, 45), 1, None),  # a stale age with nothing running
        ("wait_long", Busy(7, None), 3, "(oldest job's age unknown)"),  # as wait
        ("wait_long", Busy(None, 45), 3, "jobs in progress unknown"),
    ],
)
def test_busy_refusal(mode, busy, target, refused) -> None:
    reason = busy_refusal(mode, busy, target, concurrency=2)
    if refused is None:
        assert reason is None
    else:
        assert refused in reason


class Page:
    def __init__(self) -> None:
        self.in_progress: float | None = 0.0
        self.oldest: float | None = None
        self.by_dyno: dict[int, float] = {}

    def render(self) -> str:
        lines = []
        labels = 'app="shop",role="worker",backend="rq"'
        if self.in_progress is not None:
            # two queues: the role's jobs in progress are their sum
            lines.append(f'dynoscaler_queue_in_progress{{{labels},queue="a"}} 1\n')
            lines.append(
                f'dynoscaler_queue_in_progress{{{labels},queue="b"}} {self.in_progress - 1}\n'
            )
        if self.oldest is not None:
            lines.append(
                f'dynoscaler_queue_oldest_in_progress_age_seconds{{{labels},queue="a"}} '
                f"{self.oldest}\n"
            )
        for dyno, jobs in self.by_dyno.items():
            lines.append(f'dynoscaler_dyno_in_progress{{{labels},dyno="{dyno}"}} {jobs}\n')
        return "".join(lines)


def settings_file(tmp_path: Path, url: str, mode: str) -> config.Config:
    worker = {
        "concurrency": 2,
        "max_dynos": 10,
        "scale_down_when_busy": mode,
        "cooldown": 0,
        "queues": [{"name": "a", "backend": "rq", "url": "redis://127.0.0.1/13"}],
    }
    document = {
        "apps": {"shop": {"roles": {"worker": worker}}},
        "scaler": {
            "store": f"sqlite:///{tmp_path / 's.sqlite3'}",
            "prometheus_url": url,
        },
    }
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return config.load(path)


def wait_for_value(url: str, reader: BusyReader, expected: Busy) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if reader("shop", "worker") == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed {expected}: {reader('shop', 'worker')}")


def test_wait_holds_the_scale_down_while_the_jobs_need_the_dynos(tmp_path, monkeypatch) -> None:
    page = Page()
    server = metrics_page(page.render)
    with prometheus_scraping(tmp_path, server.port) as url:
        settings = settings_file(tmp_path, url, "wait")
        fake = FakeHeroku(settings, HEROKU_KEY)
        heroku_server = FakeHerokuServer(fake, access_log=False).start()
        monkeypatch.setenv("HEROKU_API_URL", heroku_server.url)
        monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
        reader = BusyReader(url)
        scaler = Scaler(settings, Store(settings.scaler.store), Actuator(heroku.client), print)

        def deliver(desired: int) -> Any:
            request = Request(desired, time.time())
            (decision,) = scaler.apply("shop", [RoleInput("worker", request, {})], "test")
            return decision

        try:
            assert deliver(4).to_count == 4  # up: never held
            page.in_progress = 7
            wait_for_value(url, reader, Busy(7, None))
            held = deliver(1)
            assert (held.outcome, held.to_count) == ("none", None)
            assert "no scale-down (wait): 7 job(s) in progress, 1 dyno(s) have 2 slot(s)" in (
                held.reason
            )
            assert held.inputs["busy"] == {"in_progress": 7.0, "oldest_in_progress_age": None}
            # 3 dynos would hold the 5 jobs left: that far it goes.
            page.in_progress = 5
            wait_for_value(url, reader, Busy(5, None))
            assert deliver(1).outcome == "none"
            assert (deliver(3).outcome, fake.quantities()[("shop", "worker")]) == ("success", 3)
            # No in-progress series (the source gone): unknown, held.
            page.in_progress = None
            wait_for_value(url, reader, Busy(None, None))
            assert "jobs in progress unknown" in deliver(1).reason
            page.in_progress = 1
            wait_for_value(url, reader, Busy(1, None))
            assert deliver(1).outcome == "success"
            # Where the exporter tells each dyno's jobs: only the dynos a scale-down
            # stops (the highest numbers) must be idle.
            assert deliver(4).to_count == 4
            page.in_progress, page.by_dyno = 3, {1: 1, 2: 1, 4: 1}
            wait_for_value(url, reader, Busy(3, None, {1: 1, 2: 1, 4: 1}))
            held = deliver(3)
            assert "1 job(s) in progress on dyno(s) 4, which a scale-down to 3 stops" in (
                held.reason
            )
            assert held.inputs["busy"]["in_progress_by_dyno"] == {"1": 1, "2": 1, "4": 1}
            page.by_dyno = {1: 2, 2: 1, 4: 0}
            wait_for_value(url, reader, Busy(3, None, {1: 2, 2: 1, 4: 0}))
            assert deliver(2).outcome == "success"  # 3 jobs on 2 dynos' 4 slots
            page.by_dyno = {}
            # wait_long reads the oldest running job's age where a backend tells it.
            page.in_progress, page.oldest = 3, 95
            wait_for_value(url, reader, Busy(3, 95))
            assert "a job has run 95s" in busy_refusal("wait_long", reader("shop", "worker"), 5, 2)
        finally:
            heroku_server.stop()
            server.close()
    # Prometheus gone: unknown, and the decision says so rather than failing.
    assert reader("shop", "worker") == Busy(None, None)
