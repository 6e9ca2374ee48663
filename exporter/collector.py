"""The Prometheus collector: reads every source concurrently on each scrape.

Each source gets `source_timeout` seconds; a source that fails or is slow is
reported as dynoscaler_source_up 0 and never fails the scrape. source_up has
one series per backend/app/role the source feeds, so the rules hold exactly
those roles; the scrape duration (one read's time) has one per backend. A
source still busy from an earlier scrape is not read again until it returns, so
a hung server cannot pile up threads. Each change of a source's state is logged
once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.collectors import Feed, Source, StaleRead, backends
from exporter.metrics import HistogramSample, Sample, families

Samples = list[Sample | HistogramSample]
_log = logging.getLogger(__name__)


class ExporterCollector(Collector):
    def __init__(
        self,
        sources: Sequence[Source],
        timeout: float,
        static: Sequence[Sample | HistogramSample] = (),
        extra: Sequence[Callable[[], Samples]] = (),
    ) -> None:
        self.sources = list(sources)
        self.timeout = timeout
        self.static = list(static)
        self.extra = list(extra)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.sources)))
        self._running: dict[int, Future[_Reading]] = {}
        self._up: dict[int, bool] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        deadline = time.monotonic() + self.timeout
        futures = [self._submit(index) for index in range(len(self.sources))]
        samples: Samples = list(self.static)
        for index, future in enumerate(futures):
            samples += self._result(index, future, deadline)
        for produce in self.extra:
            samples += produce()
        yield from families(samples)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, index: int) -> Future[_Reading]:
        with self._lock:
            future = self._running.get(index)
            if future is None or future.done():
                future = self._pool.submit(_timed_read, self.sources[index])
                self._running[index] = future
            return future

    def _result(self, index: int, future: Future[_Reading], deadline: float) -> Samples:
        source = self.sources[index]
        try:
            reading = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            reading = _Reading([], self.timeout, f"no answer within {self.timeout:g}s")
        self._note(index, reading.error)
        duration = "dynoscaler_source_scrape_duration_seconds"
        return [
            *reading.samples,
            *(
                Sample("dynoscaler_source_up", (source.address, *feed), int(reading.up(feed)))
                for feed in source.feeds
            ),
            *(
                Sample(duration, (source.address, backend), reading.seconds)
                for backend in backends(source)
            ),
        ]

    def _note(self, index: int, error: str | None) -> None:
        """Log a source's state only when it changes."""
        source, up = self.sources[index], error is None
        with self._lock:
            before = self._up.get(index)
            self._up[index] = up
        name = f"{source.address} ({', '.join(backends(source))})"
        if not up and before is not False:
            _log.warning("source %s is down: %s", name, error)
        elif up and before is False:
            _log.warning("source %s is up again", name)


@dataclass(frozen=True)
class _Reading:
    samples: Samples
    seconds: float
    error: str | None = None
    failed_roles: frozenset[tuple[str, str]] | None = None  # None: all of the source's roles

    def up(self, feed: Feed) -> bool:
        if self.error is None:
            return True
        return self.failed_roles is not None and (feed.app, feed.role) not in self.failed_roles


def _timed_read(source: Source) -> _Reading:
    started = time.perf_counter()
    try:
        return _Reading(source.read(), time.perf_counter() - started)
    except StaleRead as stale:
        return _Reading(stale.samples, time.perf_counter() - started, str(stale), stale.roles)
    except Exception as error:  # a source's failure must never fail the scrape
        message = f"{type(error).__name__}: {error}"
        return _Reading([], time.perf_counter() - started, message)
