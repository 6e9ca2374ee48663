"""`dynoscaler bench sizes` in small: a size-only role (max 1 dyno) on a load needing
2.5 standard-1x dynos keeps its deadline at the cheapest size that can (issue 18)."""

from __future__ import annotations

import argparse

from dynoscaler.prices import Prices
from dynoscaler.sim import sizes


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
