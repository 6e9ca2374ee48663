"""dynoscaler snapshot against a real Prometheus holding two hours of a role
(history_support.spike_history), and the Slack notifier uploading it through a
local HTTP server that answers as Slack's files API does."""

from __future__ import annotations

import json
import math
import threading
import time
from urllib.parse import parse_qs

import pytest
from history_support import prometheus_with_history, spike_history, spike_times
from prometheus_client import REGISTRY
from scaler_support import TOKEN, write_settings
from support import LocalServer, QuietHandler

from dynoscaler import cli, config
from dynoscaler.config import NotifierSettings
from scaler.app import create_app
from scaler.notifiers import Notifiers
from scaler.store import Decision, Store

PNG = b"\x89PNG\r\n\x1a\n"
BOT_TOKEN = "xoxb-test-token"
UNMEETABLE = {
    "event": "deadline_unmeetable",
    "app": "shop",
    "role": "worker",
    "alertname": "DeadlineUnmeetable",
}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    directory = tmp_path_factory.mktemp("snapshot")
    start = math.floor(time.time() / 60) * 60 - 120 * 60
    with prometheus_with_history(directory, spike_history(start), spike_times(start)) as url:
        yield url, start, directory


class FakeSlack(LocalServer):
    """Slack's incoming webhook and files API (getUploadURLExternal, the upload
    URL, completeUploadExternal), recording (path, headers, body) per request."""

    def __init__(self, complete_error: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.done = threading.Event()
        slack = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                slack.requests.append((self.path, dict(self.headers), body))
                answer: object = "ok"
                if self.path == "/api/files.getUploadURLExternal":
                    answer = {"ok": True, "upload_url": f"{slack.url}/upload/F1", "file_id": "F1"}
                elif self.path == "/api/files.completeUploadExternal":
                    answer = {"ok": True, "files": [{"id": "F1"}]}
                    if complete_error:
                        answer = {"ok": False, "error": complete_error}
                    slack.done.set()
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    def settings(self) -> NotifierSettings:
        return NotifierSettings(
            type="slack",
            url=f"{self.url}/hooks/T/B/X",
            token=BOT_TOKEN,
            channel="C0123ABCD",
            api_url=f"{self.url}/api",
        )


def sent(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "dynoscaler_scaler_notifications_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


def test_annotation_decision_entry_and_snapshot_agree(history, capsys):
    """For an action of the log: /annotations, /decisions and the snapshot give the
    same reason and inputs, and the annotation and snapshot the same explanation."""
    url, start, directory = history
    store_url = f"sqlite:///{directory / 'decisions.sqlite3'}"
    inputs = {"alerts": [{"annotations": {"desired_dynos": "8"}}], "observed_at": 1.5}
    at = start + 60 * 60 + 5
    reason = "dry run: scale 2 -> 8"
    Store(store_url).record(
        [
            Decision(at, "webhook", "shop", "worker", inputs, {}, 2, 8, reason, "dry_run"),
            Decision(at + 1, "webhook", "shop", "worker", inputs, {}, 8, None, "already at 8"),
        ]
    )
    settings = write_settings(directory, store_url, prometheus_url=url)
    client = create_app(config.load(settings), notify=lambda event: None, token=TOKEN).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    window = {"app": "shop", "role": "worker", "from": int(at * 1000) - 1, "to": int(at * 1000) + 1}
    [annotation] = client.get("/annotations", query_string=window, headers=auth).get_json()
    entry = client.get("/decisions?app=shop&role=worker", headers=auth).get_json()["decisions"][1]
    assert (annotation["reason"], annotation["inputs"]) == (entry["reason"], entry["inputs"])
    assert annotation["reason"] == reason and annotation["inputs"] == inputs
    assert annotation["time"] == round(at * 1000) and annotation["terms"]["arrival_rate"] == 12
    assert "dry_run" in annotation["tags"].split(",")

    output = directory / "worker.png"
    arguments = ["--app", "shop", "--role", "worker", "--since", "3h", "-o", str(output)]
    assert cli.main(["snapshot", "--config", str(settings), *arguments]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{output}\n")
    assert output.read_bytes().startswith(PNG)
    assert f"1: {annotation['text']}" in printed
    assert reason in annotation["text"] and "λ 12/s" in annotation["text"]
    assert json.dumps(inputs, sort_keys=True) in annotation["text"]


def test_bad_annotation_queries_are_400s(history):
    url, _, directory = history
    settings = write_settings(directory, f"sqlite:///{directory / 'bad.sqlite3'}")
    client = create_app(config.load(settings), notify=lambda event: None, token=TOKEN).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for query in ("from=yesterday", "to=-5", "limit=0", "limit=5000"):
        answer = client.get(f"/annotations?{query}", headers=auth)
        assert answer.status_code == 400, query
    assert client.get("/annotations").status_code == 401
    assert client.get("/annotations?from=0", headers=auth).get_json() == []


def test_a_dead_prometheus_is_a_message(tmp_path, capsys):
    arguments = ["--prometheus", "http://127.0.0.1:9", "--app", "shop", "--role", "worker"]
    assert cli.main(["snapshot", *arguments, "-o", str(tmp_path / "x.png")]) == 1
    assert "Prometheus at http://127.0.0.1:9" in capsys.readouterr().err


def test_slack_uploads_the_snapshot_when_the_deadline_is_unmeetable(history):
    url, _, _ = history
    slack = FakeSlack()
    before = sent("slack", "sent")
    try:
        notifiers = Notifiers((slack.settings(),), prometheus_url=url)
        notifiers(UNMEETABLE)
        notifiers.close(wait=True)
    finally:
        slack.close()
    paths = [path for path, _, _ in slack.requests]
    assert paths == [
        "/hooks/T/B/X",
        "/api/files.getUploadURLExternal",
        "/upload/F1",
        "/api/files.completeUploadExternal",
    ]
    _, ticket_headers, ticket = slack.requests[1]
    assert ticket_headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    form = parse_qs(ticket.decode())
    image = slack.requests[2][2]
    assert image.startswith(PNG)
    assert form == {"filename": ["shop-worker.png"], "length": [str(len(image))]}
    complete = json.loads(slack.requests[3][2])
    assert complete["channel_id"] == "C0123ABCD"
    assert complete["files"][0]["id"] == "F1"
    assert "deadline_unmeetable on shop" in complete["initial_comment"]
    assert sent("slack", "sent") == before + 1


def test_other_events_and_slack_refusals_never_break_notifying(history):
    url, _, _ = history
    slack = FakeSlack(complete_error="channel_not_found")
    failed = sent("slack", "failed")
    try:
        notifiers = Notifiers((slack.settings(),), prometheus_url=url)
        notifiers({"event": "actuation_failure", "app": "shop"})
        notifiers(UNMEETABLE)
        notifiers.close(wait=True)
    finally:
        slack.close()
    # the failure's text only; the unmeetable deadline's text and upload, refused
    assert [p for p, _, _ in slack.requests].count("/hooks/T/B/X") == 2
    assert slack.done.is_set()
    assert sent("slack", "failed") == failed + 1
