"""Validate a settings file and print the resolved settings per role."""

from __future__ import annotations

import argparse

from dynoscaler import config

_COLUMNS = ("min_dynos", "max_dynos", "target_deadline", "boot_time", "concurrency", "miss_ratio")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="autoscale.yml to check")


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.file)
    print(f"{args.file}: OK, {len(settings.roles)} role(s) in {len(settings.apps)} app(s)")
    for role in settings.roles:
        values = ", ".join(f"{name}={getattr(role, name)}" for name in _COLUMNS)
        print(f"\n{role.app}/{role.role}: {values}")
        for queue in role.queues:
            print(f"  queue {queue.name} ({queue.backend}) at {config.redact(queue.url)}")
        if role.requests:
            print(f"  requests from the {role.requests}")
    return 0
