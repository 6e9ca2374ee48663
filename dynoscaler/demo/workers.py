"""Demo dynos: worker processes the fake Heroku starts and stops as the formation changes.

A dyno process (`python -m dynoscaler.demo.workers ...`) boots for `--boot`
seconds, like a Heroku dyno, then runs `--concurrency` threads that take
Sidekiq jobs with BRPOP and sleep for each job's duration (its first argument),
timed by exporter.timing (processing and enqueue-to-done), taking from its
queues in random order (Sidekiq's weighted ordering with equal weights). It
registers as a Sidekiq process (the `processes` set, a heartbeat hash, a
`<identity>:work` hash per running job), so the exporter counts jobs in
progress the way it does for real Sidekiq, and it counts the jobs it finished
in `demo:done:<queue>` and those past the deadline in `demo:late:<queue>`, its
own count apart from exporter.timing (dynoscaler.demo.qos compares them). On
SIGTERM it stops taking jobs, finishes the running ones and deregisters.

DynoPool, in the demo process, keeps one dyno process per formation quantity.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence

import redis

from dynoscaler.demo.supervisor import Child, Supervisor
from exporter.timing import JobTimer

HEARTBEAT_SECONDS = 5
HEARTBEAT_TTL = 60  # Sidekiq's: a process hash without a beat for 60 s is dead
LATE_PREFIX = "demo:late:"
DONE_PREFIX = "demo:done:"


class Dyno:
    """One worker dyno: a Sidekiq-compatible process with `concurrency` threads."""

    def __init__(
        self, client: redis.Redis, queues: Sequence[str], concurrency: int, deadline: float
    ) -> None:
        self.client = client
        self.queues = list(queues)
        self.concurrency = concurrency
        self.deadline = deadline
        self.identity = f"{socket.gethostname()}:{os.getpid()}:demo"
        self.stopping = threading.Event()
        self.parent = os.getppid()
        self.timers = {queue: JobTimer(client, queue) for queue in self.queues}

    def run(self) -> None:
        self._register()
        threads = [
            threading.Thread(target=self._work, args=(f"tid-{n}",), daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            self._beat()
            if os.getppid() != self.parent:  # the demo died without stopping us: do not linger
                self.stopping.set()
        for thread in threads:
            thread.join(timeout=30)
        self.client.srem("processes", self.identity)
        self.client.delete(self.identity, f"{self.identity}:work")

    def _register(self) -> None:
        self.client.sadd("processes", self.identity)
        self._beat()

    def _beat(self) -> None:
        info = {"hostname": socket.gethostname(), "pid": os.getpid(), "queues": self.queues}
        with self.client.pipeline() as pipe:
            pipe.hset(
                self.identity,
                mapping={"info": json.dumps(info), "beat": time.time()},
            )
            pipe.expire(self.identity, HEARTBEAT_TTL)
            pipe.execute()

    def _work(self, tid: str) -> None:
        keys = [f"queue:{queue}" for queue in self.queues]
        while not self.stopping.is_set():
            # Sidekiq's weighted ordering with equal weights: the queues in a new random
            # order for every fetch. Strict ordering would starve the later queues while
            # the first has a backlog, which the capacity model (one FIFO per role)
            # does not see.
            random.shuffle(keys)
            taken = self.client.brpop(keys, timeout=1)
            if taken is None:
                continue
            key, payload = taken
            self._perform(tid, key.decode().removeprefix("queue:"), payload)

    def _perform(self, tid: str, queue: str, payload: bytes) -> None:
        job = json.loads(payload)
        work_key = f"{self.identity}:work"
        entry = {"queue": queue, "payload": job, "run_at": time.time()}
        self.client.hset(work_key, tid, json.dumps(entry))
        with self.timers[queue].job(enqueued_at=float(job["enqueued_at"])):
            time.sleep(float(job["args"][0]))
        finished = time.time()
        with self.client.pipeline() as pipe:
            pipe.hdel(work_key, tid)
            pipe.incr("stat:processed")
            pipe.incr(DONE_PREFIX + queue)
            if finished - float(job["enqueued_at"]) > self.deadline:
                pipe.incr(LATE_PREFIX + queue)
            pipe.execute()


class DynoPool:
    """Keeps as many dyno processes per app/role as the fake Heroku's formation says.

    Registered as a formation listener, it is called from the fake's request
    threads; a lock keeps concurrent changes in order.
    """

    def __init__(self, supervisor: Supervisor, argv_for: dict[tuple[str, str], list[str]]) -> None:
        self.supervisor = supervisor
        self.argv_for = argv_for
        self.dynos: dict[tuple[str, str], list[Child]] = {key: [] for key in argv_for}
        self._lock = threading.Lock()
        self._serial = 0

    def __call__(self, app: str, role: str, old: int, new: int) -> None:
        self.scale(app, role, new)

    def scale(self, app: str, role: str, quantity: int) -> None:
        key = (app, role)
        if key not in self.argv_for:
            return
        with self._lock:
            dynos = self.dynos[key]
            while len(dynos) < quantity:
                self._serial += 1
                child = self.supervisor.start(f"dyno-{role}.{self._serial}", self.argv_for[key])
                dynos.append(child)
            surplus = [dynos.pop() for _ in range(len(dynos) - quantity)]
        for child in surplus:  # outside the lock: a graceful stop takes up to a job's length
            threading.Thread(target=self.supervisor.stop, args=(child, 30), daemon=True).start()

    def count(self, app: str, role: str) -> int:
        with self._lock:
            return len(self.dynos.get((app, role), []))


def dyno_argv(
    redis_url: str, queues: Sequence[str], concurrency: int, boot: float, deadline: float
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dynoscaler.demo.workers",
        "--redis",
        redis_url,
        "--concurrency",
        str(concurrency),
        "--boot",
        str(boot),
        "--deadline",
        str(deadline),
        *queues,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--boot", type=float, default=0)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("queues", nargs="+")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if stop.wait(args.boot):  # stopped while booting: never took a job
        return 0
    dyno = Dyno(redis.Redis.from_url(args.redis), args.queues, args.concurrency, args.deadline)
    signal.signal(signal.SIGTERM, lambda *_: dyno.stopping.set())
    dyno.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
