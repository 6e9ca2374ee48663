"""Deployment files: docker-compose.yml, the Dockerfile and the Procfile agree with the code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dynoscaler.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "HEROKU_API_KEY": "key",
    "DYNOSCALER_WEBHOOK_TOKEN": "token",
    "DYNOSCALER_DRAIN_TOKEN": "d",
}


def compose_config(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **environ}
    return subprocess.run(
        ["docker-compose", "config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="scripts/setup installs it")
def test_compose_file_is_valid_and_wires_every_part():
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"prometheus", "alertmanager", "grafana", "exporter", "scaler"} <= set(services)
    for name in ("exporter", "scaler", "fake-heroku"):
        command = services[name]["command"]
        # Every command the compose file runs must parse with the real CLI.
        build_parser().parse_args(command)
    for volume in ("./prometheus", "./alertmanager", "./grafana/dashboards"):
        assert (ROOT / volume).is_dir()


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="scripts/setup installs it")
def test_compose_names_the_missing_secret():
    for missing in SECRETS:
        result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0
        assert f"set {missing}" in result.stderr


def test_procfile_commands_parse():
    for line in (ROOT / "Procfile").read_text().splitlines():
        _, command = line.split(":", 1)
        words = command.replace("$PORT", "5000").split()
        assert words[0] == "dynoscaler"
        build_parser().parse_args(words[1:])


def test_dockerfile_copies_every_package():
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert copied == {"dynoscaler", "exporter", "scaler"}
