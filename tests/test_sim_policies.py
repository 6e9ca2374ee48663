"""Each baseline's rule on hand-computed cases, and dynoscaler's inputs from scraped series."""

from __future__ import annotations

import numpy as np
import pytest

from dynoscaler.model import RoleInputs
from dynoscaler.sim.alerting import ScaleAlert
from dynoscaler.sim.metrics import Completions
from dynoscaler.sim.observe import View, histogram_quantile
from dynoscaler.sim.policies import build
from dynoscaler.sim.policies.base import Context, Decision
from dynoscaler.sim.policies.guv import guv_workers
from dynoscaler.sim.policies.hirefire import hirefire_dynos
from dynoscaler.sim.policies.proportional import hpa_recommendation
from exporter.metrics import DURATION_BUCKETS
from tests.sim_support import scenario

ROLE = {"min_dynos": 1, "max_dynos": 50, "concurrency": 10, "target_deadline": 60}


def _context(**role) -> Context:
    case = scenario(role={**ROLE, **role}, service={"type": "lognormal", "mean": 2.0, "cv": 0.5})
    return Context(case.role, case.service, scrape_interval=15)


def _view(samples: list[dict[str, float]], every: float = 15.0) -> View:
    view = View(capacity=len(samples) + 1, scrape_interval=every)
    base = dict.fromkeys(
        ("depth", "in_progress", "oldest_age", "completed", "duration_sum", "duration_count"), 0.0
    )
    for i, values in enumerate(samples):
        view.record(i * every, **{**base, "dynos": 1.0, **values})
    return view


def test_guv_workers_from_queue_length():
    # target = 60 - 2.33 * 1 = 57.67; ceil(95 / 10) * 2 / (57.67 - 2) = 0.359 -> 1
    assert guv_workers(95, 10, mean=2, stddev=1, deadline=60) == 1
    # target = 10 - 2.33 = 7.67; 1000 * 2 / 5.67 = 352.7 -> 353
    assert guv_workers(1000, 1, mean=2, stddev=1, deadline=10) == 353
    # target - mean < mean: divide by the mean, i.e. one worker per job
    assert guv_workers(30, 1, mean=2, stddev=1, deadline=5) == 30


def test_guv_scales_down_no_lower_than_its_120_s_history():
    guv = build("guv", _context())  # mean 2 (the scenario's), stddev 1
    deep, empty = {"depth": 3000.0}, {"depth": 0.0}
    # ceil(3000 / 10) * 2 / 55.67 = 10.8 -> 11
    assert guv.decide(_view([deep]), 0.0, 1).desired == 11
    assert guv.decide(_view([deep, empty]), 30.0, 11).desired == 11
    assert guv.decide(_view([deep, empty]), 90.0, 11).desired == 11
    assert guv.decide(_view([deep, empty]), 120.0, 11).desired == 1


def test_hpa_recommendation_with_tolerance():
    assert hpa_recommendation(4, jobs=100, target=20, tolerance=0.1) == 5  # 4 * 25/20
    assert hpa_recommendation(4, jobs=84, target=20, tolerance=0.1) == 4  # 1.05: within 10%
    assert hpa_recommendation(4, jobs=40, target=20, tolerance=0.1) == 2
    assert hpa_recommendation(0, jobs=45, target=20, tolerance=0.1) == 3  # KEDA activation


def test_hpa_limits_scale_up_and_stabilises_scale_down():
    hpa = build("hpa", _context(), {"target": 10})
    assert hpa.decide(_view([{"depth": 1000.0}]), 0.0, 2).desired == 6  # max(2x, +4)
    deep = _view([{"depth": 300.0}])  # wants 30: doubles per 15 s sync on the way
    assert [hpa.decide(deep, t, n).desired for t, n in ((15, 6), (30, 12), (45, 24))] == [
        12,
        24,
        30,
    ]
    low = _view([{"depth": 10.0}])
    assert hpa.decide(low, 100.0, 30).desired == 30  # the 300 s window remembers 30
    assert hpa.decide(low, 346.0, 30).desired == 1


def test_keda_is_the_hpa_rule_polled_every_30_s():
    keda = build("keda", _context(min_dynos=0), {"target": 10})
    assert keda.interval == 30.0
    assert keda.decide(_view([{"depth": 45.0}]), 0.0, 0).desired == 5  # activation from zero
    assert keda.decide(_view([{"depth": 45.0}]), 30.0, 5).desired == 5  # 0.9: within 10%


