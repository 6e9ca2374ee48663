"""The wins table: where a baseline meets as many deadlines for less, and what it does elsewhere."""

from __future__ import annotations

import dataclasses

from dynoscaler.sim.lower_bound import LowerBound
from dynoscaler.sim.report import ScenarioResult
from dynoscaler.sim.sweep import Sweep, write_sweep
from dynoscaler.sim.wins import wins_table
from tests.sim_support import run_result, scenario

BOUND = LowerBound(1000.0, True, 0.0)


def _sweep(name: str, per_seed: list[tuple], in_bounds: bool = True) -> Sweep:
    case = dataclasses.replace(scenario(in_bounds=in_bounds), name=name)
    results = tuple(ScenarioResult(case, BOUND, runs) for runs in per_seed)
    return Sweep(case, results, tuple(range(1, len(per_seed) + 1)))


def _runs(model: tuple[float, float], hirefire: tuple[float, float], hpa: tuple[float, float]):
    return (
        run_result("dynoscaler", *model),
        run_result("hirefire", *hirefire),
        run_result("hpa", *hpa),
    )


def test_a_win_lists_where_the_same_baseline_meets_fewer_deadlines():
    burst = _sweep(
        "burst",
        [
            _runs((1.0, 1100.0), (1.0, 1000.0), (1.0, 1300.0)),
            _runs((1.0, 1100.0), (1.0, 1200.0), (1.0, 1300.0)),
        ],
    )
    steady = _sweep(
        "steady",
        [
            _runs((1.0, 1100.0), (0.98, 1000.0), (1.0, 1050.0)),
            _runs((1.0, 1100.0), (0.97, 1000.0), (1.0, 1050.0)),
        ],
    )
    beyond = _sweep("beyond", [_runs((0.5, 900.0), (0.4, 900.0), (0.3, 900.0))], in_bounds=False)
    text = wins_table([burst, steady, beyond])
    assert text.startswith("### Where a baseline wins, and the same rule elsewhere")
    assert "| burst | hirefire | 1 of 2 | 1.10 / 1.10 | steady (2 of 2; worst 97.00%) |" in text
    assert "| steady | hpa | 2 of 2 | 1.10 / 1.05 | none |" in text
    assert "| burst | hpa |" not in text and "beyond" not in text  # no win; out of bounds


def test_no_win_no_table():
    even = _sweep("even", [_runs((1.0, 1000.0), (1.0, 1000.0), (0.99, 900.0))])
    assert wins_table([even]) == ""


def test_seeds_md_ends_with_the_wins(tmp_path):
    burst = _sweep("burst", [_runs((1.0, 1100.0), (1.0, 1000.0), (1.0, 1300.0))])
    text = write_sweep([burst], tmp_path, "x").read_text()
    assert text.rstrip().endswith("| burst | hirefire | 1 of 1 | 1.10 / 1.00 | none |")
