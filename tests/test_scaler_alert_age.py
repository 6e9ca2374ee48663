"""An alert's age: no scale-down unless it is known and within scaler.stale_after.

The age comes from endsAt (scaler/alerts.py, `observed_at`): Alertmanager's
"0001-01-01T00:00:00Z" on a firing alert means current; an RFC 3339 date-time
with a zone from 1970 to stale_after ahead means current until then, as old as
it afterwards; anything else leaves the age unknown, which refuses a scale-down
and lets a scale-up act. The settings here (cooldown 0, max_step 10) leave the
age the only thing between 5 dynos and 2.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from exporter_helpers import wait_for
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scaler_support import (
    TOKEN,
    FakeHerokuProcess,
    ScalerProcess,
    alert,
    alertmanager,
    payload,
    scaler_environment,
    write_settings,
)

from dynoscaler import config
from dynoscaler.processes import free_port
from scaler.alerts import ZERO_TIME, parse
from scaler.app import create_app
from scaler.guardrails import Policy, State, decide
from scaler.store import Store

AUTH = {"Authorization": f"Bearer {TOKEN}"}
STALE_AFTER = 120.0  # scaler.stale_after's default, which the settings here keep
FAST = {"cooldown": 0, "max_step": 10}


def settings_file(directory: Path, **scaler: object) -> Path:
    return write_settings(
        directory, f"sqlite:///{directory / 's.sqlite3'}", defaults=FAST, **scaler
    )


@pytest.fixture
def client(tmp_path):
    loaded = config.load(settings_file(tmp_path, dry_run=True))
    assert loaded.scaler.stale_after == STALE_AFTER
    app = create_app(loaded, store=Store(loaded.scaler.store), notify=lambda e: None, token=TOKEN)
    return app.test_client()


def post(client, *alerts: dict) -> dict:
    response = client.post("/alerts", data=json.dumps(payload(*alerts)), headers=AUTH)
    assert response.status_code == 200, response.json
    [decision] = response.json["decisions"]
    return decision


def ask(desired: str, direction: str, ends_at: str | None) -> dict:
    """A firing ScaleRole for shop/worker; ends_at None: without endsAt."""
    body = alert("shop", "worker", desired, direction=direction)
    if ends_at is None:
        del body["endsAt"]
    else:
        body["endsAt"] = ends_at
    return body


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(at: float, offset_minutes: int = 0, fraction: str | None = None) -> str:
    """`at` (Unix seconds) written as RFC 3339 in the given offset ("Z" for 0).

    fraction: the digits after the seconds' point (None: milliseconds of `at`).
    """
    zone = timezone(timedelta(minutes=offset_minutes))
    local = (EPOCH + timedelta(seconds=at)).astimezone(zone)
    text = f"{local.year:04d}-" + local.strftime("%m-%dT%H:%M:%S")
    if fraction is None:
        fraction = f"{local.microsecond // 1000:03d}"
    if fraction:
        text += "." + fraction
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def unknown_ages(now: float) -> dict[str, str | None]:
    """endsAt values (None: absent) from which no age can be established."""
    hour_ago = rfc3339(now - 3600)
    return {
        # The four of issue 15: each scaled 5 -> 2.
        "no zone, an hour old": hour_ago[:-1],
        "date only": hour_ago[:10],
        "no endsAt": None,
        "year 1, not the zero time": "0001-06-01T00:00:00Z",
        "zero time without its zone": ZERO_TIME[:-1],
        "zero time's date only": ZERO_TIME[:10],
        "empty": "",
        "not a time": "soon",
        "before 1970": "1969-12-31T23:59:59Z",
        "year 9999": "9999-12-31T23:59:59Z",
        "further ahead than stale_after": rfc3339(now + STALE_AFTER + 60),
        "space for T": hour_ago.replace("T", " "),
        "no seconds": hour_ago[:16] + "Z",
        "basic format": hour_ago.replace("-", "").replace(":", ""),
        "leap second": hour_ago[:17] + "60Z",
        "hour 24 offset": hour_ago[:-1] + "+24:00",
        "offset without colon": hour_ago[:-1] + "+0000",
        "Feb 30": "2026-02-30T00:00:00Z",
        "trailing newline": rfc3339(now) + "\n",
        "leading space": " " + rfc3339(now),
        "Arabic-Indic digit": "\u0662" + rfc3339(now)[1:],
    }


@pytest.mark.parametrize("case", list(unknown_ages(time.time())))
def test_no_scale_down_on_data_of_unknown_age(client, case) -> None:
    assert post(client, ask("5", "up", ZERO_TIME))["to"] == 5
    ends_at = unknown_ages(time.time())[case]
    decision = post(client, ask("2", "down", ends_at))
    assert (decision["from"], decision["to"]) == (5, None)
    assert decision["reason"] == "no scale-down: input data missing or of unknown age"


@pytest.mark.parametrize("case", list(unknown_ages(time.time())))
def test_a_scale_up_acts_whatever_the_age(client, case) -> None:
    ends_at = unknown_ages(time.time())[case]
    decision = post(client, ask("5", "up", ends_at))
    assert (decision["from"], decision["to"]) == (1, 5)


def test_the_decision_log_says_why_the_age_is_unknown(tmp_path) -> None:
    loaded = config.load(settings_file(tmp_path, dry_run=True))
    store = Store(loaded.scaler.store)
    client = create_app(loaded, store=store, notify=lambda e: None, token=TOKEN).test_client()
    post(client, ask("5", "up", ZERO_TIME))
    post(client, ask("2", "down", "2026-11-23T10:00:00"))
    [row] = store.decisions(limit=1)
    assert row["inputs"]["observed_at"] is None
    assert row["inputs"]["age_unknown"] == [
        "alerts.0: endsAt '2026-11-23T10:00:00' is not an RFC 3339 date-time with a zone"
    ]


def fresh_ages(now: float) -> dict[str, str]:
    return {
        "Alertmanager's zero time": ZERO_TIME,
        "10 s ago": rfc3339(now - 10),
        "10 s ago, +05:30": rfc3339(now - 10, 330),
        "10 s ago, -08:00, nanoseconds": rfc3339(now - 10, -480, "123456789"),
        "10 s ago, lower case": rfc3339(now - 10).replace("T", "t").replace("Z", "z"),
        "20 s ahead (Prometheus' valid-until at 5 s intervals)": rfc3339(now + 20),
    }


@pytest.mark.parametrize("case", list(fresh_ages(time.time())))
def test_fresh_alerts_scale_down(client, case) -> None:
    assert post(client, ask("5", "up", ZERO_TIME))["to"] == 5
    decision = post(client, ask("2", "down", fresh_ages(time.time())[case]))
    assert (decision["from"], decision["to"]) == (5, 2)


def test_one_alert_of_unknown_age_holds_its_role(client) -> None:
    """Two alerts for one role in one payload: of unknown age if either is."""
    assert post(client, ask("5", "up", ZERO_TIME))["to"] == 5
    decision = post(client, ask("2", "down", ZERO_TIME), ask("2", "down", "2026-11-23"))
    assert (decision["from"], decision["to"]) == (5, None)


# --- hypothesis: the rule over endsAt forms and clocks ------------------------------

_DIR = Path(tempfile.mkdtemp(prefix="dynoscaler-age-"))
SETTINGS = config.load(write_settings(_DIR, f"sqlite:///{_DIR / 's.sqlite3'}", defaults=FAST))
FIRST_AT, LAST_AT = -62135596800, 253402300799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59)
KINDS = ["zero", "near", "near", "near", "any year", "naive", "date", "text", "missing"]
KINDS += ["padded", "foreign digit"]


@st.composite
def ends_ats(draw, now: float) -> tuple[str | None, float | None]:
    """(endsAt or None, the Unix time it establishes or None when no age can be)."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "zero":
        return ZERO_TIME, now
    if kind == "missing":
        return None, None
    if kind == "text":
        # Never a date-time: it does not start with an ASCII digit.
        text = draw(
            st.text(max_size=40).filter(lambda t: not (t[:1].isascii() and t[:1].isdigit()))
        )
        return text, None
    if kind == "any year":
        at, offset = draw(st.integers(FIRST_AT, LAST_AT)), 0
    else:
        span = draw(st.sampled_from([3 * int(STALE_AFTER), 1_000_000]))
        at, offset = int(now) + draw(st.integers(-span, span)), draw(offsets)
    # The local time stays within years 1-9999, so it has an RFC 3339 spelling.
    assume(FIRST_AT + 86400 <= at <= LAST_AT - 86400)
    fraction = draw(st.text("0123456789", max_size=9))
    text = rfc3339(at, offset, fraction)
    exact = at + (float("0." + fraction) if fraction else 0.0)
    if kind == "naive":
        return text[: -1 if offset == 0 else -6], None
    if kind == "date":
        return text[:10], None
    if kind == "padded":
        return draw(st.sampled_from([" ", "\n", "\t"])) + text, None
    if kind == "foreign digit":
        return text[:3] + "\u0661" + text[4:], None
    if text == ZERO_TIME:
        return text, now
    if exact < 0 or exact > now + STALE_AFTER:
        return text, None
    return text, min(now, exact)


