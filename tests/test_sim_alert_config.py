"""The simulator's alert path reads its timings from the project's own files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dynoscaler.config import ConfigError
from dynoscaler.sim.alert_config import ROOT, AlertPath, shipped

_FILES = (
    "prometheus/prometheus.yml",
    "prometheus/rules/capacity.yml",
    "prometheus/rules/alerts.yml",
    "docker-compose.yml",
    "alertmanager/alertmanager.yml",
)


def _copy(tmp_path: Path) -> Path:
    for name in _FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def test_the_shipped_files_give_the_shipped_timings():
    assert shipped() == AlertPath(
        evaluation_interval=5.0,
        tail_interval=60.0,
        resend_delay=5.0,
        scale_group_wait=0.0,
        scale_group_interval=10.0,
        scale_repeat_interval=10.0,
        page_for=60.0,
        page_group_wait=30.0,
    )


def test_a_change_in_the_files_shows_in_the_timings(tmp_path):
    root = _copy(tmp_path)

    def slower_scale_route(document):
        scale = next(r for r in document["route"]["routes"] if 'severity="scale"' in r["matchers"])
        scale.update(group_interval="30s", repeat_interval="2m")
        del scale["group_wait"]  # inherited from the root route
        document["route"]["group_wait"] = "15s"

    def default_resend_delay(document):
        command = document["services"]["prometheus"]["command"]
        document["services"]["prometheus"]["command"] = [
            arg for arg in command if "resend-delay" not in arg
        ]

    _edit(root / "alertmanager/alertmanager.yml", slower_scale_route)
    _edit(root / "docker-compose.yml", default_resend_delay)
    _edit(
        root / "prometheus/prometheus.yml", lambda d: d["global"].update(evaluation_interval="15s")
    )
    path = shipped(root)
    assert (path.scale_group_wait, path.scale_group_interval, path.scale_repeat_interval) == (
        15.0,
        30.0,
        120.0,
    )
    assert path.page_group_wait == 15.0  # the ops route sets none of its own
    assert path.resend_delay == 60.0  # Prometheus' default
    assert path.evaluation_interval == 15.0


def test_a_broken_file_is_named(tmp_path):
    root = _copy(tmp_path)
    _edit(
        root / "prometheus/prometheus.yml", lambda d: d["global"].update(evaluation_interval="5 s")
    )
    with pytest.raises(ConfigError, match=r"prometheus\.yml: global\.evaluation_interval"):
        shipped(root)
    (root / "prometheus/prometheus.yml").unlink()
    with pytest.raises(ConfigError, match="cannot read .*prometheus.yml"):
        shipped(root)
