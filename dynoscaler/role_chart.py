"""PNG charts of a role over time, panel by panel (matplotlib, no display).

The shadow report, the snapshot and the demo's chart draw with these panels,
so a role looks the same in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.figure import Figure

from dynoscaler.role_series import TERMS, RoleSeries

Values = Sequence[float | None]


def figure(rows: int, title: str, height: float = 3.0) -> tuple[Any, list[Any]]:
    """A figure of `rows` panels sharing the x axis. A Figure, not pyplot's: the
    scaler draws in its notifier threads, and pyplot's state is global."""
    fig = Figure(figsize=(10, height * rows))
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    fig.suptitle(title)
    return fig, [row[0] for row in axes]


def save(fig: Any, path: Path, note: str = "") -> Path:
    """Write the PNG with `note` under the panels (the figure grows by its lines)."""
    lines = note.count("\n") + 1 if note else 0
    fig.set_figheight(fig.get_figheight() + 0.17 * lines)
    height = fig.get_figheight()
    if note:
        fig.text(0.01, 0.1 / height, note, fontsize=8, va="bottom")
    # Fixed margins, in inches: tight_layout doubled the drawing time.
    fig.subplots_adjust(
        left=0.08,
        right=0.92,
        top=1 - 0.5 / height,
        bottom=(0.6 + 0.17 * lines) / height,
        hspace=0.12,
    )
    fig.savefig(path, dpi=100)
    return path


def queue_panel(
    axes: Any, x: Sequence[Any], depth: Values, oldest: Values, deadline: float | Values
) -> None:
    """Jobs waiting (left axis) and the oldest job's wait against the deadline (right)."""
    axes.plot(x, _floats(depth), label="queue depth", color="tab:purple")
    axes.set_ylabel("jobs waiting")
    age = axes.twinx()
    age.plot(x, _floats(oldest), label="oldest job's wait (s)", color="tab:red")
    if isinstance(deadline, int | float):
        age.axhline(deadline, color="tab:red", ls="--", label="deadline")
    else:
        age.plot(x, _floats(deadline), color="tab:red", ls="--", label="deadline")
    age.set_ylabel("seconds")
    lines = axes.get_legend_handles_labels()[0] + age.get_legend_handles_labels()[0]
    axes.legend(lines, [line.get_label() for line in lines], loc="upper right")


def lines_panel(
    axes: Any,
    x: Sequence[Any],
    lines: Sequence[tuple[str, Values]],
    ylabel: str,
    steps: Sequence[str] = (),
) -> None:
    """One line per (label, values); the labels in `steps` drawn as steps (counts)."""
    for label, values in lines:
        if label in steps:
            axes.step(x, _floats(values), where="post", label=label)
        else:
            axes.plot(x, _floats(values), label=label)
    axes.set_ylabel(ylabel)
    axes.legend(loc="upper right")


def series_panel(
    axes: Any, series: RoleSeries, names: Sequence[str], ylabel: str, steps: Sequence[str] = ()
) -> None:
    """lines_panel for terms of a RoleSeries, labelled with the terms' labels."""
    lines = [(TERMS[n].label, series.values[n]) for n in names if n in series.values]
    step_labels = [TERMS[n].label for n in steps]
    lines_panel(axes, clock(series.times), lines, ylabel, step_labels)


def mark(axes: Any, when: float, text: str) -> None:
    """A vertical line at Unix time `when` with a short label (a decision)."""
    x = clock([when])[0]
    axes.axvline(x, color="grey", ls=":", lw=0.8)
    axes.annotate(
        text,
        (x, 1),
        xycoords=("data", "axes fraction"),
        fontsize=7,
        rotation=90,
        va="top",
        ha="right",
    )


def clock(times: Sequence[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in times]


def utc_axis(axes: Any) -> None:
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    axes.set_xlabel("UTC")


def _floats(values: Values) -> list[float]:
    return [float("nan") if v is None else v for v in values]
