"""Dyno sizes (issue 18, item 2): settings, the cheapest (size, count), the fake Heroku's
422s, and the scaler's size change through heroku3 to a fake Heroku over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from scaler_support import HEROKU_KEY, alert, payload

from dynoscaler import check_config, config, heroku
from dynoscaler.config import ConfigError
from dynoscaler.prices import Prices
from dynoscaler.sizing import choose_size, units_needed
from exporter.collectors.policy import policy_samples
from scaler import alerts, reconcile
from scaler.actuator import Actuator
from scaler.fake_heroku import FakeHeroku, FakeHerokuServer
from scaler.guardrails import Request
from scaler.service import RoleInput, Scaler
from scaler.store import Decision, Store

pytestmark = pytest.mark.timeout(60)

# standard-1x runs 2 jobs at once; a load needing 2.5 standard-1x dynos is 5 slots.
SIZES = [
    {"size": "standard-1x", "concurrency": 2},
    {"size": "standard-2x", "concurrency": 4},
    {"size": "performance-m", "concurrency": 8, "speed": 1.5},
    {"size": "performance-l", "concurrency": 16, "speed": 1.5},
]


def settings_document(tmp_path: Path, **role: Any) -> dict[str, Any]:
    unique = {
        "min_dynos": 1,
        "max_dynos": 1,
        "sizes": SIZES,
        "queues": [{"name": "unique", "backend": "rq", "url": "redis://127.0.0.1/13"}],
        **role,
    }
    urgent = {"queues": [{"name": "urgent", "backend": "rq", "url": "redis://127.0.0.1/13"}]}
    return {
        "apps": {"shop": {"roles": {"unique": unique, "urgent": urgent}}},
        "scaler": {"store": f"sqlite:///{tmp_path / 's.sqlite3'}", "stale_after": 60},
    }


def load(tmp_path: Path, document: dict[str, Any]) -> config.Config:
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return config.load(path)


def test_the_cheapest_size_that_covers_the_need(tmp_path) -> None:
    role = load(tmp_path, settings_document(tmp_path)).roles[0]
    prices = Prices()
    at_1x = role.size("standard-1x")
    # 2.5 standard-1x dynos of work with one dyno allowed: performance-m is the cheapest
    # size whose one dyno covers it (standard-2x has 4 slots, performance-l costs twice).
    choice = choose_size(units_needed(2.5 * at_1x.concurrency, at_1x), role, prices)
    assert (choice.size, choice.count, choice.meets) == ("performance-m", 1, True)
    assert choice.hourly == pytest.approx(prices.hourly("performance-m"))
    # Slots measured on a faster size are worth more slots of speed 1.
    at_m = role.size("performance-m")
    assert units_needed(8, at_m) == 12  # what one performance-m dyno has: it stays
    assert choose_size(12, role, prices).size == "performance-m"
    assert choose_size(units_needed(8.5, at_m), role, prices).size == "performance-l"
    # A small need goes back to the cheapest size; no need: min_dynos of the cheapest.
    assert choose_size(1.5, role, prices).size == "standard-1x"
    assert (choose_size(0, role, prices).size, choose_size(0, role, prices).count) == (
        "standard-1x",
        1,
    )
    # Beyond every size: the most capacity there is, flagged as short.
    short = choose_size(100, role, prices)
    assert (short.size, short.count, short.meets) == ("performance-l", 1, False)


def test_several_cheaper_dynos_beat_one_big_one(tmp_path) -> None:
    role = load(tmp_path, settings_document(tmp_path, max_dynos=3)).roles[0]
    choice = choose_size(7, role, Prices())
    # standard-1x would need 4 (> 3); 2 x standard-2x ($0.139/h) < 1 x performance-m.
    assert (choice.size, choice.count) == ("standard-2x", 2)
    # A price override in the settings changes the choice.
    cheap_m = Prices({"performance-m": 0.05})
    assert choose_size(7, role, cheap_m).size == "performance-m"


def test_a_size_goes_up_on_the_need_now_and_down_on_the_windows_with_headroom(
    tmp_path,
) -> None:
    role = load(tmp_path, settings_document(tmp_path)).roles[0]
    standard_2x, performance_m = role.sizes[1], role.sizes[2]
    prices = Prices()
    # At standard-2x (4 units): up at once when the need now exceeds it, whatever the
    # window held (a peak the size cooldown held back that has passed asks nothing).
    assert choose_size(4.2, role, prices, (standard_2x, 1), recent=4.2).size == "performance-m"
    assert choose_size(3.0, role, prices, (standard_2x, 1), recent=4.5).size == "standard-2x"
    # At performance-m (12 units): down only to a size the window's largest need fills
    # to at most 60%: 2.4 units for standard-2x, 1.2 for standard-1x.
    at_m = (performance_m, 1)
    assert choose_size(1.0, role, prices, at_m, recent=2.5).size == "performance-m"
    assert choose_size(1.0, role, prices, at_m, recent=2.4).size == "standard-2x"
    assert choose_size(1.0, role, prices, at_m, recent=1.2).size == "standard-1x"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sizes": [*SIZES, {"size": "Standard-1X", "concurrency": 3}]}, "listed twice"),
        ({"sizes": [{"size": "huge-9x", "concurrency": 3}]}, "no price for dyno type 'huge-9x'"),
        ({"concurrency": 4}, "concurrency is set per size under sizes:"),
        ({"sizes": [{"size": "standard-1x", "concurrency": 0}]}, "sizes.0.concurrency"),
        ({"sizes": []}, "sizes"),
        ({"scale_down_when_busy": "later"}, "is not one of: allow, wait, wait_long"),
        ({"size_cooldown": -1}, "size_cooldown"),
    ],
)
def test_bad_size_settings_are_named(tmp_path, change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, settings_document(tmp_path, **change))


def test_check_config_shows_sizes_prices_and_busy_mode(tmp_path, capsys) -> None:
    document = settings_document(tmp_path, scale_down_when_busy="wait_long")
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert check_config.run(type("Args", (), {"file": str(path)})()) == 0
    out = capsys.readouterr().out
    assert "scale_down_when_busy=wait_long" in out
    assert "size performance-m: concurrency 8, speed 1.5, $0.3472/dyno-hour" in out
    assert "size_cooldown=165" in out  # boot_time 45 + 60 + the deadline 60 by default


@pytest.fixture
def fake_heroku(tmp_path, monkeypatch) -> Iterator[tuple[config.Config, FakeHeroku, str]]:
    settings = load(tmp_path, settings_document(tmp_path))
    fake = FakeHeroku(settings, HEROKU_KEY)
    server = FakeHerokuServer(fake, access_log=False).start()
    monkeypatch.setenv("HEROKU_API_URL", server.url)
    monkeypatch.setenv("HEROKU_API_KEY", HEROKU_KEY)
    try:
        yield settings, fake, server.url
    finally:
        server.stop()


def patch(url: str, updates: list[dict[str, Any]]) -> requests.Response:
    return requests.patch(
        f"{url}/apps/shop/formation",
        json={"updates": updates},
        headers={"Accept": "application/vnd.heroku+json; version=3"},
        auth=("", HEROKU_KEY),
        timeout=5,
    )


def test_fake_heroku_refuses_sizes_like_heroku(fake_heroku) -> None:
    _, fake, url = fake_heroku
    assert fake.state()["apps"][0]["formation"][0]["size"] == "standard-1X"  # the first listed
    for size, words in (
        ("standard-3x", "Invalid size"),
        ("private-m", "only be used in a Private or Shield Space"),
        ("eco", "Cannot mix Eco or Basic dynos"),  # urgent runs standard-1X
    ):
        answer = patch(url, [{"type": "unique", "quantity": 1, "size": size}])
        assert answer.status_code == 422, size
        assert answer.json()["id"] == "invalid_params"
        assert words in answer.json()["message"]
    answer = patch(url, [{"type": "unique", "quantity": 1, "size": "Performance-M"}])
    assert answer.status_code == 200
    assert answer.json()[0]["size"] == "performance-M"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_the_scaler_changes_size_and_count_in_one_patch(fake_heroku) -> None:
    settings, fake, _ = fake_heroku
    clock = Clock()
    scaler = Scaler(settings, Store(settings.scaler.store), Actuator(heroku.client), print, clock)

    def deliver(slots: float, observed_at: float | None) -> Any:
        request = Request(None, observed_at, slots=slots)
        (decision,) = scaler.apply("shop", [RoleInput("unique", request, {})], "test")
        return decision

    # 5 slots at standard-1x (2.5 dynos' worth), one dyno allowed: performance-m.
    first = deliver(5.0, clock.now)
    assert first.outcome == "success", first.reason
    assert first.reason.startswith("resize 1 x standard-1X -> 1 x performance-m")
    (sent,) = fake.request_log()
    assert sent["body"] == {"updates": [{"type": "unique", "quantity": 1, "size": "performance-m"}]}
    assert first.answer["sizes"] == {"unique": "performance-M"}
    # Within the size cooldown a smaller need keeps the size, and says why.
    clock.now += 30
    held = deliver(1.0, clock.now)
    assert held.outcome == "none"
    assert "no size change: size cooldown" in held.reason
    assert held.inputs["units"] == 1.5  # recorded: the next decisions' window reads it
    # After it, on stale data, no size change either.
    clock.now += settings.roles[0].size_cooldown
    stale = deliver(1.0, clock.now - 120)
    assert "no size change: input data stale" in stale.reason
    # Once the need stayed low for size_cooldown (the needs of the change's own boot and
    # deadline left out): down to the cheapest size the need of 1.5 units fills to at
    # most 60% (standard-2x's 4; standard-1x's 2 would be filled to 75%).
    clock.now += settings.roles[0].size_cooldown
    back = deliver(1.0, clock.now)
    assert back.outcome == "success", back.reason
    assert fake.state()["apps"][0]["formation"][0]["size"] == "standard-2X"
    assert len(fake.request_log()) == 2


def test_the_last_size_change_is_found_behind_many_newer_decisions(fake_heroku) -> None:
    settings, _, _ = fake_heroku
    clock = Clock()
    store = Store(settings.scaler.store)
    scaler = Scaler(settings, store, Actuator(heroku.client), print, clock)
    resize = RoleInput("unique", Request(None, clock.now, slots=5.0), {})
    assert scaler.apply("shop", [resize], "test")[0].outcome == "success"
    # 300 decisions that change nothing within the next 30 s (other inputs, say).
    quiet = [
        Decision(clock.now + k * 0.1, "test", "shop", "unique", {}, {}, 1, None, "no change")
        for k in range(300)
    ]
    store.record(quiet)
    clock.now += 40
    low = RoleInput("unique", Request(None, clock.now, slots=1.0), {})
    (held,) = scaler.apply("shop", [low], "test")
    assert "no size change: size cooldown" in held.reason


def test_the_retry_at_herokus_dyno_limit_keeps_the_size(fake_heroku) -> None:
    settings, fake, _ = fake_heroku
    fake.set_limit(2, "shop")
    clock = Clock()
    scaler = Scaler(settings, Store(settings.scaler.store), Actuator(heroku.client), print, clock)
    inputs = [
        RoleInput("unique", Request(None, clock.now, slots=5.0), {}),
        RoleInput("urgent", Request(4, clock.now), {}),
    ]
    decisions = {d.role: d for d in scaler.apply("shop", inputs, "test")}
    first, second = (r["body"]["updates"] for r in fake.request_log())
    # urgent's 4 is above the limit: the batch is sent again with urgent at 2, and the
    # size unique was to change to goes with it.
    assert {"type": "unique", "quantity": 1, "size": "performance-m"} in first
    assert {"type": "unique", "quantity": 1, "size": "performance-m"} in second
    assert {"type": "urgent", "quantity": 2} in second
    formation = {f["type"]: f for f in fake.state()["apps"][0]["formation"]}
    assert formation["unique"]["size"] == "performance-M"
    assert formation["urgent"]["quantity"] == 2
    assert decisions["unique"].to_count == 1


def test_resize_alerts_are_parsed_and_bad_ones_refused(tmp_path) -> None:
    settings = load(tmp_path, settings_document(tmp_path))
    resize = alert("shop", "unique", "", name="ResizeRole", direction="size")
    resize["annotations"] = {"required_slots": "4.500"}
    parsed = alerts.parse(payload(resize), settings, time.time())
    (only,) = parsed.scale["shop"]
    assert (only.role, only.request.slots, only.request.desired) == ("unique", 4.5, None)
    resize["annotations"] = {"required_slots": "1e3"}
    with pytest.raises(alerts.PayloadError, match="required_slots of shop/unique is '1e3'"):
        alerts.parse(payload(resize), settings, time.time())


def test_the_exporter_marks_sized_roles(tmp_path) -> None:
    settings = load(tmp_path, settings_document(tmp_path))
    sized = [
        (s.labels, s.value)
        for s in policy_samples(settings, time.time())
        if s.metric == "dynoscaler_policy_sizes"
    ]
    assert sized == [(("shop", "unique"), 4)]  # urgent lists no sizes: ScaleRole as before


def test_reconcile_asks_a_sized_role_by_its_slots(tmp_path) -> None:
    settings = load(tmp_path, settings_document(tmp_path))
    unique, urgent = {"app": "shop", "role": "unique"}, {"app": "shop", "role": "urgent"}

    def vector(value: str) -> list[dict[str, Any]]:
        return [{"metric": m, "value": [0, value]} for m in (unique, urgent)]

    results = {
        "desired": vector("1"),
        "desired_at": vector("100"),
        "dynos_at": vector("100"),
        "down": [],
        "slots": vector("4.5"),
    }
    inputs = {i.role: i.request for i in reconcile.role_inputs(settings, results)["shop"]}
    assert (inputs["unique"].desired, inputs["unique"].slots) == (None, 4.5)
    assert (inputs["urgent"].desired, inputs["urgent"].slots) == (1, None)
