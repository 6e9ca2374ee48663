"""Time the rules on one real Prometheus at N roles, with an hour of history.

    dynoscaler bench rules --roles 500
    dynoscaler bench rules --roles 2000 --seconds 90

N roles are N/2 apps of two roles (worker, urgent), one queue each, serving
the whole metric contract of docs/ARCHITECTURE.md that a queue role has: the
seven policy gauges, dynos, queue depth, in progress, oldest age, completions,
the job duration histogram with the project's buckets, and source_up. The
counters grow with wall-clock time, so the history and the live page agree.
The roles' scale-down windows take the rules' ten window steps in turn.

The job duration histogram gets `--history` seconds of history (default an
hour: the S99 rule reads it over 1h), every other series the last 10 minutes
(the longest window read on them), at `--history-step`, with the job and
instance labels the scrape gives them (one series each, history and live).
The recorded series the rules read over a range get the history an hour-old
Prometheus has: their longest range (the hour of
app_role:dynoscaler_desired_dynos:unstabilised), at the 5 s evaluation step.
All are written as OpenMetrics and backfilled with `promtool tsdb
create-blocks-from openmetrics`. Prometheus then starts with
prometheus/prometheus.yml (its 5 s intervals) and the rules of `--rules`
(default the project's), scraping a live page of the same series, and after
`--warmup` seconds every group's and rule's last evaluationTime
(/api/v1/rules) is sampled each interval for `--seconds`. Printed per group:
median and max evaluation time and their share of the interval, iterations
and missed iterations (prometheus_rule_group_iterations_missed_total), the
10 rules taking longest (median), the ScaleRole alerts firing, and the CPU
Prometheus used while sampling (on a shared machine the wall-clock times
include the waits for a core; the CPU seconds mostly do not).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import requests
import yaml

from dynoscaler.processes import free_port, stop, wait_until_answering
from exporter.metrics import DURATION_BUCKETS

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
INTERVAL = 5.0  # prometheus/prometheus.yml's scrape and evaluation interval
ROLES = ("worker", "urgent")
POLICY = {
    "min_dynos": 0,
    "max_dynos": 20,
    "target_deadline_seconds": 60,
    "concurrency": 4,
    "boot_seconds": 10,
    "miss_ratio": 0.01,
    "scale_down_window_seconds": 60,
}
SHORT_HISTORY = 600.0  # the longest window the rules read on a series other than the histogram
JOB = "dynoscaler-exporter"  # prometheus.yml's job of the exporter
# The rules' scale-down window steps (app_role:dynoscaler_desired_dynos), one per role in turn.
WINDOWS = (30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600)
# A recorded series read over a range in a rule: name, range, optional offset.
# A selector's window="…" (capacity.yml's app_role_window records) picks the roles of that step.
RECORDED_RANGE = re.compile(
    r"\b(app_role\w*:dynoscaler\w*(?::\w+)*)(?:\{(?:window=\"(\w+)\")?[^}]*\})?\[(\d+)([smhd])\]"
    r"(?:\s+offset\s+(\d+)([smhd]))?"
)
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Recorded series read over longer ranges (qos.yml's 30 d) get no history: a month is not
# backfilled, so the bench understates those reads.
LONGEST_RECORDED_HISTORY = 3600.0


@dataclass(frozen=True)
class Role:
    """One synthetic queue role: λ jobs/s of mean length S (exponential), the rest fixed."""

    app: str
    role: str
    rate: float
    seconds: float
    depth: int
    age: int
    window: int

    @property
    def labels(self) -> str:
        return f'app="{self.app}",role="{self.role}"'

    @property
    def queue(self) -> str:
        return f'{self.labels},queue="default",backend="sidekiq"'

    @property
    def window_step(self) -> str:
        """The scale-down window as the rules' step label: 30s, 1m, ..., 1h."""
        for unit, seconds in (("h", 3600), ("m", 60)):
            if self.window % seconds == 0:
                return f"{self.window // seconds}{unit}"
        return f"{self.window}s"


