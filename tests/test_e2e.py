"""The closed loop end to end: real Redis, exporter, Prometheus, Alertmanager, scaler
(gunicorn), the fake Heroku and dyno processes, started by the demo's Stack.

The project's rules answer a load change only once they have a full minute of
samples, hold a scale-down ScaleRole for 15 s and estimate rates over 1 m, so one closed
loop takes minutes. To stay within about five minutes, four loops run side by
side from one module fixture, each on its own Redis database (4, 8, 9, 10);
the tests below run in file order and wait for their loop's moments:

- "am": through Alertmanager: spike -> scale-up; scaler restart; load ends ->
  scale-down to min_dynos, one PATCH per recorded decision across the restart;
- "dead": the same load; once the rules want fewer dynos the exporter is
  killed: no scale-down follows;
- "ops": max_dynos 2 under a load needing about 8: DeadlineUnmeetable;
- "reconcile": no Alertmanager, the scaler queries Prometheus itself.

The Ctrl-C test of the `demo` command runs first, before the loops use database 4.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

from dynoscaler.demo import measure, qos
from dynoscaler.demo.stack import ROOT, Ports, Stack, StackOptions
from dynoscaler.demo.supervisor import DemoError, check_ports_free, free_port
from dynoscaler.demo.workload import Producer, Scenario, spike
from scaler.store import Store

pytestmark = pytest.mark.e2e

APP, ROLE = "e2e-shop", "worker"
MIN, MAX = 1, 8
WARMUP = 62.0  # a full minute of samples before the rules compute rates
T = TypeVar("T")


def settings(max_dynos: int) -> dict[str, Any]:
    role = {
        "min_dynos": MIN,
        "max_dynos": max_dynos,
        "target_deadline": 20,
        "boot_time": 2,
        "concurrency": 4,
        "scale_down_window": 10,
        "cooldown": 5,
        "queues": [{"name": "default", "backend": "sidekiq", "url": "${DEMO_REDIS_URL}"}],
    }
    return {
        "apps": {APP: {"roles": {ROLE: role}}},
        "exporter": {"source_timeout": 1, "formation_interval": 1},
        "scaler": {
            "store": "${DYNOSCALER_STORE}",
            "prometheus_url": "${PROMETHEUS_URL}",
            "reconcile_interval": 1,
            "stale_after": 10,
        },
    }


def wait_for(what: str, check: Callable[[], T], timeout: float, stack: Stack) -> T:
    """Poll check() until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crashed = stack.crashed()
        assert not crashed, f"{crashed[0].name} died:\n{crashed[0].log_tail()}"
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:g} s: {what}; formation {stack.formation()}")


def start_loop(
    directory: Path, mode: str, db: int, scenario: Scenario, max_dynos: int
) -> tuple[Stack, Producer]:
    path = directory / "autoscale.yml"
    path.write_text(yaml.safe_dump(settings(max_dynos)))
    options = StackOptions(
        settings=path,
        run_dir=directory,
        ports=Ports.free(),
        redis_url=f"redis://127.0.0.1:6379/{db}",
        mode=mode,
        interval=1.0,
        group_wait=1.0,
    )
    stack = Stack(options).__enter__()
    try:
        producer = Producer(stack.redis, ["default"], scenario, warmup=WARMUP)
        return stack, producer.start()
    except BaseException:
        stack.stop()
        raise


@pytest.fixture(scope="module")
def loops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Stack, Producer]]]:
    # 1 job/s idles at one dyno; 40 jobs/s of 0.5 s jobs need about 6 dynos of 4 slots.
    specs = {
        "am": ("alertmanager", 4, spike(base=1, peak=40, start=0, length=30, duration=900), MAX),
        "dead": ("alertmanager", 10, spike(base=1, peak=40, start=0, length=30, duration=900), MAX),
        "ops": ("alertmanager", 8, spike(base=1, peak=60, start=0, length=900, duration=900), 2),
        "reconcile": ("reconcile", 9, spike(base=1, peak=40, start=0, length=900), MAX),
    }
    started: dict[str, tuple[Stack, Producer]] = {}
    try:
        for name, (mode, db, scenario, max_dynos) in specs.items():
            directory = tmp_path_factory.mktemp(name)
            started[name] = start_loop(directory, mode, db, scenario, max_dynos)
        yield started
    finally:
        for stack, producer in started.values():
            producer.stop()
            stack.stop()


