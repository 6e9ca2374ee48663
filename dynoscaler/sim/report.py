"""Run scenarios against policies, judge the goals, write a markdown table and PNG plots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynoscaler.sim.engine import simulate
from dynoscaler.sim.lower_bound import LowerBound, lower_bound
from dynoscaler.sim.metrics import RunResult
from dynoscaler.sim.pages import PageCounts, PageRow, page_counts, pages_table
from dynoscaler.sim.scenario import Scenario, without_schedules

MODELS = ("dynoscaler",)
WITHIN_GOAL = 0.99
RATIO_GOAL = 1.25
CHANGES_PER_CYCLE_GOAL = 2
# A scenario with schedules: the model with them, against the model without them.
SCHEDULE_COST_GOAL = 1.1
PAGES_HEADING = "### DeadlineUnmeetable: pages against misses"
PAGES_TEXT = (
    "A page is false when no job passes its deadline from the page until a deadline after "
    "it resolved; a late job has no page before it when no page was raised by then "
    "(docs/simulator.md). Precision: true pages / pages; recall: late jobs announced / late "
    "jobs. The models' rows and every baseline that paged."
)
_PLOT_POINTS = 200  # per series: the maximum (dynos, depth) or mean (load) of each bucket


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    bound: LowerBound | None  # None: not computed (a role with sizes)
    runs: tuple[RunResult, ...]
    # the models' runs without the role's schedules (scenarios with schedules only)
    unscheduled: tuple[RunResult, ...] = ()

    def ratio(self, run: RunResult) -> float | None:
        if self.bound is None or not self.bound.feasible or self.bound.dyno_seconds <= 0:
            return None
        return run.dyno_seconds / self.bound.dyno_seconds

    def run_of(self, policy: str) -> RunResult | None:
        return next((r for r in self.runs if r.policy == policy), None)

    def unscheduled_of(self, policy: str) -> RunResult | None:
        return next((r for r in self.unscheduled if r.policy == policy), None)

    def named_runs(self) -> list[tuple[str, RunResult]]:
        """Every run under its row's name: the policies, then the models without schedules."""
        return [(r.policy, r) for r in self.runs] + [
            (f"{r.policy} without its schedules", r) for r in self.unscheduled
        ]

    def pages(self, run: RunResult) -> PageCounts:
        return page_counts(run, self.scenario.role.target_deadline)

    def paging_policies(self) -> list[str]:
        """The models, and the baselines that paged: the rows of the pages table."""
        return [r.policy for r in self.runs if r.policy in MODELS or r.pages]


def evaluate(
    scenario: Scenario, policies: tuple[str, ...] | None = None, seed: int | None = None
) -> ScenarioResult:
    """Every policy and the lower bound on one job trace (the scenario's seed by default)."""
    names = policies or scenario.policies
    runs = tuple(simulate(scenario, name, seed) for name in names)
    unscheduled = ()
    if scenario.role.schedules:
        reactive = without_schedules(scenario)
        unscheduled = tuple(simulate(reactive, name, seed) for name in names if name in MODELS)
    return ScenarioResult(scenario, lower_bound(scenario, seed), runs, unscheduled)


def goals(result: ScenarioResult, model: str) -> list[tuple[str, bool | None]]:
    """The goals for one of the model's rows on this scenario, each with whether it was met
    (None: not judged, the figure does not exist)."""
    run = result.run_of(model)
    if run is None:
        return []
    if not result.scenario.in_bounds:
        checks = [("unmeetable flagged before the first miss", flagged_in_time(run))]
        lead = result.scenario.flag_lead_goal
        if lead is not None:
            checks.append((f"flag lead >= {lead:g} s", lead_goal(result, run)))
        return checks
    better = [r.policy for r in _baselines(result) if _better_on_both(r, run)]
    checks = [
        (f">= {WITHIN_GOAL:.0%} within the deadline", within_goal(run)),
        (f"<= {RATIO_GOAL}x the lower bound", ratio_goal(result, run)),
        ("no false page", no_false_page(result, run)),
        (
            "no baseline better on both" + (f" ({', '.join(better)} is)" if better else ""),
            not better,
        ),
    ]
    reactive = result.unscheduled_of(model)
    if reactive is not None:
        checks.append(
            (
                f"with its schedules 0 late jobs (without them {reactive.late}) at <= "
                f"{SCHEDULE_COST_GOAL}x the dyno-seconds without them",
                schedule_goal(run, reactive),
            )
        )
    cycles = result.scenario.cycles
    if cycles:
        per_cycle = run.direction_changes / cycles
        goal = CHANGES_PER_CYCLE_GOAL
        checks.append((f"<= {goal} direction changes per cycle", per_cycle <= goal))
    return checks