def roles(count: int) -> list[Role]:
    """`count` roles, varied loads; every one wants more than its 1 dyno (ScaleRole fires)."""
    return [
        Role(
            f"app{n // 2}",
            ROLES[n % 2],
            1.0 + n % 7,
            2.0 + n % 5,
            (7 * n) % 50,
            n % 11,
            WINDOWS[n % len(WINDOWS)],
        )
        for n in range(count)
    ]


def gauges(role: Role) -> list[tuple[str, float]]:
    """The series whose values do not depend on time."""
    policy = [
        (f"dynoscaler_policy_{k}{{{role.labels}}}", float(v))
        for k, v in {**POLICY, "scale_down_window_seconds": role.window}.items()
    ]
    return policy + [
        (f"dynoscaler_dynos{{{role.labels}}}", 1.0),
        (f"dynoscaler_queue_depth{{{role.queue}}}", float(role.depth)),
        (f"dynoscaler_queue_in_progress{{{role.queue}}}", role.rate * role.seconds),
        (f"dynoscaler_queue_oldest_age_seconds{{{role.queue}}}", float(role.age)),
        (f'dynoscaler_source_up{{{role.labels},source="redis://h/0",backend="sidekiq"}}', 1.0),
    ]


def histogram(role: Role, elapsed: float) -> list[tuple[str, float]]:
    """Completions and the duration histogram after `elapsed` seconds of λ."""
    done = role.rate * elapsed
    name = "dynoscaler_job_duration_seconds"
    buckets = [
        (f'{name}_bucket{{{role.queue},le="{le}"}}', done * (1 - math.exp(-le / role.seconds)))
        for le in DURATION_BUCKETS
    ]
    return [
        *buckets,
        (f'{name}_bucket{{{role.queue},le="+Inf"}}', done),
        (f"{name}_sum{{{role.queue}}}", done * role.seconds),
        (f"{name}_count{{{role.queue}}}", done),
    ]


def counters(role: Role, elapsed: float) -> list[tuple[str, float]]:
    return [(f"dynoscaler_jobs_completed_total{{{role.queue}}}", role.rate * elapsed)]


def page(all_roles: list[Role], origin: float) -> bytes:
    """The live metrics page: every series at now."""
    elapsed = time.time() - origin
    lines = []
    for role in all_roles:
        for series, value in gauges(role) + counters(role, elapsed) + histogram(role, elapsed):
            lines.append(f"{series} {value:.6f}")
    return ("\n".join(lines) + "\n").encode()


def recorded_ranges(rules: Path) -> dict[tuple[str, str], float]:
    """Each recorded series read over a range in the rule files under `rules`, by name
    and window step ("" for none): the longest history a rule reads of it (range +
    offset), in seconds; up to an hour."""
    longest: dict[tuple[str, str], float] = {}
    for path in sorted(rules.glob("*.yml")):
        for name, window, count, unit, back, back_unit in RECORDED_RANGE.findall(
            path.read_text("utf-8")
        ):
            seconds = int(count) * SECONDS[unit] + (int(back) * SECONDS[back_unit] if back else 0)
            longest[name, window] = max(longest.get((name, window), 0.0), seconds)
    return {key: span for key, span in longest.items() if span <= LONGEST_RECORDED_HISTORY}


def recorded(role: Role, ranges: dict[tuple[str, str], float]) -> list[tuple[str, float, float]]:
    """(series, value, seconds of history) of the recorded series the rules read over a
    range, a windowed one where the window is the role's; the value is the role's λ:
    its cost is read, not its meaning."""
    step = f',window="{role.window_step}"'
    return [
        (f"{name}{{{role.labels}{step if window else ''}}}", role.rate, span)
        for (name, window), span in ranges.items()
        if "_web_" not in name  # web.yml's records: the bench's roles are queue roles
        and window in ("", role.window_step)
    ]


