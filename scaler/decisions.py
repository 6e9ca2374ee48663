"""Print the scaler's decision log as a table or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any

from dynoscaler import config
from dynoscaler.config import ConfigError
from scaler.store import COLUMNS, Store

_COLUMNS = ("time", "source", "app", "role", "from_count", "to_count", "outcome", "reason")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="autoscale.yml (for scaler.store)")
    parser.add_argument("--app", help="only this app")
    parser.add_argument("--role", help="only this role")
    parser.add_argument("--limit", type=int, default=50, help="newest N records (default 50)")
    parser.add_argument("--csv", action="store_true", help="CSV with every column, inputs included")


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    store = Store(config.load(args.config).scaler.store)
    rows = store.decisions(args.app, args.role, args.limit)
    if args.csv:
        _write_csv(rows)
    else:
        _write_table(rows)
    return 0


def _cell(column: str, value: Any) -> str:
    if column == "time":
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "-" if value is None else str(value)


def _write_table(rows: list[dict[str, Any]]) -> None:
    cells = [[_cell(c, row[c]) for c in _COLUMNS] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(_COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _write_csv(rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            json.dumps(row[c], sort_keys=True) if isinstance(row[c], dict) else row[c]
            for c in COLUMNS
        )
