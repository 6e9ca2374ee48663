"""The seed sweep: one scenario on several job traces, summed up per policy."""

from __future__ import annotations

import numpy
import pytest

from dynoscaler.cli import main
from dynoscaler.sim.lower_bound import LowerBound
from dynoscaler.sim.metrics import RunResult
from dynoscaler.sim.report import ScenarioResult, evaluate
from dynoscaler.sim.sweep import Sweep, in_goal, sweep, sweep_table, sweeps_pages_table
from tests.sim_support import run_result, scenario

SPIKE = {
    "duration": 900,
    "role": {"min_dynos": 1, "max_dynos": 6, "target_deadline": 120, "boot_time": 20},
    "arrivals": {"type": "spike", "base": 0.5, "peak": 3.0, "start": 200, "duration": 120},
    "service": {"type": "lognormal", "mean": 2.0, "cv": 0.5},
    "policies": ["dynoscaler", "hirefire"],
}


def _figures(run: RunResult) -> tuple:
    return (run.policy, run.jobs, run.within_share, run.dyno_seconds, run.actions, run.p99)


def test_each_seed_is_that_seeds_own_evaluation_in_one_process_or_several():
    case = scenario(**SPIKE)
    serial = sweep(case, (1, 2, 3), workers=1)
    forked = sweep(case, (1, 2, 3), workers=2)
    assert serial.seeds == forked.seeds == (1, 2, 3)
    for seed, one, other in zip(serial.seeds, serial.results, forked.results, strict=True):
        alone = evaluate(case, None, seed)
        expected = [_figures(run) for run in alone.runs]
        assert [_figures(run) for run in one.runs] == expected
        assert [_figures(run) for run in other.runs] == expected
        assert one.bound == other.bound == alone.bound
    jobs = {result.runs[0].jobs for result in serial.results}
    assert len(jobs) == 3  # three different traces


def test_table_counts_the_seeds_in_goal_and_names_the_models_misses():
    case = scenario(cycles=2, policies=["dynoscaler", "hirefire"])
    bound = LowerBound(1000.0, True, 0.0)
    per_seed = [
        (run_result("dynoscaler", 1.0, 1200.0), run_result("hirefire", 1.0, 1100.0)),
        (
            run_result("dynoscaler", 0.995, 1300.0, direction_changes=6),
            run_result("hirefire", 0.98, 1400.0),
        ),
    ]
    results = tuple(ScenarioResult(case, bound, runs) for runs in per_seed)
    text = sweep_table(Sweep(case, results, (4, 5)))
    assert "### test, seeds 4-5" in text
    assert "| dynoscaler | 99.75% / 99.50% | 1.25 / 1.20–1.30 | 3.0 | 0 / 0 | 1 of 2 |" in text
    assert "| hirefire | 99.00% / 98.00% | 1.25 / 1.10–1.40 | 1.0 | 0 / 0 | 1 of 2 |" in text
    assert (
        "Goals for dynoscaler met on 1 of 2 seeds; not on seed 5 (99.50% within, 1.300×: "
        "<= 1.25x the lower bound; <= 2 direction changes per cycle)."
    ) in text
    assert "A baseline meets as many deadlines for fewer dyno-seconds on 1 seed." in text


def test_out_of_bounds_table_gives_the_worst_flag_lead():
    case = scenario(in_bounds=False, policies=["dynoscaler", "guv"])
    bound = LowerBound(0.0, False, 0.0)
    per_seed = [
        (
            run_result("dynoscaler", 0.4, 900.0, first_flag=100.0, first_miss=400.0),
            run_result("guv", 0.3, 9.0),
        ),
        (
            run_result("dynoscaler", 0.4, 900.0, first_flag=50.0, first_miss=250.0),
            run_result("guv", 0.3, 9.0),
        ),
    ]
    results = tuple(ScenarioResult(case, bound, runs) for runs in per_seed)
    text = sweep_table(Sweep(case, results, (1, 2)))
    assert "| dynoscaler | 40.00% / 40.00% | — | 200 | 0 / 0 | 2 of 2 |" in text
    assert "| guv | 30.00% / 30.00% | — | none on 2 seeds | 0 / 0 | 0 of 2 |" in text
    assert "Goals for dynoscaler met on 2 of 2 seeds." in text


