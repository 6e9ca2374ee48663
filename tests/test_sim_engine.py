"""The simulation loop, the batched assignment, the dyno formation and the job trace."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dynoscaler.config import ConfigError
from dynoscaler.sim import scenario as scenarios
from dynoscaler.sim.engine import Simulation, assign, direction_changes, simulate
from dynoscaler.sim.formation import Formation
from dynoscaler.sim.policies.base import Context, Decision, Policy
from tests.sim_support import scenario


def _figures(result):
    return (
        result.jobs,
        result.within_share,
        result.p99,
        result.mean_wait,
        result.dyno_seconds,
        result.actions,
        result.direction_changes,
        result.first_miss,
        result.first_flag,
    )


@pytest.mark.parametrize("policy", ["dynoscaler", "guv", "hpa", "judoscale"])
def test_same_seed_gives_the_same_figures_and_another_seed_does_not(policy):
    case = scenarios.load("spike-within")
    first, again = simulate(case, policy), simulate(case, policy)
    assert _figures(first) == _figures(again)
    assert first.trace.dynos == again.trace.dynos
    assert simulate(case, policy, seed=99).jobs != first.jobs


def test_assign_runs_each_slot_back_to_back_and_stops_at_the_horizon():
    free = np.array([0.0, 0.5])
    arrivals = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    services = np.array([0.3, 0.2, 0.5, 0.1, 0.4])
    started, start, end, new_free = assign(free, arrivals, services, horizon=1.0)
    # slot 0 takes jobs 0, 2, 4; slot 1 takes jobs 1, 3
    assert start.tolist() == pytest.approx([0.1, 0.5, 0.4, 0.7, 0.9])
    assert end.tolist() == pytest.approx([0.4, 0.7, 0.9, 0.8, 1.3])
    assert started.tolist() == [True, True, True, True, True]
    assert new_free.tolist() == pytest.approx([1.3, 0.8])
    started, *_, new_free = assign(free, arrivals, services, horizon=0.75)
    assert started.tolist() == [True, True, True, True, False]
    assert new_free.tolist() == pytest.approx([0.9, 0.8])


def test_formation_bills_from_the_request_and_serves_after_boot():
    formation = Formation(concurrency=2, boot_time=45, initial=1)
    assert formation.scale_to(3, now=100.0) == 2
    assert formation.quantity == 3
    assert formation.serving_rows(144.0).size == 1
    assert formation.serving_rows(145.0).size == 3
    # scale down while the new ones still boot: the booting dynos go first
    assert formation.scale_to(2, now=120.0) == -1
    assert formation.close(now=200.0) == pytest.approx(200.0 + 100.0 + 20.0)


def test_a_stopped_dyno_finishes_its_jobs_and_is_billed_until_then():
    formation = Formation(concurrency=2, boot_time=0, initial=2)
    formation.free_at[1] = [130.0, 90.0]  # the newest dyno runs a job until 130
    formation.scale_to(1, now=100.0)
    assert formation.quantity == 1
    assert formation.billed_now() == 2
    formation.retire_drained(now=129.0)
    assert formation.billed_now() == 2
    formation.retire_drained(now=130.0)
    assert formation.billed_now() == 1
    assert formation.close(now=200.0) == pytest.approx(200.0 + 130.0)


def test_fixed_capacity_run_counts_every_job_and_bills_every_second():
    case = scenario(duration=1000, role={"min_dynos": 2, "max_dynos": 2})
    result = simulate(case, "fixed")
    assert result.actions == 0
    assert result.dyno_seconds >= 2 * 1000
    assert 900 < result.jobs < 1100
    assert result.within_share == pytest.approx(1.0)


def test_direction_changes_count_reversals_only():
    assert direction_changes([1, 2, -1, -1, 3, -2]) == 3
    assert direction_changes([1, 1, 1]) == 0
    assert direction_changes([]) == 0


def test_an_overloaded_role_misses_and_the_first_miss_is_when_a_job_passes_its_deadline():
    case = scenario(
        duration=400,
        role={"target_deadline": 30, "concurrency": 1},
        arrivals={"rate": 2.0},
        service={"type": "lognormal", "mean": 1.0, "cv": 0.1},
    )
    result = simulate(case, "fixed")
    assert result.within_share < 0.2
    assert 30 < result.first_miss < 60


def test_bad_scenarios_name_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="no scenario 'nope'"):
        scenarios.load("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("duration: 10\nrole: {}\narrivals: {type: wave}\nservice: {type: normal}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: arrivals: type 'wave' is not one of"):
        scenarios.load(str(bad))
    with pytest.raises(ConfigError, match="service \\(normal\\): mean must be a number above 0"):
        scenario(service={"type": "normal", "mean": -1, "cv": 0.5})
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        simulate(scenario(), "nope")
    with pytest.raises(ConfigError, match=r"role.max_dynos: 'x' is not of type 'integer'"):
        scenario(role={"max_dynos": "x"})
    with pytest.raises(ConfigError, match=r"arrivals \(constant\): rate must be a number"):
        scenario(arrivals={"rate": "fast"})
    with pytest.raises(ConfigError, match=r"policy guv: unknown parameter\(s\) \['speed'\]"):
        simulate(scenario(parameters={"guv": {"speed": 2}}), "guv")


def test_every_shipped_scenario_loads():
    names = scenarios.available()
    assert {"sine-wave", "spike-within", "spike-beyond", "flash-sale"} <= set(names)
    assert {"call-centre", "load-test", "quiet-night", "day-1000"} <= set(names)
    for name in names:
        assert scenarios.load(name).name == name


def test_the_argument_shapes_in_the_docs_load():
    """docs/simulator.md's findings 18-19 run these by path: each must still parse."""
    shapes = sorted((Path(__file__).parents[1] / "docs/benchmarks/simulator/shapes").glob("*.yaml"))
    assert len(shapes) == 7
    for path in shapes:
        loaded = scenarios.load(str(path))
        assert loaded.name == path.stem and loaded.in_bounds


