"""DeadlineUnmeetable pages as Prometheus and Alertmanager send them, judged against misses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynoscaler.sim.alerting import Pager
from dynoscaler.sim.metrics import Misses, Tally
from dynoscaler.sim.pages import PageCounts, page_counts
from tests.sim_support import run_result


def _evaluate(pager: Pager, true_from: float, true_until: float, end: float = 300.0) -> None:
    for now in np.arange(0.0, end, 5.0):
        pager.update(float(now), true_from <= now < true_until)


@pytest.mark.parametrize("blip", [10.0, 25.0, 55.0])
def test_a_condition_shorter_than_for_sends_no_page(blip):
    pager = Pager(for_seconds=60, group_wait=30)
    _evaluate(pager, 100.0, 100.0 + blip)
    assert pager.close(300.0) == ()


def test_a_condition_held_for_the_whole_for_pages_after_group_wait_until_it_resolves():
    pager = Pager(for_seconds=60, group_wait=30)
    _evaluate(pager, 100.0, 250.0)  # true at 100, 105, ..., 245
    assert pager.close(300.0) == ((190.0, 250.0),)


def test_one_evaluation_without_the_condition_starts_the_for_again():
    pager = Pager(for_seconds=60, group_wait=30)
    for now in np.arange(0.0, 300.0, 5.0):
        pager.update(float(now), 100 <= now < 250 and now != 140)
    assert pager.close(300.0) == ((235.0, 250.0),)  # pending again from 145


def test_an_alert_resolved_before_its_group_wait_sends_nothing():
    pager = Pager(for_seconds=60, group_wait=30)
    _evaluate(pager, 100.0, 180.0)  # fires at 160, resolved at 180, before 190
    assert pager.close(300.0) == ()


def test_no_for_and_no_wait_pages_at_the_first_evaluation_and_stays_open_to_the_end():
    pager = Pager(for_seconds=0, group_wait=0)
    _evaluate(pager, 50.0, math.inf)
    assert pager.close(300.0) == ((50.0, 300.0),)


def test_the_tally_counts_late_jobs_by_the_second_their_deadline_passed():
    tally = Tally(deadline=60.0)
    arrivals = np.array([0.0, 10.2, 10.7, 20.0])
    tally.started(arrivals, arrivals + 61.0, arrivals + 62.0)  # all late but the last
    tally.started(np.array([30.0]), np.array([30.0]), np.array([31.0]))
    tally.unfinished(np.array([40.5, 200.0]), now=150.0)  # 40.5 is past its deadline
    misses = tally.misses()
    assert misses.seconds.tolist() == [60.0, 70.0, 80.0, 100.0]
    assert misses.counts.tolist() == [1, 2, 1, 1]
    assert tally.first_miss == 60.0


def test_pages_and_misses_judge_each_other_within_a_deadline():
    misses = Misses(np.array([150.0, 400.0, 900.0]), np.array([5, 7, 11]))
    pages = ((100.0, 120.0), (340.0, 420.0), (600.0, 700.0))
    run = run_result("dynoscaler", 0.5, 100.0, pages=pages, misses=misses)
    # page 1 covers 100-180 (miss at 150), page 2 340-480 (miss at 400), page 3 600-760:
    # nothing; the 11 late jobs at 900 had no page before them
    counts = page_counts(run, deadline=60.0)
    assert counts == PageCounts(pages=3, false_pages=1, late=23, unannounced=11)
    assert counts.precision == pytest.approx(2 / 3)
    assert counts.recall == pytest.approx(12 / 23)
    assert counts + counts == PageCounts(6, 2, 46, 22)
    assert PageCounts().precision is None and PageCounts().recall is None