def _write_series(out: IO[str], rows: list[list[tuple[str, float]]], times: list[float]) -> int:
    """Every series of `rows` (one row of (series, value) per time), series by series."""
    for index, (series, _) in enumerate(rows[0]):
        out.write(
            "".join(
                f"{series} {row[index][1]:.6f} {at:.3f}\n"
                for row, at in zip(rows, times, strict=True)
            )
        )
    return len(times) * len(rows[0])


def _steps(end: float, length: float, step: float) -> list[float]:
    return [end - length + i * step for i in range(int(length // step) + 1)]


def write_history(
    out: IO[str],
    all_roles: list[Role],
    origin: float,
    end: float,
    span: float,
    step: float,
    scrape: str = "",
    ranges: dict[tuple[str, str], float] | None = None,
) -> int:
    """OpenMetrics lines, series by series, up to `end`; returns the sample count.

    `scrape`: the labels the scrape adds to the exporter's series ('job="…",instance="…"');
    `ranges`: recorded series and their history (recorded_ranges), at the 5 s interval.
    """
    count = 0
    for role in all_roles:
        kinds = (
            (span, lambda at, role=role: histogram(role, at - origin)),
            (
                min(span, SHORT_HISTORY),
                lambda at, role=role: counters(role, at - origin) + gauges(role),
            ),
        )
        for length, values in kinds:
            times = _steps(end, length, step)
            rows = [[(_scraped(s, scrape), v) for s, v in values(at)] for at in times]
            count += _write_series(out, rows, times)
        for series, value, length in recorded(role, ranges or {}):
            times = _steps(end, length, INTERVAL)
            count += _write_series(out, [[(series, value)] for _ in times], times)
    out.write("# EOF\n")
    return count


def _scraped(series: str, scrape: str) -> str:
    return f"{series[:-1]},{scrape}}}" if scrape else series


def backfill(
    all_roles: list[Role],
    origin: float,
    args: argparse.Namespace,
    target: str,
    data: Path,
) -> int:
    """Write the history and turn it into TSDB blocks under `data`; returns the sample count."""
    source = data.parent / "history.om"
    scrape = f'job="{JOB}",instance="{target}"'
    ranges = recorded_ranges(args.rules)
    with source.open("w", encoding="utf-8") as out:
        end = time.time() - args.history_step
        count = write_history(
            out, all_roles, origin, end, args.history, args.history_step, scrape, ranges
        )
    command = [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)]
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    source.unlink()
    return count


class _Page(BaseHTTPRequestHandler):
    body: bytes = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.server.render()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve(all_roles: list[Role], origin: float) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    server.render = lambda: page(all_roles, origin)  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def prometheus_config(target: str) -> dict[str, Any]:
    """prometheus/prometheus.yml scraping `target`; no scaler and no Alertmanager to reach."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text("utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs[JOB]["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [jobs[JOB]]
    del config["alerting"]
    return config


def start_prometheus(directory: Path, target: str, rules: Path) -> tuple[subprocess.Popen, str]:
    shutil.copytree(rules, directory / "rules")
    (directory / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(target)), "utf-8")
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/-/ready", process, timeout=300, ok_only=True)
    return process, url


def groups(url: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/rules", timeout=10).json()
    return answer["data"]["groups"]


def self_metrics(url: str, name: str) -> dict[str, float]:
    """Prometheus' own counter `name` per rule group, from its /metrics page."""
    found = {}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            group = labels.split('rule_group="', 1)[1].split('"', 1)[0].rsplit(";", 1)[-1]
            found[group] = float(value)
    return found


def firing(url: str) -> int:
    query = 'count(ALERTS{alertname="ScaleRole",alertstate="firing"})'
    result = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
    return int(float(result["data"]["result"][0]["value"][1])) if result["data"]["result"] else 0


def sample(url: str, seconds: float) -> dict[str, dict[str, list[float]]]:
    """Per group: its evaluation times, and each rule's, one sample per new evaluation.

    The key "" holds the group's own times, "interval" its interval (one value).
    """
    times: dict[str, dict[str, list[float]]] = {}
    seen: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for group in groups(url):
            if group["lastEvaluation"].startswith("0001-"):
                continue  # not evaluated yet (a 1m group's first run is up to 1m away)
            if seen.get(group["name"]) == group["lastEvaluation"]:
                continue
            seen[group["name"]] = group["lastEvaluation"]
            found = times.setdefault(group["name"], {"": [], "interval": [group["interval"]]})
            found[""].append(group["evaluationTime"])
            for rule in group["rules"]:
                name = rule["name"] + _rule_suffix(rule)
                found.setdefault(name, []).append(rule["evaluationTime"])
        time.sleep(INTERVAL / 2)
    return times


def _rule_suffix(rule: dict[str, Any]) -> str:
    # an older revision's rules (--rules) had one ScaleRole rule per direction label
    direction = rule.get("labels", {}).get("direction")
    return f"{{direction={direction}}}" if direction else ""


def report(
    times: dict[str, dict[str, list[float]]], missed: dict[str, float], ran: dict[str, float]
) -> Iterator[str]:
    share = 0.0
    for name, rules in sorted(times.items()):
        own, interval = rules[""], rules["interval"][0]
        median, worst = statistics.median(own), max(own)
        share += median / interval
        yield (
            f"group {name}: {median:.3f} s median, {worst:.3f} s max per evaluation"
            f" ({100 * median / interval:.1f}%, {100 * worst / interval:.1f}% of {interval:g} s);"
            f" samples {len(own)}, iterations {ran.get(name, 0):.0f},"
            f" missed {missed.get(name, 0):.0f}"
        )
        ranked = sorted(
            ((statistics.median(v), k) for k, v in rules.items() if k not in ("", "interval")),
            reverse=True,
        )[:10]
        for seconds, rule in ranked:
            yield f"  {seconds * 1000:8.1f} ms  {rule}"
    yield f"all groups: {100 * share:.1f}% of the time (median evaluation / interval, summed)"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process `pid` has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text("ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--roles", type=int, default=500, help="roles (two per app)")
    parser.add_argument("--history", type=float, default=3600, help="seconds of histogram history")
    parser.add_argument("--history-step", type=float, default=15, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before sampling")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of sampling")
    parser.add_argument(
        "--rules",
        type=Path,
        default=ROOT / "prometheus" / "rules",
        help="directory of rule files (default: the project's), e.g. an older revision's",
    )


def run(args: argparse.Namespace) -> int:
    all_roles = roles(args.roles)
    origin = time.time() - args.history - 60
    print(
        f"rules at {args.roles} roles ({math.ceil(args.roles / 2)} apps x 2 roles) from"
        f" {args.rules}, histogram history {args.history:g} s at {args.history_step:g} s;"
        f" load average {_load()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as name:
        directory = Path(name)
        started = time.monotonic()
        server = serve(all_roles, origin)
        target = f"127.0.0.1:{server.server_port}"
        samples = 0
        if args.history > 0:
            samples = backfill(all_roles, origin, args, target, directory / "data")
        print(f"backfilled {samples} samples in {time.monotonic() - started:.0f} s", flush=True)
        process, url = start_prometheus(directory, target, args.rules)
        try:
            time.sleep(args.warmup)
            cpu, wall = cpu_seconds(process.pid), time.monotonic()
            times = sample(url, args.seconds)
            cpu, wall = cpu_seconds(process.pid) - cpu, time.monotonic() - wall
            missed = self_metrics(url, "prometheus_rule_group_iterations_missed_total")
            ran = self_metrics(url, "prometheus_rule_group_iterations_total")
            alerts = firing(url)
        finally:
            stop(process, timeout=30)
            server.shutdown()
    for line in report(times, missed, ran):
        print(line)
    print(
        f"Prometheus CPU while sampling: {cpu / wall:.2f} cores, {cpu / wall * INTERVAL:.2f} s"
        f" per {INTERVAL:g} s interval (scrapes, rules and storage; less starved by other"
        f" work than the wall-clock times above)"
    )
    print(f"ScaleRole firing: {alerts}; load average after {_load()}")
    return 0
