"""A real Prometheus serving synthetic history: series written as OpenMetrics,
turned into TSDB blocks by promtool's backfill, served by a Prometheus started
on them. Hours of recorded series in about two seconds, no scraping to wait for.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from rules_support import PROMTOOL, selector

from dynoscaler.processes import free_port, stop, wait_until_answering

PROMETHEUS = "/usr/bin/prometheus"

# name -> (labels, value at a Unix time, None for no sample)
Series = Mapping[str, tuple[Mapping[str, str], Callable[[float], float | None]]]

# Two hours of one role, shop/worker, as the rules would have recorded them. It
# ran a fixed formation of 4 dynos. The rules asked for 2, except for a
# 10-minute spike (minutes 60-69) when they asked for 8 and the deadline needed
# 7; the oldest job was past the 60 s deadline in 5 of those minutes, with up
# to 400 jobs waiting.
MINUTES = 120
SPIKE = range(60, 70)  # minutes of the window (minute k ends at start + k*60)
LATE = range(63, 68)
ROLE = {"app": "shop", "role": "worker"}


def spike_history(start: float) -> Series:
    def minute(t: float) -> int:
        return math.ceil((t - start) / 60)  # the minute ending at or after t

    def level(usual: float, spike: float, minutes: range = SPIKE) -> Callable[[float], float]:
        return lambda t: spike if minute(t) in minutes else usual

    return {
        "app_role:dynoscaler_dynos": (ROLE, level(4, 4)),
        "app_role:dynoscaler_desired_dynos": (ROLE, level(2, 8)),
        "app_role:dynoscaler_needed_dynos": (ROLE, level(2, 7)),
        "app_role:dynoscaler_policy_max_dynos": (ROLE, level(10, 10)),
        "app_role:dynoscaler_queue_depth": (ROLE, level(10, 400)),
        "app_role:dynoscaler_queue_oldest_age_seconds": (ROLE, level(5, 90, LATE)),
        "app_role:dynoscaler_policy_target_deadline_seconds": (ROLE, level(60, 60)),
        "app_role:dynoscaler_arrival_rate:rate1m": (ROLE, level(1.5, 12)),
        "app_role:dynoscaler_arrival_rate:lookahead": (ROLE, level(1.5, 14)),
        "app_role:dynoscaler_processing_seconds": (ROLE, level(2, 2.5)),
        "app_role:dynoscaler_drain_slots": (ROLE, level(0.4, 21)),
        "app_role:dynoscaler_required_slots": (ROLE, level(3.5, 30)),
        # standard-1x: $25 a month, 1/720 of it an hour
        "dynoscaler_dyno_hourly_price_dollars": (ROLE, level(25 / 720, 25 / 720)),
    }


def spike_times(start: float) -> list[float]:
    """Two samples a minute, from the minute ending at `start` on."""
    return [start - 30 + 30 * i for i in range(2 * MINUTES)]


def openmetrics(series: Series, times: list[float]) -> str:
    """The samples of every series at `times`, one metric family after another."""
    lines = []
    for name, (labels, value) in series.items():
        family = name.split("{", 1)[0]
        lines.append(f"# TYPE {family} gauge")
        for t in times:
            v = value(t)
            if v is not None:
                lines.append(f"{selector(family, labels)} {v!r} {t:.3f}")
    return "\n".join([*lines, "# EOF"]) + "\n"


def prometheus_with_history(
    directory: Path, series: Series, times: list[float]
) -> contextlib.AbstractContextManager[str]:
    """The URL of a Prometheus holding `series` sampled at `times` (Unix seconds)."""
    return prometheus_on(directory, openmetrics(series, times))


@contextlib.contextmanager
def prometheus_on(directory: Path, history: str) -> Iterator[str]:
    """The URL of a Prometheus holding `history` (OpenMetrics text, backfilled by promtool)."""
    data = directory / "tsdb"
    source = directory / "history.om"
    source.write_text(history, encoding="utf-8")
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (directory / "prometheus.yml").write_text("global: {}\n", encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/-/ready", process, timeout=30, ok_only=True)
        yield url
    finally:
        stop(process, timeout=15)
