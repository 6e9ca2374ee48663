"""The demo's load: scenarios (arrival rate over time) and a producer of Sidekiq jobs.

The three test cases of the requirements (seeds/002) and the flash sale of
seeds/003, scaled to a few minutes on one machine. The demo role has
`concurrency` 4 and jobs of about 0.5 s, so one dyno finishes about 8 jobs/s.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float  # seconds the producer runs
    job_seconds: float  # mean processing time of one job
    rate: Callable[[float], float]  # jobs per second at t seconds from the start
    load_starts_at: float = 0.0  # when the extra load begins (for reaction times)
    load_ends_at: float = 0.0  # when it ends (the role should scale back down after)


def _step(base: float, peak: float, start: float, end: float) -> Callable[[float], float]:
    return lambda t: peak if start <= t < end else base


def spike(
    base: float = 3,
    peak: float = 40,
    start: float = 20,
    length: float = 50,
    duration: float = 240,
    job_seconds: float = 0.5,
    name: str = "spike",
) -> Scenario:
    """A spike within the target: the maximum number of dynos can meet the deadline."""
    return Scenario(
        name=name,
        description=f"{base:g} jobs/s, {peak:g} jobs/s from {start:g} s to {start + length:g} s",
        duration=duration,
        job_seconds=job_seconds,
        rate=_step(base, peak, start, start + length),
        load_starts_at=start,
        load_ends_at=start + length,
    )


def sine(
    mean: float = 12, amplitude: float = 10, period: float = 90, duration: float = 240
) -> Scenario:
    return Scenario(
        name="sine",
        description=f"{mean:g} +/- {amplitude:g} jobs/s, period {period:g} s",
        duration=duration,
        job_seconds=0.5,
        rate=lambda t: mean + amplitude * math.sin(2 * math.pi * t / period),
        load_starts_at=0,
        load_ends_at=duration,
    )


def out_of_bounds(
    base: float = 3, peak: float = 130, start: float = 30, length: float = 45, duration: float = 180
) -> Scenario:
    """A spike the maximum number of dynos cannot serve in time: DeadlineUnmeetable fires."""
    return spike(base, peak, start, length, duration, name="out-of-bounds")


def flash_sale(duration: float = 210) -> Scenario:
    """seeds/003: 60 orders/s at the peak, one order takes 0.6 s (1.67 orders/s per worker).

    The shop idles at 1 order/s, the sale opens at 20 s, ramps to 60 orders/s
    in 10 s, holds for a minute and tails off to 2 orders/s.
    """

    def rate(t: float) -> float:
        if t < 20:
            return 1.0
        if t < 30:
            return 1.0 + 59.0 * (t - 20) / 10
        if t < 90:
            return 60.0
        return max(2.0, 60.0 * math.exp(-(t - 90) / 10))

    return Scenario(
        name="flash-sale",
        description="seeds/003 flash sale: 1 -> 60 orders/s for a minute, 0.6 s per order",
        duration=duration,
        job_seconds=0.6,
        rate=rate,
        load_starts_at=20,
        load_ends_at=100,
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "spike": spike,
    "sine": sine,
    "out-of-bounds": out_of_bounds,
    "flash-sale": flash_sale,
}


def sidekiq_job(queue: str, seconds: float, now: float) -> dict[str, object]:
    """A job as Sidekiq's client writes it (enqueued_at in epoch seconds, Sidekiq 7)."""
    return {
        "class": "DemoJob",
        "args": [round(seconds, 4)],
        "queue": queue,
        "jid": uuid.uuid4().hex[:24],
        "retry": True,
        "created_at": now,
        "enqueued_at": now,
    }


class Producer:
    """Pushes jobs of a scenario into Sidekiq queues, on its own thread.

    Arrivals follow the scenario's rate with Poisson-like jitter; processing
    times are gamma-distributed around the scenario's mean (coefficient of
    variation 0.5). `pushed` holds (seconds since start, jobs) per tick.

    During `warmup` seconds before the scenario's clock starts it pushes the
    scenario's opening rate: the rules use rates only once they have a full
    minute of samples, so a load change before then gets no answer.
    """

    TICK = 0.1

    def __init__(
        self,
        client: redis.Redis,
        queues: Sequence[str],
        scenario: Scenario,
        seed: int = 3,
        warmup: float = 0.0,
    ) -> None:
        self.client = client
        self.queues = list(queues)
        self.scenario = scenario
        self.warmup = warmup
        self.random = random.Random(seed)
        self.pushed: list[tuple[float, int]] = []
        self.started_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def start(self) -> Producer:
        self.client.sadd("queues", *self.queues)
        self.started_at = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def at(self, scenario_seconds: float) -> float:
        """The unix time of a moment on the scenario's clock (after the warm-up)."""
        if self.started_at is None:
            raise RuntimeError("the producer has not started")
        return self.started_at + self.warmup + scenario_seconds

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            elapsed = time.monotonic() - start
            scenario_time = max(0.0, elapsed - self.warmup)
            if scenario_time >= self.scenario.duration:
                return
            expected = max(0.0, self.scenario.rate(scenario_time)) * self.TICK
            count = self._poisson(expected)
            if count:
                self._push(count)
            self.pushed.append((elapsed, count))
            self._stop.wait(max(0.0, start + elapsed + self.TICK - time.monotonic()))

    def _poisson(self, mean: float) -> int:
        # Knuth's method is fine for the small means of one tick.
        limit, product, count = math.exp(-mean), self.random.random(), 0
        while product > limit:
            count += 1
            product *= self.random.random()
        return count

    def _push(self, count: int) -> None:
        now = time.time()
        shape = 4.0  # coefficient of variation 1/sqrt(4) = 0.5
        with self.client.pipeline(transaction=False) as pipe:
            for _ in range(count):
                queue = self.queues[0] if self.random.random() < 0.8 else self.queues[-1]
                seconds = self.random.gammavariate(shape, self.scenario.job_seconds / shape)
                pipe.lpush(f"queue:{queue}", json.dumps(sidekiq_job(queue, seconds, now)))
            pipe.execute()
