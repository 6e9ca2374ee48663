"""What the rules cost per evaluation, by construction (`dynoscaler bench rules` measures it)."""

from __future__ import annotations

import yaml
from rules_support import RULES


def alert_rules(name: str) -> list[dict]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text("utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if rule.get("alert") == name]


def test_scale_role_annotations_run_no_query_per_firing_alert() -> None:
    rules = alert_rules("ScaleRole")
    assert len(rules) == 2
    for rule in rules:
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "desired_dynos"}
        assert not [text for text in annotations.values() if "query" in text]
        # the one annotation the scaler acts on keeps its name and form
        assert annotations["desired_dynos"] == '{{ printf "%.0f" $value }}'
