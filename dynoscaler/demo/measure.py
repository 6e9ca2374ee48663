"""Figures of a closed-loop run, taken from the fake Heroku's PATCH log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dynoscaler.durations import duration_seconds


def quantities(patch: dict[str, Any]) -> dict[str, int]:
    """The quantities one PATCH asked for, by process type (batch or single form)."""
    body = patch.get("body") or {}
    if "updates" in body:
        return {u["type"]: u["quantity"] for u in body["updates"] if "quantity" in u}
    process = patch["path"].rstrip("/").rsplit("/", 1)[-1]
    return {process: body["quantity"]} if "quantity" in body else {}


def first_scale_up(
    patches: Sequence[dict[str, Any]], role: str, since: float, initial: int
) -> dict[str, Any] | None:
    """The first successful PATCH at or after `since` (unix time) raising `role` above the
    quantity it had at `since` (from earlier PATCHes, else `initial`)."""
    current = initial
    for patch in patches:
        asked = quantities(patch).get(role)
        if patch["status"] != 200 or asked is None:
            continue
        if patch["at"] >= since and asked > current:
            return patch
        if patch["at"] < since:
            current = asked
    return None


def reaction_time(
    patches: Sequence[dict[str, Any]], role: str, spike_at: float, initial: int
) -> float | None:
    """Seconds from the start of a spike to the formation PATCH that answers it."""
    patch = first_scale_up(patches, role, spike_at, initial)
    return None if patch is None else patch["at"] - spike_at


def alert_for_seconds(rule_files: Sequence[Path], alert: str) -> float:
    """The longest `for:` among the rules named `alert` in these rule files (0 if none)."""
    holds = [
        duration_seconds(str(rule.get("for", "0s")))
        for path in rule_files
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
        for rule in group.get("rules", [])
        if rule.get("alert") == alert
    ]
    return max(holds, default=0.0)
