"""Measure scale_down_when_busy in the simulator: jobs on the dynos a scale-down stops.

`dynoscaler bench busy [--scenario NAME ...]`: dynoscaler's policy on each scenario
with the role's scale_down_when_busy set to allow, wait, wait_long and quiet. Per run:
the share of jobs within the deadline, dyno-seconds, actions, the jobs running on
a dyno when a scale-down stopped it (Heroku's choice: the highest-numbered dynos,
which the simulator numbers in the order they were added), and how many of them
were still running 30 s later (cut by SIGKILL on Heroku). The simulator's
guardrails read the jobs in progress, in all and per dyno, from its last scrape,
as the scaler reads them from Prometheus (dynoscaler_dyno_in_progress); jobs that
start on a dyno between that scrape and the scale-down are what `wait` cannot
see; `quiet` closes that race (the dynos to stop take no new job first:
scaler.quiet, modelled by Formation.quiet). It knows no job's age, so wait_long acts as wait here.
"""

from __future__ import annotations

import argparse
import dataclasses

from dynoscaler.sim.engine import simulate
from dynoscaler.sim.metrics import RunResult
from dynoscaler.sim.scenario import Scenario, load

MODES = ("allow", "wait", "wait_long", "quiet")
SCENARIOS = ("spike-within", "sine-wave", "long-jobs-leak", "quiet-night-long-jobs")


def run_mode(scenario: Scenario, mode: str, seed: int | None = None) -> RunResult:
    role = dataclasses.replace(scenario.role, scale_down_when_busy=mode)
    return simulate(dataclasses.replace(scenario, role=role), "dynoscaler", seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", action="append", help="a scenario (repeatable)")
    parser.add_argument("--seed", type=int, help="default: each scenario's own")


def run(args: argparse.Namespace) -> int:
    print(
        f"{'scenario':<24}{'mode':<11}{'within':>9}{'dyno-s':>9}{'actions':>9}"
        f"{'on stopped':>12}{'past 30 s':>11}"
    )
    missed = []
    for name in args.scenario or SCENARIOS:
        scenario = load(name)
        for mode in MODES:
            r = run_mode(scenario, mode, args.seed)
            print(
                f"{scenario.name:<24}{mode:<11}{r.within_share:>9.2%}{r.dyno_seconds:>9.0f}"
                f"{r.actions:>9}{r.busy_stopped:>12}{r.cut:>11}"
            )
            if mode in ("wait", "quiet") and r.busy_stopped:
                missed.append(f"{scenario.name} {mode} ({r.busy_stopped}, {r.cut} past 30 s)")
    if missed:
        print(
            "\njobs on stopped dynos: " + ", ".join(missed) + " (with wait: jobs that started "
            "after the scrape the scale-down was decided on)"
        )
    else:
        print("\nwait and quiet: no busy job on a stopped dyno")
    return 0
