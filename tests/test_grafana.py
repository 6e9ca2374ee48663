"""Grafana dashboards: well-formed, and every panel's query answers on a real Prometheus.

There is no Grafana server here, so the second test does what Grafana would:
it runs each panel's PromQL (template variables set to "All") against the
Prometheus of a running closed loop and requires data from every one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import yaml

from dynoscaler.demo.stack import Ports, Stack, StackOptions
from dynoscaler.demo.workload import Producer, spike
from exporter.web import RequestTimes

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
STACK_REDIS = "redis://127.0.0.1:6379/4"
ROUTER_LINE = (
    "<158>1 2026-11-23T10:00:00+00:00 host heroku router - at=info method=GET "
    'path="/" host=demo-shop.herokuapp.com request_id={n} dyno=web.1 connect=1ms '
    "service={ms}ms status=200 bytes=512 protocol=https"
)


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) with the template variables as Grafana's "All" sets them."""
    return [
        (panel["title"], target["expr"].replace("$app", ".*").replace("$role", ".*"))
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path):
    dashboard = json.loads(path.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "app", "role"} <= variables
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert panel["description"], f"{panel['title']} has no description"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the dashboard"


def test_provisioning_points_at_the_dashboards_folder():
    providers = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/dynoscaler.yml").read_text()
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{providers['providers'][0]['options']['path']}:ro" in mounts


def stack_settings(tmp_path: Path) -> Path:
    """The demo's settings plus a web role fed by the router log drain, with a
    schedule (no floor or budget of its own: it changes nothing but its series)."""
    document = yaml.safe_load((ROOT / "dynoscaler/demo/demo.yml").read_text())
    document["apps"]["demo-shop"]["roles"]["web"] = {
        "min_dynos": 1,
        "max_dynos": 4,
        "concurrency": 4,
        "target_deadline": 2,
        "boot_time": 5,
        "requests": "router",
        "middleware": {"url": STACK_REDIS},
        "schedules": [{"name": "business-hours", "cron": "0 9 * * 1-5", "duration": "8h"}],
    }
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def time_web_requests(times: RequestTimes, count: int) -> None:
    """`count` requests through the web role's middleware counters (40-60 ms in the
    queue, 20 ms in the app) and one with a router clock ahead; flushed to Redis."""
    now = time.time()
    for i in range(count):
        times.record(now - 0.04 - 0.001 * i, now, now + 0.02)
    times.record(now + 5, now, now + 0.02)
    times.flush()


def drain_router_lines(stack: Stack, count: int, start: int) -> None:
    lines = [ROUTER_LINE.format(n=start + i, ms=20 + i % 50) for i in range(count)]
    body = b"".join(f"{len(line.encode()) + 1} {line}\n".encode() for line in lines)
    answer = requests.post(
        f"{stack.urls['exporter']}/logs/demo-shop",
        data=body,
        headers={"Content-Type": "application/logplex-1"},
        auth=("heroku", stack.options.drain_token),
        timeout=5,
    )
    answer.raise_for_status()


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_every_panel_query_returns_data_from_the_running_loop(tmp_path):
    options = StackOptions(
        settings=stack_settings(tmp_path),
        run_dir=tmp_path / "run",
        ports=Ports.free(),
        redis_url=STACK_REDIS,
    )
    options.run_dir.mkdir()
    queries = [query for path in DASHBOARDS for query in expressions(json.loads(path.read_text()))]
    with Stack(options) as stack:
        producer = Producer(stack.redis, ["default", "mailers"], spike(duration=150)).start()
        times = RequestTimes(stack.redis, role="web", flush_seconds=3600)
        # A panel passes once its query has answered with data at some point of the run
        # (the firing-alerts table, for one, is empty between scale actions).
        empty = queries
        try:
            deadline = time.monotonic() + 150
            sent = 0
            while empty and time.monotonic() < deadline:
                drain_router_lines(stack, 20, sent)
                time_web_requests(times, 20)
                sent += 20
                empty = [(title, expr) for title, expr in empty if not stack.query(expr)]
                time.sleep(2)
        finally:
            producer.stop()
    assert not empty, "panels without data:\n" + "\n".join(f"{t}: {e}" for t, e in empty)


def test_the_drill_down_is_linked_and_annotated_from_the_scaler():
    """The overview's capacity panels link each role to the drill-down; its annotation
    query asks the scaler's GET /annotations for the role and the dashboard's time
    range, reading fields the API promises (scaler/openapi.yml)."""
    dashboards = {p.stem: json.loads(p.read_text()) for p in DASHBOARDS}
    role = dashboards["dynoscaler-role"]
    linked = [
        link["url"]
        for panel in panels(dashboards["dynoscaler-overview"])
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    ]
    assert linked and all(
        url.startswith(f"/d/{role['uid']}?var-app=${{__field.labels.app}}&var-role=")
        for url in linked
    )
    [annotation] = role["annotations"]["list"]
    target = annotation["target"]
    assert annotation["datasource"]["type"] == "yesoreyeram-infinity-datasource"
    assert target["url"] == "/annotations"
    params = {p["key"]: p["value"] for p in target["url_options"]["params"]}
    assert params == {"app": "$app", "role": "$role", "from": "${__from}", "to": "${__to}"}
    api = yaml.safe_load((ROOT / "scaler/openapi.yml").read_text())["paths"]["/annotations"]
    assert set(params) <= {p["name"] for p in api["get"]["parameters"]}
    fields = api["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"]
    assert {c["selector"] for c in target["columns"]} <= set(fields["required"])
    provisioned = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/scaler.yml").read_text()
    )["datasources"]
    assert [d["type"] for d in provisioned] == [annotation["datasource"]["type"]]
