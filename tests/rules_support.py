"""Run the PromQL rules on synthetic series with promtool and read the results.

promtool is the real PromQL engine with the real rule evaluation loop; a test
case that expects no samples fails and prints every sample it got, in Go's
round-trip float format, which is how `probe` reads rule results back.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from dynoscaler.config import QueueSettings, RoleSettings

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "rules"
PROMTOOL = "/usr/bin/promtool"
STEP = 15  # seconds between samples and between rule evaluations

_BLOCK = re.compile(
    r'expr: "(?P<expr>(?:[^"\\]|\\.)*)", time: (?P<time>\S+),\n(?P<body>.*?)(?=\n\s*expr: "|\Z)',
    re.S,
)
_SAMPLE = re.compile(r"\{(?P<labels>[^}]*)\} (?P<value>[-+0-9.eE]+|NaN|[-+]Inf)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Labels = tuple[tuple[str, str], ...]

# A worker role the model's tests and the live rules test start from.
WORKER = RoleSettings(
    app="shop",
    role="worker",
    min_dynos=0,
    max_dynos=10,
    target_deadline=60,
    boot_time=10,
    concurrency=2,
    miss_ratio=0.01,
    scale_down_window=300,
    cooldown=60,
    max_step=10,
    queues=(QueueSettings("default", "sidekiq", "redis://127.0.0.1:6379/0"),),
)

POLICY_NAMES = {
    "min_dynos": "dynoscaler_policy_min_dynos",
    "max_dynos": "dynoscaler_policy_max_dynos",
    "target_deadline": "dynoscaler_policy_target_deadline_seconds",
    "target_queue_time": "dynoscaler_policy_target_queue_seconds",  # optional: web roles
    "concurrency": "dynoscaler_policy_concurrency",
    "boot_time": "dynoscaler_policy_boot_seconds",
    "miss_ratio": "dynoscaler_policy_miss_ratio",
    "scale_down_window": "dynoscaler_policy_scale_down_window_seconds",
}


def selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inner}}}"


def values(samples: Iterable[float | None]) -> str:
    """promtool's value list: one value per STEP, '_' for a missing sample."""
    return " ".join("_" if v is None else repr(float(v)) for v in samples)


def run_test_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )


def probe(
    series: Mapping[str, str], queries: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], dict[Labels, float]]:
    """Evaluate each (PromQL query, seconds) after running the rules on `series`."""
    queries = list(queries)
    test = {
        "rule_files": [str(path) for path in sorted(RULES.glob("*.yml"))],
        "evaluation_interval": f"{STEP}s",
        "group_eval_order": [
            "dynoscaler_policy",
            "dynoscaler_duration_tail",
            "dynoscaler_web",
            "dynoscaler_capacity",
            "dynoscaler_alerts",
        ],
        "tests": [
            {
                "interval": f"{STEP}s",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": f"{seconds}s", "exp_samples": []}
                    for expr, seconds in queries
                ],
            }
        ],
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "probe.yml"
        path.write_text(yaml.safe_dump(test), encoding="utf-8")
        result = run_test_file(path)
    if "FAILED" not in result.stdout + result.stderr and result.returncode != 0:
        raise RuntimeError(f"promtool failed:\n{result.stdout}\n{result.stderr}")
    found: dict[tuple[str, int], dict[Labels, float]] = {query: {} for query in queries}
    for block in _BLOCK.finditer(result.stdout + result.stderr):
        key = (_unquote(block["expr"]), seconds(block["time"]))
        got = block["body"].split("got:", 1)[-1]
        found[key] = {
            tuple(sorted(_LABEL.findall(sample["labels"]))): float(sample["value"])
            for sample in _SAMPLE.finditer(got)
        }
    return found


def _unquote(text: str) -> str:
    return text.encode().decode("unicode_escape")


def seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))
