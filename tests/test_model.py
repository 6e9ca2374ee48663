"""The capacity model in Python (dynoscaler.model), term by term."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_support import WORKER

from dynoscaler.config import RoleSettings
from dynoscaler.model import (
    Capacity,
    RoleInputs,
    ScaleDownStabiliser,
    required_capacity,
    rules_window,
    staffing_beta,
    web_utilisation,
)

WEB = dataclasses.replace(WORKER, role="web", queues=(), requests="router", target_deadline=2)
WEB_NO_QUEUE_TIME = dataclasses.replace(WEB, target_queue_time=None)
BETA_1PCT = staffing_beta(0.01)
# The deadline margin ln(1/miss_ratio)·S/(D − S) for WORKER at S = 4 s: 0.329 slots
MARGIN_S4 = math.log(100) * 4 / 56
# Just-in-time horizon h = B + 10 s and h + max(W, S) for WORKER at S = 4 s (W = 46 s)
H = 20
H_W_S4 = 20 + 46


def capacity(policy: RoleSettings = WORKER, **inputs: float | None) -> Capacity:
    return required_capacity(RoleInputs(**{"backlog": 0.0, **inputs}), policy)


@pytest.mark.parametrize("miss_ratio", [0.5, 0.25, 0.1, 0.05, 0.01, 0.001, 1e-4])
def test_beta_is_the_normal_quantile_within_the_approximation_error(miss_ratio: float) -> None:
    exact = statistics.NormalDist().inv_cdf(1 - miss_ratio)
    assert abs(staffing_beta(miss_ratio) - exact) < 4.5e-4


def test_just_in_time_slots_and_the_load_term_floor() -> None:
    # a = 1/s * 4 s = 4 busy slots; margin min(β·2 = 4.65, ln(100)·4/56 = 0.33).
    # Just in time: (Q + P + λ'·h)·S/(h + W) + m = 20·4/66 + 0.33 = 1.54 slots, 1 dyno;
    # the load term a + m = 4.33 slots is 3 dynos, the floor while the count is unknown
    result = capacity(arrival_rate=1.0, processing_seconds=4.0)
    assert result.required_slots == pytest.approx(H * 4 / H_W_S4 + MARGIN_S4, abs=1e-12)
    assert (result.needed_dynos, result.desired_dynos, result.unmeetable) == (3, 3, False)
    # at 1 dyno the just-in-time 1 is enough; at 2 (4 slots) 1.54 slots are below 60%,
    # but the load term's 3 is more: 2 stays
    assert capacity(arrival_rate=1.0, processing_seconds=4.0, current_dynos=1).needed_dynos == 1
    assert capacity(arrival_rate=1.0, processing_seconds=4.0, current_dynos=2).needed_dynos == 2
    # at 5 dynos (10 slots) 1.54 slots are below 60%: down, but only to the load term's 3
    assert capacity(arrival_rate=1.0, processing_seconds=4.0, current_dynos=5).needed_dynos == 3


def test_scale_down_waits_while_the_need_is_above_sixty_percent_of_the_slots() -> None:
    # 4 dynos = 8 slots, band 4.8. Q = 60: the drain 60·4/46 = 5.22 slots (3 dynos) is above
    # the just-in-time (60 + 20)·4/66 + 0.33 = 5.18 and above 4.8: hold at 4
    held = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=60, current_dynos=4)
    assert held.required_slots == pytest.approx(240 / 46, abs=1e-12)
    assert held.needed_dynos == 4
    # Q = 50: just in time 4.57 slots (drain 4.35) < 4.8: down to the load term's 3
    lower = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=50, current_dynos=4)
    assert lower.needed_dynos == 3


def test_square_root_margin_when_it_is_the_smaller() -> None:
    # a = 0.004: β·√a = 0.147 < 0.329 (one job running keeps the role from idling)
    result = capacity(arrival_rate=0.001, processing_seconds=4.0, in_progress=1)
    expected = (1 + 0.001 * H) * 4 / H_W_S4 + BETA_1PCT * math.sqrt(0.004)
    assert result.required_slots == pytest.approx(expected, abs=1e-12)
    assert result.needed_dynos == 1


def test_backlog_drains_within_deadline_minus_processing_and_boot() -> None:
    # drain = 100 jobs * 4 s / (60 - 4 - 10) s = 8.70 slots; the max with the just-in-time
    # (100 + 20)·4/66 + 0.33 = 7.60, not the sum
    result = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=100)
    assert result.required_slots == pytest.approx(400 / 46, abs=1e-12)
    assert result.needed_dynos == 5
    assert any("drain window W=D-S-B=46s" in reason for reason in result.reasons)
    small = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=40)  # 3.48 < 3.97
    assert small.required_slots == pytest.approx((40 + H) * 4 / H_W_S4 + MARGIN_S4, abs=1e-12)


def test_jobs_that_already_waited_hold_the_dynos_their_deadline_needs() -> None:
    # The 6-minute spike's seed 10 at 1,192 s (docs/simulator.md, finding 21): 4,492
    # jobs wait, the oldest 252 s old, λ back to 10/s, S = 1 s, D = 300 s, B = 45 s,
    # 10 threads. The drain gives them W = 254 s: 17.7 slots, 2 dynos. But λ·A = 2,520
    # explain only the younger jobs; the other 1,972 must be done in the oldest's
    # 300 - 1 - 252 = 47 s left: 42 slots, so a scale-down from 8 stops at 5
    spike = dataclasses.replace(
        WORKER, min_dynos=2, max_dynos=20, target_deadline=300, boot_time=45, concurrency=10
    )
    waited = dict(arrival_rate=10.0, processing_seconds=1.0, backlog=4492, in_progress=20)
    assert capacity(spike, **waited, current_dynos=8, oldest_age_seconds=252).needed_dynos == 5
    # the same queue as young as λ explains, or its age unknown: down to the drain's 2
    assert capacity(spike, **waited, current_dynos=8, oldest_age_seconds=100).needed_dynos == 2
    assert capacity(spike, **waited, current_dynos=8).needed_dynos == 2
    # it holds dynos, it does not ask for more than are running
    assert capacity(spike, **waited, current_dynos=3, oldest_age_seconds=252).needed_dynos == 3


def test_need_above_max_is_clamped_and_unmeetable() -> None:
    # drain = 300 * 4 / 46 = 26.1 slots -> 14 dynos. The job arriving now waits behind
    # (Q + P)·S = 1,200 slot-seconds; by W = 46 s 10 dynos that must boot first (the count
    # unknown: none running) do 2·10·46 = 920: late
    result = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=300)
    assert (result.needed_dynos, result.desired_dynos, result.unmeetable) == (14, 10, True)
    assert result.reasons[-1] == (
        "deadline unmeetable: 1200 slot-seconds of work ahead, max_dynos 10 can do 920 in time"
    )


def test_the_boot_is_ahead_only_of_the_dynos_not_running() -> None:
    # 250 jobs: 1,000 slot-seconds. 10 dynos to boot do 920 by W; 10 running do
    # 2·(10·46 + 10·10) = 1,120: the same backlog is late only when they must boot
    booting = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=250, current_dynos=0)
    running = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=250, current_dynos=10)
    assert (booting.unmeetable, running.unmeetable) == (True, False)
    # more dynos than max_dynos count as max_dynos
    above = capacity(arrival_rate=1.0, processing_seconds=4.0, backlog=281, current_dynos=12)
    assert above.unmeetable  # 1,124 > 1,120


# The shapes that paged on healthy runs (issue 20), at the evaluation where the margin
# rule paged: M = 4 dynos of 5 slots, S = 1 s, D = 300 s, B = 45 s (W = 254 s) unless said.
SHAPES = dataclasses.replace(
    WORKER, max_dynos=4, concurrency=5, target_deadline=300, boot_time=45, min_dynos=1
)


def test_a_dump_that_max_dynos_drains_in_time_does_not_page() -> None:
    # 1,500 jobs dumped: 1,410 wait, 5 run, and λ over 1m reads the dump as 32.06 jobs/s.
    # (1,415 + (32.06 − 20)·254) = 4,478 slot-seconds against 5·(4·254 + 4·45) = 5,980.
    # The margin rule paged: λ·S + m = 32.06 + 0.02 slots > 20
    dump = capacity(
        SHAPES,
        arrival_rate=32.06,
        processing_seconds=1.0,
        backlog=1410,
        in_progress=5,
        current_dynos=4,
    )
    assert dump.unmeetable is False


def test_a_load_exactly_at_max_dynos_does_not_page() -> None:
    # λ·S = 20 = M·c: no growth term; 20 running slot-seconds against 5,980. The margin
    # rule paged: λ·S + m = 20.02 slots > 20 (5 dynos)
    full = capacity(
        SHAPES, arrival_rate=20.0, processing_seconds=1.0, in_progress=20, current_dynos=4
    )
    assert full.unmeetable is False


def test_a_step_with_a_long_boot_does_not_page() -> None:
    # 40 jobs/s on M = 5 dynos of 10 slots, D = 120 s, B = 90 s (W = 29 s): 2,100 jobs
    # queued while 3 dynos boot, 20 running: 2,120 against 10·(5·29 + 5·90) = 5,950
    step = dataclasses.replace(
        SHAPES, max_dynos=5, concurrency=10, target_deadline=120, boot_time=90
    )
    result = capacity(
        step,
        arrival_rate=40.0,
        processing_seconds=1.0,
        backlog=2100,
        in_progress=20,
        current_dynos=5,
    )
    assert result.needed_dynos > step.max_dynos
    assert result.unmeetable is False


def test_twice_the_rate_max_dynos_serves_pages() -> None:
    # 40 jobs/s against 20: 1,220 jobs plus (40 − 20)·254 = 6,300 > 5,980 slot-seconds
    beyond = capacity(
        SHAPES,
        arrival_rate=40.0,
        processing_seconds=1.0,
        backlog=1200,
        in_progress=20,
        current_dynos=4,
    )
    assert beyond.unmeetable
    assert beyond.reasons[-1] == (
        "deadline unmeetable: 6300 slot-seconds of work ahead, max_dynos 4 can do 5980 in time"
    )


def test_a_rising_rate_is_sized_for_but_does_not_page() -> None:
    # λ = 4.5/s, dλ/dt = 0.3/s²: λ' = 4.5 + 0.3·10 = 7.5/s, a = 30: the load term's 30.33
    # slots are 16 dynos (the floor, the count unknown); just in time 7.5·20·4/66 + 0.33 =
    # 9.42 slots, 5 dynos. The steady need λ·S + margin = 18.33 slots is 10 dynos =
    # max_dynos: meetable
    rising = capacity(arrival_rate=4.5, processing_seconds=4.0, arrival_rate_slope=0.3)
    assert rising.required_slots == pytest.approx(7.5 * H * 4 / H_W_S4 + MARGIN_S4, abs=1e-12)
    assert (rising.needed_dynos, rising.desired_dynos, rising.unmeetable) == (16, 10, False)
    known = capacity(
        arrival_rate=4.5, processing_seconds=4.0, arrival_rate_slope=0.3, current_dynos=3
    )
    assert known.needed_dynos == 5
    # 5/s: the margin's 20.33 slots are 11 dynos > 10, but λ·S = 20 slots is what 10
    # dynos serve: no page; at 7.5/s the growth (30 − 20)·46 = 460 slot-seconds
    # and a backlog of 120 (480) are more than 10 dynos to boot do by W (920)
    assert not capacity(arrival_rate=5.0, processing_seconds=4.0).unmeetable
    assert capacity(arrival_rate=7.5, processing_seconds=4.0, backlog=120).unmeetable


def test_no_time_to_boot_and_drain_is_unmeetable_for_queue_roles() -> None:
    # D - S - B = 60 - 55 - 10 < 0: the backlog drains one job per slot at best, 3 slots,
    # against just in time (3 + 0.01·20)·55/(20 + 55) + β·√0.55 = 2.35 + 1.73 = 4.07 slots,
    # 3 dynos (the deadline margin 4.6·55/5 is larger); the load term a + β·√a = 0.55 + 1.73
    result = capacity(arrival_rate=0.01, processing_seconds=55.0, backlog=3)
    expected = 3.2 * 55 / 75 + BETA_1PCT * math.sqrt(0.55)
    assert result.required_slots == pytest.approx(expected, abs=1e-12)
    assert (result.needed_dynos, result.unmeetable) == (3, True)
    assert result.reasons[-1] == "deadline unmeetable: D-S-B=-5s leaves no time to boot and drain"


def test_processing_time_alone_longer_than_the_deadline() -> None:
    # S ≥ D: no deadline margin, W < S: just in time 0.01·20·90/(20 + 90) + β·√0.9 = 2.37
    # slots; the load term a + β·√a = 0.9 + 2.21 = 3.11 slots -> 2 dynos
    result = capacity(arrival_rate=0.01, processing_seconds=90.0)
    expected = 0.2 * 90 / 110 + BETA_1PCT * math.sqrt(0.9)
    assert result.required_slots == pytest.approx(expected, abs=1e-12)
    assert (result.needed_dynos, result.unmeetable) == (2, True)
    assert result.reasons[-1] == "deadline unmeetable: processing time 90s ≥ deadline 60s"


def test_web_role_has_no_drain_window_check() -> None:
    # 50 req/s * 0.2 s = 10 busy slots; + ln(100)·0.2/1.8 = 10.51; 2 per dyno -> 6 dynos
    # (without target_queue_time: no utilisation per dyno, the queue roles' a + m)
    result = capacity(WEB_NO_QUEUE_TIME, arrival_rate=50.0, processing_seconds=0.2)
    assert result.required_slots == pytest.approx(10 + math.log(100) * 0.2 / 1.8, abs=1e-12)
    assert result.needed_dynos == 6
    assert result.unmeetable is False
    assert capacity(WEB, arrival_rate=1.0, processing_seconds=2.5).unmeetable is True


def erlang_c_wait_share(c: int, utilisation: float, wait: float, s: float) -> float:
    """P(wait > `wait`) in an M/M/c queue, by Erlang C's own sum."""
    a = c * utilisation
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (head + tail) * math.exp(-(c - a) * wait / s)


