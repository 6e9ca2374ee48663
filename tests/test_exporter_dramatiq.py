"""Dramatiq read as Dramatiq sees it: messages sent with the real library (`send`,
`send_with_options(delay=...)`), worked by a real dramatiq Worker in this process,
figures compared with the broker's own view (its `qsize` command, the decoded messages'
`message_timestamp`, its maintenance's requeue of a dead worker's messages). Redis DB 13
and RabbitMQ."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator

import dramatiq
import pika
import pytest
import redis
from dramatiq import Message, Worker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from exporter_helpers import RABBITMQ_API, flushed_redis, wait_for

from exporter.collectors import Feed, PartialRead, Queue
from exporter.collectors.redis_source import RedisSource, redis_sources

pytestmark = pytest.mark.timeout(60)

URL = "redis://127.0.0.1:6379/13"
NAMESPACE = "dq-test"


@pytest.fixture(name="db13")
def redis_db13() -> Iterator[redis.Redis]:
    yield from flushed_redis(URL)


def _figures(*queues: Queue) -> dict[tuple[str, str], float]:
    samples = RedisSource(URL, queues, timeout=2).read()
    return {(s.metric.removeprefix("dynoscaler_"), s.labels[2]): s.value for s in samples}


def _mail() -> Queue:
    return Queue("shop", "worker", "mail", "dramatiq", prefix=NAMESPACE)


def _oldest_waiting(db13: redis.Redis, now: float) -> float:
    """The age of the oldest message in the queue's list, by dramatiq's own decoding."""
    ids = db13.lrange(f"{NAMESPACE}:mail", 0, -1)
    bodies = db13.hmget(f"{NAMESPACE}:mail.msgs", ids)
    return now - min(Message.decode(body).message_timestamp for body in bodies) / 1000


def test_waiting_delayed_and_running_messages_on_redis(db13):
    broker = RedisBroker(url=URL, namespace=NAMESPACE)
    release, running = threading.Event(), threading.Semaphore(0)

    @dramatiq.actor(broker=broker, queue_name="mail")
    def send(number: int) -> None:
        running.release()
        release.wait(20)

    send.send(1)
    time.sleep(1.0)
    for number in (2, 3, 4):
        send.send(number)
    due = send.send_with_options(args=(5,), delay=200)
    send.send_with_options(args=(6,), delay=60_000)
    time.sleep(0.4)
    found = _figures(_mail())
    now = time.time()
    assert found[("queue_depth", "mail")] == 5  # four sent and the due one
    assert found[("queue_in_progress", "mail")] == 0
    assert broker.do_qsize("mail") == found[("queue_depth", "mail")] + 1  # + the one not due
    oldest = max(_oldest_waiting(db13, now), now - due.options["eta"] / 1000)
    assert found[("queue_oldest_age_seconds", "mail")] == pytest.approx(oldest, abs=1.0)
    assert oldest >= 1.0

    worker = Worker(broker, worker_threads=2, worker_timeout=100)
    worker.queue_prefetch = 2  # as many as its threads: unacked messages are running ones
    worker.start()
    try:
        for _ in range(2):
            assert running.acquire(timeout=10)
        # Every message not acked yet keeps its body in `.msgs` (dramatiq's qsize adds the
        # fetched ones again from the acks sets): 3 waiting + 2 running once the worker has
        # moved the due delayed message to the queue (it holds it in memory for a moment in
        # between, where neither the list nor the delay queue shows it).
        bodies = f"{NAMESPACE}:mail.msgs"
        wait_for(lambda: db13.hlen(bodies) == 3 + 2, timeout=10, interval=0.05)
        busy = _figures(_mail())
        assert busy[("queue_in_progress", "mail")] == 2
        assert busy[("queue_depth", "mail")] == 3
        assert busy[("queue_oldest_age_seconds", "mail")] == pytest.approx(
            _oldest_waiting(db13, time.time()), abs=1.0
        )
        release.set()
        wait_for(lambda: db13.hlen(f"{NAMESPACE}:mail.msgs") == 0, timeout=10, interval=0.1)
    finally:
        release.set()
        worker.stop()
    done = _figures(_mail())
    assert (done[("queue_depth", "mail")], done[("queue_in_progress", "mail")]) == (0, 0)
    assert done[("queue_oldest_age_seconds", "mail")] == 0


_CRASHING_WORKER = textwrap.dedent(
    f"""
    import time
    import dramatiq
    from dramatiq import Worker
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url="{URL}", namespace="{NAMESPACE}")

    @dramatiq.actor(broker=broker, queue_name="mail")
    def send(number):
        print("started", flush=True)
        time.sleep(60)

    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.queue_prefetch = 2
    worker.start()
    time.sleep(60)
    """
)


def test_a_dead_worker_s_messages_are_waiting(db13):
    """A worker killed mid-message keeps its fetched ids in its acks set. Once its heartbeat
    is older than the broker's time-out, dramatiq's maintenance puts them back on the queue:
    they are waiting work, not in progress."""
    broker = RedisBroker(url=URL, namespace=NAMESPACE)

    @dramatiq.actor(broker=broker, queue_name="mail")
    def send(number: int) -> None: ...

    for number in range(3):
        send.send(number)
    worker = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WORKER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "started"
        live = _figures(_mail())
        assert (live[("queue_depth", "mail")], live[("queue_in_progress", "mail")]) == (1, 2)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    # The 60 s without a heartbeat, without waiting them: its last heartbeat moved back.
    heartbeats = f"{NAMESPACE}:__heartbeats__"
    (acks,) = db13.keys(f"{NAMESPACE}:__acks__.*.mail")
    dead = acks.decode().removeprefix(f"{NAMESPACE}:__acks__.").removesuffix(".mail")
    db13.zadd(heartbeats, {dead: time.time() * 1000 - 61_000})
    found = _figures(_mail())
    assert (found[("queue_depth", "mail")], found[("queue_in_progress", "mail")]) == (3, 0)
    oldest = _oldest_from_hash(db13, time.time())
    assert found[("queue_oldest_age_seconds", "mail")] == pytest.approx(oldest, abs=1.0)

    broker.maintenance_chance = MAINTENANCE_SCALE  # dramatiq's own maintenance, now
    broker.do_requeue("mail")
    assert db13.llen(f"{NAMESPACE}:mail") == found[("queue_depth", "mail")]


def _oldest_from_hash(db13: redis.Redis, now: float) -> float:
    bodies = db13.hvals(f"{NAMESPACE}:mail.msgs")
    return now - min(Message.decode(body).message_timestamp for body in bodies) / 1000


def test_dead_letters_on_redis(db13):
    """A message out of retries goes to `<q>.XQ`: counted as dead, not waiting."""
    broker = RedisBroker(url=URL, namespace=NAMESPACE)

    @dramatiq.actor(broker=broker, queue_name="mail", max_retries=0)
    def fail() -> None:
        raise RuntimeError("fails on purpose")

    fail.send()
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        wait_for(lambda: db13.zcard(f"{NAMESPACE}:mail.XQ") == 1, timeout=10, interval=0.1)
    finally:
        worker.stop()
    found = _figures(_mail())
    assert found[("queue_dead", "mail")] == 1
    assert (found[("queue_depth", "mail")], found[("queue_in_progress", "mail")]) == (0, 0)


def test_a_message_in_another_layout_is_decoded(db13):
    """The script matches dramatiq's own JSON layout for speed; other JSON is decoded."""
    sent = time.time() - 10
    body = {"message_timestamp": int(sent * 1000), "queue_name": "mail", "options": {}}
    db13.hset("dramatiq:mail.msgs", "m1", json.dumps(body, indent=1))
    db13.rpush("dramatiq:mail", "m1")
    eta = {**body, "options": {"eta": int((sent + 5) * 1000)}}  # due 5 s ago
    db13.hset("dramatiq:mail.DQ.msgs", "d1", json.dumps(eta, indent=1))
    db13.rpush("dramatiq:mail.DQ", "d1")
    samples = RedisSource(URL, [Queue("shop", "worker", "mail", "dramatiq")], timeout=2).read()
    found = {s.metric.removeprefix("dynoscaler_"): s.value for s in samples}
    assert found["queue_depth"] == 2
    assert found["queue_oldest_age_seconds"] == pytest.approx(time.time() - sent, abs=1.0)


