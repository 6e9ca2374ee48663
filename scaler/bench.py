"""Benchmark the webhook: latency and throughput under a fixed request rate, with a peer.

Starts `dynoscaler scaler serve` (gunicorn, N workers, dry run unless
--fake-heroku) and, as the peer, gunicorn serving a trivial WSGI app with the
same workers; drives both from this process over loopback, alternating 1 s slices, with an
open-loop load (requests are sent on schedule, latency counts from the
scheduled time, so a stall is not hidden), and prints p50/p90/p99/max,
throughput and the scaler/peer ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from dynoscaler.benchstats import percentile
from dynoscaler.config import ConfigError
from dynoscaler.processes import (
    NotServing,
    free_port,
    start_announced,
    stop,
    wait_until_answering,
)

TOKEN = "bench-token"
HEROKU_KEY = "bench-key"
SETTINGS: dict[str, Any] = {
    "defaults": {"min_dynos": 1, "max_dynos": 20, "cooldown": 0, "max_step": 5},
    "apps": {
        "bench": {
            "roles": {
                "worker": {"queues": [{"name": "q", "backend": "rq", "url": "redis://x/0"}]},
                "web": {"requests": "router"},
            }
        }
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds per target")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--fake-heroku", action="store_true", help="act on a fake Heroku instead of a dry run"
    )


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0 or args.duration <= 0 or args.workers < 1:
        raise ConfigError("--rate and --duration must be positive, --workers at least 1")
    with tempfile.TemporaryDirectory(prefix="dynoscaler-bench-") as directory:
        workdir = Path(directory)
        settings = _write_settings(workdir, dry_run=not args.fake_heroku)
        env = {**os.environ, "DYNOSCALER_WEBHOOK_TOKEN": TOKEN, "HEROKU_API_KEY": HEROKU_KEY}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(workdir)
        processes: list[subprocess.Popen] = []
        try:
            if args.fake_heroku:
                fake, url = _start_fake(settings, env)
                processes.append(fake)
                env["HEROKU_API_URL"] = url
            mode = "fake Heroku" if args.fake_heroku else "dry run"
            print(
                f"bench webhook: {args.rate:g} req/s for {args.duration:g}s per target, "
                f"gunicorn {args.workers} workers, {mode}"
            )
            scaler_url = _start(_scaler_command(settings, args.workers), env, processes)
            peer_url = _start(_peer_command(args.workers), env, processes)
            urls = [f"{scaler_url}/alerts", f"{peer_url}/alerts"]
            scaler, peer = _drive(urls, args.rate, args.duration)
        finally:
            for process in reversed(processes):
                stop(process)
    _report(scaler, peer)
    return 0


def trivial_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The peer: reads the body and answers a fixed JSON document."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"decisions": []}']


@dataclass
class Figures:
    latencies: list[float]
    errors: int
    elapsed: float
    sent: int

    def percentile_ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000


def _write_settings(workdir: Path, dry_run: bool) -> Path:
    document = {
        **SETTINGS,
        "scaler": {"store": f"sqlite:///{workdir / 'bench.sqlite3'}", "dry_run": dry_run},
    }
    path = workdir / "autoscale.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _scaler_command(settings: Path, workers: int) -> list[str]:
    serve = ["scaler", "serve", "--config", str(settings), "--workers", str(workers)]
    return [sys.executable, "-m", "dynoscaler", *serve, "--port", "{port}"]


def _peer_command(workers: int) -> list[str]:
    options = ["--workers", str(workers), "--log-level", "warning", "--bind", "127.0.0.1:{port}"]
    return [sys.executable, "-m", "gunicorn", *options, "scaler.bench:trivial_app"]


def _start(command: list[str], env: dict[str, str], processes: list[subprocess.Popen]) -> str:
    """Start a server whose command has a {port} placeholder; wait until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [part.format(port=port) for part in command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, process, timeout=30)
    except NotServing as error:
        raise ConfigError(f"bench: {error}") from None
    return url


def _start_fake(settings: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    options = ["--config", str(settings), "--port", "0", "--rate-limit", "1000000"]
    command = [sys.executable, "-m", "dynoscaler", "fake-heroku", *options]
    try:
        return start_announced(command, "fake-heroku: serving", env=env, stderr=subprocess.DEVNULL)
    except NotServing as error:
        raise ConfigError(f"bench: {error}") from None


def _body(i: int) -> bytes:
    """Alertmanager-like traffic: repeats, the desired count changing every 1,000 requests
    (every 5 s at 200 requests/s; Prometheus' rules change it far less often)."""
    desired = str(1 + (i // 1000) % 8)
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "ScaleRole",
            "app": "bench",
            "role": "worker",
            "severity": "scale",
            "direction": "up",
        },
        "annotations": {"desired_dynos": desired},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "0123456789abcdef",
    }
    payload = {"version": "4", "status": "firing", "receiver": "scaler", "alerts": [alert]}
    return json.dumps(payload).encode()


def _drive(urls: list[str], rate: float, duration: float) -> list[Figures]:
    """Send `rate` requests/s to each url for `duration` s, in alternating 1 s slices.

    Interleaving gives the scaler and its peer the same background load (the
    machine may be shared), which running them one after the other would not.
    """
    per_slice = max(1, int(rate))
    slices = max(1, int(duration))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    local = threading.local()
    latencies: list[list[float]] = [[] for _ in urls]
    errors = [0 for _ in urls]
    lock = threading.Lock()

    def send(target: int, i: int, scheduled: float) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            response = session.post(urls[target], data=_body(i), headers=headers, timeout=10)
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        took = time.perf_counter() - scheduled
        with lock:
            latencies[target].append(took)
            errors[target] += not ok

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n in range(slices * len(urls) * per_slice):
            target, i = (n // per_slice) % len(urls), (n // (per_slice * len(urls))) * per_slice
            scheduled = started + n / per_slice
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, target, i + n % per_slice, scheduled)
    elapsed = (time.perf_counter() - started) / len(urls)
    return [Figures(latencies[t], errors[t], elapsed, slices * per_slice) for t in range(len(urls))]


def _report(scaler: Figures, peer: Figures) -> None:
    columns = ("sent", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms")
    print(f"{'target':<22}" + "".join(f"{c:>9}" for c in columns))
    for name, f in (("scaler POST /alerts", scaler), ("peer trivial WSGI", peer)):
        values = (
            f"{f.sent}",
            f"{f.errors}",
            f"{len(f.latencies) / f.elapsed:.1f}",
            *(f"{f.percentile_ms(p):.2f}" for p in (50, 90, 99)),
            f"{max(f.latencies) * 1000:.2f}",
        )
        print(f"{name:<22}" + "".join(f"{v:>9}" for v in values))
    for p in (50, 99):
        ratio = scaler.percentile_ms(p) / peer.percentile_ms(p)
        print(f"p{p} ratio scaler/peer: {ratio:.2f}")
    print(f"mean scaler latency: {statistics.fmean(scaler.latencies) * 1000:.2f} ms")
