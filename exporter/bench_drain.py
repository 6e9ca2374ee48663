"""Benchmark the router log drain: lines per second and concurrent senders, against peers.

Each server (this exporter, and the same drain behind the peers' HTTP servers,
exporter/drain_peers.py) runs as its own process on this machine and gets:

- throughput: 4 keep-alive connections POST batches of 10 and of 25 router
  lines as fast as the server answers, in rounds that take turns between the
  servers (so all see the same load on a shared machine); lines/s is the
  median round's;
- concurrency: 32 and 128 senders start together, each POSTing batches of 10
  lines on a new connection each time (the listen queue's worst case),
  counting connection errors (resets, refusals, time-outs, closes before an
  answer), 5xx answers and the p50/p99 latency from connect to answer.

Every run checks that the server counted each line it answered 200 for
(dynoscaler_router_requests_total); the command fails when this exporter
miscounts, or drops a connection or answers 5xx. A peer's failures are
reported, not fatal: the old server's are what the exporter's server fixes.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dynoscaler.benchstats import percentile, positive_whole, positive_wholes
from dynoscaler.processes import start_announced, stop

APP, ROLE = "bench", "web"
TOKEN = "bench-drain-secret"
PEERS = ("stdlib", "gthread")  # exporter/drain_peers.py
REQUEST_TIMEOUT = 10.0  # seconds a sender waits for connect, write or answer
_LINE = (
    "<158>1 2026-11-23T10:00:00.{micros:06d}+00:00 host heroku router - at=info method=GET "
    'path="/orders/{n}?page=2" host=shop.herokuapp.com request_id=8601b555-6a71-4d4b-a9a2-'
    '{n:012d} fwd="10.0.0.{octet}" dyno=web.{dyno} connect=1ms service={service}ms status=200 '
    "bytes=512 protocol=https"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batches",
        type=positive_wholes,
        default="10,25",
        help="router lines per POST (throughput)",
    )
    parser.add_argument(
        "--connections", type=positive_whole, default=4, help="keep-alive connections (throughput)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one throughput round")
    parser.add_argument(
        "--rounds", type=positive_whole, default=3, help="throughput rounds per server"
    )
    parser.add_argument(
        "--senders", type=positive_wholes, default="32,128", help="concurrent senders (concurrency)"
    )
    parser.add_argument(
        "--posts", type=positive_whole, default=20, help="POSTs per sender (concurrency)"
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"peers to measure alongside ({', '.join(PEERS)}; 'none' for this exporter alone)",
    )


def logplex_body(lines: int, offset: int = 0) -> bytes:
    """`lines` router lines of role `web` in Logplex framing, service times 1 ms to 3 s."""
    framed = []
    for n in range(offset, offset + lines):
        line = _LINE.format(
            micros=n % 1_000_000,
            n=n,
            octet=n % 250,
            dyno=1 + n % 4,
            service=(1, 7, 23, 90, 240, 800, 3000)[n % 7],
        )
        framed.append(f"{len(line) + 1} {line}\n")
    return "".join(framed).encode()


def drain_request(url: str, lines: int, token: str = TOKEN) -> bytes:
    """A complete HTTP/1.1 POST of one Logplex batch, as Logplex sends it (basic auth)."""
    host_port, path = _split(url)
    body = logplex_body(lines)
    secret = base64.b64encode(f"heroku:{token}".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_port[0]}:{host_port[1]}\r\n"
        f"Content-Type: application/logplex-1\r\nLogplex-Msg-Count: {lines}\r\n"
        f"Authorization: Basic {secret}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _split(url: str) -> tuple[tuple[str, int], str]:
    rest = url.removeprefix("http://")
    address, _, path = rest.partition("/")
    host, _, port = address.rpartition(":")
    return (host, int(port)), "/" + path


@dataclass
class Load:
    """What the senders saw."""

    lines: int  # router lines per POST
    seconds: float = 0.0  # wall time of the whole load
    posts: int = 0  # POSTs attempted
    answered: int = 0  # POSTs answered 200
    server_errors: int = 0  # 5xx answers
    other_answers: int = 0  # other statuses
    errors: Counter[str] = field(default_factory=Counter)  # no answer, by kind
    latencies: list[float] = field(default_factory=list)  # seconds, answered POSTs
    counted: int | None = None  # lines the server counted meanwhile (None: not read)

    @property
    def connection_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def lines_sent(self) -> int:
        return self.answered * self.lines

    @property
    def lines_per_second(self) -> float:
        return self.lines_sent / self.seconds if self.seconds else 0.0

    @property
    def all_counted(self) -> bool:
        return self.counted == self.lines_sent

    @property
    def clean(self) -> bool:
        """Every POST answered 200 and every line counted."""
        return self.answered == self.posts and self.all_counted

    def p(self, percent: float) -> float:
        """Latency percentile in milliseconds (nan without answers)."""
        return percentile(self.latencies, percent) * 1000 if self.latencies else float("nan")

    def add(self, other: Load) -> None:
        self.posts += other.posts
        self.answered += other.answered
        self.server_errors += other.server_errors
        self.other_answers += other.other_answers
        self.errors.update(other.errors)
        self.latencies += other.latencies


class _NoAnswer(Exception):
    """The server closed the connection before a complete answer."""


class _Sender:
    """One HTTP/1.1 client connection on raw sockets: little client time per POST."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, request: bytes, load: Load) -> None:
        """Send one request and read its answer, into `load`; a new connection when needed."""
        started = time.perf_counter()
        load.posts += 1
        try:
            status = self._exchange(request)
        except (OSError, _NoAnswer) as error:
            load.errors[_kind(error)] += 1
            self.close()
            return
        if status == 200:
            load.answered += 1
            load.latencies.append(time.perf_counter() - started)
        elif status >= 500:
            load.server_errors += 1
        else:
            load.other_answers += 1

    def _exchange(self, request: bytes) -> int:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=REQUEST_TIMEOUT)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        version, status = lines[0].split(b" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        length = headers.get(b"content-length")
        if length is None:  # an HTTP/1.0 server: the body runs to the close
            while self._receive(eof_ok=True):
                pass
            self.close()
            return int(status)
        while len(self.buffer) < int(length):
            self._receive()
        self.buffer = self.buffer[int(length) :]
        if version == b"HTTP/1.0" or headers.get(b"connection") == b"close":
            self.close()
        return int(status)

    def _receive(self, eof_ok: bool = False) -> bool:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            if eof_ok:
                return False
            raise _NoAnswer("closed before a complete answer")
        self.buffer += data
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _kind(error: Exception) -> str:
    if isinstance(error, ConnectionResetError):
        return "reset"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError | socket.timeout):
        return "time-out"
    if isinstance(error, _NoAnswer):
        return "closed"
    return type(error).__name__


