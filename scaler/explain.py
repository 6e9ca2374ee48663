"""Why did it scale? One explanation per decision, the same wherever it is shown.

A decision of the log (scaler/store.py: reason, inputs, Heroku's answer) plus
the model's terms the rules had recorded at the decision's time
(dynoscaler.role_series.at): the annotations API, the snapshot and the Slack
notifier all show `explanation()`'s text, so they cannot disagree.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from dynoscaler import role_series
from scaler.prometheus import PrometheusError

log = logging.getLogger("dynoscaler.explain")

# The terms shown, in order, with their units.
SHOWN = (
    ("desired", "desired", ""),
    ("formation", "formation", ""),
    ("needed", "needed", ""),
    ("arrival_rate", "λ", "/s"),
    ("lookahead", "λ'", "/s"),
    ("processing", "S", " s"),
    ("processing_p99", "S99", " s"),
    ("depth", "backlog", ""),
    ("drain_slots", "drain slots", ""),
    ("required_slots", "slots", ""),
)


def title(decision: dict[str, Any]) -> str:
    change = f"{_count(decision['from_count'])} -> {_count(decision['to_count'])}"
    return f"{decision['app']}/{decision['role']} {change} ({decision['outcome']})"


def terms_text(terms: dict[str, float | None] | None) -> str:
    if terms is None:
        return "terms: Prometheus unavailable"
    shown = [
        f"{label} {terms[name]:.4g}{unit}"
        for name, label, unit in SHOWN
        if terms.get(name) is not None
    ]
    return "terms: " + (", ".join(shown) if shown else "none recorded at that time")


def explanation(decision: dict[str, Any], terms: dict[str, float | None] | None) -> dict[str, Any]:
    """The decision as an annotation: Unix time in ms, title, text, tags and the
    decision's own fields (reason, inputs, answer) unchanged."""
    when = datetime.fromtimestamp(decision["time"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"{when} {decision['source']}: {decision['reason']}",
        f"inputs: {json.dumps(decision['inputs'], sort_keys=True)}",
        terms_text(terms),
    ]
    if decision.get("answer") is not None:
        lines.append(f"Heroku: {json.dumps(decision['answer'], sort_keys=True)}")
    return {
        "time": round(decision["time"] * 1000),
        "title": title(decision),
        "text": "\n".join(lines),
        "tags": ",".join(("dynoscaler", decision["app"], decision["role"], decision["outcome"])),
        "id": decision["id"],
        "reason": decision["reason"],
        "inputs": decision["inputs"],
        "answer": decision.get("answer"),
        "terms": terms,
    }


def annotations(decisions: list[dict[str, Any]], prometheus_url: str) -> list[dict[str, Any]]:
    """explanation() of each decision, with the terms read from Prometheus; once
    Prometheus fails, the rest go without terms (one time-out, not one each)."""
    found = []
    reachable = True
    for decision in decisions:
        terms = None
        if reachable:
            try:
                terms = role_series.at(
                    prometheus_url, decision["app"], decision["role"], decision["time"]
                )
            except PrometheusError as error:
                log.warning("annotations without the model's terms: %s", error)
                reachable = False
        found.append(explanation(decision, terms))
    return found


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
