"""Start, watch and stop the demo's child processes, leaving none behind.

Each child runs in its own session (process group), so stopping it also stops
what it started (gunicorn's workers); stop() sends SIGTERM to the group, waits,
then SIGKILLs. Output goes to one log file per child in the run directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests


class DemoError(Exception):
    """The demo cannot go on; the message says what is wrong and what to do."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_ports_free(ports: dict[str, int], host: str = "127.0.0.1") -> None:
    """Raise DemoError naming every port that is already taken, and by what role."""
    taken = []
    for name, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                taken.append(f"{port} ({name})")
    if taken:
        raise DemoError(
            f"port(s) already in use on {host}: {', '.join(taken)}. Stop what listens there "
            "(`ss -ltnp` shows it) or choose other ports with --port-base."
        )


class Supervisor:
    """Owns child processes; a context manager that stops them all on exit."""

    def __init__(self, run_dir: Path, env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.env = {**os.environ, **(env or {})}
        self.children: list[Child] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.run_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
                cwd=self.run_dir,
                start_new_session=True,
            )
        except OSError as error:
            log.close()
            raise DemoError(f"cannot start {name} ({argv[0]}): {error.strerror}") from None
        child = Child(name, process, log_path, log)
        with self._lock:
            self.children.append(child)
        return child

    def wait_ready(self, child: Child, check: Callable[[], bool], timeout: float = 30) -> None:
        """Wait until check() is true; fail with the child's log if it dies or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.running:
                raise DemoError(
                    f"{child.name} exited with code {child.process.returncode}; "
                    f"last lines of {child.log_path}:\n{child.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.1)
        raise DemoError(
            f"{child.name} not ready after {timeout:.0f} s; last lines of {child.log_path}:\n"
            f"{child.log_tail()}"
        )

    def stop(self, child: Child, grace: float = 10) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
        with self._lock:
            if child in self.children:
                self.children.remove(child)
        _signal_group(child.process, signal.SIGTERM)
        try:
            child.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait(timeout=5)
        # The leader may be gone while its group lives on (gunicorn workers): make sure.
        _signal_group(child.process, signal.SIGKILL)
        child._log.close()
        return child.process.returncode

    def stop_all(self, grace: float = 10) -> None:
        with self._lock:
            children = list(reversed(self.children))
        for child in children:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            self.stop(child, grace=max(0.1, deadline - time.monotonic()))

    def dead(self, names: Iterable[str] | None = None) -> list[Child]:
        """Children that exited on their own (a crash the caller should report)."""
        with self._lock:
            wanted = None if names is None else set(names)
            return [
                c for c in self.children if not c.running and (wanted is None or c.name in wanted)
            ]


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: GET url answers 2xx."""
    return lambda: requests.get(url, timeout=1).ok


@contextlib.contextmanager
def stop_on_signals() -> Iterable[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, so every `finally` cleans up."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_set(event: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGINT, SIGTERM and SIGHUP set `event` instead of raising.

    A KeyboardInterrupt raised between a lock's acquire and its `with` body leaves
    the lock held, and the clean-up that needs that lock then waits forever; a
    loop that checks the event stops only between its steps.
    """

    def note(signum: int, frame: object) -> None:
        event.set()

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, note) for sig in signals}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
