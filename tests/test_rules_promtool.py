"""The Prometheus and Alertmanager files pass their own tools' checks and tests."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from rules_support import PROMTOOL, ROOT, run_test_file, seconds

from dynoscaler.model import DECISION_DELAY

pytestmark = pytest.mark.timeout(120)

AMTOOL = "/usr/bin/amtool"
PROMETHEUS_YML = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "alertmanager" / "alertmanager.yml"
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
TEST_FILES = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_prometheus_config_is_valid() -> None:
    result = run(PROMTOOL, "check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_prometheus_config_scrapes_exporter_and_scaler() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: (job["static_configs"][0]["targets"], job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
    }
    assert targets == {
        "dynoscaler-exporter": (["127.0.0.1:9400"], "/metrics"),
        "dynoscaler-scaler": (["127.0.0.1:9500"], "/metrics"),
    }
    assert config["rule_files"] == ["rules/*.yml"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["127.0.0.1:9093"]


def test_the_rules_decision_delay_is_the_models_and_covers_the_shipped_intervals() -> None:
    """The horizon and cold-start window count DECISION_DELAY seconds until a later
    decision acts: at least one evaluation plus the scale route's group_wait as shipped
    (the rest is the webhook's and Heroku's), on data at most one evaluation old."""
    capacity = yaml.safe_load((ROOT / "prometheus/rules/capacity.yml").read_text("utf-8"))
    rules = {r.get("record"): r["expr"].split() for g in capacity["groups"] for r in g["rules"]}
    delay = f"{DECISION_DELAY:g}"
    horizon = rules["app_role:dynoscaler_decision_horizon_seconds"]
    assert horizon[:3] == ["(app_role:dynoscaler_policy_boot_seconds", "+", f"{delay})"]
    mean = " ".join(rules["app_role:dynoscaler_cold_start_reserve_seconds:mean"])
    assert mean.endswith(f" + 2 * {delay}")  # max(2·S₁₀ + 2·d, S₉₉ + d)
    reserve = " ".join(rules["app_role:dynoscaler_cold_start_reserve_seconds"])
    assert f"app_role:dynoscaler_processing_seconds:p99_1h + {delay} " in reserve

    intervals = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))["global"]
    evaluation = seconds(intervals["evaluation_interval"])
    assert seconds(intervals["scrape_interval"]) <= evaluation
    routes = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))["route"]["routes"]
    scale = next(r for r in routes if 'severity="scale"' in r["matchers"])
    assert evaluation + seconds(scale["group_wait"]) <= DECISION_DELAY


def test_rule_files_are_valid() -> None:
    result = run(PROMTOOL, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES) == 5


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_unit_tests_pass(path) -> None:
    result = run_test_file(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_fails(tmp_path) -> None:
    """The unit tests can fail: one expected count off by one is caught."""
    source = (ROOT / "prometheus" / "tests" / "worker_test.yml").read_text(encoding="utf-8")
    wrong = source.replace(
        'exp_samples: [{labels: \'app_role:dynoscaler_desired_dynos{app="shop",role="worker"}\','
        " value: 3}]",
        'exp_samples: [{labels: \'app_role:dynoscaler_desired_dynos{app="shop",role="worker"}\','
        " value: 4}]",
        1,
    )
    assert wrong != source
    rules = ROOT / "prometheus" / "rules"
    wrong = wrong.replace("../rules/", f"{rules}/")
    path = tmp_path / "wrong_test.yml"
    path.write_text(wrong, encoding="utf-8")
    result = run_test_file(path)
    assert result.returncode == 1
    desired = '{__name__="app_role:dynoscaler_desired_dynos", app="shop", role="worker"}'
    assert f"exp: {desired} 4E+00\n        got: {desired} 3E+00" in result.stderr


def test_alertmanager_config_is_valid() -> None:
    result = run(AMTOOL, "check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " - 2 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["severity=scale", "alertname=ScaleRole", "app=shop", "role=worker"], "dynoscaler-scaler"),
        (["severity=ops", "alertname=DeadlineUnmeetable", "app=shop", "role=worker"], "people"),
        (["severity=ops", "alertname=ExporterSourceDown"], "people"),
        (["severity=ops", "alertname=DeadlineBudgetBurn", "burn=fast", "app=shop"], "people"),
        (["alertname=SomethingElse"], "people"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    result = run(AMTOOL, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_scaler_receiver_is_authenticated_and_grouped_per_role() -> None:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    route = next(r for r in config["route"]["routes"] if r["receiver"] == "dynoscaler-scaler")
    assert route["group_by"] == ["app", "role"]
    receiver = next(r for r in config["receivers"] if r["name"] == "dynoscaler-scaler")
    webhook = receiver["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:9500/alerts"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