def within_goal(run: RunResult) -> bool:
    return run.within_share >= WITHIN_GOAL


def schedule_goal(run: RunResult, reactive: RunResult) -> bool:
    """The schedules' goal: no late job where the reactive run had some, for at most
    SCHEDULE_COST_GOAL times its dyno-seconds."""
    return (
        run.late == 0
        and reactive.late > 0
        and run.dyno_seconds <= SCHEDULE_COST_GOAL * reactive.dyno_seconds
    )


def ratio_goal(result: ScenarioResult, run: RunResult) -> bool | None:
    """At most RATIO_GOAL times the bound; None (not judged) where no bound was computed."""
    if result.bound is None:
        return None
    ratio = result.ratio(run)
    return ratio is not None and bool(ratio <= RATIO_GOAL)  # a numpy bool is not False


def flagged_in_time(run: RunResult) -> bool:
    """The out-of-bounds goal: the unmeetable flag before the first miss."""
    return run.flag_lead is not None and run.flag_lead > 0


def lead_goal(result: ScenarioResult, run: RunResult) -> bool:
    """The scenario's flag_lead_goal, where it sets one (the load allows that lead)."""
    goal = result.scenario.flag_lead_goal
    return goal is None or (run.flag_lead is not None and run.flag_lead >= goal)


def no_false_page(result: ScenarioResult, run: RunResult) -> bool:
    """No page without a miss following within the deadline."""
    return result.pages(run).false_pages == 0


def page_rows(result: ScenarioResult) -> list[PageRow]:
    scenario = result.scenario
    return [
        PageRow(scenario.name, scenario.in_bounds, run.policy, result.pages(run), run.flag_lead)
        for run in map(result.run_of, result.paging_policies())
    ]


def matched_for_less(result: ScenarioResult, model: str) -> list[str]:
    """Baselines that meet as many deadlines as the model's row for fewer dyno-seconds:
    not better on both, but where the model does not win."""
    run = result.run_of(model)
    if run is None or not result.scenario.in_bounds:
        return []
    return [r.policy for r in _baselines(result) if _as_good_for_less(r, run)]


def _baselines(result: ScenarioResult) -> list[RunResult]:
    return [r for r in result.runs if r.policy not in MODELS]


def _better_on_both(other: RunResult, run: RunResult) -> bool:
    return other.within_share > run.within_share and other.dyno_seconds < run.dyno_seconds


def _as_good_for_less(other: RunResult, run: RunResult) -> bool:
    return other.within_share == run.within_share and other.dyno_seconds < run.dyno_seconds


def _verdict(ok: bool | None) -> str:
    return "not judged (no lower bound)" if ok is None else "met" if ok else "NOT met"


def _seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.3g}"


def _flag(run: RunResult) -> str:
    if math.isinf(run.first_flag):
        return "—"
    if run.flag_lead is None:
        return f"raised at {run.first_flag:.0f} s, no miss"
    return f"{run.flag_lead:.0f}"


def _bound_text(bound: LowerBound | None) -> str:
    if bound is None:
        return "not computed for a role with sizes (the bound counts dynos of one size)"
    if not bound.feasible:
        return "none (even max_dynos cannot meet every deadline)"
    if bound.sessions is not None and bound.sessions >= bound.dyno_seconds:
        how = "sessions: a boot and the jobs' span per wake-up"
    else:
        s = "" if bound.starts == 1 else "s"
        how = f"fluid work plus the boot{s} of {bound.starts} dyno{s} any schedule must start"
    return f"{bound.dyno_seconds:,.0f} dyno-seconds ({how})"