def worker_quantity(stack: Stack) -> int:
    return stack.formation()[(APP, ROLE)]


def scaled_up(stack: Stack, producer: Producer) -> dict[str, Any] | None:
    spike_at = producer.at(producer.scenario.load_starts_at)
    return measure.first_scale_up(stack.patches(), ROLE, spike_at, MIN)


def decisions(stack: Stack) -> list[dict[str, Any]]:
    """The scaler's decision log, oldest first."""
    return list(reversed(Store(stack.store).decisions(APP, ROLE, limit=10_000)))


def successes_recorded(
    stack: Stack, enough: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The successful decisions once `enough` holds of them.

    A decision is written when Heroku has answered, a moment after the fake saw the PATCH.
    """

    def recorded() -> list[dict[str, Any]]:
        success = [d for d in decisions(stack) if d["outcome"] == "success"]
        return success if success and enough(success) else []

    return wait_for("the PATCH's decision in the log", recorded, 10, stack)


def report_reaction(stack: Stack, producer: Producer, patch: dict[str, Any]) -> None:
    reaction = patch["at"] - producer.at(producer.scenario.load_starts_at)
    print(f"\n{stack.options.mode}: spike -> formation PATCH {stack.describe_reaction(reaction)}")


@pytest.fixture(scope="module")
def phases() -> dict[str, float]:
    """When the Alertmanager loop's phases did things (unix times), for the later phases."""
    return {}


# -- the demo command ------------------------------------------------------------------------


def _free_port_base() -> int:
    for _ in range(50):
        base = free_port()
        try:
            check_ports_free(dataclasses.asdict(Ports.from_base(base)))
        except DemoError:
            continue
        return base
    raise AssertionError("no free port range")


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is `directory` (every child the demo starts)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.timeout(120)
def test_demo_command_stops_everything_on_ctrl_c(tmp_path):
    output = tmp_path / "out"
    command = [sys.executable, "-m", "dynoscaler", "demo", "--output", str(output)]
    command += ["--redis-url", "redis://127.0.0.1:6379/4", "--port-base", str(_free_port_base())]
    demo = subprocess.Popen(
        [*command, "--duration", "120", "--warmup", "0"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "demo-shop/worker: queue" in line:
                break
        run_dir = output / "run"
        assert len(_processes_in(run_dir)) >= 4, "".join(lines)  # services and one dyno
        demo.send_signal(signal.SIGINT)
        rest = demo.stdout.read()
        assert demo.wait(timeout=60) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        demo.stdout.close()
    assert "interrupted, stopping everything" in rest
    assert (output / "demo-shop-worker.png").stat().st_size > 10_000
    assert _processes_in(run_dir) == []


# -- reconcile mode and the OPS alert (their loops run beside the Alertmanager one) -----------


@pytest.mark.timeout(180)
def test_reconcile_mode_scales_without_alertmanager(loops):
    stack, producer = loops["reconcile"]
    assert "alertmanager" not in stack.children
    patch = wait_for("a scale-up PATCH", lambda: scaled_up(stack, producer), WARMUP + 60, stack)
    report_reaction(stack, producer, patch)
    success = successes_recorded(stack, lambda success: len(success) >= 1)
    assert success[0]["source"] == "reconcile"
    assert success[0]["to_count"] == measure.quantities(patch)[ROLE]


@pytest.mark.timeout(180)
def test_out_of_bounds_spike_fires_the_ops_alert(loops):
    # 60 jobs/s of 0.5 s need about 8 dynos; the budget is 2.
    stack, _ = loops["ops"]

    def unmeetable() -> list[dict[str, Any]]:
        return [a for a in stack.alerts("DeadlineUnmeetable") if a["status"]["state"] == "active"]

    (alert,) = wait_for("DeadlineUnmeetable in Alertmanager", unmeetable, WARMUP + 100, stack)
    assert alert["labels"]["severity"] == "ops"
    assert (alert["labels"]["app"], alert["labels"]["role"]) == (APP, ROLE)
    assert worker_quantity(stack) == 2
    assert max(measure.quantities(p)[ROLE] for p in stack.patches()) == 2


# -- the Alertmanager loop, in phases ----------------------------------------------------------


@pytest.mark.timeout(180)
def test_spike_scales_up_through_alertmanager(loops):
    stack, producer = loops["am"]
    patch = wait_for("a scale-up PATCH", lambda: scaled_up(stack, producer), WARMUP + 60, stack)
    report_reaction(stack, producer, patch)
    asked = measure.quantities(patch)[ROLE]
    assert MIN < asked <= MAX
    webhook = successes_recorded(stack, lambda success: len(success) >= 1)
    assert webhook[0]["source"] == "webhook"
    assert webhook[0]["to_count"] == asked


@pytest.mark.timeout(60)
def test_scaler_restart_loses_no_decision(loops, phases):
    stack, _ = loops["am"]
    phases["scaler restarted"] = time.time()
    stack.stop_scaler()
    # Read once the old process has stopped: Alertmanager keeps re-sending, so until then
    # it may record one more decision.
    before = decisions(stack)
    assert before, "the first phase recorded decisions"
    stack.start_scaler()
    # The new process serves every decision taken before it started (and may have taken
    # one since, for an alert re-sent meanwhile).
    answer = requests.get(
        f"{stack.urls['scaler']}/decisions",
        params={"app": APP, "role": ROLE, "limit": 1000},
        headers={"Authorization": f"Bearer {stack.options.token}"},
        timeout=5,
    )
    answer.raise_for_status()
    served = [d["id"] for d in reversed(answer.json()["decisions"])]
    assert served[: len(before)] == [d["id"] for d in before]
    # The scale-down phase below checks that it acts, once per decision, after the restart.


@pytest.mark.timeout(200)
def test_dead_exporter_causes_no_scale_down(loops):
    stack, producer = loops["dead"]
    time.sleep(max(0.0, producer.at(producer.scenario.load_ends_at) - time.time()))
    assert worker_quantity(stack) > MIN

    def scale_down_pending() -> bool:
        # the need has dropped while the scale-down window still holds the count
        need = stack.query(
            f'app_role:dynoscaler_desired_dynos:unstabilised{{app="{APP}",role="{ROLE}"}}'
        )
        return bool(need) and float(need[0]["value"][1]) < worker_quantity(stack)

    wait_for("the rules to want fewer dynos", scale_down_pending, 120, stack)
    stack.stop_exporter()
    patches_before = len(stack.patches())
    held_from = worker_quantity(stack)
    # Longer than scale_down_window (10 s) + cooldown (5 s) + Alertmanager's group_wait (1 s);
    # the "am" loop, with the same load and a live exporter, scales down meanwhile.
    time.sleep(32)
    assert worker_quantity(stack) == held_from
    assert stack.patches()[patches_before:] == []


@pytest.mark.timeout(200)
def test_scales_back_down_after_the_load_ends(loops, phases):
    stack, _ = loops["am"]
    wait_for("the formation back at min_dynos", lambda: worker_quantity(stack) == MIN, 150, stack)
    success = successes_recorded(stack, lambda success: success[-1]["to_count"] == MIN)
    assert (success[-1]["source"], success[-1]["to_count"]) == ("webhook", MIN)
    assert success[-1]["time"] > phases["scaler restarted"]
    # One PATCH per successful decision, same counts, in order, across the scaler's
    # restart: nothing acted twice, nothing acted without a record.
    patched = [measure.quantities(p)[ROLE] for p in stack.patches() if p["status"] == 200]
    assert patched == [d["to_count"] for d in success]
    assert all(MIN <= quantity <= MAX for quantity in patched)


def test_the_metrics_share_within_the_deadline_equals_the_dynos_count(loops):
    stack, producer = loops["am"]
    producer.stop()  # the last jobs finish and are scraped: both counts stop moving
    role = next(r for r in stack.settings.roles if (r.app, r.role) == (APP, ROLE))
    share = qos.compare(stack, role, timeout=30)
    print(f"\n{APP}/{ROLE}: {share.line()}")
    assert share.done > 0 and share.agrees, share.line()
