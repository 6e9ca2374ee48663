"""Benchmark the exporter.web middleware: what it adds to each request.

Calls a WSGI app that answers at once, bare and wrapped in WsgiTimer (and the
same for an ASGI app in AsgiTimer), in this process, with an X-Request-Start
header, and prints the median and 99th percentile of each call and what the
timer adds (the wrapped call's percentile minus the bare one's). The flush (one
round trip to Redis with a second's counts) runs on the timer's own thread
between requests and is timed apart; so is what one round trip per request
would have added, the design the flush replaces. The goal is under 50 µs added
per request (docs/exporter.md, "Web request timing").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import redis

from dynoscaler.benchstats import percentile
from exporter.web import AsgiTimer, RequestTimes, WsgiTimer, web_timing_key

GOAL_SECONDS = 50e-6
ROLE = "bench-web"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--requests", type=int, default=50_000, help="calls of each kind")


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _wsgi_timings(app: Callable[..., Any], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        environ = {"HTTP_X_REQUEST_START": str(int(time.time() * 1000) - 5)}
        started = time.perf_counter_ns()
        app(environ, lambda status, headers: None)
        timings.append((time.perf_counter_ns() - started) / 1e9)
    return timings


def _asgi_timings(app: Callable[..., Any], count: int) -> list[float]:
    async def send(message: Any) -> None:
        return None

    async def receive() -> Any:
        return {"type": "http.request"}

    async def run() -> list[float]:
        timings = []
        for _ in range(count):
            stamp = str(int(time.time() * 1000) - 5).encode()
            scope = {"type": "http", "headers": [(b"x-request-start", stamp)]}
            started = time.perf_counter_ns()
            await app(scope, receive, send)
            timings.append((time.perf_counter_ns() - started) / 1e9)
        return timings

    return asyncio.run(run())


def _row(name: str, bare: list[float], timed: list[float]) -> tuple[str, float, float]:
    median = percentile(timed, 50) - percentile(bare, 50)
    p99 = percentile(timed, 99) - percentile(bare, 99)
    print(
        f"{name:<6} bare median {percentile(bare, 50) * 1e6:7.2f} µs  p99 "
        f"{percentile(bare, 99) * 1e6:7.2f} µs | timed median "
        f"{percentile(timed, 50) * 1e6:7.2f} µs  p99 {percentile(timed, 99) * 1e6:7.2f} µs"
        f" | added median {median * 1e6:6.2f} µs  p99 {p99 * 1e6:6.2f} µs"
    )
    return name, median, p99


def measure(url: str, count: int) -> list[tuple[str, float, float]]:
    """(kind, median added, p99 added) in seconds for WSGI and ASGI; prints the table."""
    client = redis.Redis.from_url(url)
    client.delete(web_timing_key(ROLE))
    # A flush period longer than the run: the flusher thread never runs during it.
    times = RequestTimes(client, role=ROLE, flush_seconds=3600)
    gc.disable()  # a collection inside one call is the interpreter's cost, not the timer's
    try:
        rows = [
            _row(
                "WSGI",
                _wsgi_timings(_wsgi_app, count),
                _wsgi_timings(WsgiTimer(_wsgi_app, times=times), count),
            ),
            _row(
                "ASGI",
                _asgi_timings(_asgi_app, count),
                _asgi_timings(AsgiTimer(_asgi_app, times=times), count),
            ),
        ]
    finally:
        gc.enable()
    started = time.perf_counter()
    times.flush()
    flushed = time.perf_counter() - started
    written = sum(
        int(v)
        for k, v in client.hgetall(web_timing_key(ROLE)).items()
        if k.startswith(b"service:le:")
    )
    print(f"flush of {written} requests' counts: {flushed * 1e3:.2f} ms, one round trip")
    trips = []
    for _ in range(min(count, 2000)):
        started = time.perf_counter()
        with client.pipeline(transaction=True) as pipe:
            pipe.hincrby(web_timing_key(ROLE), "service:le:0.005", 1)
            pipe.hincrbyfloat(web_timing_key(ROLE), "service:sum", 0.001)
            pipe.execute()
        trips.append(time.perf_counter() - started)
    print(
        f"one round trip per request instead (not used): median "
        f"{percentile(trips, 50) * 1e6:.1f} µs  p99 {percentile(trips, 99) * 1e6:.1f} µs"
    )
    client.delete(web_timing_key(ROLE))
    return rows


def run(args: argparse.Namespace) -> int:
    rows = measure(args.redis_url, args.requests)
    worst = max(p99 for _, _, p99 in rows)
    if worst >= GOAL_SECONDS:
        print(
            f"over the goal: {worst * 1e6:.1f} µs added at p99 (goal {GOAL_SECONDS * 1e6:.0f} µs)"
        )
        return 1
    return 0
