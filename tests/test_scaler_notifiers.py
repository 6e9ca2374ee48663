"""Notifiers against a real local HTTP receiver; a slow or dead one never blocks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from support import Receiver

from dynoscaler.config import ConfigError, NotifierSettings
from dynoscaler.processes import free_port
from scaler.notifiers import Notifiers

EVENT = {"event": "actuation_limit", "app": "shop", "targets": {"worker": 30}}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def deliver(settings: NotifierSettings, event: dict) -> None:
    notifiers = Notifiers((settings,))
    notifiers(event)
    notifiers.close(wait=True)


def test_webhook_posts_the_event_as_json(receiver) -> None:
    deliver(NotifierSettings(type="webhook", url=f"{receiver.url}/events"), EVENT)
    [(path, headers, body)] = receiver.requests
    assert path == "/events"
    assert headers["Content-Type"] == "application/json"
    assert body == EVENT


def test_slack_posts_a_text_line(receiver) -> None:
    deliver(NotifierSettings(type="slack", url=f"{receiver.url}/services/T/B/X"), EVENT)
    [(path, _, body)] = receiver.requests
    assert path == "/services/T/B/X"
    assert body == {"text": 'dynoscaler actuation_limit on shop: {"targets": {"worker": 30}}'}


def test_newrelic_inserts_a_flat_custom_event(receiver) -> None:
    settings = NotifierSettings(
        type="newrelic", url=receiver.url, account_id="12345", insert_key="NRII-secret"
    )
    deliver(settings, EVENT)
    [(path, headers, body)] = receiver.requests
    assert path == "/v1/accounts/12345/events"
    assert headers["X-Insert-Key"] == "NRII-secret"
    assert body == [
        {
            "eventType": "DynoscalerEvent",
            "event": "actuation_limit",
            "app": "shop",
            "targets": '{"worker": 30}',
        }
    ]


@pytest.mark.timeout(20)
def test_slow_or_failing_notifiers_never_block_the_caller() -> None:
    release, never = threading.Event(), threading.Event()
    slow, stuck, failing = Receiver(hold=release), Receiver(hold=never), Receiver(status=500)
    dead = NotifierSettings(type="webhook", url=f"http://127.0.0.1:{free_port()}/x", timeout=1)
    notifiers = Notifiers(
        (
            NotifierSettings(type="webhook", url=slow.url, timeout=15),
            NotifierSettings(type="webhook", url=stuck.url, timeout=0.5),
            NotifierSettings(type="webhook", url=failing.url),
            dead,
        )
    )
    sample = "dynoscaler_scaler_notifications_total"
    sent, failed = ({"kind": "webhook", "outcome": o} for o in ("sent", "failed"))
    before = [REGISTRY.get_sample_value(sample, labels) or 0 for labels in (sent, failed)]
    try:
        # Were a call to wait for the held receiver, 5 calls would outlast the
        # test's time-out (5 x 15 s): returning at all shows they do not block.
        for _ in range(5):
            notifiers(EVENT)
        release.set()
        notifiers.close(wait=True)
    finally:
        release.set()
        never.set()
        for receiver in (slow, stuck, failing):
            receiver.close()
    assert (len(slow.requests), len(failing.requests)) == (5, 5)
    after = [REGISTRY.get_sample_value(sample, labels) for labels in (sent, failed)]
    # sent: the slow one; failed: 5 each for time-out, HTTP 500, connection refused.
    assert (after[0] - before[0], after[1] - before[1]) == (5, 15)


def test_missing_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="newrelic notifier needs account_id and insert_key"):
        Notifiers((NotifierSettings(type="newrelic", account_id="1"),))
    with pytest.raises(ConfigError, match="a slack notifier needs a url"):
        Notifiers((NotifierSettings(type="slack"),))