@pytest.mark.parametrize("concurrency", [1, 2, 4, 8, 25])
@pytest.mark.parametrize("s", [0.02, 0.1, 0.5, 2.0])
def test_web_utilisation_keeps_the_p95_of_queue_time_under_target(concurrency, s) -> None:
    policy = dataclasses.replace(WEB, concurrency=concurrency, target_deadline=60)
    utilisation = web_utilisation(policy, s)
    share = erlang_c_wait_share(concurrency, utilisation, policy.target_queue_time, s)
    # the p95 within 0.1 s: Sakasegawa's C errs above Erlang C but for a hair at c = 25
    assert share <= 0.05 * 1.01
    # and not far below it: 1.4 times the utilisation would miss the target
    busier = min(utilisation * 1.4, 0.999)
    assert erlang_c_wait_share(concurrency, busier, policy.target_queue_time, s) > 0.05


def test_web_role_sized_on_queue_time() -> None:
    # c = 2, S = 0.2 s, target 0.1 s: ρ = 0.217 (the response target, t = 1.8 s, allows
    # more); a = 10 -> 46.03 slots, 24 dynos (10 at max): queue time needs 4x a + m
    policy = dataclasses.replace(WEB, max_dynos=30)
    result = capacity(policy, arrival_rate=50.0, processing_seconds=0.2)
    assert result.required_slots == pytest.approx(10 / web_utilisation(policy, 0.2), rel=1e-12)
    assert web_utilisation(policy, 0.2) == pytest.approx(0.217, abs=5e-4)
    assert result.needed_dynos == 24 and result.unmeetable is False
    # a response-time target tighter than the queue's: D - S = 0.05 s at a 1% miss ratio
    tight = dataclasses.replace(policy, target_deadline=0.25)
    assert web_utilisation(tight, 0.2) < web_utilisation(policy, 0.2)


