"""Sources the exporter reads on every scrape, one module per backend.

A source is one address the exporter reads in one round trip (a Redis server,
a RabbitMQ management API, the Heroku formation poller). It has:

- `address`: the `source` label, the address without credentials;
- `feeds`: the backend/app/role triples it reads for: one dynoscaler_source_up
  series each, so the rules hold exactly the roles a dead source feeds;
- `read() -> list[Sample | HistogramSample]`: read fresh values, raise on any failure
  of the whole source; PartialRead when only some keys or entries were unusable
  (each costs only the queues it feeds).

Redis-based backends (sidekiq, resque, rq, celery, redis_list, bullmq,
dramatiq, and the job timing hashes) are modules with server-wide reads (`shared_commands`,
`parse_shared`) and per-queue reads (`queue_commands`, `parse_queue`): the
Redis source puts every backend's commands for one server into one pipeline and
parses each queue on its own (see redis_source.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from exporter.metrics import HistogramSample, Sample


class Feed(NamedTuple):
    """One backend of one app/role that a source reads for."""

    backend: str
    app: str
    role: str


class Source(Protocol):
    address: str
    feeds: tuple[Feed, ...]

    def read(self) -> list[Sample | HistogramSample]: ...


@dataclass(frozen=True)
class Queue:
    """One configured queue of one app/role."""

    app: str
    role: str
    name: str
    backend: str
    # The backend's key prefix when not its default: RQ's RQ_KEY_PREFIX ("rq"),
    # the Resque namespace ("resque"), kombu's global_keyprefix ("").
    prefix: str | None = None
    # The role's target_deadline: a bound of the enqueue-to-done histogram (timing_reader).
    deadline: float | None = None

    @property
    def labels(self) -> tuple[str, str, str, str]:
        return (self.app, self.role, self.name, self.backend)


def address(url: str) -> str:
    """The URL without user name and password: safe as a label and in logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def feeds(queues: Iterable[Queue]) -> tuple[Feed, ...]:
    """The distinct backend/app/role of the queues, sorted."""
    return tuple(sorted({Feed(queue.backend, queue.app, queue.role) for queue in queues}))


def backends(source: Source) -> tuple[str, ...]:
    """The distinct backends a source reads, sorted."""
    return tuple(sorted({feed.backend for feed in source.feeds}))


def by_url(queues: Iterable[tuple[str, Queue]]) -> dict[str, list[Queue]]:
    """Queues grouped by the URL they are read from, in configuration order."""
    groups: dict[str, list[Queue]] = {}
    for url, queue in queues:
        groups.setdefault(url, []).append(queue)
    return groups


class StaleRead(Exception):
    """A failed read that still has older values worth publishing (the source counts as down).

    `roles`, when given, are the only (app, role) pairs the failure concerns:
    the source's other feeds stay up (e.g. one Heroku app of several unreadable).
    """

    def __init__(
        self,
        message: str,
        samples: list[Sample],
        roles: frozenset[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.samples = samples
        self.roles = roles


@dataclass(frozen=True)
class ReadError:
    """A key or entry a read could not use; it costs only what it feeds.

    `message` names the key and stays the same on every read while the fault
    lasts (the collector logs it when it appears and when it clears). `feeds`
    are the backend/app/role whose queue series it leaves out: their
    dynoscaler_source_up is 0, so the rules hold those roles and no other.
    Empty for a skipped entry (a malformed job) that leaves no series out.
    `count` is how many keys or entries it stands for (the error counter's step).
    """

    backend: str
    message: str
    feeds: frozenset[Feed] = frozenset()
    count: int = 1


class PartialRead(Exception):
    """A read that worked except for some keys or entries: the samples of the rest."""

    def __init__(self, samples: list[Sample | HistogramSample], errors: Sequence[ReadError]):
        super().__init__("; ".join(error.message for error in errors))
        self.samples = samples
        self.errors = tuple(errors)
