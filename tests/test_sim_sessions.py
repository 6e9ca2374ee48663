"""The session bound: hand-computed, and never above a schedule that meets every deadline."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dynoscaler.sim.sessions import session_bound

pytestmark = pytest.mark.timeout(120)


def cheapest_sessions(starts: np.ndarray, services: np.ndarray, boot: float) -> float:
    """Fewest dyno-seconds with these runs and unlimited slots: the runs' union is billed,
    and each gap between runs either stays billed or costs the next session's boot."""
    order = np.argsort(starts)
    cost, reach = boot, -np.inf
    for start, service in zip(starts[order].tolist(), services[order].tolist(), strict=True):
        if reach > -np.inf and start > reach:
            cost += min(start - reach, boot)
        cost += max(0.0, start + service - max(start, reach))
        reach = max(reach, start + service)
    return cost


def test_far_apart_jobs_take_two_sessions_of_boot_and_run():
    bound = session_bound(np.array([0.0, 1000.0]), np.array([10.0, 20.0]), 100, 45)
    assert bound == pytest.approx((45 + 10) + (45 + 20))


def test_jobs_within_one_deadline_share_one_session():
    # job 1 waits for job 2 (due at 100): both run in one 20 s stretch
    bound = session_bound(np.array([0.0, 50.0]), np.array([10.0, 20.0]), 100, 45)
    assert bound == pytest.approx(45 + 20)


def test_a_long_boot_keeps_the_dyno_up_between_jobs():
    arrivals, services = np.array([0.0, 150.0]), np.array([10.0, 10.0])
    # one session from job 1's latest start (90) to job 2's earliest end (160): 70 s
    assert session_bound(arrivals, services, 100, 100) == pytest.approx(100 + 70)
    assert session_bound(arrivals, services, 100, 45) == pytest.approx(2 * (45 + 10))


def test_dynos_serving_at_start_save_the_first_boot():
    bound = session_bound(np.array([0.0, 1000.0]), np.array([10.0, 20.0]), 100, 45, True)
    assert bound == pytest.approx(10 + (45 + 20))
    assert session_bound(np.empty(0), np.empty(0), 100, 45) == 0.0


def test_never_above_the_cheapest_schedule_by_brute_force():
    # integer data, every run start tried; dynos serving at 0 may save the first boot
    rng = np.random.default_rng(11)
    exact = 0
    for _ in range(100):
        deadline = int(rng.integers(4, 10))
        arrivals = np.sort(rng.integers(0, 25, 4))
        services = rng.integers(1, deadline + 1, 4)
        boot, at_start = float(rng.integers(0, 12)), bool(rng.integers(0, 2))
        windows = [range(a, a + deadline - s + 1) for a, s in zip(arrivals, services, strict=True)]
        best = min(
            cheapest_sessions(np.array(starts, dtype=float), services, boot)
            for starts in itertools.product(*windows)
        ) - (boot if at_start else 0.0)
        bound = session_bound(arrivals, services, deadline, boot, at_start)
        assert bound <= best + 1e-9
        exact += bound > best - 1e-9
    assert exact >= 90  # and it is not a loose bound


def test_never_above_random_schedules_in_any_order():
    # runs placed anywhere in their windows: out of arrival order, overlapping, far apart
    rng = np.random.default_rng(12)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        arrivals = np.sort(rng.uniform(0, 600, n))
        services = rng.lognormal(2.0, 0.8, n)
        deadline = float(rng.uniform(services.max(), 300))
        boot = float(rng.uniform(0, 100))
        starts = arrivals + rng.uniform(0, 1, n) * (deadline - services)
        bound = session_bound(arrivals, services, deadline, boot)
        assert bound <= cheapest_sessions(starts, services, boot) + 1e-9


def seen_sessions(starts: np.ndarray, services: np.ndarray, boot: float, seen) -> float:
    """cheapest_sessions for a policy that stops a dyno only once it has seen it idle:
    each session is billed until seen(its last end)."""
    order = np.argsort(starts)
    cost, reach = boot, -np.inf
    for start, service in zip(starts[order].tolist(), services[order].tolist(), strict=True):
        if reach > -np.inf and start > reach:
            cost += min(start - reach, seen(reach) - reach + boot)
        cost += max(0.0, start + service - max(start, reach))
        reach = max(reach, start + service)
    return cost + seen(reach) - reach


def test_a_length_blind_policy_that_sees_ends_late_pays_more_and_never_less_than_the_bound():
    # every run start a policy planning each job as q long may take, by brute force
    rng = np.random.default_rng(13)
    scrape, lag = 5.0, 2.0

    def seen(t: float) -> float:
        return scrape * (np.floor(t / scrape) + 1) + lag

    exact, dearer = 0, 0
    for _ in range(40):
        deadline = int(rng.integers(8, 15))
        arrivals = np.sort(rng.integers(0, 30, 4))
        services = rng.integers(1, 5, 4)
        plan, boot = int(rng.integers(1, 7)), float(rng.integers(0, 12))
        windows = [
            range(a, a + deadline - max(s, plan) + 1)
            for a, s in zip(arrivals, services, strict=True)
        ]
        best = min(
            seen_sessions(np.array(starts, dtype=float), services, boot, seen)
            for starts in itertools.product(*windows)
        )
        bound = session_bound(arrivals, services, deadline, boot, False, plan, (scrape, lag))
        assert bound <= best + 1e-9
        exact += bound > best - 1e-9
        dearer += bound > session_bound(arrivals, services, deadline, boot) + 1e-9
    assert exact >= 20 and dearer >= 36  # not loose, and above the clairvoyant bound


def test_a_plan_length_under_every_job_changes_nothing():
    arrivals, services = np.array([0.0, 50.0]), np.array([10.0, 20.0])
    assert session_bound(arrivals, services, 100, 45, plan_length=5.0) == pytest.approx(45 + 20)
    # planned as 30 s long, job 1 starts by 70, job 2 ends at 70 at the earliest: still one
    assert session_bound(arrivals, services, 100, 45, plan_length=30.0) == pytest.approx(45 + 20)
    # planned as 60 s long, job 1 starts by 40: the session spans 40 .. 70
    assert session_bound(arrivals, services, 100, 45, plan_length=60.0) == pytest.approx(45 + 30)