def test_look_ahead_over_boot_time_only_for_rising_rates() -> None:
    rising = capacity(arrival_rate=1.0, processing_seconds=4.0, arrival_rate_slope=0.05)
    # λ' = 1 + 0.05 * 10 = 1.5: just in time 1.5·20·4/66 + 0.33 = 2.15 slots; the load
    # term a = 6, 6 + 0.33 = 6.33 -> 4 dynos
    assert rising.required_slots == pytest.approx(1.5 * H * 4 / H_W_S4 + MARGIN_S4, abs=1e-12)
    assert rising.needed_dynos == 4
    falling = capacity(arrival_rate=1.0, processing_seconds=4.0, arrival_rate_slope=-0.05)
    assert falling.needed_dynos == 3


def test_idle_role_goes_to_min_dynos() -> None:
    idle = capacity(arrival_rate=0.0, processing_seconds=None)
    assert (idle.needed_dynos, idle.desired_dynos, idle.holding) == (0, 0, False)
    floor = capacity(
        dataclasses.replace(WORKER, min_dynos=2), arrival_rate=0.0, processing_seconds=None
    )
    assert floor.desired_dynos == 2


def test_one_job_brings_a_role_back_from_zero() -> None:
    # nothing completed yet, so S is unknown: hold at the current 0, raised to 1. With S
    # known, a job older than the cold-start window D − 2·S − B − 20 s = 29 s gets a dyno
    result = capacity(arrival_rate=0.02, processing_seconds=None, backlog=1, current_dynos=0)
    assert (result.desired_dynos, result.holding) == (1, True)
    known = capacity(
        arrival_rate=0.02, processing_seconds=0.5, backlog=1, current_dynos=0, oldest_age_seconds=30
    )
    assert (known.desired_dynos, known.holding, known.immediate) == (1, False, True)


