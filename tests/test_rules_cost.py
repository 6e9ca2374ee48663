"""What the rules cost per evaluation, by construction (`dynoscaler bench rules` measures it)."""

from __future__ import annotations

import re

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
        assert set(annotations) == {"desired_dynos"}
        assert not [text for text in annotations.values() if "query" in text]
        # the one annotation the scaler acts on keeps its name and form
        assert annotations["desired_dynos"] == '{{ printf "%.0f" $value }}'


# A raw series' range selector, e.g. dynoscaler_job_duration_seconds_bucket[1h].
_RAW_RANGE = re.compile(r"\b(dynoscaler_\w+)(?:\{[^}]*\})?\[(\d+)([smh])\]")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def groups(name: str) -> list[dict]:
    return yaml.safe_load((RULES / name).read_text("utf-8"))["groups"]


def test_no_rule_of_the_5s_groups_reads_more_than_10m_of_an_exported_series() -> None:
    for group in groups("capacity.yml") + groups("alerts.yml"):
        if "interval" in group:
            continue
        for rule in group["rules"]:
            for name, count, unit in _RAW_RANGE.findall(rule["expr"]):
                assert int(count) * _SECONDS[unit] <= 600, (group["name"], name, count + unit)


def test_the_hour_long_s99_is_evaluated_once_a_minute() -> None:
    (tail,) = [g for g in groups("capacity.yml") if g["name"] == "dynoscaler_duration_tail"]
    assert tail["interval"] == "1m"
    assert [r["record"] for r in tail["rules"]] == ["app_role:dynoscaler_processing_seconds:p99_1h"]


def test_staffing_beta_is_in_horner_form() -> None:
    (group,) = [g for g in groups("capacity.yml") if g["name"] == "dynoscaler_capacity"]
    (beta,) = [r for r in group["rules"] if r.get("record") == "app_role:dynoscaler_staffing_beta"]
    # t - (c0 + t·(c1 + c2·t)) / (1 + t·(d0 + t·(d1 + d2·t))): t read 6 times, was 12
    assert beta["expr"].count("app_role:dynoscaler_miss_ratio_t") == 6