def test_settings_keep_the_default_stale_after() -> None:
    assert SETTINGS.scaler.stale_after == STALE_AFTER


@given(st.data(), st.floats(1e9, 4e9))
@settings(max_examples=400, deadline=None)
def test_observed_at_and_the_scale_down_rule(data, now) -> None:
    """No scale-down unless the alert's age is known and within stale_after; a scale-up
    acts on any; the age is exactly what endsAt says."""
    ends_at, expected = data.draw(ends_ats(now))
    [role] = parse(payload(ask("2", "down", ends_at)), SETTINGS, now).scale["shop"]
    if expected is None:
        assert role.request.observed_at is None
    else:
        assert role.request.observed_at == pytest.approx(expected, abs=1e-5)
    policy = Policy(min_dynos=1, max_dynos=10, cooldown=0, max_step=10)
    verdict = decide(role.request, State(current=5), policy, now, STALE_AFTER)
    fresh = expected is not None and now - expected <= STALE_AFTER
    assert verdict.target == (2 if fresh else None), (ends_at, verdict)
    [role] = parse(payload(ask("5", "up", ends_at)), SETTINGS, now).scale["shop"]
    assert decide(role.request, State(current=2), policy, now, STALE_AFTER).target == 5


@given(
    st.sampled_from(["zero", "aged", "aged", "aged", "unknown"]),
    st.floats(-3 * STALE_AFTER, 3 * STALE_AFTER),
    offsets,
    st.sampled_from(list(unknown_ages(0))),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_webhook_scales_down_only_on_a_known_fresh_age(client, kind, delta, offset, case) -> None:
    """The same rule through the Flask app on the wall clock, away from the boundaries."""
    assume(kind != "aged" or min(abs(delta - STALE_AFTER), abs(delta + STALE_AFTER)) > 5)
    post(client, ask("5", "up", ZERO_TIME))  # at 5, from wherever the last example left it
    now = time.time()
    if kind == "zero":
        ends_at, fresh = ZERO_TIME, True
    elif kind == "aged":
        ends_at, fresh = rfc3339(now + delta, offset), abs(delta) < STALE_AFTER
    else:
        ends_at, fresh = unknown_ages(now)[case], False
    decision = post(client, ask("2", "down", ends_at))
    assert (decision["from"], decision["to"]) == (5, 2 if fresh else None), ends_at
    if not fresh:
        assert post(client, ask("2", "down", ZERO_TIME))["to"] == 2
    assert post(client, ask("5", "up", ends_at))["to"] == 5, ends_at


# --- the real path: Alertmanager -> gunicorn scaler -> fake Heroku ------------------


@pytest.fixture
def real_path(tmp_path) -> Iterator[tuple[str, ScalerProcess, FakeHerokuProcess]]:
    settings = settings_file(tmp_path)
    fake = FakeHerokuProcess(settings)
    processes: list = [fake]
    try:
        scaler = ScalerProcess(settings, scaler_environment(fake, tmp_path))
        processes.append(scaler)
        people = f"http://127.0.0.1:{free_port()}/people"
        with alertmanager(
            tmp_path, f"{scaler.url}/alerts", people, stderr=subprocess.DEVNULL
        ) as url:
            yield url, scaler, fake
    finally:
        for process in reversed(processes):
            process.close()


def scale_role(desired: str, direction: str, starts: float, ends: float) -> dict:
    """A ScaleRole as Prometheus posts it: endsAt is its valid-until (evaluation + 4 x
    max(evaluation interval, resend delay)), or the resolve time once it stopped firing."""
    labels = {"alertname": "ScaleRole", "severity": "scale", "direction": direction}
    return {
        "labels": {**labels, "app": "shop", "role": "worker"},
        "annotations": {"desired_dynos": desired},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),  # a resolve time must not be ahead of Alertmanager's clock
        "generatorURL": "http://prometheus/graph",
    }


