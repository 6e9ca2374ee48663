"""The policy settings of every role as gauges, so the PromQL rules stay generic."""

from __future__ import annotations

from dynoscaler.config import Config
from exporter.metrics import Sample

# metric suffix -> RoleSettings attribute
_SETTINGS = {
    "min_dynos": "min_dynos",
    "max_dynos": "max_dynos",
    "target_deadline_seconds": "target_deadline",
    "concurrency": "concurrency",
    "boot_seconds": "boot_time",
    "miss_ratio": "miss_ratio",
    "scale_down_window_seconds": "scale_down_window",
}


def policy_samples(config: Config) -> list[Sample]:
    return [
        Sample(f"dynoscaler_policy_{metric}", role.key, getattr(role, attribute))
        for role in config.roles
        for metric, attribute in _SETTINGS.items()
    ]