# A quiet role (quiet-night): with S = 10 s the cold-start window is 180 − 45 − 2·10 − 20 = 95 s
QUIET = dataclasses.replace(
    WORKER, target_deadline=180, boot_time=45, concurrency=4, max_dynos=2, scale_down_window=180
)


def test_a_young_job_at_zero_waits_for_a_later_cold_start() -> None:
    young = capacity(
        QUIET,
        arrival_rate=0.01,
        processing_seconds=10.0,
        backlog=2,
        current_dynos=0,
        oldest_age_seconds=94.9,
    )
    assert (young.needed_dynos, young.desired_dynos, young.immediate) == (0, 0, True)
    assert young.reasons[-1].startswith("cold start deferred: oldest job 94.9s old")
    old = capacity(
        QUIET,
        arrival_rate=0.01,
        processing_seconds=10.0,
        backlog=2,
        current_dynos=0,
        oldest_age_seconds=95.0,
    )
    assert (old.needed_dynos, old.desired_dynos) == (1, 1)


def test_the_cold_start_window_bets_on_s_pooled_over_ten_minutes() -> None:
    # the last minute's S is one 40 s job; the last 10 minutes' jobs average 20 s:
    # V = 180 − 45 − 2·20 − 20 = 75 s, not 180 − 45 − 2·40 − 20 = 35 s
    quiet = {"arrival_rate": 0.01, "processing_seconds": 40.0, "backlog": 1, "current_dynos": 0}
    pooled = capacity(QUIET, **quiet, processing_seconds_10m=20.0, oldest_age_seconds=74.9)
    assert (pooled.needed_dynos, pooled.immediate) == (0, True)
    assert pooled.reasons[-1] == "cold start deferred: oldest job 74.9s old, a dyno from 75s"
    assert capacity(QUIET, **quiet, processing_seconds_10m=20.0, oldest_age_seconds=75).needed_dynos
    assert capacity(QUIET, **quiet, oldest_age_seconds=35).needed_dynos == 1  # S₁₀ unknown: S


