"""Servers run as child processes by the benchmarks and tests: free port, readiness, stop."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import requests


class NotServing(RuntimeError):
    """A server process exited, or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_announced(
    command: Sequence[str], announcement: str, **popen: Any
) -> tuple[subprocess.Popen, str]:
    """Start a server that prints `announcement` ... URL as its first line; return it and the URL.

    For servers told to take port 0, so only they know theirs. If the line is
    another, the process is stopped and NotServing names the command and line.
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **popen)
    line = process.stdout.readline()
    if announcement not in line:
        stop(process)
        raise NotServing(f"{_name(command)} did not start: {line!r}")
    return process, line.split()[-1]


def wait_until_answering(
    url: str,
    process: subprocess.Popen | None = None,
    timeout: float = 20.0,
    ok_only: bool = False,
) -> None:
    """Return once `url` answers (any status, or a 2xx one with `ok_only`).

    Raises NotServing at once if `process` exits (with what it wrote to a pipe),
    or after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            output = _output(process)
            raise NotServing(f"{_name(process.args)} exited with {process.returncode}{output}")
        try:
            if requests.get(url, timeout=1).ok or not ok_only:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or too busy starting to answer within the second
        if time.monotonic() > deadline:
            raise NotServing(f"{url} did not answer within {timeout:g}s")
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate `process` (kill it if it ignores that), wait for it, close its pipes."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _name(command: Sequence[str]) -> str:
    """The start of a command line, enough to tell which server it is."""
    return " ".join(str(part) for part in command[:4])


def _output(process: subprocess.Popen) -> str:
    pipe = process.stdout or process.stderr
    if pipe is None:
        return ""
    text = pipe.read()
    return ": " + (text.decode(errors="replace") if isinstance(text, bytes) else text)
