"""Time the rules per evaluation on one Prometheus or on app shards (docs/scaling.md).

    .venv/bin/python prometheus/sharding/measure.py --roles 500 --shards 1
    .venv/bin/python prometheus/sharding/measure.py --roles 500 --shards 2

Serves the metric contract for `--roles` apps of one worker role each (loads
differing by app, counters growing with time), starts `--shards` Prometheus
servers with prometheus/prometheus.yml (its 5s intervals) and the rules, each
keeping its apps with shard-relabel.yml's hashmod relabelling, and after the
rate windows have filled (a minute) samples every group's last evaluation
time (/api/v1/rules) and each shard's scrape duration every 5 s for
`--seconds` more. Prints min-max per shard and group.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

from dynoscaler.bench_rules import POLICY
from dynoscaler.processes import free_port, stop, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"


def exposition(apps: int, started: float) -> bytes:
    elapsed = time.monotonic() - started
    lines = ["# TYPE dynoscaler_jobs_completed_total counter"]
    for n in range(apps):
        role = f'app="app{n}",role="worker"'
        queue = f'{role},queue="default",backend="sidekiq"'
        rate = 1 + n % 7
        lines += [f"dynoscaler_policy_{name}{{{role}}} {v}" for name, v in POLICY.items()]
        lines += [
            f"dynoscaler_dynos{{{role}}} {1 + n % 3}",
            f"dynoscaler_queue_depth{{{queue}}} {n % 50}",
            f"dynoscaler_queue_in_progress{{{queue}}} {2 * rate}",
            f"dynoscaler_queue_oldest_age_seconds{{{queue}}} {n % 11}",
            f"dynoscaler_jobs_completed_total{{{queue}}} {rate * elapsed:.3f}",
            f'dynoscaler_source_up{{{role},source="redis://h/0",backend="sidekiq"}} 1',
        ]
    return ("\n".join(lines) + "\n").encode()


def serve(apps: int) -> ThreadingHTTPServer:
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = exposition(apps, started)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shard_config(shard: int, shards: int, target: str) -> dict:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text("utf-8"))
    snippet = (ROOT / "prometheus" / "sharding" / "shard-relabel.yml").read_text("utf-8")
    relabel = yaml.safe_load(snippet)["metric_relabel_configs"]
    relabel[0]["modulus"] = shards
    relabel[1]["regex"] = relabel[1]["regex"].replace(";0", f";{shard}")
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "dynoscaler-exporter"]
    job["static_configs"] = [{"targets": [target]}]
    if shards > 1:
        job["metric_relabel_configs"] = relabel
    config["scrape_configs"] = [job]
    del config["alerting"]
    return config


def sample(url: str, query: str, key: str) -> dict[str, float]:
    response = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    return {
        r["metric"].get(key, ""): float(r["value"][1]) for r in response.json()["data"]["result"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--roles", type=int, default=500)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    server = serve(args.roles)
    target = f"127.0.0.1:{server.server_address[1]}"
    processes, urls = [], []
    with tempfile.TemporaryDirectory() as temporary:
        try:
            for shard in range(args.shards):
                directory = Path(temporary) / f"shard-{shard}"
                directory.mkdir()
                (directory / "rules").symlink_to(ROOT / "prometheus" / "rules")
                config = shard_config(shard, args.shards, target)
                (directory / "prometheus.yml").write_text(yaml.safe_dump(config), "utf-8")
                port = free_port()
                processes.append(start_prometheus(directory, port))
                urls.append(f"http://127.0.0.1:{port}")
                wait_until_answering(f"{urls[-1]}/-/ready", processes[-1], ok_only=True)
            time.sleep(75)  # the rates need a minute of samples before the whole chain runs
            seen: dict[tuple[int, str], list[float]] = {}
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                for shard, url in enumerate(urls):
                    rules = requests.get(f"{url}/api/v1/rules", timeout=10).json()
                    for group in rules["data"]["groups"]:
                        seen.setdefault((shard, group["name"]), []).append(group["evaluationTime"])
                    scrape = sample(url, "scrape_duration_seconds", "job")
                    for value in scrape.values():
                        seen.setdefault((shard, "scrape"), []).append(value)
                time.sleep(5)
            for shard, url in enumerate(urls):
                roles = sample(url, "count(app_role:dynoscaler_desired_dynos)", "")
                print(f"shard {shard}: {roles.get('', 0):.0f} roles with a desired count")
            for (shard, name), values in sorted(seen.items()):
                low, high = min(values), max(values)
                print(f"shard {shard} {name}: {low:.3f}-{high:.3f} s ({len(values)} samples)")
        finally:
            for process in processes:
                stop(process, timeout=15)
            server.shutdown()


def start_prometheus(directory: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    main()
