"""The Flask app in dry-run mode: auth, validation, decisions, idempotence, the log."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time

import pytest
from scaler_support import FIXTURES, TOKEN, alert, payload, postgres_database, write_settings

from dynoscaler import config
from dynoscaler.config import ConfigError
from scaler.app import create_app
from scaler.store import Store

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)


@pytest.fixture
def env(tmp_path):
    path = write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}", dry_run=True)
    settings = config.load(path)
    store = Store(settings.scaler.store)
    notes = Recorder()
    app = create_app(settings, store=store, notify=notes, token=TOKEN)
    return app.test_client(), store, notes


def post(client, body, headers=AUTH):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/alerts", data=data, headers=headers, content_type="application/json")


def test_refuses_to_start_without_a_token(tmp_path) -> None:
    settings = config.load(write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}"))
    with pytest.raises(ConfigError, match="DYNOSCALER_WEBHOOK_TOKEN is not set"):
        create_app(settings, token="")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"user:wrong").decode()},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": TOKEN},
    ],
)
def test_unauthorized_gets_401_and_nothing_recorded(env, headers) -> None:
    client, store, _ = env
    response = post(client, payload(alert("shop", "worker", "5")), headers)
    assert response.status_code == 401
    assert response.json["error"].startswith("missing or wrong credentials")
    assert store.decisions() == []
    assert client.get("/decisions", headers=headers).status_code == 401


def test_basic_auth_with_token_as_password(env) -> None:
    client, _, _ = env
    basic = {"Authorization": "Basic " + base64.b64encode(f"am:{TOKEN}".encode()).decode()}
    assert post(client, payload(alert("shop", "worker", "5")), basic).status_code == 200


def test_scale_role_in_dry_run(env) -> None:
    client, store, _ = env
    response = post(client, payload(alert("shop", "worker", "3"), alert("shop", "web", "4")))
    assert response.status_code == 200
    summary = {(d["role"], d["from"], d["to"], d["outcome"]) for d in response.json["decisions"]}
    assert summary == {("worker", 1, 3, "dry_run"), ("web", 2, 4, "dry_run")}
    rows = store.decisions(app="shop", role="worker")
    assert rows[0]["reason"] == "dry run: scale 1 -> 3"
    assert rows[0]["inputs"]["alerts"][0]["annotations"] == {"desired_dynos": "3"}
    assert rows[0]["settings"]["max_dynos"] == 10
    assert rows[0]["settings"]["dry_run"] is True
    assert rows[0]["answer"] == {"dry_run": True}


def test_repeated_alert_takes_one_action(env) -> None:
    client, store, _ = env
    body = payload(alert("shop", "worker", "3"))
    outcomes = [post(client, body).json["decisions"][0]["outcome"] for _ in range(3)]
    assert outcomes == ["dry_run", "none", "none"]
    assert [r["reason"] for r in store.decisions(role="worker")][:2] == ["already at 3"] * 2


def test_desired_as_rendered_float_is_accepted(env) -> None:
    client, _, _ = env
    response = post(client, payload(alert("shop", "worker", "4.0")))
    assert response.json["decisions"][0]["to"] == 4


def test_other_alerts_and_resolved_are_recorded_not_acted_on(env) -> None:
    client, store, notes = env
    body = payload(
        alert("shop", "worker", "9", status="resolved"),
        alert("shop", "worker", "9", name="SourceDown"),
        alert("shop", "worker", "30", name="DeadlineUnmeetable"),
    )
    response = post(client, body)
    assert response.status_code == 200
    assert [d["outcome"] for d in response.json["decisions"]] == ["ignored"] * 3
    assert [d["reason"] for d in response.json["decisions"]] == [
        "ScaleRole resolved: changes nothing",
        "SourceDown: not a scaling alert",
        "DeadlineUnmeetable: recorded and notified",
    ]
    assert store.states("shop") == {}
    assert notes.events == [
        {
            "event": "deadline_unmeetable",
            "app": "shop",
            "role": "worker",
            "alertname": "DeadlineUnmeetable",
            "desired_dynos": "30",
        }
    ]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "body is not JSON text"),
        (b"\xff\xfe", 400, "body is not JSON text"),
        (b'{"version": "4", "alerts": [{"labels": {"app": "\\ud835"}}]}', 400, "surrogates"),
        (
            {"version": "3", "status": "firing", "alerts": []},
            422,
            "version: '3' is not one of ['4']",
        ),
        ({"version": "4", "status": "firing"}, 422, "'alerts' is a required property"),
        (payload(alert("nope", "worker", "3")), 422, "unknown app/role nope/worker"),
        (payload(alert("shop", "nope", "3")), 422, "unknown app/role shop/nope"),
        (payload(alert("shop", "worker", "3.5")), 422, "not a non-negative integer"),
        (payload(alert("shop", "worker", "-1")), 422, "not a non-negative integer"),
        (payload(alert("shop", "worker", "NaN")), 422, "not a non-negative integer"),
        (payload(alert("shop", "worker", "five")), 422, "not a non-negative integer"),
        (payload(alert("shop", "worker", "1e3")), 422, "not a non-negative integer"),
        (payload(alert("shop", "worker", "1_0")), 422, "not a non-negative integer"),
        (payload(alert("shop", "worker", "\u0663")), 422, "not a non-negative integer"),
    ],
)
def test_bad_payloads_get_a_4xx_and_change_nothing(env, body, status, fragment) -> None:
    client, store, _ = env
    response = post(client, body)
    assert response.status_code == status
    assert fragment in json.dumps(response.json)
    assert store.decisions() == []
    assert store.states("shop") == {}


def labelled(**changes: str | None) -> dict:
    """A firing ScaleRole for shop/worker (desired 3) with labels changed (None: removed)."""
    body = alert("shop", "worker", "3")
    for name, value in changes.items():
        if value is None:
            del body["labels"][name]
        else:
            body["labels"][name] = value
    return body


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"severity": "ops"}, "severity 'ops', direction 'up'"),
        ({"severity": None}, "severity missing, direction 'up'"),
        ({"severity": "Scale"}, "severity 'Scale', direction 'up'"),
        ({"severity": ""}, "severity '', direction 'up'"),
        ({"direction": None}, "severity 'scale', direction missing"),
        ({"direction": "sideways"}, "severity 'scale', direction 'sideways'"),
        ({"direction": "UP"}, "severity 'scale', direction 'UP'"),
        ({"severity": "ops", "direction": None}, "severity 'ops', direction missing"),
    ],
)
def test_scale_role_outside_the_contract_is_recorded_and_ignored(env, changes, shown) -> None:
    """Only severity "scale" with direction "up" or "down" is acted on (rules/alerts.yml)."""
    client, store, notes = env
    response = post(client, payload(labelled(**changes)))
    assert response.status_code == 200
    assert response.json["decisions"] == [
        {
            "app": "shop",
            "role": "worker",
            "from": None,
            "to": None,
            "reason": f"ScaleRole with {shown}: not acted on "
            '(only with severity "scale" and direction "up" or "down")',
            "outcome": "ignored",
        }
    ]
    assert store.states("shop") == {}
    assert store.decisions()[0]["inputs"]["alerts"][0]["labels"]["alertname"] == "ScaleRole"
    assert notes.events == []


def test_outside_the_contract_needs_nothing_else(env) -> None:
    """An alert the scaler does not act on is not checked for app, role or count."""
    client, store, _ = env
    body = labelled(severity="ops", app="nope", role=None)
    body["annotations"]["desired_dynos"] = "many"
    response = post(client, payload(body))
    assert response.status_code == 200
    assert [d["outcome"] for d in response.json["decisions"]] == ["ignored"]
    assert store.states("shop") == {}


@pytest.mark.parametrize("direction", ["up", "down"])
def test_both_directions_of_the_contract_act(env, direction) -> None:
    client, _, _ = env
    response = post(client, payload(labelled(direction=direction)))
    assert [(d["from"], d["to"]) for d in response.json["decisions"]] == [(1, 3)]


def test_one_bad_alert_blocks_the_whole_payload(env) -> None:
    client, store, _ = env
    body = payload(alert("shop", "worker", "3"), alert("shop", "web", "x"))
    response = post(client, body)
    assert response.status_code == 422
    assert response.json["problems"] == [
        "alerts.1: desired_dynos of shop/web is 'x', not a non-negative integer"
    ]
    assert store.decisions() == []


def test_body_size_limit(env) -> None:
    client, store, _ = env
    response = post(client, b"[" + b"1," * 600_000 + b"1]")
    assert response.status_code == 413
    assert "error" in response.json
    assert store.decisions() == []


def nested(depth: int, where: str) -> bytes:
    """A body with `depth` levels of arrays and objects in all, at `where`."""
    inner = (b'[{"a":' * (depth // 2)) + (b"[]" if depth % 2 else b"0") + (b"}]" * (depth // 2))
    if where == "root":
        return inner
    alerts = json.dumps(payload(alert("shop", "worker", "3"))).encode()
    if where == "extra key":  # beside the payload's keys, which the schema does not read
        return alerts[:-1] + b', "x": ' + nested(depth - 1, "root") + b"}"
    assert where == "alerts"  # one of the alerts, which the schema reads
    return alerts.replace(b'"alerts": [', b'"alerts": [' + nested(depth - 2, "root") + b", ")


@pytest.mark.parametrize("where", ["root", "extra key", "alerts"])
@pytest.mark.parametrize("depth", [33, 900, 975, 5_000, 100_000])
def test_deep_nesting_is_a_400(env, where, depth) -> None:
    """975 levels answered 500 (RecursionError), which Alertmanager retries for ever."""
    client, store, _ = env
    response = post(client, nested(depth, where))
    assert response.status_code == 400
    assert response.json == {"error": "body is not JSON text: nested deeper than 32 levels"}
    assert store.decisions() == []


def test_nesting_up_to_the_bound_is_read(env) -> None:
    client, _, _ = env
    response = post(client, nested(32, "extra key"))
    assert response.status_code == 200, response.json
    assert response.json["decisions"][0]["to"] == 3
    assert post(client, nested(32, "alerts")).status_code == 422


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_a_400(env, constant) -> None:
    client, store, _ = env
    body = json.dumps(payload(alert("shop", "worker", "3")))
    response = post(client, body.replace('"truncatedAlerts": 0', f'"truncatedAlerts": {constant}'))
    assert response.status_code == 400
    assert response.json == {"error": f"body is not JSON text: {constant} is not a JSON value"}
    assert store.decisions() == []


def test_a_schema_message_does_not_echo_the_body(env) -> None:
    client, _, _ = env
    response = post(client, {"version": "4", "status": "firing", "alerts": ["x" * 500_000]})
    assert response.status_code == 422
    [problem] = response.json["problems"]
    assert problem.startswith("alerts.0: 'xxx") and problem.endswith("...")
    assert len(problem) < 400


@pytest.fixture
def postgres_env(tmp_path):
    with postgres_database("dynoscaler_app") as url:
        settings = config.load(write_settings(tmp_path, url, dry_run=True))
        store = Store(settings.scaler.store)
        app = create_app(settings, store=store, notify=Recorder(), token=TOKEN)
        yield app.test_client(), store


@pytest.mark.parametrize("label", ["alertname", "app", "role", "severity"])
def test_nul_in_a_label_value_is_a_422_also_on_postgresql(postgres_env, label) -> None:
    """PostgreSQL text holds no U+0000: recording such a label was a 500."""
    client, store = postgres_env
    body = alert("shop", "worker", "3", name="SourceDown")
    body["labels"][label] += "\u0000"
    response = post(client, payload(body))
    assert response.status_code == 422
    assert response.json["problems"] == [
        f"alerts.0.labels.{label}: {body['labels'][label]!r} does not match '^[^\\\\x00]*$'"
    ]
    assert store.decisions() == []


def test_decisions_endpoint(env) -> None:
    client, _, _ = env
    post(client, payload(alert("shop", "worker", "3"), alert("shop", "web", "4")))
    rows = client.get("/decisions?app=shop&role=web&limit=5", headers=AUTH).json["decisions"]
    assert [(r["role"], r["from_count"], r["to_count"]) for r in rows] == [("web", 2, 4)]
    assert len(client.get("/decisions?limit=1", headers=AUTH).json["decisions"]) == 1
    for limit in ("0", "1001", "abc", "-1", "\u00b2", "00000001"):
        response = client.get(f"/decisions?limit={limit}", headers=AUTH)
        assert response.status_code == 400
        assert response.json == {"error": "limit must be an integer from 1 to 1000"}


def test_health_metrics_openapi_and_unknown_paths(env) -> None:
    client, _, _ = env
    post(client, payload(alert("shop", "worker", "3")))
    assert client.get("/healthz").json == {"store": "ok", "heroku": "dry run"}
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'dynoscaler_scaler_decisions_total{app="shop",outcome="dry_run",role="worker",'
        'source="webhook"}' in text
    )
    assert client.get("/openapi.yml").get_data(as_text=True).startswith("openapi: 3.0.3")
    missing = client.get("/nope")
    assert missing.status_code == 404 and "error" in missing.json
    assert client.get("/alerts").status_code == 405


def test_real_alertmanager_payloads(env) -> None:
    """Payloads captured from Alertmanager 0.25 (see tests/fixtures; the direction label,
    which the rules added later, written in by hand)."""
    client, _, _ = env
    firing = json.loads((FIXTURES / "alertmanager_scale_firing.json").read_text())
    resolved = json.loads((FIXTURES / "alertmanager_scale_resolved.json").read_text())
    decisions = post(client, firing).json["decisions"]
    assert {(d["role"], d["from"], d["to"]) for d in decisions} == {("web", 2, 3), ("worker", 1, 4)}
    decisions = post(client, resolved).json["decisions"]
    assert [d["outcome"] for d in decisions] == ["ignored", "ignored"]


def test_store_failure_is_a_json_503(env) -> None:
    client, store, _ = env
    other = sqlite3.connect(store.url[len("sqlite:///") :])
    other.execute("DROP TABLE decisions")
    other.close()
    response = post(client, payload(alert("shop", "worker", "3")))
    assert response.status_code == 503
    assert response.json == {"error": "decision store unavailable: OperationalError"}


def test_a_scale_up_alert_never_lowers_the_count(env) -> None:
    # The formation is above what the rules saw (a person scaled by hand): an
    # alert with direction="up" must not take it down; Alertmanager's
    # inhibitions while the exporter is down match only direction="down".
    client, _, _ = env
    post(client, payload(alert("shop", "worker", "4")))
    response = post(client, payload(alert("shop", "worker", "2", direction="up")))
    [decision] = response.json["decisions"]
    assert (decision["from"], decision["to"]) == (4, None)
    assert decision["reason"] == "no scale-down: the input asks only to scale up"
    response = post(client, payload(alert("shop", "worker", "2", direction="down")))
    [decision] = response.json["decisions"]
    assert decision["reason"].startswith("no scale-down: cooldown")  # past the direction check


def test_no_scale_down_on_an_alert_whose_data_ended(env) -> None:
    client, _, _ = env
    post(client, payload(alert("shop", "worker", "4")))
    ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    response = post(client, payload(alert("shop", "worker", "2", ends_at=ended, direction="down")))
    [decision] = response.json["decisions"]
    assert (decision["from"], decision["to"]) == (4, None)
    assert re.fullmatch(
        r"no scale-down: input data 60\ds old \(stale after 120s\)", decision["reason"]
    )