def prometheus_sends(alertmanager: str, *alerts: dict) -> None:
    response = requests.post(f"{alertmanager}/api/v2/alerts", json=list(alerts), timeout=5)
    assert response.status_code == 200, response.text


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_real_path_still_scales_down(real_path) -> None:
    """Alertmanager writes the zero time for a firing alert's endsAt, whatever Prometheus
    sent; the scaler takes it as current, and scales up and then down. (The ends are
    a lease longer than the test: Prometheus would renew it every evaluation.)"""
    alertmanager, scaler, fake = real_path
    up_since = time.time() - 1
    prometheus_sends(alertmanager, scale_role("5", "up", up_since, up_since + 300))
    wait_for(lambda: fake.quantity("shop", "worker") == 5, timeout=60)
    now = time.time()
    prometheus_sends(
        alertmanager,
        scale_role("5", "up", up_since, now),  # resolved: the count caught up
        scale_role("2", "down", now - 1, now + 300),
    )
    # The group's next notification comes group_interval (10 s) after the last one.
    try:
        wait_for(lambda: fake.quantity("shop", "worker") == 2, timeout=90)
    except AssertionError:
        print(requests.get(f"{scaler.url}/decisions", headers=AUTH, timeout=10).text)
        print(requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).text)
        raise
    rows = requests.get(
        f"{scaler.url}/decisions?app=shop&role=worker", headers=AUTH, timeout=10
    ).json()["decisions"]
    down = next(r for r in rows if r["to_count"] == 2)
    [sent] = down["inputs"]["alerts"]
    assert (sent["labels"]["direction"], sent["endsAt"]) == ("down", ZERO_TIME)
    assert down["inputs"]["observed_at"] is not None
    assert down["reason"] == "scale 5 -> 2"
    assert [p["body"]["updates"] for p in fake.patches()] == [
        [{"type": "worker", "quantity": 5}],
        [{"type": "worker", "quantity": 2}],
    ]