def test_a_bad_key_or_message_costs_only_its_own_queue(db13):
    broker = RedisBroker(url=URL, namespace="dramatiq")

    @dramatiq.actor(broker=broker, queue_name="mail")
    def send(number: int) -> None: ...

    send.send(1)
    db13.rpush("dramatiq:mail", "no-such-message")  # its body is gone: no age, no error
    db13.hset("dramatiq:mail.msgs", "garbage", "not json")
    db13.rpush("dramatiq:mail", "garbage")
    db13.set("dramatiq:broken", "a string, not a list")
    queues = [
        Queue("shop", "worker", "mail", "dramatiq"),
        Queue("shop", "cron", "broken", "dramatiq"),
    ]
    with pytest.raises(PartialRead) as caught:
        RedisSource(URL, queues, timeout=2).read()
    (error,) = caught.value.errors
    assert error.message.startswith("Lua script on dramatiq:broken: WRONGTYPE")
    assert error.message.endswith("queue broken of shop/cron left out")
    assert error.feeds == {Feed("dramatiq", "shop", "cron")}
    figures = {(s.metric, s.labels[2]): s.value for s in caught.value.samples}
    assert figures[("dynoscaler_queue_depth", "mail")] == 3
    assert figures[("dynoscaler_queue_oldest_age_seconds", "mail")] < 5


