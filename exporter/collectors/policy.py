"""The policy settings of every role as gauges, so the PromQL rules stay generic.

min_dynos and max_dynos are those in force at the scrape (dynoscaler.schedules:
a window's, from boot_time before it opens); dynoscaler_schedule_active says
which windows are open.
"""

from __future__ import annotations

from dynoscaler import schedules
from dynoscaler.config import Config
from exporter.metrics import Sample

# metric suffix -> RoleSettings attribute
_SETTINGS = {
    "min_dynos": "min_dynos",
    "max_dynos": "max_dynos",
    "target_deadline_seconds": "target_deadline",
    "target_queue_seconds": "target_queue_time",
    "concurrency": "concurrency",
    "boot_seconds": "boot_time",
    "miss_ratio": "miss_ratio",
    "scale_down_window_seconds": "scale_down_window",
}


def policy_samples(config: Config, now: float) -> list[Sample]:
    """The roles' settings in force at `now` (epoch seconds) and their open windows."""
    samples = []
    for role in config.roles:
        settings = schedules.in_force(role, now)
        samples += [
            Sample(f"dynoscaler_policy_{metric}", role.key, getattr(settings, attribute))
            for metric, attribute in _SETTINGS.items()
        ]
        samples += [
            Sample("dynoscaler_schedule_active", (*role.key, name), int(is_open))
            for name, is_open in schedules.active(role, now).items()
        ]
        if role.sizes:  # the scaler chooses its size: ResizeRole instead of ScaleRole
            samples.append(Sample("dynoscaler_policy_sizes", role.key, len(role.sizes)))
    return samples