def test_hirefire_ratio_and_zero_when_empty():
    assert hirefire_dynos(0, 5) == 0
    assert hirefire_dynos(11, 5) == 3
    hirefire = build("hirefire", _context(min_dynos=0), {"ratio": 5})
    assert hirefire.decide(_view([{"depth": 7.0, "in_progress": 4.0}]), 0.0, 1).desired == 3
    assert hirefire.decide(_view([{}]), 60.0, 3).desired == 0


def test_threshold_steps_out_above_20_and_in_after_5_minutes_below_5():
    rule = build("threshold", _context())
    assert rule.decide(_view([{"depth": 25.0}]), 0.0, 2).desired == 3
    assert rule.decide(_view([{"depth": 25.0}]), 30.0, 3).desired == 3  # 60 s cooldown
    assert rule.decide(_view([{"depth": 25.0}] * 5), 60.0, 3).desired == 4
    quiet = _view([{"depth": 4.0}] * 30)  # 435 s of samples below 5
    assert rule.decide(quiet, 435.0, 4).desired == 3
    mixed = _view([{"depth": 4.0}] * 20 + [{"depth": 6.0}] + [{"depth": 4.0}] * 9)
    assert rule.decide(mixed, 600.0, 4).desired == 4


def test_judoscale_up_one_per_3_minutes_down_after_10_minutes_below_range():
    judo = build("judoscale", _context())  # range 2 s .. 10 s for a 60 s deadline
    slow = _view([{"oldest_age": 20.0}])
    assert judo.decide(slow, 0.0, 2).desired == 3
    assert judo.decide(slow, 170.0, 3).desired == 3
    assert judo.decide(slow, 180.0, 3).desired == 4
    fast = _view([{"oldest_age": 1.0}] * 45)  # 660 s of samples below 2 s
    assert judo.decide(fast, 660.0, 4).desired == 3
    assert judo.decide(fast, 670.0, 3).desired == 3  # the next step waits another 10 minutes


# 75 s of samples: 10 jobs/s complete, 20 s of processing per second, the queue grows 1 job/s
GROWING_QUEUE = [
    {
        "completed": 150.0 * i,
        "duration_count": 150.0 * i,
        "duration_sum": 300.0 * i,
        "depth": 15.0 * i,
    }
    for i in range(6)
]


def test_dynoscaler_estimates_rate_and_processing_time_as_the_rules_do():
    policy = build("dynoscaler", _context())
    inputs = policy.inputs(_view(GROWING_QUEUE), 75.0, current=3)
    assert inputs.arrival_rate == pytest.approx(11.0)
    assert inputs.processing_seconds == pytest.approx(2.0)
    assert inputs.backlog == 75.0
    assert inputs.current_dynos == 3


def test_dynoscaler_decides_the_models_count_and_holds_it_for_the_window():
    policy = build("dynoscaler", _context(concurrency=5, scale_down_window=60))  # D 60 s, B 0
    # λ = 11/s, S = 2 s, Q = 75, h = B + 10 = 10 s, W = 58 s: just in time
    # (75 + 11·10)·2/68 + ln(100)·2/58 = 5.60 slots (the drain 75·2/58 = 2.59 is smaller)
    # -> 2 dynos, above the 1 now (the load term's 22.16 slots only bound a scale-down)
    assert policy.decide(_view(GROWING_QUEUE), 75.0, 1).desired == 2
    quiet = _view([{}] * 19)  # nothing arrives, waits or runs: the model needs min_dynos
    assert policy.decide(quiet, 135.0, 2).desired == 2  # 75 s is inside [75, 135]
    assert policy.decide(quiet, 150.0, 2).desired == 1


def test_dynoscaler_at_zero_dynos_uses_the_last_processing_time_of_the_last_10_minutes():
    policy = build("dynoscaler", _context(min_dynos=0))
    done = {"completed": 1.0, "duration_count": 1.0, "duration_sum": 8.0}
    view = _view([{}] + [done] * 60)  # one 8 s job completes by 15 s, nothing after
    assert policy.inputs(view, 60.0, current=1).processing_seconds == pytest.approx(8.0)
    assert policy.inputs(view, 120.0, current=1).processing_seconds is None  # dynos, no data
    assert policy.inputs(view, 660.0, current=0).processing_seconds == pytest.approx(8.0)
    assert policy.inputs(view, 675.0, current=0).processing_seconds is None  # 615 s since


