"""The `dynoscaler` command: one entry point, one module per sub-command.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`.
A ConfigError anywhere becomes a one-line message and exit code 2. A command given
`--config F` first reads the .env beside F into its environment (the variables the
environment lacks: dynoscaler/envfile.py), so its secrets may live there too.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from dynoscaler import envfile
from dynoscaler.config import ConfigError

# command name -> module; a dict value groups sub-commands ("scaler serve").
COMMANDS: dict[str, str | dict[str, str]] = {
    "check-config": "dynoscaler.check_config",
    "init": "dynoscaler.init",
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
        "sql-times": "exporter.bench_sql_times",
        "backends": "exporter.bench_backends",
        "webhook": "scaler.bench",
        "rules": "dynoscaler.bench_rules",
        "busy": "dynoscaler.sim.busy",
        "sizes": "dynoscaler.sim.sizes",
        "fleet": "dynoscaler.bench_fleet",
    },
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given `argv`, only the module of the command it names is
    imported, the others are added by name (or, for a help listing, with their docstrings):
    some import matplotlib, gunicorn or a database driver, seconds of every start-up."""
    parser = argparse.ArgumentParser(prog="dynoscaler", description=__doc__.splitlines()[0])
    _add_commands(parser, COMMANDS, argv)
    return parser


def _add_commands(
    parser: argparse.ArgumentParser, commands: dict[str, str | dict], argv: Sequence[str] | None
) -> None:
    subparsers = parser.add_subparsers(dest=f"command_{id(parser)}", required=True)
    chosen = argv[0] if argv else None
    for name, target in commands.items():
        rest = None if argv is None else (argv[1:] if name == chosen else [])
        if argv is not None and chosen in commands and name != chosen:
            # another command was chosen: only its name is ever shown (parsing every
            # module's source for its docstring costs 0.3-1.4 s a start)
            subparsers.add_parser(name)
            continue
        if isinstance(target, dict):
            _add_commands(subparsers.add_parser(name, help=f"{name} commands"), target, rest)
            continue
        description = _docstring(target)
        summary = description.strip().splitlines()[0] if description.strip() else ""
        sub = subparsers.add_parser(name, help=summary, description=description)
        if argv is None or name == chosen:
            module = importlib.import_module(target)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)


def _docstring(module_name: str) -> str:
    """A module's docstring, read from its source without importing it."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no module named {module_name!r}")
    source = Path(spec.origin).read_text(encoding="utf-8")
    return ast.get_docstring(ast.parse(source)) or ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        if getattr(args, "config", None):
            envfile.load_beside(args.config)
        return args.run(args)
    except ConfigError as error:
        print(f"dynoscaler: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
