"""Where a baseline meets as many deadlines as the model for fewer dyno-seconds, and
what the same rule, with the same settings, does on the other in-bounds scenarios.

No baseline is tuned per scenario, so a seed sweep of every scenario already runs
each winning rule everywhere else: wins_table() lists, per win, the in-bounds
scenarios where that baseline meets fewer deadlines than the model (issue 20,
part 4: a rule that wins somewhere must lose deadlines elsewhere, or the model
could do better there).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from dynoscaler.sim.report import matched_for_less

if TYPE_CHECKING:
    from dynoscaler.sim.sweep import Sweep

WINS_HEADING = "### Where a baseline wins, and the same rule elsewhere"
WINS_TEXT = (
    "Seeds where a baseline meets as many deadlines as {model} for fewer dyno-seconds, and "
    "the in-bounds scenarios where the same baseline, with the same settings, meets fewer "
    "deadlines than {model} (seeds, and its worst seed's share within); docs/simulator.md."
)


def wins_table(sweeps: list[Sweep], model: str = "dynoscaler") -> str:
    """The markdown table of every win over the in-bounds sweeps; empty if there is none."""
    in_bounds = [result for result in sweeps if result.scenario.in_bounds]
    rows = [
        _row(result, baseline, won, in_bounds, model)
        for result in in_bounds
        for baseline, won in _wins(result, model).items()
    ]
    if not rows:
        return ""
    lines = [
        WINS_HEADING,
        "",
        WINS_TEXT.format(model=model),
        "",
        f"| scenario | baseline | seeds it wins | × bound, mean: {model} / baseline "
        f"| meets fewer deadlines than {model} on |",
        "|---|---|---:|---:|---|",
    ]
    return "\n".join(lines + rows)


def _wins(result: Sweep, model: str) -> dict[str, int]:
    """Per baseline, the seeds where it meets as many deadlines for less."""
    counts: dict[str, int] = {}
    for scenario_result in result.results:
        for baseline in matched_for_less(scenario_result, model):
            counts[baseline] = counts.get(baseline, 0) + 1
    return counts


def _row(result: Sweep, baseline: str, won: int, in_bounds: list[Sweep], model: str) -> str:
    losses = [_losses(other, baseline, model) for other in in_bounds if other is not result]
    elsewhere = "; ".join(loss for loss in losses if loss) or "none"
    ratios = f"{_mean_ratio(result, model)} / {_mean_ratio(result, baseline)}"
    return (
        f"| {result.scenario.name} | {baseline} | {won} of {len(result.seeds)} "
        f"| {ratios} | {elsewhere} |"
    )


def _mean_ratio(result: Sweep, policy: str) -> str:
    ratios = [r for r in (res.ratio(run) for res, run in result.runs_of(policy)) if r is not None]
    return f"{statistics.fmean(ratios):.2f}" if ratios else "—"


def _losses(result: Sweep, baseline: str, model: str) -> str:
    """'scenario (k of n; worst w%)' where the baseline met fewer deadlines on k seeds."""
    pairs = [
        (res.run_of(baseline), res.run_of(model))
        for res in result.results
        if res.run_of(baseline) and res.run_of(model)
    ]
    fewer = sum(base.within_share < ours.within_share for base, ours in pairs)
    if not fewer:
        return ""
    worst = min(base.within_share for base, _ in pairs)
    return f"{result.scenario.name} ({fewer} of {len(pairs)}; worst {worst:.2%})"
