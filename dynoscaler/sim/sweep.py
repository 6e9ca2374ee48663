"""One scenario on many job traces: is a policy good, or good on one seed?

A scenario's seed fixes one job trace, and the report's figures are that
trace's. sweep() runs every policy and the lower bound on the traces of other
seeds too, and sweep_table() sums them up per policy: the share of jobs within
the deadline and the dyno-seconds over the bound (mean and worst seed), how
many seeds meet the goals, and for the model, which goals failed on which seed;
and the pages raised against the misses, summed over the seeds (page_rows,
for the precision/recall table).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dynoscaler.sim.lower_bound import LowerBound
from dynoscaler.sim.metrics import RunResult
from dynoscaler.sim.pages import PageCounts, PageRow, pages_table
from dynoscaler.sim.report import (
    MODELS,
    PAGES_HEADING,
    PAGES_TEXT,
    RATIO_GOAL,
    SCHEDULE_COST_GOAL,
    WITHIN_GOAL,
    ScenarioResult,
    evaluate,
    flagged_in_time,
    goals,
    lead_goal,
    matched_for_less,
    no_false_page,
    ratio_goal,
    schedule_goal,
    within_goal,
)
from dynoscaler.sim.scenario import Scenario
from dynoscaler.sim.wins import wins_table


@dataclass(frozen=True)
class Sweep:
    scenario: Scenario
    results: tuple[ScenarioResult, ...]  # one per seed, in the order of `seeds`
    seeds: tuple[int, ...]

    def runs_of(self, policy: str) -> list[tuple[ScenarioResult, RunResult]]:
        pairs = ((result, result.run_of(policy)) for result in self.results)
        return [(result, run) for result, run in pairs if run is not None]

    def pages(self, policy: str) -> PageCounts:
        """The policy's pages and late jobs, summed over the seeds."""
        return sum((res.pages(run) for res, run in self.runs_of(policy)), PageCounts())

    def page_rows(self) -> list[PageRow]:
        """One row per policy that is a model or paged on some seed; the worst lead."""
        names = {name for result in self.results for name in result.paging_policies()}
        scenario = self.scenario
        return [
            PageRow(
                scenario.name, scenario.in_bounds, policy, self.pages(policy), _lead(self, policy)
            )
            for policy in _policies(self)
            if policy in names
        ]


def sweep(
    scenario: Scenario,
    seeds: tuple[int, ...],
    policies: tuple[str, ...] | None = None,
    workers: int | None = None,
) -> Sweep:
    """Evaluate the scenario on each seed's trace, on up to `workers` processes."""
    workers = min(workers or os.cpu_count() or 1, len(seeds))
    if workers <= 1:
        return Sweep(scenario, tuple(evaluate(scenario, policies, s) for s in seeds), seeds)
    global _shared
    _shared = (scenario, policies)
    # fork: the workers inherit the scenario, whose rate profiles (closures) do not pickle
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = tuple(pool.map(_evaluate_seed, seeds))
    finally:
        _shared = None
    results = tuple(ScenarioResult(scenario, *part) for part in parts)
    return Sweep(scenario, results, seeds)


_shared: tuple[Scenario, tuple[str, ...] | None] | None = None  # what forked workers evaluate


def _evaluate_seed(
    seed: int,
) -> tuple[LowerBound, tuple[RunResult, ...], tuple[RunResult, ...]]:
    result = evaluate(*_shared, seed)
    return result.bound, result.runs, result.unscheduled


def in_goal(result: ScenarioResult, run: RunResult) -> bool:
    """The goal any policy can be held to on one seed: within the deadline at no more
    than RATIO_GOAL times the bound (where there is one; in bounds), or flagged before
    the first miss."""
    if not result.scenario.in_bounds:
        return flagged_in_time(run) and lead_goal(result, run)
    ratio_met = ratio_goal(result, run) is not False
    return within_goal(run) and ratio_met and no_false_page(result, run)