def keepalive_load(
    url: str, lines: int, connections: int, seconds: float, token: str = TOKEN
) -> Load:
    """`connections` senders POST batches of `lines` over one keep-alive connection each."""
    address, _ = _split(url)
    request = drain_request(url, lines, token)
    loads = [Load(lines) for _ in range(connections)]
    deadline = time.perf_counter() + seconds

    def send(load: Load) -> None:
        sender = _Sender(address)
        try:
            while time.perf_counter() < deadline:
                sender.post(request, load)
        finally:
            sender.close()

    return _run(url, lines, [(send, load) for load in loads])


def concurrent_load(url: str, lines: int, senders: int, posts: int, token: str = TOKEN) -> Load:
    """`senders` start together, each POSTing `posts` batches on a new connection each."""
    address, _ = _split(url)
    request = drain_request(url, lines, token)
    loads = [Load(lines) for _ in range(senders)]

    def send(load: Load) -> None:
        for _ in range(posts):
            sender = _Sender(address)
            try:
                sender.post(request, load)
            finally:
                sender.close()

    return _run(url, lines, [(send, load) for load in loads])


def _run(url: str, lines: int, work: list) -> Load:
    """Run the senders together; the total, with the lines the server counted meanwhile."""
    metrics = url.rsplit("/logs/", 1)[0] + "/metrics"
    before = counted_lines(metrics)
    start = threading.Barrier(len(work) + 1)

    def run(send, load: Load) -> None:
        start.wait()
        send(load)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in work]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    total = Load(lines, seconds=time.perf_counter() - began)
    for _, load in work:
        total.add(load)
    total.counted = counted_lines(metrics) - before
    return total


def counted_lines(metrics_url: str) -> int:
    """dynoscaler_router_requests_total of the bench's app and role."""
    response = requests.get(metrics_url, timeout=30)
    response.raise_for_status()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "dynoscaler_router_requests_total" and sample.labels == {
                "app": APP,
                "role": ROLE,
            }:
                return int(sample.value)
    raise LookupError(f"no dynoscaler_router_requests_total for {APP}/{ROLE} at {metrics_url}")


def bench_config(directory: Path) -> Path:
    path = directory / "bench.yml"
    path.write_text(yaml.safe_dump({"apps": {APP: {"roles": {ROLE: {"requests": "router"}}}}}))
    return path


