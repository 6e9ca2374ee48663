"""The Prometheus collector: reads every source concurrently on each scrape.

Each source gets `source_timeout` seconds; a source that fails or is slow is
reported as dynoscaler_source_up 0 and never fails the scrape. source_up has
one series per backend/app/role the source feeds, so the rules hold exactly
those roles; the scrape duration (one read's time) has one per backend. A
source still busy from an earlier scrape is not read again until it returns, so
a hung server cannot pile up threads. Each change of a source's state is logged
once.

A read that worked except for some keys or entries (PartialRead: a queue key of
the wrong type, a malformed job) leaves out only those queues' series and holds
only their roles (source_up 0 for their backend/app/role); every such key or
entry adds one to dynoscaler_source_read_errors_total{source,backend}, and each
is logged once when it appears and once when it clears.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.collectors import Feed, PartialRead, ReadError, Source, StaleRead, backends
from exporter.metrics import HistogramSample, Sample, families

Samples = list[Sample | HistogramSample]
_log = logging.getLogger(__name__)


class ExporterCollector(Collector):
    def __init__(
        self,
        sources: Sequence[Source],
        timeout: float,
        extra: Sequence[Callable[[], Samples]] = (),
    ) -> None:
        self.sources = list(sources)
        self.timeout = timeout
        self.extra = list(extra)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.sources)))
        self._running: dict[int, Future[_Reading]] = {}
        self._up: dict[int, bool] = {}
        self._faults: dict[int, set[str]] = {}  # the ReadError messages of each source's last read
        self._read_errors: Counter[tuple[int, str]] = Counter()  # (source, backend) -> errors
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        deadline = time.monotonic() + self.timeout
        futures = [self._submit(index) for index in range(len(self.sources))]
        samples: Samples = []
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
        self._count(index, reading)
        duration = "dynoscaler_source_scrape_duration_seconds"
        errors = "dynoscaler_source_read_errors"
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
            *(
                Sample(errors, (source.address, backend), self._read_errors[(index, backend)])
                for backend in backends(source)
            ),
        ]

    def _count(self, index: int, reading: _Reading) -> None:
        """Count a read's unusable keys and entries; log each when it appears and clears."""
        if reading.error is not None:
            return  # the whole source is down: its keys were not read at all
        source = self.sources[index]
        messages = {error.message for error in reading.errors}
        with self._lock:
            for error in reading.errors:
                self._read_errors[(index, error.backend)] += error.count
            before = self._faults.get(index, set())
            self._faults[index] = messages
        name = f"{source.address} ({', '.join(backends(source))})"
        for message in sorted(messages - before):
            _log.warning("source %s: %s", name, message)
        for message in sorted(before - messages):
            _log.warning("source %s: cleared: %s", name, message)

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
    errors: tuple[ReadError, ...] = ()  # keys or entries a working read could not use
    held: frozenset[Feed] = field(init=False)  # feeds whose queue series those errors left out

    def __post_init__(self) -> None:
        held = frozenset(feed for error in self.errors for feed in error.feeds)
        object.__setattr__(self, "held", held)

    def up(self, feed: Feed) -> bool:
        if self.error is None:
            return feed not in self.held
        return self.failed_roles is not None and (feed.app, feed.role) not in self.failed_roles


def _timed_read(source: Source) -> _Reading:
    started = time.perf_counter()
    try:
        return _Reading(source.read(), time.perf_counter() - started)
    except PartialRead as partial:
        return _Reading(partial.samples, time.perf_counter() - started, errors=partial.errors)
    except StaleRead as stale:
        return _Reading(stale.samples, time.perf_counter() - started, str(stale), stale.roles)
    except Exception as error:  # a source's failure must never fail the scrape
        message = f"{type(error).__name__}: {error}"
        return _Reading([], time.perf_counter() - started, message)