def test_a_long_99th_percentile_of_s_shortens_the_cold_start_window() -> None:
    # one job in ten takes 55 s, S₁₀ = 10 s: S₉₉ = 70 s, so the reserve is
    # max(2·10 + 20, 70 + 10) = 80 s and V = 180 − 45 − 80 = 55 s (95 s on S₁₀ alone)
    quiet = {"arrival_rate": 0.01, "processing_seconds": 10.0, "backlog": 1, "current_dynos": 0}
    tail = {**quiet, "processing_seconds_10m": 10.0, "processing_seconds_p99": 70.0}
    assert capacity(QUIET, **tail, oldest_age_seconds=54.9).needed_dynos == 0
    assert capacity(QUIET, **tail, oldest_age_seconds=55).needed_dynos == 1
    # a 99th percentile within 10 s of twice S₁₀ leaves the window at 95 s
    short = {**tail, "processing_seconds_p99": 30.0}
    assert capacity(QUIET, **short, oldest_age_seconds=94.9).needed_dynos == 0
    assert capacity(QUIET, **short, oldest_age_seconds=95).needed_dynos == 1


def test_no_deferred_cold_start_without_the_age_more_than_one_dyno_or_dynos_running() -> None:
    quiet = {"arrival_rate": 0.01, "processing_seconds": 10.0, "backlog": 2}
    unknown = capacity(QUIET, **quiet, current_dynos=0)  # the backend tells no age
    assert unknown.needed_dynos == 1
    crowd = capacity(QUIET, **{**quiet, "backlog": 60}, current_dynos=0, oldest_age_seconds=5)
    assert crowd.needed_dynos == 2  # 60 jobs need more than one dyno
    running = capacity(QUIET, **quiet, current_dynos=1, oldest_age_seconds=5)
    assert (running.needed_dynos, running.immediate) == (1, False)
    tight = dataclasses.replace(QUIET, target_deadline=85)  # window 85 − 2·10 − 45 − 20 = 0
    assert capacity(tight, **quiet, current_dynos=0, oldest_age_seconds=0).needed_dynos == 1
    web = dataclasses.replace(WEB, target_deadline=180, boot_time=45)
    at_zero = capacity(web, arrival_rate=0.01, processing_seconds=0.1, current_dynos=0)
    assert (at_zero.needed_dynos, at_zero.immediate) == (1, False)