@dataclass
class DrainServer:
    url: str  # http://127.0.0.1:PORT/logs/bench
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server's processes (gunicorn's worker included)."""
        total, pids = 0.0, [self.pid]
        while pids:
            pid = pids.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / _TICKS
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(child) for child in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total


_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def drain_server(kind: str, config: Path) -> Iterator[DrainServer]:
    """This exporter (`ours`) or a peer in its own process."""
    if kind == "ours":
        command = [sys.executable, "-m", "dynoscaler", "exporter", "--config", str(config)]
        command += ["--port", "0", "--bind", "127.0.0.1"]
    else:
        command = [sys.executable, "-m", "exporter.drain_peers", kind, str(config)]
    environment = {k: v for k, v in os.environ.items() if k != "HEROKU_API_KEY"}
    environment["DYNOSCALER_DRAIN_TOKEN"] = TOKEN
    # its first line: "... listening on http://127.0.0.1:PORT/metrics"
    process, url = start_announced(
        command, "listening on", stderr=subprocess.DEVNULL, env=environment
    )
    try:
        yield DrainServer(url.removesuffix("/metrics") + f"/logs/{APP}", process.pid)
    finally:
        stop(process)


def run(args: argparse.Namespace) -> int:
    peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",")]
    unknown = [peer for peer in peers if peer not in PEERS]
    if unknown:
        print(f"dynoscaler bench drain: unknown peer {unknown[0]!r} (choose from {PEERS})")
        return 2
    servers = ["ours", *peers]
    print(f"load average at start: {_load()}  ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as directory:
        config = bench_config(Path(directory))
        with _servers(servers, config) as urls:
            good = _throughput(args, servers, urls)
            good = _concurrency(args, servers, urls) and good
    print(f"load average at end: {_load()}")
    return 0 if good else 1


@contextmanager
def _servers(kinds: list[str], config: Path) -> Iterator[dict[str, DrainServer]]:
    with ExitStack() as stack:
        yield {kind: stack.enter_context(drain_server(kind, config)) for kind in kinds}


def _heading(title: str, header: str) -> None:
    """A table's title after a blank line, its column header and a rule as wide."""
    print(f"\n{title}")
    print(header + "\n" + "-" * len(header))


def _throughput(args: argparse.Namespace, servers: list[str], urls: dict[str, DrainServer]) -> bool:
    _heading(
        f"Throughput: {args.connections} keep-alive connections, {args.rounds} rounds of "
        f"{args.seconds:g} s per server taking turns. lines/s: the median round's; "
        "per CPU-second: lines counted per second of the server's own CPU time (what one "
        "core holds, however busy the machine)",
        f"{'lines/batch':>11} | {'server':>8} | {'lines/s':>8} | {'CPU/POST':>8} | "
        f"{'per CPU-second':>14} | {'ours: lines/s, per CPU-s':>24}",
    )
    good = True
    for lines in args.batches:
        rates: dict[str, list[float]] = {kind: [] for kind in servers}
        cpu = dict.fromkeys(servers, 0.0)
        posts = dict.fromkeys(servers, 0)
        counted = dict.fromkeys(servers, 0)
        for _ in range(args.rounds):
            for kind in servers:
                server = urls[kind]
                before = server.cpu_seconds()
                load = keepalive_load(server.url, lines, args.connections, args.seconds)
                cpu[kind] += server.cpu_seconds() - before
                rates[kind].append(load.lines_per_second)
                posts[kind] += load.posts
                counted[kind] += load.counted or 0
                if kind == "ours" and not (load.clean and load.server_errors == 0):
                    good = False
                    print(f"  ours: {_problems(load)}")
        median = {kind: statistics.median(values) for kind, values in rates.items()}
        per_cpu = {
            kind: counted[kind] / cpu[kind] if cpu[kind] else float("nan") for kind in servers
        }
        for kind in servers:
            ratio = (
                ""
                if kind == "ours"
                else f"{median['ours'] / median[kind]:.1f}x, {per_cpu['ours'] / per_cpu[kind]:.1f}x"
            )
            print(
                f"{lines:>11} | {kind:>8} | {median[kind]:>8,.0f} | "
                f"{cpu[kind] / max(posts[kind], 1) * 1e6:>5.0f} µs | {per_cpu[kind]:>14,.0f} | "
                f"{ratio:>24}",
                flush=True,
            )
    return good


def _concurrency(
    args: argparse.Namespace, servers: list[str], urls: dict[str, DrainServer]
) -> bool:
    _heading(
        f"Concurrency: senders start together, {args.posts} POSTs of 10 lines each, "
        "a new connection per POST",
        f"{'senders':>7} | {'server':>8} | {'POSTs':>6} | {'conn. errors':>12} | {'5xx':>4} | "
        f"{'p50 ms':>8} | {'p99 ms':>8} | {'lines counted':>16} | {'p99 vs ours':>11}",
    )
    good = True
    for senders in args.senders:
        p99_ours = float("nan")
        for kind in servers:
            load = concurrent_load(urls[kind].url, 10, senders, args.posts)
            if kind == "ours":
                p99_ours = load.p(99)
                good = good and load.clean and load.server_errors == 0
            errors = f"{load.connection_errors}" + (
                f" ({', '.join(f'{n} {k}' for k, n in load.errors.most_common())})"
                if load.errors
                else ""
            )
            ratio = "" if kind == "ours" else f"{load.p(99) / p99_ours:>10.1f}x"
            print(
                f"{senders:>7} | {kind:>8} | {load.posts:>6} | {errors:>12} | "
                f"{load.server_errors:>4} | {load.p(50):>8.1f} | {load.p(99):>8.1f} | "
                f"{_counted(load):>16} | {ratio:>11}",
                flush=True,
            )
    return good


def _counted(load: Load) -> str:
    mark = "" if load.all_counted else " (!)"
    return f"{load.counted:,}/{load.lines_sent:,}{mark}"


def _problems(load: Load) -> str:
    return (
        f"{load.posts - load.answered} of {load.posts} POSTs not answered 200 "
        f"({load.server_errors} 5xx, {dict(load.errors)}), {_counted(load)} lines counted"
    )


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
