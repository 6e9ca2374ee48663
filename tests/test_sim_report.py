"""The goals the report judges, on hand-made results."""

from __future__ import annotations

import numpy as np

from dynoscaler.sim.lower_bound import LowerBound
from dynoscaler.sim.metrics import Misses
from dynoscaler.sim.report import ScenarioResult, goals, matched_for_less, table, write_report
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
        ("no false page", True),
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


def test_out_of_bounds_goal_holds_the_lead_where_the_scenario_sets_one():
    case = scenario(in_bounds=False, flag_lead_goal=300)
    for flag, met in ((100.0, True), (150.0, False)):
        run = run_result("dynoscaler", 0.5, 900.0, first_flag=flag, first_miss=400.0)
        result = ScenarioResult(case, LowerBound(0.0, False, 0.0), (run,))
        assert goals(result, "dynoscaler") == [
            ("unmeetable flagged before the first miss", True),
            ("flag lead >= 300 s", met),
        ]


def _paged(**extra):
    """A run that paged from 100 s to 200 s, with the given late jobs."""
    return run_result("dynoscaler", 1.0, 1200.0, first_flag=100.0, pages=((100.0, 200.0),), **extra)


def test_an_in_bounds_page_with_no_miss_following_is_a_false_page():
    case = scenario()  # deadline 60 s
    bound = LowerBound(1000.0, True, 0.0)
    quiet = ScenarioResult(case, bound, (_paged(),))
    assert ("no false page", False) in goals(quiet, "dynoscaler")
    late = Misses(np.array([250.0]), np.array([3]))  # within 200 + 60 s of the page
    followed = ScenarioResult(case, bound, (_paged(misses=late, first_miss=250.5),))
    assert ("no false page", True) in goals(followed, "dynoscaler")
    too_late = Misses(np.array([261.0]), np.array([3]))
    assert ("no false page", False) in goals(
        ScenarioResult(case, bound, (_paged(misses=too_late),)), "dynoscaler"
    )


def test_the_report_ends_with_the_pages_table(tmp_path):
    case = scenario(policies=["dynoscaler", "hirefire"])
    runs = (_paged(), run_result("hirefire", 1.0, 1100.0))
    path = write_report([ScenarioResult(case, LowerBound(1000.0, True, 0.0), runs)], tmp_path, "x")
    text = path.read_text()
    assert "### DeadlineUnmeetable: pages against misses" in text
    assert "| test | yes | dynoscaler | 1 | 1 | 0.0% | 0 | 0 | — | — |" in text
    assert "| hirefire |" not in text.split("pages against misses")[1]  # it never pages


def test_without_a_lower_bound_the_ratio_goal_is_not_judged():
    case = scenario()
    result = ScenarioResult(case, None, (run_result("dynoscaler", 0.995, 1200.0),))
    assert result.ratio(result.run_of("dynoscaler")) is None
    assert goals(result, "dynoscaler")[:2] == [
        (">= 99% within the deadline", True),
        ("<= 1.25x the lower bound", None),
    ]
    text = table(result)
    assert "Lower bound: not computed for a role with sizes" in text
    assert "<= 1.25x the lower bound: not judged (no lower bound);" in text
    assert "| dynoscaler | 99.50% | 10 | 1,200 | — |" in text
