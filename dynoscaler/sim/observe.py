"""What Prometheus would hold: one sample per scrape interval of the exporter's metrics.

Policies read only this view. Series (per role, summed over its queue):
depth, in_progress, oldest_age (seconds), completed (counter), duration_sum and
duration_count (the job duration histogram's _sum/_count), dynos (formation);
and duration_bucket, the histogram's cumulative bucket counts (one column per
DURATION_BUCKETS bound). The helpers follow PromQL: rate() is the increase
between the first and last sample inside the window divided by their distance
(no extrapolation), deriv() a least-squares slope, max_over_time() the largest
sample, histogram_quantile() interpolates linearly inside a bucket.
"""

from __future__ import annotations

import numpy as np

from exporter.metrics import DURATION_BUCKETS

SERIES = (
    "depth",
    "in_progress",
    "oldest_age",
    "completed",
    "duration_sum",
    "duration_count",
    "dynos",
)


class View:
    def __init__(self, capacity: int, scrape_interval: float) -> None:
        self.scrape_interval = scrape_interval
        self.times = np.zeros(capacity)
        self.values = {name: np.zeros(capacity) for name in SERIES}
        self.buckets = np.zeros((capacity, len(DURATION_BUCKETS)))
        self.count = 0

    def record(
        self, now: float, duration_bucket: np.ndarray | None = None, **values: float
    ) -> None:
        """One scrape; duration_bucket defaults to no job in any finite bucket."""
        i = self.count
        self.times[i] = now
        for name in SERIES:
            self.values[name][i] = values[name]
        if duration_bucket is not None:
            self.buckets[i] = duration_bucket
        self.count = i + 1

    def latest(self, name: str) -> float:
        return float(self.values[name][self.count - 1]) if self.count else 0.0

    def age(self, now: float) -> float:
        """Seconds since the last sample (staleness)."""
        return now - self.times[self.count - 1] if self.count else float("inf")

    def window(self, name: str, now: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        lo = np.searchsorted(self.times[: self.count], now - seconds, side="left")
        return self.times[lo : self.count], self.values[name][lo : self.count]

    def increase(self, name: str, now: float, seconds: float) -> tuple[float, float] | None:
        """(increase, elapsed) between the first and last sample in the window."""
        times, values = self.window(name, now, seconds)
        if times.size < 2:
            return None
        return float(values[-1] - values[0]), float(times[-1] - times[0])

    def rate(self, name: str, now: float, seconds: float) -> float | None:
        change = self.increase(name, now, seconds)
        return None if change is None else change[0] / change[1]

    def deriv(self, name: str, now: float, seconds: float) -> float | None:
        return slope(*self.window(name, now, seconds))

    def duration_quantile(self, q: float, now: float, seconds: float) -> float | None:
        """histogram_quantile(q, rate(duration_bucket[seconds])); None where no job
        finished in the window (PromQL's NaN)."""
        first = np.searchsorted(self.times[: self.count], now - seconds, side="left")
        last = self.count - 1
        if last <= first:
            return None
        total = self.values["duration_count"][last] - self.values["duration_count"][first]
        finite = self.buckets[last] - self.buckets[first]
        return histogram_quantile(q, DURATION_BUCKETS, finite, total)

    def max_over_time(self, name: str, now: float, seconds: float) -> float:
        _, values = self.window(name, now, seconds)
        return float(values.max()) if values.size else 0.0


def slope(times: np.ndarray, values: np.ndarray) -> float | None:
    """Least-squares slope per second, as PromQL's deriv(); None under two samples."""
    if len(times) < 2:
        return None
    t = np.asarray(times, dtype=float)
    t = t - t.mean()
    spread = float((t * t).sum())
    return float((t * np.asarray(values, dtype=float)).sum() / spread) if spread else None


def histogram_quantile(
    q: float, bounds: tuple[float, ...], cumulative: np.ndarray, total: float
) -> float | None:
    """PromQL's histogram_quantile on cumulative counts per finite bound, `total` in +Inf:
    the bucket holding rank q·total, interpolated linearly from its lower bound (0 for
    the first); in the +Inf bucket, the largest finite bound. None when total is 0."""
    if total <= 0:
        return None
    rank = q * total
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index == len(bounds):
        return float(bounds[-1])
    below = float(cumulative[index - 1]) if index else 0.0
    start = float(bounds[index - 1]) if index else 0.0
    inside = float(cumulative[index]) - below
    return start + (float(bounds[index]) - start) * (rank - below) / inside
