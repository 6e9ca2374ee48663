"""The `dynoscaler` command: one entry point, one module per sub-command.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`.
A ConfigError anywhere becomes a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dynoscaler.config import ConfigError

# command name -> module; a dict value groups sub-commands ("scaler serve").
COMMANDS: dict[str, str | dict[str, str]] = {
    "check-config": "dynoscaler.check_config",
    "fake-heroku": "scaler.fake_heroku",
    "demo": "dynoscaler.demo.main",
    "simulate": "dynoscaler.sim.cli",
    "simulate-web": "dynoscaler.sim.web",
    "scaler": {"serve": "scaler.serve", "reconcile": "scaler.reconcile"},
    "decisions": "scaler.decisions",
    "cost": "dynoscaler.cost",
    "shadow-report": "dynoscaler.shadow_report",
    "snapshot": "dynoscaler.snapshot",
    "exporter": "exporter.cli",
    "heroku": {"webhooks": "dynoscaler.heroku_webhooks"},
    "bench": {
        "exporter": "exporter.bench",
        "drain": "exporter.bench_drain",
        "web": "exporter.bench_web",
        "sql": "exporter.bench_sql",
        "backends": "exporter.bench_backends",
        "webhook": "scaler.bench",
        "rules": "dynoscaler.bench_rules",
        "busy": "dynoscaler.sim.busy",
        "sizes": "dynoscaler.sim.sizes",
        "fleet": "dynoscaler.bench_fleet",
    },
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynoscaler", description=__doc__.splitlines()[0])
    _add_commands(parser, COMMANDS)
    return parser


def _add_commands(parser: argparse.ArgumentParser, commands: dict[str, str | dict]) -> None:
    subparsers = parser.add_subparsers(dest=f"command_{id(parser)}", required=True)
    for name, target in commands.items():
        if isinstance(target, dict):
            _add_commands(subparsers.add_parser(name, help=f"{name} commands"), target)
            continue
        module = importlib.import_module(target)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as error:
        print(f"dynoscaler: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