def table(result: ScenarioResult) -> str:
    scenario = result.scenario
    lines = [
        f"### {scenario.name}",
        "",
        scenario.description,
        "",
        f"Lower bound: {_bound_text(result.bound)}. Every policy sees a sample every "
        f"{scenario.observation.scrape_interval:g} s, "
        f"{scenario.observation.evaluation_lag:g} s old when it decides.",
        "",
        "| policy | within deadline | p99 enqueue→done (s) | dyno-seconds | × bound "
        "| actions | direction changes | flag lead (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in result.named_runs():
        ratio = result.ratio(run)
        changes = f"{run.direction_changes}"
        if scenario.cycles:
            changes += f" ({run.direction_changes / scenario.cycles:.1f}/cycle)"
        lines.append(
            f"| {name} | {run.within_share:.2%} | {_seconds(run.p99)} "
            f"| {run.dyno_seconds:,.0f} | {'—' if ratio is None else f'{ratio:.2f}'} "
            f"| {run.actions} | {changes} | {_flag(run)} |"
        )
    for model in MODELS:
        checks = goals(result, model)
        if checks:
            met = "; ".join(f"{text}: {_verdict(ok)}" for text, ok in checks)
            lines += ["", f"Goals for {model}: {met}."]
        matched = matched_for_less(result, model)
        if matched:
            lines += [
                "",
                f"Where {model} does not win: {', '.join(matched)} "
                f"{'meets' if len(matched) == 1 else 'meet'} as many deadlines "
                "for fewer dyno-seconds.",
            ]
    return "\n".join(lines)


def plot(result: ScenarioResult, path: Path) -> None:
    """One panel per policy: load (in dynos' worth of work), dynos, and queue depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenario = result.scenario
    per_dyno = scenario.role.concurrency / scenario.service.mean  # jobs/s one dyno finishes
    runs = result.named_runs()
    figure, axes = plt.subplots(len(runs), 1, figsize=(7, 1.3 * len(runs) + 0.6), sharex=True)
    axes = [axes] if len(runs) == 1 else list(axes)
    for axis, (name, run) in zip(axes, runs, strict=True):
        trace = run.trace
        starts = np.arange(0, len(trace.times), max(1, len(trace.times) // _PLOT_POINTS))
        hours = np.asarray(trace.times)[starts] / 3600
        load = np.add.reduceat(trace.arrival_rate, starts) / np.diff([*starts, len(trace.times)])
        axis.plot(hours, load / per_dyno, color="0.6", lw=0.8, label="load (dynos of work)")
        dynos = np.maximum.reduceat(trace.dynos, starts)
        axis.step(hours, dynos, where="post", color="tab:blue", lw=1, label="dynos")
        billed = np.maximum.reduceat(trace.billed, starts)
        axis.step(hours, billed, where="post", color="tab:blue", lw=0.6, ls=":", label="billed")
        axis.set_ylabel(name.replace(" without", "\nwithout"), fontsize=8)
        queue = axis.twinx()
        depth = np.maximum.reduceat(trace.depth, starts)
        queue.plot(hours, depth, color="tab:red", lw=0.7, label="queue depth")
        queue.tick_params(labelsize=7)
        axis.tick_params(labelsize=7)
    axes[0].legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1].set_xlabel("hours")
    figure.suptitle(f"{scenario.name}: load and dynos (left), queue depth (right, red)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80, pil_kwargs={"optimize": True})
    plt.close(figure)


def write_report(results: list[ScenarioResult], directory: Path, command: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sections = [
        "# Simulator results",
        "",
        f"Produced by `{command}`. What the columns mean: docs/simulator.md.",
    ]
    for result in results:
        image = f"{result.scenario.name}.png"
        plot(result, directory / image)
        sections += ["", table(result), "", f"![{result.scenario.name}]({image})"]
    rows = [row for result in results for row in page_rows(result)]
    sections += ["", PAGES_HEADING, "", PAGES_TEXT, "", pages_table(rows)]
    path = directory / "README.md"
    path.write_text("\n".join(sections) + "\n", encoding="utf-8")
    return path
