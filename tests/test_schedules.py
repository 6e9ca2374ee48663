"""Schedules: windows with their own floor and budget, pre-warmed by boot time, DST-safe."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prometheus_client import generate_latest
from scaler_support import HEROKU_KEY

from dynoscaler import check_config, config, heroku, schedules
from dynoscaler.config import ConfigError
from exporter.cli import build
from scaler.actuator import Actuator
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.guardrails import Request
from scaler.service import RoleInput, Scaler
from scaler.store import Store

ROOT = Path(__file__).resolve().parent.parent
OSLO = ZoneInfo("Europe/Oslo")
QUEUE = {"name": "q", "backend": "sidekiq", "url": "redis://127.0.0.1:6379/11"}
SALE = {
    "name": "flash-sale",
    "cron": "55 9 * * 1-5",
    "duration": "35m",
    "timezone": "Europe/Oslo",
    "min_dynos": 10,
    "max_dynos": 30,
}


def document(*entries, **role):
    worker = {"max_dynos": 20, "boot_time": 60, "queues": [QUEUE], **role}
    if entries:
        worker["schedules"] = list(entries)
    return {"apps": {"shop": {"roles": {"worker": worker}}}}


def role_of(*entries, **role):
    return config.parse(document(*entries, **role), "s.yml", {}).roles[0]


def oslo(*parts):
    return datetime(*parts, tzinfo=OSLO).timestamp()


def utc(*parts):
    return datetime(*parts, tzinfo=UTC).timestamp()


def limits(role, when):
    settings = schedules.in_force(role, when)
    return settings.min_dynos, settings.max_dynos


def test_a_window_sets_floor_and_budget_from_boot_time_before_it_opens():
    role = role_of(SALE)  # Friday 2026-12-04, Oslo time; boot_time 60
    assert limits(role, oslo(2026, 12, 4, 9, 53, 59)) == (0, 20)
    assert limits(role, oslo(2026, 12, 4, 9, 54)) == (10, 30)  # pre-warm
    assert schedules.active(role, oslo(2026, 12, 4, 9, 54, 30)) == {"flash-sale": False}
    assert schedules.active(role, oslo(2026, 12, 4, 9, 55)) == {"flash-sale": True}
    assert limits(role, oslo(2026, 12, 4, 10, 29, 59)) == (10, 30)
    assert limits(role, oslo(2026, 12, 4, 10, 30)) == (0, 20)
    assert limits(role, oslo(2026, 12, 5, 9, 56)) == (0, 20)  # Saturday


def test_several_windows_give_the_highest_floor_and_budget_and_a_budget_only_window_no_lead():
    night = {"name": "night", "cron": "0 22 * * *", "duration": 3600 * 10, "max_dynos": 5}
    rush = {"name": "rush", "cron": "0 7 * * *", "duration": "1h", "min_dynos": 4}  # UTC
    role = role_of(night, rush, min_dynos=1)
    assert limits(role, utc(2026, 12, 4, 21, 59)) == (1, 20)  # no lead without a floor
    assert limits(role, utc(2026, 12, 4, 23, 0)) == (1, 5)
    # 06:59:30, the night's budget and the rush's pre-warmed floor with the role's budget
    assert limits(role, utc(2026, 12, 5, 6, 59, 30)) == (4, 20)
    assert limits(role, utc(2026, 12, 5, 7, 30)) == (4, 20)
    assert limits(role, utc(2026, 12, 5, 8, 30)) == (1, 20)


def openings(entry, start, count):
    role = role_of({**entry, "timezone": "Europe/Oslo", "duration": 600})
    return [
        datetime.fromtimestamp(at, UTC).strftime("%m-%d %H:%M")
        for _, at in schedules.next_windows(role, start, count)
    ]


def test_dst_spring_forward_opens_a_skipped_time_at_the_end_of_the_gap():
    # 2027-03-28 in Oslo: 02:00 CET becomes 03:00 CEST
    assert openings({"name": "n", "cron": "30 2 * * *"}, oslo(2027, 3, 27, 12), 3) == [
        "03-28 01:00",  # 03:00 CEST
        "03-29 00:30",  # 02:30 CEST
        "03-30 00:30",
    ]
    hourly = openings({"name": "h", "cron": "0 * * * *"}, oslo(2027, 3, 28, 0, 30), 3)
    assert hourly == ["03-28 00:00", "03-28 01:00", "03-28 02:00"]


def test_dst_fall_back_opens_a_fixed_hour_once_and_every_hour_twice():
    # 2026-10-25 in Oslo: 03:00 CEST becomes 02:00 CET, 02:00-03:00 comes twice
    assert openings({"name": "n", "cron": "30 2 * * *"}, oslo(2026, 10, 24, 12), 2) == [
        "10-25 00:30",  # the first 02:30 (CEST) only
        "10-26 01:30",  # 02:30 CET
    ]
    hourly = openings({"name": "h", "cron": "0 * * * *"}, oslo(2026, 10, 25, 0, 30), 4)
    assert hourly == ["10-24 23:00", "10-25 00:00", "10-25 01:00", "10-25 02:00"]
    role = role_of({"name": "n", "cron": "30 2 * * *", "timezone": "Europe/Oslo",
                    "duration": "20m", "max_dynos": 3})  # fmt: skip
    assert limits(role, utc(2026, 10, 25, 0, 40)) == (0, 3)
    assert limits(role, utc(2026, 10, 25, 1, 40)) == (0, 20)  # the second 02:40: closed


def test_a_one_off_window_at_a_date():
    launch = {"name": "launch", "at": "2099-06-01T12:00", "duration": "1h", "min_dynos": 3}
    role = role_of({**launch, "timezone": "Europe/Oslo"})
    assert limits(role, utc(2099, 6, 1, 10, 0, 30)) == (3, 20)  # 12:00 is 10:00 UTC; 60 s lead
    assert limits(role, utc(2099, 6, 1, 11, 0)) == (0, 20)


@pytest.mark.parametrize(
    "change, where, message",
    [
        ({"cron": "55 9 * *"}, "schedules.0.cron", "not a cron expression of five fields"),
        ({"cron": "61 9 * * *"}, "schedules.0.cron", "not a valid cron expression, or"),
        ({"cron": "0 0 30 2 *"}, "schedules.0.cron", "names no time that comes (cronsim: Bad day"),
        ({"timezone": "Europe/Olso"}, "schedules.0.timezone", "unknown time zone 'Europe/Olso'"),
        ({"min_dynos": 40}, "schedules.0.min_dynos", "floor (40) is above its budget (30)"),
        ({"max_dynos": 2, "min_dynos": None}, "schedules.0.max_dynos", "floor (5) is above"),
        ({"duration": "35 min"}, "schedules.0.duration", "'35 min' is not a duration"),
        ({"duration": 0}, "schedules.0.duration", "0 is not a duration"),
        ({"at": "2020-05-01T10:00", "cron": None}, "schedules.0.at", "is in the past"),
        ({"at": "tomorrow", "cron": None}, "schedules.0.at", "'tomorrow' is not a date"),
        ({"at": "2099-05-01T10:00"}, "schedules.0", "either cron (a window that repeats) or at"),
        ({"bogus": 1}, "schedules.0", "unknown key 'bogus'"),
    ],
)
def test_bad_schedules_are_config_errors_naming_file_and_path(change, where, message):
    entry = {k: v for k, v in {**SALE, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as raised:
        config.parse(document(entry, min_dynos=5), "s.yml", {})
    assert f"s.yml: apps.shop.roles.worker.{where}: " in str(raised.value)
    assert message in str(raised.value)


def test_schedules_inherit_from_the_most_specific_level_and_errors_name_where_written():
    doc = document()
    doc["defaults"] = {"schedules": [SALE]}
    assert config.parse(doc, "s.yml", {}).roles[0].schedules[0].name == "flash-sale"
    doc["apps"]["shop"]["roles"]["worker"]["schedules"] = []
    assert config.parse(doc, "s.yml", {}).roles[0].schedules == ()
    doc["apps"]["shop"]["roles"]["worker"] = {"queues": [QUEUE], "max_dynos": 8}
    doc["defaults"] = {"schedules": [{k: v for k, v in SALE.items() if k != "max_dynos"}]}
    with pytest.raises(ConfigError, match=r"s.yml: defaults.schedules.0.min_dynos: .*shop/worker"):
        config.parse(doc, "s.yml", {})
    twice = document(SALE, SALE)
    with pytest.raises(
        ConfigError, match="schedules.1.name: schedule 'flash-sale' is listed twice"
    ):
        config.parse(twice, "s.yml", {})


def test_check_config_shows_the_next_windows_and_refuses_a_bad_one(tmp_path, capsys):
    # In process: the command's exit code 2 for a ConfigError is dynoscaler.cli's
    # (tests/test_config.py runs it).
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document(SALE)))
    assert check_config.run(argparse.Namespace(file=str(path))) == 0
    lines = capsys.readouterr().out.splitlines()
    windows = [line for line in lines if line.startswith("  window ")]
    assert len(windows) == 3
    assert "flash-sale: " in windows[0] and " 09:55 CE" in windows[0]
    assert "for 35 min, min_dynos=10, max_dynos=30" in windows[0]
    path.write_text(yaml.safe_dump(document({**SALE, "timezone": "Mars/Olympus"})))
    with pytest.raises(ConfigError) as raised:
        check_config.run(argparse.Namespace(file=str(path)))
    assert str(raised.value).startswith(
        f"{path}: apps.shop.roles.worker.schedules.0.timezone: unknown time zone"
    )


def test_the_exporter_publishes_the_floor_and_budget_in_force_and_the_open_windows():
    now = datetime.now(UTC).replace(microsecond=0)
    opened = {"name": "launch", "at": now.isoformat(), "duration": "1h", "min_dynos": 4}
    later = {**opened, "name": "later", "at": now.replace(year=now.year + 1).isoformat()}
    exporter = build(config.parse(document(opened, later, min_dynos=1), "s.yml", {}))
    try:
        text = generate_latest(exporter.registry()).decode()
    finally:
        exporter.close()
    assert 'dynoscaler_policy_min_dynos{app="shop",role="worker"} 4.0' in text
    assert 'dynoscaler_policy_max_dynos{app="shop",role="worker"} 20.0' in text
    assert 'dynoscaler_schedule_active{app="shop",role="worker",schedule="launch"} 1.0' in text
    assert 'dynoscaler_schedule_active{app="shop",role="worker",schedule="later"} 0.0' in text


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_the_scaler_clamps_with_the_window_in_force(tmp_path, monkeypatch):
    clock = Clock()
    opens = datetime.fromtimestamp(clock.now + 3600, UTC).replace(microsecond=0)
    sale = {"name": "sale", "at": opens.isoformat(), "duration": "30m", "min_dynos": 6}
    document_ = document({**sale, "max_dynos": 25}, min_dynos=1)
    document_["scaler"] = {"store": f"sqlite:///{tmp_path / 's.sqlite3'}"}
    settings = config.parse(document_, "s.yml", {})
    fake = FakeHeroku(settings, HEROKU_KEY)
    server = FakeHerokuServer(fake, access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    store = Store(settings.scaler.store)
    scaler = Scaler(settings, store, Actuator(heroku.client), lambda event: None, clock)

    def deliver(desired: int) -> tuple[int | None, int | None]:
        request = Request(desired, clock.now)
        (decision,) = scaler.apply("shop", [RoleInput("worker", request, {})], "test")
        return decision.from_count, decision.to_count

    try:
        assert deliver(1)[1] in (None, 1)
        clock.now = opens.timestamp() - 30  # boot_time (60 s) before it opens
        assert deliver(1) == (1, 6)
        clock.now = opens.timestamp() + 600
        assert deliver(24) == (6, 16)  # max_step 10, toward 24 (above the role's own 20)
        assert deliver(24) == (16, 24)
        clock.now = opens.timestamp() + 1800 + 120  # closed: the role's own budget again
        assert deliver(24) == (24, 20)
    finally:
        server.stop()
        store.close()


def test_an_unquoted_date_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "autoscale.yml"
    text = yaml.safe_dump(document({"name": "launch", "at": "AT", "duration": "1h"}))
    path.write_text(text.replace("AT", "2099-12-04 09:55:00"))
    with pytest.raises(ConfigError, match=r"schedules.0.at: datetime.* is not text \(quote it"):
        config.load(path)