def test_dynoscaler_pools_the_processing_time_of_the_last_10_minutes_for_the_cold_start():
    policy = build("dynoscaler", _context(min_dynos=0))
    first = {"completed": 1.0, "duration_count": 1.0, "duration_sum": 8.0}
    second = {"completed": 2.0, "duration_count": 2.0, "duration_sum": 28.0}
    samples = [{}] + [first] * 20 + [second] * 50  # an 8 s job by 15 s, a 20 s one by 315 s

    def at(now: float, current: int) -> RoleInputs:  # the samples scraped until now
        return policy.inputs(_view(samples[: int(now // 15) + 1]), now, current)

    assert at(60.0, current=1).processing_seconds_10m == pytest.approx(8.0)
    both = at(330.0, current=1)
    assert both.processing_seconds == pytest.approx(20.0)
    assert both.processing_seconds_10m == pytest.approx(14.0)  # (8 + 20) / 2
    alone = at(900.0, current=0)  # the 8 s job was measured 840 s ago
    assert alone.processing_seconds_10m == pytest.approx(20.0)


def test_a_changed_count_reaches_the_scaler_at_the_repeat_every_second_flush():
    """Resend delay 5 s = the evaluation interval: Prometheus sends every 10 s; group_wait
    0, group_interval = repeat_interval = 10 s: a firing alert is re-notified every 20 s."""
    alert = ScaleAlert(resend_delay=5, group_wait=0, group_interval=10, repeat_interval=10)
    assert alert.delay(0, desired=3, current=2) == 0  # fires: a new group, flushed at once
    assert alert.delay(5, desired=4, current=2) is None  # not re-sent yet: 4 never arrives
    assert alert.delay(10, desired=4, current=2) == 10  # sent; the flush at 10 is no repeat
    assert alert.delay(15, desired=5, current=2) is None
    assert alert.delay(20, desired=5, current=2) == 0  # the repeat, 20 s after the first
    assert alert.delay(30, desired=6, current=2) == 10  # the next one at 40


def test_scale_role_fires_again_at_its_groups_next_flush_while_the_group_lives():
    alert = ScaleAlert(resend_delay=5, group_wait=0, group_interval=10, repeat_interval=10)
    assert alert.delay(0, desired=1, current=2) == 0  # down
    assert alert.delay(5, desired=2, current=2) is None  # resolved: nothing to act on
    assert alert.delay(15, desired=1, current=2) == 5  # down again: the group's flush at 20
    assert alert.delay(25, desired=3, current=2) == 5  # up: a new alert, the flush at 30
    assert alert.delay(30, desired=2, current=2) is None  # resolved at 30
    # Prometheus re-sends a resolved alert for 15 minutes; after that the group is gone
    # and a new one is flushed after group_wait
    assert alert.delay(925, desired=3, current=2) == 5  # the group's flush at 930
    assert alert.delay(935, desired=2, current=2) is None
    assert alert.delay(1840, desired=3, current=2) == 0


def test_scale_role_heard_after_group_wait_in_a_new_group():
    alert = ScaleAlert(resend_delay=5, group_wait=3, group_interval=10, repeat_interval=30)
    assert alert.delay(0, desired=3, current=2) == 3
    # flushes at 13, 23, 33, 43: the first more than 30 s after the one at 3 is at 43
    assert alert.delay(10, desired=4, current=2) == 43 - 10
    assert alert.delay(20, desired=4, current=2) == 43 - 20


def test_dynoscaler_sends_nothing_while_desired_equals_the_formation():
    policy = build("dynoscaler", _context())
    assert policy.delay_for(0.0, Decision(2), 2) is None
    assert policy.delay_for(15.0, Decision(3), 2) == 0.0  # Alertmanager's group_wait
    slower = build("dynoscaler", _context(), {"delay": 2.0})  # the webhook and Heroku API
    assert slower.delay_for(0.0, Decision(3), 2) == 2.0
    assert slower.delay_for(15.0, Decision(2), 2) is None
    hpa = build("hpa", _context())
    assert hpa.delay_for(0.0, Decision(2), 2) == hpa.delay


def test_dynoscaler_sees_no_trend_until_its_rate_was_recorded_a_minute_ago():
    policy = build("dynoscaler", _context())
    # completions +15, +30, +45, ... per 15 s: the rate rises by 1 job/s every 15 s
    rising = [{"completed": 7.5 * i * (i + 1)} for i in range(20)]
    evaluations = {}  # time -> inputs, one evaluation every 15 s on the samples until then
    for now in range(0, 181, 15):
        evaluations[now] = policy.inputs(_view(rising[: now // 15 + 1]), float(now), current=2)
    first_rate = min(now for now, inputs in evaluations.items() if inputs.arrival_rate)
    for now, inputs in evaluations.items():
        trend_known = now >= first_rate + 60
        assert (inputs.arrival_rate_slope > 0) == trend_known, now


def test_histogram_quantile_interpolates_in_its_bucket_as_promql_does():
    bounds = (5.0, 45.0, 60.0)
    nine_short_one_long = np.array([9.0, 9.0, 10.0])  # cumulative; 10 jobs in all
    assert histogram_quantile(0.99, bounds, nine_short_one_long, 10.0) == pytest.approx(58.5)
    assert histogram_quantile(0.5, bounds, nine_short_one_long, 10.0) == pytest.approx(5 / 9 * 5)
    beyond = np.array([9.0, 9.0, 9.0])  # the tenth job took more than 60 s: the +Inf bucket
    assert histogram_quantile(0.99, bounds, beyond, 10.0) == 60.0
    assert histogram_quantile(0.99, bounds, np.zeros(3), 0.0) is None  # PromQL: NaN


def test_dynoscaler_reads_the_99th_percentile_of_the_last_hours_jobs():
    policy = build("dynoscaler", _context(min_dynos=0))
    completions = Completions()  # nine 4 s jobs and one of 55 s, all done at 20 s
    completions.started(np.full(10, 20.0), np.array([4.0] * 9 + [55.0]))
    view = View(capacity=300, scrape_interval=15)
    for i in range(300):
        completions.count_until(i * 15.0)
        counted = {"completed": completions.count, "duration_count": completions.count}
        sampled = {"depth": 0.0, "in_progress": 0.0, "oldest_age": 0.0, "dynos": 0.0}
        view.record(
            i * 15.0,
            duration_bucket=completions.buckets,
            duration_sum=completions.work,
            **counted,
            **sampled,
        )
    assert completions.buckets[DURATION_BUCKETS.index(5)] == 9
    assert completions.buckets[DURATION_BUCKETS.index(60)] == 10
    # rank 0.99·10 = 9.9 is in (45, 60], which holds the one job above the nine
    inputs = policy.inputs(view, 300.0, current=0)
    assert inputs.processing_seconds_p99 == pytest.approx(45 + 15 * 0.9)
    # an hour after the jobs the window holds no increase: unknown, as PromQL's NaN
    assert policy.inputs(view, 3645.0, current=0).processing_seconds_p99 is None


def test_dynoscaler_records_the_99th_percentile_once_a_minute_as_its_rule_group_does():
    policy = build("dynoscaler", _context(min_dynos=0))
    assert policy.params["job_quantile_interval"] == 60.0  # capacity.yml's tail group
    completions = Completions()  # ten 4 s jobs, done at 20 s
    completions.started(np.full(10, 20.0), np.full(10, 4.0))
    view = View(capacity=20, scrape_interval=15)
    tails = {}  # evaluation time -> S₉₉ read, an evaluation after each scrape
    for i in range(6):
        completions.count_until(i * 15.0)
        view.record(
            i * 15.0,
            depth=0.0,
            in_progress=0.0,
            oldest_age=0.0,
            dynos=0.0,
            completed=completions.count,
            duration_count=completions.count,
            duration_sum=completions.work,
            duration_bucket=completions.buckets,
        )
        tails[i * 15.0] = policy.inputs(view, i * 15.0, current=0).processing_seconds_p99
    # the jobs are in the scrape at 30 s, but the group records S₉₉ at 0 s and 60 s;
    # rank 9.9 of the 10 jobs, all in the bucket (2.5, 5]
    assert tails[30.0] is None and tails[45.0] is None
    assert tails[60.0] == tails[75.0] == pytest.approx(2.5 + 2.5 * 0.99)
