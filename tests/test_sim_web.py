"""The web simulator: random routing to dynos of c slots, dynoscaler's model against
Heroku's own autoscaling and the lower bound."""

from __future__ import annotations

import pytest

from dynoscaler.config import ConfigError
from dynoscaler.model import web_utilisation
from dynoscaler.sim import web

RAMP = {
    "name": "ramp",
    "duration": 600,
    "seed": 3,
    "initial_dynos": 2,
    "role": {
        "min_dynos": 2,
        "max_dynos": 40,
        "target_deadline": 2,
        "target_queue_time": 0.1,
        "boot_time": 30,
        "concurrency": 4,
    },
    "arrivals": {"type": "piecewise", "points": [[0, 12], [120, 12], [420, 90], [600, 90]]},
    "service": {"type": "lognormal", "mean": 0.1, "cv": 1.0},
    "heroku_p95_target": 0.37,
}


def test_dynoscaler_keeps_the_p95_of_queue_time_within_target_near_the_lower_bound():
    scenario = web.parse(RAMP, "ramp")
    bound = web.lower_bound_dyno_seconds(scenario)
    ours, heroku = web.simulate(scenario, "dynoscaler"), web.simulate(scenario, "heroku")
    assert ours.minutes_within >= 0.9
    assert ours.dyno_seconds <= 1.5 * bound
    assert heroku.minutes_within < ours.minutes_within  # one dyno a minute trails the ramp
    assert heroku.changes <= scenario.duration // 60  # at most one change a minute
    assert ours.queue_p95 < heroku.queue_p95


def test_the_lower_bound_is_the_erlang_c_count_at_a_steady_rate():
    steady = {**RAMP, "arrivals": {"type": "constant", "rate": 50}, "duration": 120}
    scenario = web.parse(steady, "steady")
    per_minute = web.lower_bound_dyno_seconds(scenario) / 2 / 60
    # a = 5 busy slots, 4 per dyno: the model's utilisation (Sakasegawa, more dynos)
    # asks for at least as many dynos as the exact Erlang C count
    rho = web_utilisation(scenario.role, 0.1)
    assert per_minute <= -(-5 // (rho * 4))
    share = web.erlang_c_wait_share(4, 5 / per_minute, 0.1, 0.1)
    assert share <= 0.05 < web.erlang_c_wait_share(4, 5 / (per_minute - 1), 0.1, 0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": {**RAMP["role"], "min_dynos": 0}}, "needs 1 <= min_dynos"),
        ({"duration": 90}, "duration: 90 is not a multiple of 60"),
        ({"service": {"type": "uniform"}}, "not one of"),
        ({"role": {**RAMP["role"], "concurrency": "four"}}, "role.concurrency: 'four' is not"),
        ({"heroku_p95_target": None}, "heroku_p95_target: None is not of type"),
        ({"arrivals": None}, "arrivals: None is not of type 'object'"),
    ],
)
def test_bad_scenarios_say_what_is_wrong(change, message):
    with pytest.raises(ConfigError, match=message):
        web.parse({**RAMP, **change}, "bad")


def test_the_shipped_scenarios_load():
    assert {"call-centre-2x", "call-centre-performance"} <= set(web.available())
    for name in web.available():
        assert web.load(name).duration >= 3600
    with pytest.raises(ConfigError, match="no web scenario"):
        web.load("nowhere")
