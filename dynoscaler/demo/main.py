"""Run the whole closed loop locally against a fake Heroku, with live progress and a chart.

Starts a fake Heroku whose formation starts and stops local worker processes
(dynos), the exporter, Prometheus and Alertmanager (from the project's
prometheus/ and alertmanager/ files, rewritten for local ports and 2 s
intervals), and the scaler under gunicorn; then pushes a scenario's jobs into
Sidekiq queues on Redis database 3 and shows per role the queue, the oldest
job's wait against the deadline, the dynos and the desired count. At the end it
writes a PNG chart and prints where the decision log is. Ctrl-C stops
everything cleanly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dynoscaler.config import ConfigError
from dynoscaler.demo.supervisor import DemoError, signals_set, stop_on_signals
from dynoscaler.demo.workload import SCENARIOS, Producer, Scenario

if TYPE_CHECKING:
    from dynoscaler.demo.live import Monitor
    from dynoscaler.demo.stack import Stack, StackOptions

DEMO_SETTINGS = Path(__file__).with_name("demo.yml")
DEFAULT_PORT_BASE = 19090
DEFAULT_WARMUP = 65.0
WEB = "web"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        choices=sorted([*SCENARIOS, WEB]),
        default="spike",
        help="load shape (default: spike, within the target); web: a web role's requests "
        "through a router to gunicorn dynos (dynoscaler/demo/web_run.py)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds of load (default: the scenario's, 2.5-3.5 min after the warm-up)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=DEFAULT_WARMUP,
        help="seconds at the opening load first: the rules use rates only after a full minute",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="settings (default: the demo's own, demo.yml; demo-web.yml for --scenario web)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="directory for the chart, logs and data (default: ./demo-<time>)",
    )
    parser.add_argument(
        "--mode",
        choices=("alertmanager", "reconcile"),
        default="alertmanager",
        help="alertmanager: alerts -> webhook; reconcile: the scaler queries Prometheus itself",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3", help="emptied first")
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help="Prometheus on it, Alertmanager +3, exporter +10, scaler +20, fake Heroku +30",
    )
    parser.add_argument(
        "--keep", action="store_true", help="after the run, keep everything up until Ctrl-C"
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: the CLI imports every command module at start-up, and these pull
    # in matplotlib, Flask and the exporter.
    from dynoscaler.demo.stack import Stack

    if args.warmup < 0:
        raise ConfigError(f"demo: --warmup must be 0 or more, not {args.warmup:g}")
    if args.scenario == WEB:
        return _run_web(args)
    scenario = SCENARIOS[args.scenario]()
    if args.duration is not None:
        if args.duration <= 0:
            raise ConfigError(f"demo: --duration must be positive, not {args.duration:g}")
        scenario = dataclasses.replace(scenario, duration=args.duration)
    output, options = _stack_options(args, DEMO_SETTINGS)
    try:
        with stop_on_signals(), Stack(options) as stack:
            _print_pages(stack, scenario, args.warmup)
            return _run_scenario(stack, scenario, args.warmup, output, args.keep)
    except DemoError as error:
        print(f"dynoscaler demo: {error}", file=sys.stderr)
        return 1


def _stack_options(args: argparse.Namespace, settings: Path) -> tuple[Path, StackOptions]:
    """The output directory (made) and the stack's options from the command line."""
    from dynoscaler.demo.stack import Ports, StackOptions

    output = (args.output or Path(f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}")).resolve()
    run_dir = output / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    options = StackOptions(
        settings=(args.config or settings).resolve(),
        run_dir=run_dir,
        ports=Ports.from_base(args.port_base),
        redis_url=args.redis_url,
        mode=args.mode,
    )
    return output, options


def _run_web(args: argparse.Namespace) -> int:
    from dynoscaler.demo.stack import Stack
    from dynoscaler.demo.web_run import DEMO_WEB_SETTINGS, run_web

    _, options = _stack_options(args, DEMO_WEB_SETTINGS)
    try:
        with stop_on_signals(), Stack(options) as stack:
            print(f"demo: Prometheus   {stack.urls['prometheus']}/alerts")
            print(f"demo: logs in      {stack.options.run_dir}")
            with signals_set(threading.Event()) as interrupted:
                return run_web(stack, args.warmup, interrupted)
    except DemoError as error:
        print(f"dynoscaler demo: {error}", file=sys.stderr)
        return 1


def _print_pages(stack: Stack, scenario: Scenario, warmup: float) -> None:
    print(f"demo: scenario {scenario.name}: {scenario.description}, {scenario.duration:g} s")
    if warmup:
        print(
            f"demo: first {warmup:g} s at the opening load (the rules answer a change only "
            "once they have a full minute of samples)"
        )
    print(f"demo: Prometheus   {stack.urls['prometheus']}/alerts")
    if stack.options.mode == "alertmanager":
        print(f"demo: Alertmanager {stack.urls['alertmanager']}/#/alerts")
    print(f"demo: fake Heroku  {stack.urls['heroku']}/__fake__/state")
    print(f"demo: logs in      {stack.options.run_dir}")


def _run_scenario(stack: Stack, scenario: Scenario, warmup: float, output: Path, keep: bool) -> int:
    from dynoscaler.demo.live import Monitor

    monitor = Monitor(stack)
    initial = stack.formation()
    producer = Producer(stack.redis, _queues(stack), scenario, warmup=warmup).start()
    load_offset = time.monotonic() - monitor.started
    with signals_set(threading.Event()) as interrupted:
        try:
            status = _follow(stack, monitor, producer, interrupted)
        finally:
            producer.stop()
        # An interrupted run reports at once, without waiting for the last jobs' scrape.
        settle = 0.0 if status else 60.0
        _report(stack, scenario, monitor, producer, load_offset, initial, output, settle)
        if not keep or status:
            print("demo: stopping everything (--keep would leave it all up)")
            return status
        print(f"demo: everything stays up ({stack.urls['prometheus']}/alerts); Ctrl-C to stop")
        while not interrupted.is_set():
            monitor.show(monitor.sample())
            interrupted.wait(1)
        return 0


def _follow(
    stack: Stack, monitor: Monitor, producer: Producer, interrupted: threading.Event
) -> int:
    """Show the run live until the load ends (0), a service dies (1) or a signal (130)."""
    while not producer.done:
        monitor.show(monitor.sample())
        crashed = stack.crashed()
        if crashed:
            names = ", ".join(child.name for child in crashed)
            print(f"demo: {names} stopped on its own; see {stack.options.run_dir}")
            return 1
        if interrupted.wait(1):
            print("\ndemo: interrupted, stopping everything")
            return 130
    return 0


def _queues(stack: Stack) -> list[str]:
    return [queue.name for role in stack.settings.roles for queue in role.queues]


def _report(
    stack: Stack,
    scenario: Scenario,
    monitor: Monitor,
    producer: Producer,
    load_offset: float,
    initial: dict[tuple[str, str], int],
    output: Path,
    settle: float,
) -> None:
    from dynoscaler.demo import chart, measure, qos

    patches = stack.patches()
    (output / "patches.json").write_text(json.dumps(patches, indent=1))
    rows = [dataclasses.asdict(sample) for sample in monitor.samples]
    (output / "samples.json").write_text(json.dumps(rows))
    spike_at = producer.at(scenario.load_starts_at)
    for role in monitor.roles:
        samples = [s for s in monitor.samples if s.key == role.key]
        path = output / f"{role.app}-{role.role}.png"
        title = f"dynoscaler demo: {scenario.name}, {role.app}/{role.role}"
        chart.draw(samples, producer.pushed, load_offset, producer.warmup, title, path)
        print(f"demo: chart        {path}")
        reaction = measure.reaction_time(patches, role.role, spike_at, initial[role.key])
        name = f"{role.app}/{role.role}"
        print(f"demo: {name}: load start -> formation PATCH {stack.describe_reaction(reaction)}")
        print(f"demo: {name}: {qos.compare(stack, role, settle).line()}")
    for name, seen in monitor.ops_alerts.items():
        print(f"demo: OPS alert    {name}, first in Alertmanager at {seen:.0f} s")
    print(f"demo: PATCH log    {output / 'patches.json'} ({len(patches)} requests)")
    print(
        f"demo: decisions    DYNOSCALER_STORE={stack.store} "
        f"dynoscaler decisions --config {stack.options.settings}"
    )