@pytest.fixture
def rabbit_queue() -> Iterator[str]:
    """A fresh queue name; dramatiq's three queues for it are deleted afterwards."""
    name = f"mail-{uuid.uuid4().hex[:8]}"
    yield name
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = connection.channel()
    for suffix in ("", ".DQ", ".XQ"):
        channel.queue_delete(name + suffix)
    connection.close()


def test_dramatiq_on_rabbitmq(rabbit_queue):
    """Dramatiq acks a message when its actor is done: unacked messages are running
    (prefetch = threads) and `ack` counts finished ones. It sets no AMQP timestamp.

    One message fails (no retries: a dead letter in `<q>.XQ`), then four, one thread: two
    done, the third running (it blocks), the fourth waiting.
    """
    broker = RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:5672/")
    release = threading.Event()

    @dramatiq.actor(broker=broker, queue_name=rabbit_queue)
    def send(number: int) -> None:
        if number == 2:
            release.wait(20)

    @dramatiq.actor(broker=broker, queue_name=rabbit_queue, max_retries=0)
    def fail() -> None:
        raise RuntimeError("fails on purpose")

    fail.send()
    for number in range(4):
        send.send(number)
    send.send_with_options(args=(9,), delay=60_000)  # in <queue>.DQ: not waiting yet
    queue = Queue("shop", "worker", rabbit_queue, "dramatiq")
    (source,) = redis_sources([(RABBITMQ_API, queue)], 5)  # as the exporter routes it

    def settled() -> dict[str, float] | None:
        """The figures once the management API's statistics show the two acks."""
        found = {s.metric.removeprefix("dynoscaler_"): s.value for s in source.read()}
        wanted = ("jobs_completed", "queue_depth", "queue_in_progress", "queue_dead")
        return found if tuple(found.get(name) for name in wanted) == (2, 1, 1, 1) else None

    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.queue_prefetch = 1
    worker.start()
    try:
        found = wait_for(settled, timeout=15, interval=0.5)
    finally:
        release.set()
        worker.stop()
        broker.close()
    assert "queue_oldest_age_seconds" not in found  # no timestamp to read