def test_policies_decide_evaluation_lag_seconds_after_a_scrape():
    case = scenario(duration=30, observation={"scrape_interval": 10, "evaluation_lag": 3})
    seen = []

    class Recorder(Policy):
        name = "recorder"
        defaults = {"interval": 10.0}

        def decide(self, view, now, current):
            seen.append((now, view.age(now)))
            return Decision(current)

    Simulation(case, Recorder(Context(case.role, case.service, scrape_interval=10))).run()
    assert seen == [(3.0, 3.0), (13.0, 3.0), (23.0, 3.0)]


def test_evaluation_lag_defaults_to_half_the_scrape_interval_and_stays_below_it():
    assert scenario().observation == scenarios.Observation(5.0, 2.0)
    assert scenario(observation={"scrape_interval": 15}).observation.evaluation_lag == 7.0
    with pytest.raises(ConfigError, match="evaluation_lag must be a multiple of tick below"):
        scenario(observation={"scrape_interval": 5, "evaluation_lag": 5})


class _Flagging(Policy):
    """Flags unmeetable from `since` for `length` seconds, every 5 s."""

    name = "flagging"
    defaults = {"interval": 5.0, "since": 100.0, "length": 0.0}

    def decide(self, view, now, current):
        since = self.params["since"]
        return Decision(current, unmeetable=since <= now < since + self.params["length"])


@pytest.mark.parametrize("length, pages", [(25.0, ()), (60.0, ()), (120.0, ((192.0, 222.0),))])
def test_a_flag_pages_only_when_it_held_for_the_whole_for(length, pages):
    """Evaluations at 2, 7, ... s; a flag from 102 s for `length` s, `for` 60 s, group_wait
    30 s: held 60 s at every evaluation it fires at 162 s and pages at 192 s."""
    case = scenario(duration=400)
    context = Context(case.role, case.service, scrape_interval=5)
    params = {"since": 100.0, "length": length, "flag_for": 60.0, "flag_delay": 30.0}
    result = Simulation(case, _Flagging(context, **params)).run()
    assert result.pages == pages
    assert result.first_flag == (pages[0][0] if pages else math.inf)
