"""Pages against misses: how often a policy's DeadlineUnmeetable page was right.

A page, notified at p and resolved at r, is *true* when a job passes its
deadline between p and r + D (the deadline): a miss follows it; otherwise it is
a *false* page, raised with no miss following within the deadline. A late job,
past its deadline at m, is *announced* when a page has p ≤ m ≤ r + D;
otherwise it is a miss with no page before it. Precision is the share of true
pages, recall the share of late jobs announced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynoscaler.sim.metrics import RunResult


@dataclass(frozen=True)
class PageCounts:
    pages: int = 0
    false_pages: int = 0
    late: int = 0  # jobs past their deadline
    unannounced: int = 0  # late jobs with no page before

    def __add__(self, other: PageCounts) -> PageCounts:
        return PageCounts(
            self.pages + other.pages,
            self.false_pages + other.false_pages,
            self.late + other.late,
            self.unannounced + other.unannounced,
        )

    @property
    def precision(self) -> float | None:
        return None if not self.pages else 1 - self.false_pages / self.pages

    @property
    def recall(self) -> float | None:
        return None if not self.late else 1 - self.unannounced / self.late


def page_counts(run: RunResult, deadline: float) -> PageCounts:
    """The run's pages and late jobs, each judged against the other."""
    seconds, counts = run.misses.seconds, run.misses.counts
    announced = np.zeros(seconds.size, dtype=bool)
    false_pages = 0
    for notified, resolved in run.pages:
        # misses are counted by whole second: the second the page went out counts
        covered = (seconds >= np.floor(notified)) & (seconds <= resolved + deadline)
        false_pages += not covered.any()
        announced |= covered
    late = int(counts.sum())
    return PageCounts(len(run.pages), false_pages, late, late - int(counts[announced].sum()))


@dataclass(frozen=True)
class PageRow:
    """One line of the precision/recall table: a policy on a scenario (over its seeds)."""

    scenario: str
    in_bounds: bool
    policy: str
    counts: PageCounts
    lead: float | None  # the first page's lead before the first miss (the worst seed's)


def pages_table(rows: list[PageRow]) -> str:
    """DeadlineUnmeetable pages against the misses, as a markdown table."""
    lines = [
        "| scenario | in bounds | policy | pages | false pages | precision "
        "| late jobs | late, no page before | recall | flag lead (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        counts = row.counts
        lines.append(
            f"| {row.scenario} | {'yes' if row.in_bounds else 'no'} | {row.policy} "
            f"| {counts.pages} | {counts.false_pages} | {_share(counts.precision)} "
            f"| {counts.late:,} | {counts.unannounced:,} | {_share(counts.recall)} "
            f"| {'—' if row.lead is None else f'{row.lead:.0f}'} |"
        )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
