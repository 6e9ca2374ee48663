"""app.json (Heroku's "Deploy to Heroku" manifest) against the app.json schema and the code.

Heroku publishes the schema as a Dev Center page, not as a JSON Schema:
tests/fixtures/heroku_app_json.schema.json is written from its documented
fields, unknown keys refused.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import jsonschema
import pytest

from dynoscaler import config
from dynoscaler.cli import build_parser
from scaler.app import TOKEN_ENV

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests/fixtures/heroku_app_json.schema.json").read_text())
MANIFEST = json.loads((ROOT / "app.json").read_text())


def problems(manifest: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_app_json_follows_the_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert problems(MANIFEST) == []


@pytest.mark.parametrize(
    "change",
    [
        {"formations": {}},  # misspelt key
        {"env": {TOKEN_ENV: {"generator": "random"}}},  # Heroku generates "secret" only
        {"formation": {"web": {"size": "basic"}}},  # quantity missing
        {"addons": [{"plan": "heroku-postgresql", "as": "database"}]},  # attachment upper case
    ],
)
def test_the_schema_refuses_what_heroku_refuses(change):
    assert problems({**MANIFEST, **change})


def test_formation_names_the_procfile_processes():
    processes = procfile()
    # release runs once per deploy (check-config), never as a formation entry.
    assert set(MANIFEST["formation"]) == set(processes) - {"release"}
    assert processes["release"].split()[1] == "check-config"
    # Alertmanager drives the web process; the reconcile loop is the alternative, off.
    assert MANIFEST["formation"]["web"]["quantity"] == 1
    assert MANIFEST["formation"]["reconciler"]["quantity"] == 0


def test_secrets_are_generated_or_asked_for_never_shipped():
    env = MANIFEST["env"]
    assert env[TOKEN_ENV]["generator"] == "secret"
    assert env["HEROKU_API_KEY"]["required"] is True
    for name, spec in env.items():
        assert isinstance(spec, dict) and spec["description"], name
        if re.search("KEY|TOKEN|SECRET|PASSWORD", name):
            assert "value" not in spec, f"{name} must not carry a value in app.json"


def test_the_deployed_environment_passes_the_release_check(tmp_path):
    """What the button creates (add-on URLs, generated secrets, the asked key) is
    enough for a config whose store is the Postgres add-on, as README says."""
    addons = [a if isinstance(a, dict) else {"plan": a} for a in MANIFEST["addons"]]
    addons = {a["plan"].split(":")[0]: a for a in addons}
    assert "scheduler" in addons  # the alternative to Alertmanager and the reconciler
    attachment = addons["heroku-postgresql"].get("as", "DATABASE")
    environ = {
        f"{attachment}_URL": "postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d1",
        TOKEN_ENV: secrets.token_hex(32),
        "HEROKU_API_KEY": "asked-at-deploy",
        "PROMETHEUS_URL": "https://prometheus.example.com",
    }
    settings = tmp_path / "autoscale.yml"
    settings.write_text(
        "apps:\n  shop:\n    roles:\n      worker:\n        queues:\n"
        "          - {name: default, backend: sidekiq, url: 'redis://h:6379/0'}\n"
        "scaler:\n  store: '${DATABASE_URL}'\n  prometheus_url: '${PROMETHEUS_URL}'\n"
    )
    loaded = config.load(settings, environ=environ)
    assert loaded.scaler.store == environ["DATABASE_URL"]


def test_readme_heroku_commands_parse():
    """Every `dynoscaler ...` command README's "Running on Heroku" gives parses."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running on Heroku", 1)[1].split("\n## ", 1)[0]
    assert "app.json" in section
    commands = re.findall(r"`(dynoscaler [^`]+)`", section)
    assert commands
    for command in commands:
        build_parser().parse_args(command.split()[1:])
