"""Check the size choice of a role that cannot scale out against the simulator's queue.

`dynoscaler bench sizes`: a role of one dyno at most (seeds/000's UniqueJob), its
sizes, and a steady Poisson load that needs `--load` times what one standard-1x
dyno serves. The scaler's choice is computed as in production: the capacity
model's slots at the first size (dynoscaler.model, from the load's true λ and S),
in slots of speed 1, the cheapest size covering them (dynoscaler.sizing, prices
from dynoscaler.prices). Then every size runs the load for `--duration` seconds
in the simulator at its one dyno (its concurrency, jobs shortened by its speed):
the share of jobs within the deadline and the price per hour, so the choice can
be checked to be the cheapest size that keeps the deadline.

Size changes themselves (every dyno restarts: a boot for each) are not simulated.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from dynoscaler.config import RoleSettings, SizeOption
from dynoscaler.model import RoleInputs, required_capacity
from dynoscaler.prices import Prices
from dynoscaler.sim.engine import simulate
from dynoscaler.sim.scenario import parse
from dynoscaler.sizing import SizeChoice, choose_size, units_needed

SIZES = (
    SizeOption("standard-1x", 2),
    SizeOption("standard-2x", 4),
    SizeOption("performance-m", 8, 1.5),
    SizeOption("performance-l", 16, 1.5),
)
ROLE = RoleSettings(
    app="shop",
    role="unique",
    min_dynos=1,
    max_dynos=1,
    target_deadline=60,
    boot_time=45,
    concurrency=SIZES[0].concurrency,
    miss_ratio=0.01,
    scale_down_window=45,
    cooldown=45,
    max_step=1,
    sizes=SIZES,
)
SERVICE_MEAN = 10.0  # seconds at speed 1
SERVICE_CV = 0.5


@dataclass(frozen=True)
class SizeRun:
    option: SizeOption
    within_share: float
    p99_seconds: float
    hourly: float


def chosen(load: float, role: RoleSettings = ROLE, prices: Prices | None = None) -> SizeChoice:
    """The scaler's choice at steady state for `load` times a first-size dyno's slots."""
    first = role.sizes[0]
    rate = load * first.concurrency / (SERVICE_MEAN / first.speed)
    service = SERVICE_MEAN / first.speed
    inputs = RoleInputs(rate, service, 0.0, in_progress=rate * service, current_dynos=1)
    slots = required_capacity(inputs, dataclasses.replace(role, concurrency=first.concurrency))
    return choose_size(units_needed(slots.required_slots, first), role, prices or Prices())


def run_size(
    option: SizeOption, load: float, duration: float, seed: int, prices: Prices
) -> SizeRun:
    """The load on one dyno of `option` for `duration` seconds."""
    first = ROLE.sizes[0]
    rate = load * first.concurrency / (SERVICE_MEAN / first.speed)
    document = {
        "duration": duration,
        "seed": seed,
        "initial_dynos": 1,
        "role": {
            "min_dynos": 1,
            "max_dynos": 1,
            "target_deadline": ROLE.target_deadline,
            "boot_time": ROLE.boot_time,
            "concurrency": option.concurrency,
        },
        "arrivals": {"type": "constant", "rate": rate},
        "service": {"type": "lognormal", "mean": SERVICE_MEAN / option.speed, "cv": SERVICE_CV},
        "policies": ["fixed"],
    }
    result = simulate(parse(document, f"size-{option.size}"), "fixed", seed)
    return SizeRun(option, result.within_share, result.p99, prices.hourly(option.size))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--load", type=float, default=2.5, help="x a first-size dyno")
    parser.add_argument("--duration", type=float, default=4 * 3600, help="seconds simulated")
    parser.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    prices = Prices()
    choice = chosen(args.load, ROLE, prices)
    print(
        f"load {args.load:g} x {ROLE.sizes[0].size} (S {SERVICE_MEAN:g} s, cv {SERVICE_CV:g}), "
        f"deadline {ROLE.target_deadline:g} s, max_dynos {ROLE.max_dynos}, "
        f"{args.duration:g} s simulated, seed {args.seed}"
    )
    print(f"chosen: {choice.size} ({'covers the need' if choice.meets else 'short'})")
    keep = 1 - ROLE.miss_ratio
    print(f"\n{'size':<15}{'slots':>7}{'within':>10}{'p99 s':>9}{'$/hour':>9}  keeps deadline")
    cheapest_keeping = None
    for option in ROLE.sizes:
        size_run = run_size(option, args.load, args.duration, args.seed, prices)
        keeps = size_run.within_share >= keep
        if keeps and cheapest_keeping is None:
            cheapest_keeping = option
        mark = " <- chosen" if option == choice.option else ""
        print(
            f"{option.size:<15}{option.capacity:>7g}{size_run.within_share:>10.2%}"
            f"{size_run.p99_seconds:>9.1f}{size_run.hourly:>9.4f}  {'yes' if keeps else 'no'}{mark}"
        )
    agrees = cheapest_keeping == choice.option
    found = cheapest_keeping.size if cheapest_keeping else "none"
    verdict = "the choice" if agrees else "NOT the choice"
    print(f"\nthe cheapest size keeping {keep:.0%} in time: {found} ({verdict})")
    return 0 if agrees else 1
