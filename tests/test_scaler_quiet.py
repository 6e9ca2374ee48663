"""scale_down_when_busy: quiet — the dynos a scale-down stops are quieted first, then
stopped once idle (scaler.quiet): the scaler with real Sidekiq 6 processes (Debian's
ruby-sidekiq) as worker.1-3 and the fake Heroku's formation over HTTP."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from exporter_helpers import REDIS_DB1, redis_db1  # noqa: F401 (the db1 fixture)
from prometheus_client import REGISTRY
from scaler_support import HEROKU_KEY
from test_exporter_sidekiq import Sidekiq

from dynoscaler import check_config, config, heroku
from dynoscaler.processes import stop
from scaler.actuator import Actuator
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.guardrails import Busy, Request, busy_refusal
from scaler.quiet import (
    DynoJobs,
    Quieting,
    SidekiqQuieter,
    Step,
    as_busy,
    heroku_restart,
    plan,
    step,
)
from scaler.service import RoleInput, Scaler
from scaler.store import Store


def test_plan_quiets_the_dynos_above_the_target_and_goes_once_they_are_idle():
    working = {1: DynoJobs(False, 2), 2: DynoJobs(False, 1), 3: DynoJobs(False, 0)}
    step = plan(working, current=3, target=1)
    assert step.quiet == [2, 3]
    assert step.refusal == (
        "no scale-down to 1 yet (quiet): quieting dyno(s) 2, 3; 1 job(s) still running on dyno(s) 2"
    )
    draining = {1: DynoJobs(False, 2), 2: DynoJobs(True, 1), 3: DynoJobs(True, 0)}
    assert plan(draining, 3, 1) == Step(
        refusal="no scale-down to 1 yet (quiet): 1 job(s) still running on dyno(s) 2"
    )
    idle = {1: DynoJobs(False, 2), 2: DynoJobs(True, 0)}  # dyno 3 reports no process
    assert plan(idle, 3, 1) == Step()


def test_step_quiets_only_what_the_guardrails_scale_down_stops(tmp_path):
    (role,) = settings_file(tmp_path).roles  # min 1, max 4
    working = {n: DynoJobs(False, 1) for n in (1, 2, 3, 4)}
    # held by the guardrails (stale data, cooldown): no dyno is quieted
    assert step(working, role, current=4, desired=1, target=None) == Step()
    # max_step 1: only dyno 4, which the scale-down to 3 stops
    assert step(working, role, 4, 1, 3).quiet == [4]
    # above max_dynos the count is brought back regardless
    assert step(working, role, current=6, desired=4, target=4) == Step()


def test_plan_lists_idle_quieted_dynos_the_formation_keeps_for_a_restart():
    # quieted for a scale-down to 1, then the load came back: 3 are kept
    dynos = {1: DynoJobs(False, 2), 2: DynoJobs(True, 0), 3: DynoJobs(True, 1)}
    assert plan(dynos, current=3, target=3) == Step(restart=[2])
    assert plan(dynos, current=3, target=5) == Step(restart=[2])


def test_a_size_change_under_quiet_waits_while_any_worker_runs_a_job():
    # a size change restarts every dyno: as under wait, from the workers' own counts
    dynos = {1: DynoJobs(False, 0), 2: DynoJobs(True, 1)}
    assert busy_refusal("quiet", as_busy(dynos), 0, 1) == (
        "no scale-down (quiet): 1 job(s) in progress on dyno(s) 2, which a scale-down to 0 stops"
    )
    assert busy_refusal("quiet", as_busy({1: DynoJobs(False, 0)}), 0, 1) is None


def settings_file(tmp_path: Path) -> config.Config:
    worker = {
        "concurrency": 1,
        "max_dynos": 4,
        "cooldown": 0,
        "scale_down_when_busy": "quiet",
        "queues": [{"name": "default", "backend": "sidekiq", "url": REDIS_DB1}],
    }
    document = {
        "apps": {"shop": {"roles": {"worker": worker}}},
        "scaler": {"store": f"sqlite:///{tmp_path / 's.sqlite3'}"},
    }
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return config.load(path)


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("sidekiq") is None, reason="no sidekiq (./scripts/setup)")
def test_the_scaler_stops_quieted_sidekiq_dynos_once_idle_and_restarts_kept_ones(
    tmp_path, db1, monkeypatch
):
    settings = settings_file(tmp_path)
    fake = FakeHeroku(settings, HEROKU_KEY)
    heroku_server = FakeHerokuServer(fake, access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", heroku_server.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    scaler = Scaler(settings, Store(settings.scaler.store), Actuator(heroku.client), print)
    sidekiq = Sidekiq(tmp_path)
    quieter = SidekiqQuieter(REDIS_DB1, "worker", ["default"])
    dynos: dict[int, subprocess.Popen[bytes]] = {}

    def boot(*numbers: int) -> None:  # as Heroku starts dynos: a process each
        for n in numbers:
            sidekiq.env = {**sidekiq.env, "DYNO": f"worker.{n}"}
            dynos[n] = sidekiq.start("default", concurrency=1)
        _until(lambda: set(quieter.dynos()) == set(numbers))

    def deliver(desired: int) -> Any:
        request = Request(desired, time.time())
        (decision,) = scaler.apply("shop", [RoleInput("worker", request, {})], "test")
        return decision

    def quantity() -> int:
        return fake.quantities()[("shop", "worker")]

    try:
        assert deliver(3).outcome == "success"
        boot(1, 2, 3)
        sidekiq.ruby("3.times { SlowJob.perform_async(6) }")  # > 5 s: a heartbeat sees it
        _until(lambda: quieter.dynos() == {n: DynoJobs(False, 1) for n in (1, 2, 3)})
        held = deliver(1)
        assert (held.outcome, quantity()) == ("none", 3)
        assert "quieting dyno(s) 2, 3; 2 job(s) still running on dyno(s) 2, 3" in held.reason
        assert held.inputs["dynos"]["3"] == {"quiet": False, "busy": 1}
        _until(lambda: quieter.dynos()[2].quiet and quieter.dynos()[3].quiet)
        sidekiq.ruby("5.times { SlowJob.perform_async(3) }")
        _until(lambda: deliver(1).outcome != "none", timeout=40)
        assert quantity() == 1
        # stopped only once idle, while jobs still waited (a fetching dyno takes them)
        seen = quieter.dynos()
        assert (seen[2], seen[3]) == (DynoJobs(True, 0), DynoJobs(True, 0))
        assert db1.llen("queue:default") > 0
        # The load comes back. (Heroku would have stopped worker.2 and .3; their quiet
        # processes stand here for dynos quieted and then kept.) They are restarted.
        assert deliver(3).outcome == "success"
        back = deliver(3)
        assert "restarted quieted dyno(s) 2, 3, which stay" in back.reason
        assert (fake.restarts, quantity()) == ([("shop", "worker.2"), ("shop", "worker.3")], 3)
        # once: the old processes report themselves quiet until Heroku's SIGTERM lands
        assert "restarted" not in deliver(3).reason
        assert len(fake.restarts) == 2
    finally:
        for server in dynos.values():
            stop(server)
        heroku_server.stop()


def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_with_no_worker_named_after_a_dyno_quiet_acts_as_wait(tmp_path, db1):
    # e.g. Sidekiq run without $DYNO: a process whose hostname names no dyno of the role
    (role,) = settings_file(tmp_path).roles
    db1.sadd("processes", "web-1:1:abc")
    db1.hset("web-1:1:abc", mapping={"info": '{"hostname": "web-1", "queues": ["default"]}'})
    assert Quieting(lambda app, dyno: False).read(role) is None


def test_check_config_says_which_roles_quiet_and_refuses_an_unknown_rule(tmp_path, capsys):
    worker = {"scale_down_when_busy": "quiet", "queues": [_queue("sidekiq")]}
    mailer = {"scale_down_when_busy": "quiet", "queues": [_queue("rq")]}
    document = {"apps": {"shop": {"roles": {"worker": worker, "mailer": mailer}}}}
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document))
    assert check_config.run(argparse.Namespace(file=str(path))) == 0
    shown = capsys.readouterr().out
    assert "scale_down_when_busy=quiet (Sidekiq: the dynos a scale-down stops are quieted" in shown
    assert "scale_down_when_busy=quiet (acts as wait: quieting needs every queue" in shown
    mailer["scale_down_when_busy"] = "sometimes"
    path.write_text(yaml.safe_dump(document))
    rule = "mailer.scale_down_when_busy: 'sometimes' is not one of: allow, wait, wait_long, quiet"
    with pytest.raises(config.ConfigError, match=re.escape(rule)):
        config.load(path)


def _queue(backend: str) -> dict[str, str]:
    return {"name": "default", "backend": backend, "url": REDIS_DB1}


def test_a_dry_run_judges_quiet_as_wait_and_quiets_nothing(tmp_path, db1):
    # A dry run never quiets, so quiet's "once they are quiet" would never come and
    # the shadow decisions would never scale down: the dynos' jobs decide, as wait.
    settings = settings_file(tmp_path)
    scaler_settings = dataclasses.replace(settings.scaler, dry_run=True)
    settings = dataclasses.replace(settings, scaler=scaler_settings)
    for n in (1, 2, 3):  # three idle Sidekiq processes, not quiet, as worker.1-3
        identity = f"worker.{n}:1:abc"
        db1.sadd("processes", identity)
        info = json.dumps({"hostname": f"worker.{n}", "queues": ["default"]})
        db1.hset(identity, mapping={"info": info, "busy": "0", "quiet": "false"})
    by_dyno = {1: 0.0, 2: 0.0, 3: 1.0}  # what Prometheus would say: a job on worker.3

    def busy(app: str, role: str) -> Busy:
        return Busy(sum(by_dyno.values()), by_dyno=dict(by_dyno))

    store, actuator = Store(settings.scaler.store), Actuator(heroku.client)
    scaler = Scaler(settings, store, actuator, print, busy=busy)

    def deliver(desired: int) -> Any:
        request = Request(desired, time.time())
        (decision,) = scaler.apply("shop", [RoleInput("worker", request, {})], "test")
        return decision

    up = deliver(3)
    assert (up.outcome, up.to_count) == ("dry_run", 3)
    held = deliver(1)
    assert held.outcome == "none" and "on dyno(s) 3" in held.reason
    by_dyno[3] = 0.0
    shown = deliver(1)
    assert (shown.outcome, shown.to_count) == ("dry_run", 1)
    assert not any(db1.exists(f"worker.{n}:1:abc-signals") for n in (1, 2, 3))


def test_a_kept_quieted_dyno_is_restarted_by_app_name_without_a_read_of_the_app(
    tmp_path, monkeypatch
):
    settings = settings_file(tmp_path)
    fake = FakeHeroku(settings, HEROKU_KEY)
    server = FakeHerokuServer(fake, access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    labels = {"client": "scaler", "kind": "app"}
    app_reads = REGISTRY.get_sample_value("dynoscaler_heroku_api_requests_total", labels) or 0.0
    fake.update(fake.app("shop"), [{"type": "worker", "quantity": 2}])
    try:
        assert heroku_restart(Actuator(heroku.client))("shop", "worker.1")
        assert fake.restarts == [("shop", "worker.1")]
        after = REGISTRY.get_sample_value("dynoscaler_heroku_api_requests_total", labels) or 0.0
        assert after == app_reads  # no GET /apps/{name}: a token saved per restart
    finally:
        server.stop()
