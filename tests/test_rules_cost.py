"""What the rules cost per evaluation, by construction (`dynoscaler bench rules` measures it)."""

from __future__ import annotations

import re

import yaml
from rules_support import RULES


def alert_rules(name: str) -> list[dict]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text("utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if rule.get("alert") == name]


def test_scale_role_annotations_run_no_query_per_firing_alert() -> None:
    (rule,) = alert_rules("ScaleRole")
    annotations = rule["annotations"]
    assert set(annotations) == {"desired_dynos"}
    assert not [text for text in annotations.values() if "query" in text]
    # the one annotation the scaler acts on keeps its name and form
    assert annotations["desired_dynos"] == '{{ printf "%.0f" $value }}'


def test_the_scale_alerts_labels_run_no_template_per_firing_alert() -> None:
    """Prometheus expands each `labels:` value as a template for every firing alert at
    every evaluation; the scale alerts, one per role, set theirs in the expression (the
    promtool cases check the labels they carry)."""
    for name in ("ScaleRole", "ResizeRole"):
        for rule in alert_rules(name):
            assert "labels" not in rule, name
            assert '"severity", "scale"' in rule["expr"], name


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


def group(file: str, name: str) -> dict:
    (found,) = [g for g in groups(file) if g["name"] == name]
    return found


def test_staffing_beta_is_in_horner_form() -> None:
    rules = group("capacity.yml", "dynoscaler_policy")["rules"]
    (beta,) = [r for r in rules if r.get("record") == "app_role:dynoscaler_staffing_beta"]
    # t - (c0 + t·(c1 + c2·t)) / (1 + t·(d0 + t·(d1 + d2·t))): t read 6 times, was 12
    assert beta["expr"].count("app_role:dynoscaler_miss_ratio_t") == 6


# An exported policy gauge (not a record app_role:dynoscaler_policy_*; sizes has no record).
_POLICY_GAUGE = re.compile(r"(?<![:\w])dynoscaler_policy_(?!sizes\b)\w+")


def test_the_policy_and_its_terms_are_evaluated_every_15s_not_every_5s() -> None:
    policy = group("capacity.yml", "dynoscaler_policy")
    assert policy["interval"] == "15s"
    records = {rule["record"] for rule in policy["rules"]}
    assert {
        "app_role:dynoscaler_policy_max_dynos",
        "app_role:dynoscaler_miss_ratio_t",
        "app_role:dynoscaler_staffing_beta",
        "app_role:dynoscaler_max_slots",
        "app_role_window:dynoscaler_scale_down_window:step",
    } <= records
    # no 5 s rule reads an exported policy gauge (they read the policy group's records)
    for file in ("capacity.yml", "alerts.yml"):
        for five_seconds in groups(file):
            if "interval" in five_seconds:
                continue
            for rule in five_seconds["rules"]:
                found = _POLICY_GAUGE.findall(rule["expr"])
                assert not found, (rule.get("record") or rule.get("alert"), found)


_WINDOW_BRANCH = re.compile(
    r'max_over_time\(app_role_window:dynoscaler_desired_dynos:unstabilised\{window="(\w+)"\}\[(\w+)\]\)'
)


def test_each_scale_down_branch_reads_the_history_of_its_own_window_step_only() -> None:
    rules = group("capacity.yml", "dynoscaler_capacity")["rules"]
    (desired,) = [r for r in rules if r.get("record") == "app_role:dynoscaler_desired_dynos"]
    branches = _WINDOW_BRANCH.findall(desired["expr"])
    steps = ["30s", "1m", "2m", "3m", "5m", "10m", "15m", "20m", "30m", "1h"]
    assert branches == [(step, step) for step in steps]
    # no range over the unlabelled history, which holds every role
    assert "app_role:dynoscaler_desired_dynos:unstabilised[" not in desired["expr"]