def test_a_false_page_in_bounds_fails_the_seed_and_shows_in_the_summaries():
    case = scenario(policies=["dynoscaler", "hirefire"])  # deadline 60 s
    bound = LowerBound(1000.0, True, 0.0)
    paged = run_result("dynoscaler", 1.0, 1100.0, first_flag=100.0, pages=((100.0, 130.0),))
    per_seed = [
        (run_result("dynoscaler", 1.0, 1100.0), run_result("hirefire", 1.0, 1200.0)),
        (paged, run_result("hirefire", 1.0, 1200.0)),
    ]
    results = Sweep(case, tuple(ScenarioResult(case, bound, r) for r in per_seed), (1, 2))
    text = sweep_table(results)
    assert "seeds ≥ 99% within, ≤ 1.25× the bound, no false page |" in text
    assert "| dynoscaler | 100.00% / 100.00% | 1.10 / 1.10–1.10 | 1 / 1 | 1 of 2 |" in text
    assert "not on seed 2 (100.00% within, 1.100×: no false page)" in text
    summary = sweeps_pages_table([results])
    assert "| test | yes | dynoscaler | 1 | 1 | 0.0% | 0 | 0 | — | — |" in summary
    assert "Summed over seeds 1-2; the flag lead is the worst seed's." in summary


def test_command_writes_seeds_md(tmp_path, capsys):
    path = tmp_path / "spike.yaml"
    path.write_text(
        "duration: 600\n"
        "role: {min_dynos: 1, max_dynos: 4, target_deadline: 120, boot_time: 20}\n"
        "arrivals: {type: constant, rate: 0.5}\n"
        "service: {type: exponential, mean: 2.0}\n"
        "policies: [dynoscaler, hirefire]\n"
    )
    out = tmp_path / "report"
    args = ["simulate", "--scenario", str(path), "--seeds", "2-3", "--report", str(out)]
    assert main(args) == 0
    assert "### spike, seeds 2-3" in capsys.readouterr().out
    written = (out / "seeds.md").read_text()
    assert f"`dynoscaler simulate --scenario {path} --seeds 2-3 --report {out}`" in written
    assert "| dynoscaler | " in written and "| hirefire | " in written
    assert "### DeadlineUnmeetable: pages against misses" in written


@pytest.mark.parametrize("text", ["x-2", "5-3", "-1"])
def test_a_bad_seed_range_is_a_usage_error(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--seeds", text])
    assert exit_info.value.code == 2
    assert "argument --seeds: " in capsys.readouterr().err


def test_without_a_lower_bound_the_seeds_are_judged_on_the_other_goals():
    case = scenario(policies=["dynoscaler"])
    per_seed = [(run_result("dynoscaler", 1.0, 1100.0),), (run_result("dynoscaler", 0.98, 1100.0),)]
    results = Sweep(case, tuple(ScenarioResult(case, None, r) for r in per_seed), (1, 2))
    text = sweep_table(results)
    assert "seeds ≥ 99% within, no false page (no lower bound: × bound not judged) |" in text
    assert "| dynoscaler | 99.00% / 98.00% | — | 0 / 0 | 1 of 2 |" in text
    assert (
        "Goals for dynoscaler met on 1 of 2 seeds; not on seed 2 (98.00% within: "
        ">= 99% within the deadline)."
    ) in text


def test_a_ratio_over_the_goal_fails_the_seed_whatever_its_number_type():
    # a simulated run's dyno-seconds are a numpy float: `ratio <= 1.25` is then a
    # numpy bool, which `is not False` took for met (seeds.md at 7a27ee9: the
    # slow-boot step "20 of 20" at 1.34-1.41x)
    case = scenario(policies=["dynoscaler"])
    run = run_result("dynoscaler", 1.0, numpy.float64(1300.0))
    result = ScenarioResult(case, LowerBound(1000.0, True, 0.0), (run,))
    assert not in_goal(result, run)
