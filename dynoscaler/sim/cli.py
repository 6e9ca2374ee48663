"""Simulate autoscaling policies on job-queue scenarios and compare them with a lower bound."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dynoscaler.config import ConfigError
from dynoscaler.sim import scenario as scenarios
from dynoscaler.sim.engine import simulate
from dynoscaler.sim.policies import REGISTRY
from dynoscaler.sim.report import evaluate, table, write_report
from dynoscaler.sim.sweep import sweep, sweep_table, sweeps_pages_table, write_sweep
from dynoscaler.sim.wins import wins_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        action="append",
        help="a shipped scenario name or a YAML file (repeatable; default: all shipped)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        help=f"policy to run (repeatable; default: the scenario's). Known: {', '.join(REGISTRY)}",
    )
    parser.add_argument("--report", metavar="DIR", help="write README.md and PNG plots into DIR")
    parser.add_argument(
        "--timing", action="store_true", help="print how long each run took (the speed benchmark)"
    )
    parser.add_argument(
        "--seeds",
        type=seed_range,
        metavar="FIRST-LAST",
        help="run every scenario on the job traces of these seeds and sum up per policy "
        "(with --report: DIR/seeds.md)",
    )
    parser.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")


def seed_range(text: str) -> tuple[int, ...]:
    """'1-20' -> (1, ..., 20); '5' -> (5,)."""
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIRST-LAST, e.g. 1-20") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"{text!r}: want 0 <= FIRST <= LAST")
    return tuple(range(low, high + 1))


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, path in scenarios.available().items():
            print(f"{name}: {scenarios.load(str(path)).description}")
        return 0
    for name in args.policy or ():
        if name not in REGISTRY:
            raise ConfigError(f"unknown policy {name!r}; known: {', '.join(REGISTRY)}")
    chosen = [scenarios.load(name) for name in args.scenario or scenarios.available()]
    policies = tuple(args.policy) if args.policy else None
    if args.timing:
        return _timing(chosen, policies)
    if args.seeds:
        return _sweep(chosen, policies, args)
    results = []
    for scenario in chosen:
        result = evaluate(scenario, policies)
        results.append(result)
        print(table(result), end="\n\n", flush=True)
    if args.report:
        path = write_report(results, Path(args.report), _command(args))
        print(f"report written to {path}")
    return 0


def _sweep(
    chosen: list[scenarios.Scenario], policies: tuple[str, ...] | None, args: argparse.Namespace
) -> int:
    sweeps = []
    for scenario in chosen:
        sweeps.append(sweep(scenario, args.seeds, policies))
        print(sweep_table(sweeps[-1]), end="\n\n", flush=True)
    print(sweeps_pages_table(sweeps), end="\n\n", flush=True)
    wins = wins_table(sweeps)
    if wins:
        print(wins, end="\n\n", flush=True)
    if args.report:
        path = write_sweep(sweeps, Path(args.report), _command(args))
        print(f"report written to {path}")
    return 0


def _timing(chosen: list[scenarios.Scenario], policies: tuple[str, ...] | None) -> int:
    for scenario in chosen:
        for name in policies or scenario.policies:
            started = time.perf_counter()
            result = simulate(scenario, name)
            elapsed = time.perf_counter() - started
            simulated = scenario.duration / 3600
            print(
                f"{scenario.name} / {name}: {result.jobs:,} jobs, {simulated:g} h simulated in "
                f"{elapsed:.1f} s ({result.jobs / elapsed:,.0f} jobs/s, "
                f"{scenario.duration / elapsed:,.0f}x real time)"
            )
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = ["dynoscaler simulate"]
    parts += [f"--scenario {s}" for s in args.scenario or ()]
    parts += [f"--policy {p}" for p in args.policy or ()]
    if args.seeds:
        parts.append(f"--seeds {args.seeds[0]}-{args.seeds[-1]}")
    return " ".join([*parts, f"--report {args.report}"])
