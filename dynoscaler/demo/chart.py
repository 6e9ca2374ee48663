"""A PNG chart of a demo run: load, queue and waiting time vs deadline, dynos vs desired."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the non-interactive backend

from dynoscaler.demo.live import Sample  # noqa: E402
from dynoscaler.role_chart import queue_panel  # noqa: E402


def arrivals_per_second(pushed: Sequence[tuple[float, int]]) -> tuple[list[float], list[int]]:
    """The producer's (elapsed, count) ticks summed into whole seconds."""
    per_second: dict[int, int] = {}
    for elapsed, count in pushed:
        per_second[int(elapsed)] = per_second.get(int(elapsed), 0) + count
    seconds = sorted(per_second)
    return [float(s) for s in seconds], [per_second[s] for s in seconds]


def draw(
    samples: Sequence[Sample],
    pushed: Sequence[tuple[float, int]],
    load_offset: float,
    warmup: float,
    title: str,
    path: Path,
) -> Path:
    """Draw one role's run; `load_offset` is when the producer started on the samples' clock,
    and the scenario's own clock starts `warmup` seconds later (a dashed line)."""
    fig, (load, queue, dynos) = plt.subplots(3, 1, sharex=True, figsize=(10, 9))
    fig.suptitle(title)
    t = [s.t for s in samples]

    seconds, counts = arrivals_per_second(pushed)
    load.plot([s + load_offset for s in seconds], counts, label="jobs enqueued per second")
    done = [s.done for s in samples]
    rates = [
        (b - a) / max(tb - ta, 1e-9) for a, b, ta, tb in zip(done, done[1:], t, t[1:], strict=False)
    ]
    load.plot(t[1:], rates, label="jobs done per second")
    load.set_ylabel("jobs/s")
    load.legend(loc="upper right")

    deadline = samples[0].deadline if samples else 0
    queue_panel(queue, t, [s.depth for s in samples], [s.oldest for s in samples], deadline)

    dynos.step(t, [s.dynos for s in samples], where="post", label="formation (Heroku)")
    dynos.step(t, [s.up for s in samples], where="post", label="dynos taking jobs")
    dynos.plot(t, [s.desired for s in samples], ls=":", label="desired (Prometheus rules)")
    dynos.set_ylabel("dynos")
    dynos.set_xlabel("seconds since start (dashed: the scenario starts, after the warm-up)")
    dynos.legend(loc="upper right")

    for axes in (load, queue, dynos):
        axes.axvline(load_offset + warmup, color="grey", ls="--", lw=0.8)
    late = samples[-1].late if samples else 0
    done_total = samples[-1].done if samples else 0
    fig.text(0.01, 0.005, f"jobs done {done_total}, finished after the deadline {late}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