def test_an_idle_role_with_sparse_arrivals_goes_to_min_dynos_at_once() -> None:
    # λ'·B = 0.01 · 45 = 0.45 < 1: the next job is expected later than a boot takes
    sparse = capacity(QUIET, arrival_rate=0.01, processing_seconds=10.0, current_dynos=2)
    assert (sparse.needed_dynos, sparse.desired_dynos, sparse.immediate) == (0, 0, True)
    warm = dataclasses.replace(QUIET, min_dynos=1)
    assert capacity(warm, arrival_rate=0.01, processing_seconds=10.0).desired_dynos == 1
    # λ'·B = 0.03 · 45 = 1.35: keep the dyno, the window applies
    dense = capacity(QUIET, arrival_rate=0.03, processing_seconds=10.0, current_dynos=2)
    assert (dense.needed_dynos, dense.immediate) == (1, False)
    # a rising rate counts: λ' = 0.01 + 0.0005 · 45 = 0.0325, λ'·B = 1.46
    rising = capacity(
        QUIET,
        arrival_rate=0.01,
        arrival_rate_slope=0.0005,
        processing_seconds=10.0,
        current_dynos=2,
    )
    assert (rising.needed_dynos, rising.immediate) == (1, False)
    # a job waiting or running keeps it
    busy = capacity(QUIET, arrival_rate=0.01, processing_seconds=10.0, in_progress=1)
    assert busy.needed_dynos == 1


def test_unknown_arrival_rate_holds_at_the_current_count() -> None:
    result = capacity(arrival_rate=None, processing_seconds=4.0, current_dynos=7)
    assert (result.desired_dynos, result.holding) == (7, True)
    assert result.reasons == ("arrival rate unknown: holding at the current 7 dyno(s)",)


def test_unknown_processing_time_with_work_holds_instead_of_scaling_down() -> None:
    result = capacity(arrival_rate=0.0, processing_seconds=None, in_progress=12, current_dynos=6)
    assert (result.desired_dynos, result.holding) == (6, True)


def test_float_rounding_does_not_add_a_dyno() -> None:
    # 3 * 0.1 / 0.1 = 3.0000000000000004 slots: 3 dynos, not 4
    policy = dataclasses.replace(WORKER, concurrency=1, target_deadline=0.15, boot_time=0)
    result = capacity(policy, arrival_rate=0.0, processing_seconds=0.1, backlog=3)
    assert result.required_slots > 3
    assert (result.needed_dynos, result.unmeetable) == (3, False)


def _desired(count: int, immediate: bool = False) -> Capacity:
    return Capacity(count, count, 0.0, False, (), immediate=immediate)


def test_stabiliser_scales_up_at_once_and_down_after_the_window() -> None:
    stabiliser = ScaleDownStabiliser(300)
    assert stabiliser.update(0, _desired(2)) == 2
    assert stabiliser.update(15, _desired(5)) == 5
    assert stabiliser.update(60, _desired(1)) == 5
    assert stabiliser.update(315, _desired(1)) == 5  # t=15 is still inside [15, 315]
    assert stabiliser.update(330, _desired(1)) == 1


