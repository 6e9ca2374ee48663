"""Validate a settings file and print the resolved settings per role."""

from __future__ import annotations

import argparse
import time

from dynoscaler import config, schedules
from scaler import quiet

# Each role's next windows shown (of all its schedules together).
NEXT_WINDOWS = 3
_COLUMNS = ("min_dynos", "max_dynos", "target_deadline", "boot_time", "concurrency", "miss_ratio")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="autoscale.yml to check")


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.file)
    print(f"{args.file}: OK, {len(settings.roles)} role(s) in {len(settings.apps)} app(s)")
    overrides = ", ".join(f"{k} ${v:g}" for k, v in settings.prices.overrides.items())
    if overrides:
        print(f"prices per dyno-hour over Heroku's (dynoscaler/prices.py): {overrides}")
    for role in settings.roles:
        values = ", ".join(f"{name}={getattr(role, name)}" for name in _COLUMNS)
        print(f"\n{role.app}/{role.role}: {values}")
        for queue in role.queues:
            prefix = "" if queue.prefix is None else f", prefix {queue.prefix}"
            print(f"  queue {queue.name} ({queue.backend}{prefix}) at {config.redact(queue.url)}")
        if role.requests:
            print(f"  requests from the {role.requests}")
        for schedule, opening in schedules.next_windows(role, time.time(), NEXT_WINDOWS):
            print(f"  window {schedules.describe(schedule, opening)}")
        print(f"  scale_down_when_busy={role.scale_down_when_busy}{quiet.describe(role)}")
        for option in role.sizes:
            price = settings.prices.hourly(option.size)
            print(
                f"  size {option.size}: concurrency {option.concurrency}, speed {option.speed:g}, "
                f"${price:.4f}/dyno-hour"
            )
        if role.sizes:
            print(f"  size_cooldown={role.size_cooldown:g}")
    return 0
