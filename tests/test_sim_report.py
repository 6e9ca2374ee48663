"""The goals the report judges, on hand-made results."""

from __future__ import annotations

from dynoscaler.sim.lower_bound import LowerBound
from dynoscaler.sim.report import ScenarioResult, goals, matched_for_less, table
from tests.sim_support import run_result, scenario


def test_in_bounds_goals():
    case = scenario(cycles=2)
    runs = (
        run_result("dynoscaler", 0.995, 1200.0),
        run_result("hirefire", 0.995, 1100.0),
        run_result("guv", 0.999, 1150.0),
    )
    result = ScenarioResult(case, LowerBound(1000.0, True, 0.0), runs)
    assert goals(result, "dynoscaler") == [
        (">= 99% within the deadline", True),
        ("<= 1.25x the lower bound", True),
        ("no baseline better on both (guv is)", False),
        ("<= 2 direction changes per cycle", True),
    ]
    assert matched_for_less(result, "dynoscaler") == ["hirefire"]
    assert (
        "Where dynoscaler does not win: hirefire meets as many deadlines for fewer dyno-seconds."
        in table(result)
    )
    assert "| dynoscaler | 99.50% | 10 | 1,200 | 1.20 | 4 | 2 (1.0/cycle) | — |" in table(result)
    assert "Every policy sees a sample every 5 s, 2 s old when it decides." in table(result)


def test_out_of_bounds_goal_is_the_flag_before_the_first_miss():
    case = scenario(in_bounds=False)
    early = run_result("dynoscaler", 0.5, 900.0, first_flag=100.0, first_miss=400.0)
    late = run_result("dynoscaler", 0.5, 900.0, first_flag=500.0, first_miss=400.0)
    never = run_result("dynoscaler", 0.5, 900.0, first_miss=400.0)
    for run, met in ((early, True), (late, False), (never, False)):
        result = ScenarioResult(case, LowerBound(0.0, False, 0.0), (run,))
        assert goals(result, "dynoscaler") == [("unmeetable flagged before the first miss", met)]
    assert "| 300 |" in table(ScenarioResult(case, LowerBound(0.0, False, 0.0), (early,)))