def test_stabiliser_lets_an_immediate_count_through_and_still_remembers_the_window() -> None:
    stabiliser = ScaleDownStabiliser(180)
    assert stabiliser.update(0, _desired(1)) == 1
    assert stabiliser.update(15, _desired(0, immediate=True)) == 0
    assert stabiliser.update(30, _desired(0)) == 1  # not immediate: the window's 1 again
    assert stabiliser.update(195, _desired(0)) == 0


def test_rules_window_rounds_up_to_a_step_the_rules_have() -> None:
    windows = [rules_window(s) for s in (0, 1, 45, 60, 250, 300, 5000)]
    assert windows == [0, 30, 60, 60, 300, 300, 3600]


def test_stale_inputs_hold_even_when_the_numbers_say_less() -> None:
    result = capacity(arrival_rate=0.0, processing_seconds=1.0, current_dynos=4, stale=True)
    assert (result.desired_dynos, result.holding) == (4, True)
    assert result.reasons == ("inputs stale: holding at the current 4 dyno(s)",)


_rates = st.floats(0, 100, allow_nan=False)
_seconds = st.floats(0.001, 300, allow_nan=False)
_backlogs = st.floats(0, 10_000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(rate=_rates, seconds=_seconds, backlog=_backlogs, extra=_backlogs, more=_rates)
def test_more_load_or_backlog_never_needs_fewer_dynos(
    rate: float, seconds: float, backlog: float, extra: float, more: float
) -> None:
    base = capacity(arrival_rate=rate, processing_seconds=seconds, backlog=backlog)
    deeper = capacity(arrival_rate=rate, processing_seconds=seconds, backlog=backlog + extra)
    busier = capacity(arrival_rate=rate + more, processing_seconds=seconds, backlog=backlog)
    assert deeper.needed_dynos >= base.needed_dynos
    assert busier.needed_dynos >= base.needed_dynos
    assert WORKER.min_dynos <= base.desired_dynos <= WORKER.max_dynos
    assert base.unmeetable <= deeper.unmeetable and base.unmeetable <= busier.unmeetable
    slots = WORKER.max_dynos * WORKER.concurrency
    window = 60 - seconds - 10
    # what max_dynos serve and a backlog they drain within W after booting: no page
    in_time = rate * seconds <= slots and backlog * seconds <= slots * window
    if seconds + 10 >= 60:
        assert base.unmeetable
    elif in_time:
        assert not base.unmeetable


@settings(max_examples=300, deadline=None)
@given(rate=_rates, seconds=_seconds, backlog=_backlogs)
def test_with_the_count_unknown_the_need_is_at_least_load_and_drain_alone(
    rate: float, seconds: float, backlog: float
) -> None:
    both = capacity(arrival_rate=rate, processing_seconds=seconds, backlog=backlog)
    load = capacity(arrival_rate=rate, processing_seconds=seconds)
    drain = capacity(arrival_rate=0.0, processing_seconds=seconds, backlog=backlog)
    assert both.required_slots >= drain.required_slots
    assert both.needed_dynos >= max(load.needed_dynos, drain.needed_dynos)


@settings(max_examples=300, deadline=None)
@given(rate=_rates, seconds=_seconds, backlog=_backlogs, current=st.integers(0, 30))
def test_a_known_count_only_moves_the_need_towards_it(
    rate: float, seconds: float, backlog: float, current: int
) -> None:
    unknown = capacity(arrival_rate=rate, processing_seconds=seconds, backlog=backlog)
    known = capacity(
        arrival_rate=rate, processing_seconds=seconds, backlog=backlog, current_dynos=current
    )
    assert known.required_slots == unknown.required_slots
    low, high = sorted((current, unknown.needed_dynos))
    assert low <= known.needed_dynos <= high
    needed_for_slots = math.ceil(known.required_slots / WORKER.concurrency - 1e-9)
    assert known.needed_dynos >= needed_for_slots or known.immediate  # a later cold start


@settings(max_examples=200, deadline=None)
@given(current=st.integers(0, 30), backlog=_backlogs, stale=st.booleans())
def test_holding_never_goes_below_the_current_count(
    current: int, backlog: float, stale: bool
) -> None:
    result = capacity(
        arrival_rate=None if not stale else 1.0,
        processing_seconds=2.0,
        backlog=backlog,
        current_dynos=current,
        stale=stale,
    )
    work = backlog > 0 or stale  # a known λ of 1/s is work too
    assert result.holding
    assert result.desired_dynos == (max(current, 1) if work else current)
