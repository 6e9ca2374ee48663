"""Arrival profiles and the Poisson arrivals drawn from them; processing-time distributions."""

from __future__ import annotations

import numpy as np
import pytest

from dynoscaler.config import ConfigError
from dynoscaler.sim.arrivals import build_profile, draw_block
from dynoscaler.sim.service import build_service


def test_profiles_give_the_rates_they_describe():
    times = np.array([0.0, 900.0, 1800.0, 2700.0])
    sine = build_profile({"type": "sine", "mean": 30, "amplitude": 20, "period": 3600})
    assert sine.rates(times) == pytest.approx([30, 50, 30, 10])
    spike = build_profile({"type": "spike", "base": 1, "peak": 9, "start": 900, "duration": 900})
    assert spike.rates(times).tolist() == [1, 9, 1, 1]
    ramp = build_profile({"type": "ramp", "from": 0, "to": 10, "start": 900, "duration": 1800})
    assert ramp.rates(times).tolist() == [0, 0, 5, 10]
    steps = build_profile({"type": "piecewise", "points": [[0, 2], [1800, 4], [2700, 0]]})
    assert steps.rates(times).tolist() == [2, 3, 4, 0]


def test_a_batch_adds_its_jobs_over_its_duration_once_or_every_period():
    times = np.array([0.0, 899.0, 900.0, 904.0, 905.0, 1800.0, 2700.0, 2704.0])
    spec = {"type": "batch", "base": 2, "size": 1000, "start": 900, "duration": 5}
    once = build_profile(spec)
    assert once.rates(times).tolist() == [2, 2, 202, 202, 2, 2, 2, 2]
    hourly = build_profile({**spec, "every": 1800})
    assert hourly.rates(times).tolist() == [2, 2, 202, 202, 2, 2, 202, 202]
    counts, _ = draw_block(np.random.default_rng(3), hourly, 0, 3600, 1.0)
    assert counts.sum() == pytest.approx(2 * 3600 + 2 * 1000, rel=0.03)


def test_arrivals_are_sorted_within_their_ticks_and_poisson_in_number():
    rng = np.random.default_rng(1)
    profile = build_profile({"type": "constant", "rate": 3})
    counts, times = draw_block(rng, profile, first_tick=10, ticks=4000, dt=1.0)
    assert np.all(np.diff(times) >= 0)
    ticks = np.floor(times).astype(int) - 10
    assert np.array_equal(np.bincount(ticks, minlength=4000), counts)
    assert counts.mean() == pytest.approx(3, rel=0.03)
    assert counts.var() == pytest.approx(3, rel=0.1)  # Poisson: variance = mean
    assert (times - np.floor(times)).mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "normal", "mean": 2.0, "cv": 0.3},
        {"type": "lognormal", "mean": 2.0, "cv": 0.5},
        {"type": "exponential", "mean": 2.0},
        {"type": "bimodal", "weight": 0.8, "mean1": 1.0, "mean2": 6.0, "cv": 0.2},
    ],
)
def test_service_times_have_the_stated_mean_and_spread(spec):
    service = build_service(spec)
    samples = service.sample(np.random.default_rng(2), 200_000)
    assert samples.min() > 0
    assert samples.mean() == pytest.approx(service.mean, rel=0.01)
    assert samples.std() == pytest.approx(service.stddev, rel=0.03)
    assert service.mean == pytest.approx(2.0)


def test_bad_profiles_and_distributions_name_the_problem():
    with pytest.raises(ConfigError, match=r"arrivals \(sine\): missing period"):
        build_profile({"type": "sine", "mean": 1, "amplitude": 1})
    with pytest.raises(ConfigError, match="point times must not decrease"):
        build_profile({"type": "piecewise", "points": [[5, 1], [1, 2]]})
    with pytest.raises(ConfigError, match=r"weight \(share of the first mode\)"):
        build_service({"type": "bimodal", "weight": 2, "mean1": 1, "mean2": 2})