def sweep_table(result: Sweep) -> str:
    scenario = result.scenario
    first, last = result.seeds[0], result.seeds[-1]
    lead = scenario.flag_lead_goal
    goal = (
        _in_bounds_goal(result)
        if scenario.in_bounds
        else "flagged before the first miss" + (f", ≥ {lead:g} s ahead" if lead else "")
    )
    header = ["policy", "within deadline: mean / worst", "× bound: mean / best–worst"]
    if scenario.cycles:
        header.append("direction changes per cycle: worst")
    if not scenario.in_bounds:
        header.append("flag lead (s): worst")
    header += ["pages: false / all", f"seeds {goal}"]
    lines = [
        f"### {scenario.name}, seeds {first}-{last}",
        "",
        f"The scenario on {len(result.seeds)} job traces (seeds {first}-{last}; "
        f"the report's own is seed {scenario.seed}).",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for policy in _policies(result):
        lines.append(_row(result, policy))
    for model in MODELS:
        if result.runs_of(model):
            lines += ["", _model_summary(result, model)]
        if any(res.unscheduled_of(model) for res in result.results):
            lines += ["", _schedule_summary(result, model)]
    return "\n".join(lines)


def _in_bounds_goal(result: Sweep) -> str:
    if all(res.bound is None for res in result.results):
        return f"≥ {WITHIN_GOAL:.0%} within, no false page (no lower bound: × bound not judged)"
    return f"≥ {WITHIN_GOAL:.0%} within, ≤ {RATIO_GOAL}× the bound, no false page"


def _schedule_summary(result: Sweep, model: str) -> str:
    """The model with the role's schedules against without them, seed by seed."""
    pairs = [
        (res.run_of(model), res.unscheduled_of(model))
        for res in result.results
        if res.run_of(model) and res.unscheduled_of(model)
    ]
    ratios = [run.dyno_seconds / reactive.dyno_seconds for run, reactive in pairs]
    met = sum(schedule_goal(run, reactive) for run, reactive in pairs)
    return (
        f"{model} with its schedules: late jobs per seed "
        f"{', '.join(str(run.late) for run, _ in pairs)}; without them "
        f"{', '.join(str(reactive.late) for _, reactive in pairs)}; dyno-seconds "
        f"{min(ratios):.3f}–{max(ratios):.3f}× those without them; the schedules' goal "
        f"(0 late where there were some, ≤ {SCHEDULE_COST_GOAL}× the dyno-seconds) met on "
        f"{met} of {len(pairs)} seeds."
    )


def _policies(result: Sweep) -> list[str]:
    return [run.policy for run in result.results[0].runs]


def _row(result: Sweep, policy: str) -> str:
    pairs = result.runs_of(policy)
    within = [run.within_share for _, run in pairs]
    ratios = [r for r in (res.ratio(run) for res, run in pairs) if r is not None]
    cells = [policy, f"{statistics.fmean(within):.2%} / {min(within):.2%}"]
    if ratios:
        mean = statistics.fmean(ratios)
        cells.append(f"{mean:.2f} / {min(ratios):.2f}–{max(ratios):.2f}")
    else:
        cells.append("—")
    cycles = result.scenario.cycles
    if cycles:
        cells.append(f"{max(run.direction_changes for _, run in pairs) / cycles:.1f}")
    if not result.scenario.in_bounds:
        cells.append(_worst_lead([run for _, run in pairs]))
    pages = result.pages(policy)
    cells.append(f"{pages.false_pages} / {pages.pages}")
    cells.append(f"{sum(in_goal(res, run) for res, run in pairs)} of {len(pairs)}")
    return "| " + " | ".join(cells) + " |"


def _lead(result: Sweep, policy: str) -> float | None:
    leads = [run.flag_lead for _, run in result.runs_of(policy) if run.flag_lead is not None]
    return min(leads) if leads else None


def _worst_lead(runs: list[RunResult]) -> str:
    leads = [run.flag_lead for run in runs]
    never = sum(lead is None for lead in leads)
    if never:
        return f"none on {never} seed{'s' if never > 1 else ''}"
    return f"{min(leads):.0f}"


def _model_summary(result: Sweep, model: str) -> str:
    missed, matched = [], []
    for seed, scenario_result in zip(result.seeds, result.results, strict=True):
        failed = [text for text, ok in goals(scenario_result, model) if ok is False]
        if failed:
            missed.append(f"seed {seed} ({_figures(scenario_result, model)}: {'; '.join(failed)})")
        if matched_for_less(scenario_result, model):
            matched.append(seed)
    count = len(result.seeds)
    text = f"Goals for {model} met on {count - len(missed)} of {count} seeds"
    text += "." if not missed else "; not on " + ", ".join(missed) + "."
    if matched:
        text += (
            f" A baseline meets as many deadlines for fewer dyno-seconds on {len(matched)} "
            f"seed{'s' if len(matched) > 1 else ''}."
        )
    return text


def _figures(result: ScenarioResult, model: str) -> str:
    run = result.run_of(model)
    ratio = result.ratio(run)
    figures = f"{run.within_share:.2%} within"
    return figures if ratio is None else f"{figures}, {ratio:.3f}×"


def sweeps_pages_table(sweeps: list[Sweep]) -> str:
    """The precision/recall table over every scenario's seeds."""
    first, last = sweeps[0].seeds[0], sweeps[0].seeds[-1]
    rows = [row for result in sweeps for row in result.page_rows()]
    text = f"{PAGES_TEXT} Summed over seeds {first}-{last}; the flag lead is the worst seed's."
    return "\n".join([PAGES_HEADING, "", text, "", pages_table(rows)])


def write_sweep(sweeps: list[Sweep], directory: Path, command: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sections = [
        "# Simulator results across seeds",
        "",
        f"Produced by `{command}`. Each seed is another job trace of the same scenario "
        "(arrivals and processing times); what the figures mean: docs/simulator.md.",
    ]
    for result in sweeps:
        sections += ["", sweep_table(result)]
    sections += ["", sweeps_pages_table(sweeps)]
    wins = wins_table(sweeps)
    if wins:
        sections += ["", wins]
    path = directory / "seeds.md"
    path.write_text("\n".join(sections) + "\n", encoding="utf-8")
    return path
