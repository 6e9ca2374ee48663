"""`dynoscaler bench sizes` in small: a size-only role (max 1 dyno) on a load needing
2.5 standard-1x dynos keeps its deadline at the cheapest size that can (issue 18)."""

from __future__ import annotations

import argparse
import dataclasses

from dynoscaler.prices import Prices
from dynoscaler.sim import sizes
from dynoscaler.sim.engine import simulate
from dynoscaler.sim.scenario import load


def test_the_chosen_size_is_the_cheapest_that_keeps_the_deadline(capsys) -> None:
    choice = sizes.chosen(2.5)
    assert (choice.size, choice.count, choice.meets) == ("performance-m", 1, True)
    prices = Prices()
    runs = {o.size: sizes.run_size(o, 2.5, 1800, 3, prices) for o in sizes.ROLE.sizes[:3]}
    assert runs["performance-m"].within_share >= 0.99
    # Every cheaper size misses: standard-2x's 4 slots for 5 slots of load.
    assert runs["standard-2x"].within_share < 0.5
    assert runs["standard-1x"].within_share < 0.5
    assert runs["standard-2x"].hourly < runs["performance-m"].hourly
    parser = argparse.ArgumentParser()
    sizes.add_arguments(parser)
    assert sizes.run(parser.parse_args(["--duration", "1800", "--seed", "3"])) == 0
    assert "performance-m (the choice)" in capsys.readouterr().out


def test_a_smaller_load_goes_to_a_cheaper_size() -> None:
    assert sizes.chosen(1.5).size == "standard-2x"
    assert sizes.chosen(7).size == "performance-l"
    short = sizes.chosen(20)
    assert (short.size, short.meets) == ("performance-l", False)


def test_the_size_only_scenario_keeps_its_deadline_in_the_closed_loop() -> None:
    scenario = dataclasses.replace(load("size-only"), duration=7200)
    result = simulate(scenario, "dynoscaler")
    # The load climbs from 0.8x to 2.5x a standard-1x dyno in the second hour.
    assert result.within_share >= 0.99
    sizes_set = [size for _, size in result.size_changes]
    assert sizes_set and sizes_set[-1] in ("performance-m", "performance-l")
    # Once the load has settled at 2.5x (from 5400 s), the size stays.
    assert all(t < 5400 for t, _ in result.size_changes)
    # One dyno: every size change restarts it, a boot each.
    assert result.boots == len(result.size_changes)
