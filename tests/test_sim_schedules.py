"""The simulator under schedules: the flash sale with and without its window."""

from __future__ import annotations

import numpy as np
import pytest

from dynoscaler.config import ConfigError
from dynoscaler.sim import scenario as scenarios
from dynoscaler.sim.lower_bound import LowerBound
from dynoscaler.sim.metrics import Misses
from dynoscaler.sim.report import ScenarioResult, evaluate, goals, schedule_goal, table
from dynoscaler.sim.sweep import Sweep, sweep_table
from tests.sim_support import run_result, scenario


def test_the_scheduled_flash_sale_keeps_every_deadline_the_reactive_run_misses():
    result = evaluate(scenarios.load("flash-sale-scheduled"), ("dynoscaler",))
    (run,), (reactive,) = result.runs, result.unscheduled
    assert run.late == 0 < reactive.late
    # issue 18's goal: at most 1.1x the reactive run's dyno-seconds. The window ends a
    # minute after the opening and the model holds what the orders need; the floor's
    # dynos are not held after the sale is served (docs/simulator.md, Schedules).
    assert run.dyno_seconds <= 1.1 * reactive.dyno_seconds
    trace = dict(zip(result.runs[0].trace.times, result.runs[0].trace.dynos, strict=True))
    # The window opens at t = 600 (09:55 Oslo); its floor of 18 is in force from 555.
    assert trace[550] == 2 and trace[595] == 18
    assert max(reactive.trace.dynos[: reactive.trace.times.index(600)]) == 2
    checks = dict(goals(result, "dynoscaler"))
    assert checks[f"with its schedules 0 late jobs (without them {reactive.late}) at <= "
                  "1.1x the dyno-seconds without them"]  # fmt: skip
    assert "| dynoscaler without its schedules | " in table(result)
    # the window ended at 660: the model, not the floor, held the dynos after it
    assert max(run.trace.dynos[run.trace.times.index(665) :]) > 2


def test_a_scheduled_nightly_import_keeps_its_deadline_at_the_reactive_cost():
    # A second shape: 30,000 short jobs at 02:00, a 1-minute window with a floor of 10.
    result = evaluate(scenarios.load("nightly-import-scheduled"), ("dynoscaler",))
    (run,), (reactive,) = result.runs, result.unscheduled
    assert run.late == 0 < reactive.late
    assert schedule_goal(run, reactive)


def late(count: int) -> Misses:
    return Misses(np.array([700.0]), np.array([count])) if count else Misses()


@pytest.mark.parametrize(
    "late_with, seconds_with, late_without, met",
    [(0, 1100, 5, True), (0, 1101, 5, False), (1, 1000, 5, False), (0, 900, 0, False)],
)
def test_the_schedule_goal(late_with, seconds_with, late_without, met):
    run = run_result("dynoscaler", 1.0, seconds_with, misses=late(late_with))
    reactive = run_result("dynoscaler", 0.9, 1000, misses=late(late_without))
    assert schedule_goal(run, reactive) is met


def test_scenario_schedules_are_checked_like_the_settings():
    window = {"name": "w", "cron": "0 10 * * *", "duration": 600, "min_dynos": 1}
    start = "2026-12-04T09:45:00+01:00"
    assert scenario(role={"schedules": [window]}, start=start).role.schedules[0].name == "w"
    with pytest.raises(ConfigError, match=r"role.schedules.0.cron: '0 10 \* \*' is not a cron"):
        scenario(role={"schedules": [{**window, "cron": "0 10 * *"}]})
    with pytest.raises(ConfigError, match="role.schedules.0.min_dynos: the window's floor"):
        scenario(role={"schedules": [{**window, "min_dynos": 3}]})
    with pytest.raises(ConfigError, match="start: '2026-12-04T09:45' is not a date and time"):
        scenario(start="2026-12-04T09:45")


def test_the_seeds_table_sums_up_the_schedules_seed_by_seed():
    case = scenario()
    results = tuple(
        ScenarioResult(
            case,
            LowerBound(1000.0, True, 0.0),
            (run_result("dynoscaler", 1.0, seconds, misses=late(with_)),),
            (run_result("dynoscaler", 0.9, 1000.0, misses=late(without)),),
        )
        for with_, seconds, without in ((0, 1050.0, 7), (1, 1020.0, 9))
    )
    text = sweep_table(Sweep(case, results, (1, 2)))
    assert (
        "dynoscaler with its schedules: late jobs per seed 0, 1; without them 7, 9; "
        "dyno-seconds 1.020–1.050× those without them; the schedules' goal (0 late where "
        "there were some, ≤ 1.1× the dyno-seconds) met on 1 of 2 seeds."
    ) in text
