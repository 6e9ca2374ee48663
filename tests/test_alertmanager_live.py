"""alertmanager/alertmanager.yml in a real Alertmanager: routes, token, inhibition.

The receivers' addresses point at a webhook server in this test; the root
route's group_wait is cut to 1s so ops alerts arrive quickly. Everything else
(scale route timings, grouping, authorization, inhibit rules) is the file's own.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from rules_support import ROOT

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webhook() -> Iterator[tuple[str, queue.Queue]]:
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.put((self.path, self.headers.get("Authorization"), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: tuple[str, queue.Queue]) -> Iterator[str]:
    address, _ = webhook
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text("utf-8"))
    config["route"]["group_wait"] = "1s"
    receivers = {r["name"]: r["webhook_configs"][0] for r in config["receivers"]}
    receivers["dynoscaler-scaler"]["url"] = f"{address}/alerts"
    receivers["people"]["url"] = f"{address}/people"
    (tmp_path / "webhook-token").write_text(TOKEN, encoding="utf-8")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"alertmanager exited: {process.stderr.read().decode()}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError("alertmanager did not become ready in 20s")


def alert(labels: dict[str, str], **annotations: str) -> dict:
    return {"labels": labels, "annotations": annotations}


def collect(received: queue.Queue, seconds: float) -> list[tuple[str, str | None, dict]]:
    deadline = time.monotonic() + seconds
    got = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(received.get(timeout=left))
        except queue.Empty:
            break
    return got


def test_scale_alerts_reach_the_scaler_and_ops_alerts_reach_people(alertmanager, webhook) -> None:
    _, received = webhook
    worker = {"app": "shop", "role": "worker"}
    alerts = [
        alert(
            {"alertname": "ScaleRole", "severity": "scale", "direction": "up", **worker},
            desired_dynos="7",
        ),
        alert({"alertname": "DeadlineUnmeetable", "severity": "ops", **worker}),
        alert({"alertname": "JobPastDeadline", "severity": "ops", **worker}),
        alert({"alertname": "ExporterDown", "severity": "ops"}),
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

    got = collect(received, 9)  # scale group_wait 5s, ops 1s (cut for the test)
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
