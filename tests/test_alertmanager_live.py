"""alertmanager/alertmanager.yml in a real Alertmanager: routes, token, inhibition.

The receivers' addresses point at a webhook server in this test; the root
route's group_wait is cut to 1s so ops alerts arrive quickly. Everything else
(scale route timings, grouping, authorization, inhibit rules) is the file's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from exporter_helpers import wait_for
from scaler_support import alertmanager as run_alertmanager
from support import Receiver

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

TOKEN = "s3cret-token"


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Receiver) -> Iterator[str]:
    address = webhook.url
    with run_alertmanager(
        tmp_path, f"{address}/alerts", f"{address}/people", token=TOKEN, group_wait="1s"
    ) as url:
        yield url


def alert(labels: dict[str, str], **annotations: str) -> dict:
    return {"labels": labels, "annotations": annotations}


def listed_alerts(alertmanager: str) -> set[str]:
    """The names of the alerts Alertmanager's API lists (active, as its inhibitor sees them)."""
    listed = requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    return {a["labels"]["alertname"] for a in listed}


def test_scale_alerts_reach_the_scaler_and_ops_alerts_reach_people(
    alertmanager: str, webhook: Receiver
) -> None:
    worker = {"app": "shop", "role": "worker"}
    # The inhibiting alerts fire first, as they do in Prometheus (ExporterDown and
    # DeadlineUnmeetable wait a `for:`). Posted in the same request as the scale-down,
    # the scale route's group_wait of 0s could flush it before Alertmanager's inhibitor
    # had taken in ExporterDown (a fresh-clone run saw that once); the recording rules
    # hold a role whose exporter is down, so no such scale-down comes from them.
    sources = [
        alert({"alertname": "DeadlineUnmeetable", "severity": "ops", **worker}),
        alert({"alertname": "ExporterDown", "severity": "ops"}),
    ]
    assert requests.post(f"{alertmanager}/api/v2/alerts", json=sources, timeout=5).ok
    names = {"DeadlineUnmeetable", "ExporterDown"}
    wait_for(lambda: names <= listed_alerts(alertmanager), timeout=10, interval=0.1)
    alerts = [
        alert(
            {"alertname": "ScaleRole", "severity": "scale", "direction": "up", **worker},
            desired_dynos="7",
        ),
        alert({"alertname": "JobPastDeadline", "severity": "ops", **worker}),
        alert(
            {
                "alertname": "ScaleRole",
                "severity": "scale",
                "direction": "down",
                "app": "shop",
                "role": "reports",
            },
            desired_dynos="0",
        ),
    ]
    response = requests.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5)
    assert response.status_code == 200

    time.sleep(9)  # scale group_wait 0s, ops 1s (cut for the test)
    got = [(path, headers.get("Authorization"), body) for path, headers, body in webhook.requests]
    to_scaler = [(auth, body) for path, auth, body in got if path == "/alerts"]
    to_people = [body for path, _, body in got if path == "/people"]

    assert len(to_scaler) == 1  # shop/reports scale-down is inhibited: exporter down
    auth, body = to_scaler[0]
    assert auth == f"Bearer {TOKEN}"
    assert body["groupLabels"] == worker
    assert [
        (a["status"], a["labels"]["direction"], a["annotations"]["desired_dynos"])
        for a in body["alerts"]
    ] == [("firing", "up", "7")]

    names = sorted(a["labels"]["alertname"] for body in to_people for a in body["alerts"])
    assert names == ["DeadlineUnmeetable", "ExporterDown"]  # JobPastDeadline inhibited
