"""Schedules: known windows (a sale, a nightly import) with their own floor and budget.

A role's `schedules:` list windows that open by a cron expression (or once, `at`
a date) in an IANA time zone and last `duration`. While windows are open the
role's floor and budget are theirs (several: the highest floor, the highest
budget; a window without one of them contributes the role's own); the model
keeps deciding above the floor. A window with a `min_dynos` is in force
`boot_time` seconds before it opens, so its dynos serve when it opens: a floor
at or below the running count changes nothing then, and holds the dynos a
scale-down would take just before the window needs them.

Cron expressions are evaluated by cronsim in the schedule's zone, the way Debian's
cron runs jobs across DST changes: a time the spring-forward skips opens at the
end of the gap; on the fall-back night an expression with a fixed hour opens once,
one with `*` in the hour field every hour of real time (croniter opens a daily
02:30 window twice that night).

The exporter publishes the values in force (`dynoscaler_policy_min_dynos` /
`_max_dynos`, so the rules need no change) and `dynoscaler_schedule_active`; the
scaler clamps with them too.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from dynoscaler.durations import duration_seconds

if TYPE_CHECKING:
    from dynoscaler.config import RoleSettings

_TICK = timedelta(microseconds=1)
# schedule -> (from, until, its latest opening at any time in [from, until))
_SPANS: dict[Schedule, tuple[float, float, float | None]] = {}


class ScheduleError(ValueError):
    """A schedule that cannot be used; `key` is the setting at fault (None: the whole entry)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Schedule:
    name: str
    duration: float  # seconds
    timezone: str = "UTC"
    cron: str | None = None
    at: float | None = None  # a one-off window's opening, epoch seconds
    min_dynos: int | None = None
    max_dynos: int | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def openings(self, after: float) -> Iterator[float]:
        """Opening times (epoch seconds) strictly after `after`, in order."""
        if self.at is not None:
            if self.at > after:
                yield self.at
            return
        assert self.cron is not None
        for opening in CronSim(self.cron, datetime.fromtimestamp(after, self.zone)):
            yield opening.timestamp()

    def last_opening(self, at_or_before: float) -> float | None:
        """The latest opening at or before `at_or_before`, or None.

        Remembered until the next opening: the exporter asks at every scrape for
        every role (cronsim takes a millisecond or two a call).
        """
        span = _SPANS.get(self)
        if span is not None and span[0] <= at_or_before < span[1]:
            return span[2]
        opening = self._last_opening(at_or_before)
        following = next(self.openings(at_or_before if opening is None else opening), math.inf)
        _SPANS[self] = (-math.inf if opening is None else opening, following, opening)
        return opening

    def _last_opening(self, at_or_before: float) -> float | None:
        if self.at is not None:
            return self.at if self.at <= at_or_before else None
        assert self.cron is not None
        start = datetime.fromtimestamp(at_or_before, self.zone) + _TICK
        opening = next(iter(CronSim(self.cron, start, reverse=True)), None)
        return None if opening is None else opening.timestamp()

    def open_at(self, when: float, lead: float = 0.0) -> bool:
        """Whether a window is open at `when`, counting each from `lead` seconds early.

        Every window lasts `duration`: the one opened last ends last, so it alone decides.
        """
        opened = self.last_opening(when + lead)
        return opened is not None and when < opened + self.duration

    def lead(self, boot_time: float) -> float:
        """Seconds before opening the window is in force: boot_time when it sets a floor."""
        return boot_time if self.min_dynos is not None else 0.0


def in_force(role: RoleSettings, when: float) -> RoleSettings:
    """The role's settings at `when` (epoch seconds): min_dynos and max_dynos those of
    the windows in force then (pre-warm included), else the role's own."""
    floors, budgets = [], []
    for schedule in role.schedules:
        if schedule.open_at(when, schedule.lead(role.boot_time)):
            floors.append(role.min_dynos if schedule.min_dynos is None else schedule.min_dynos)
            budgets.append(role.max_dynos if schedule.max_dynos is None else schedule.max_dynos)
    if not floors:
        return role
    return dataclasses.replace(role, min_dynos=max(floors), max_dynos=max(budgets))


def active(role: RoleSettings, when: float) -> dict[str, bool]:
    """Each schedule's name and whether one of its windows is open at `when` (no lead)."""
    return {schedule.name: schedule.open_at(when) for schedule in role.schedules}


def next_windows(role: RoleSettings, after: float, count: int) -> list[tuple[Schedule, float]]:
    """The next `count` openings (schedule, epoch seconds) of the role's schedules after
    `after`, earliest first."""
    openings = [
        (schedule, opening)
        for schedule in role.schedules
        for opening in itertools.islice(schedule.openings(after), count)
    ]
    return sorted(openings, key=lambda pair: pair[1])[:count]


def describe(schedule: Schedule, opening: float) -> str:
    """One window for people: its local and UTC opening, length and limits."""
    local = datetime.fromtimestamp(opening, schedule.zone)
    utc = datetime.fromtimestamp(opening, UTC)
    limits = [
        f"{key}={value}"
        for key, value in (("min_dynos", schedule.min_dynos), ("max_dynos", schedule.max_dynos))
        if value is not None
    ]
    return (
        f"{schedule.name}: {local:%Y-%m-%d %H:%M %Z} ({utc:%H:%M} UTC) "
        f"for {schedule.duration / 60:g} min{', ' if limits else ''}{', '.join(limits)}"
    )


def parse(entry: Mapping[str, Any], floor: int, budget: int, now: float) -> Schedule:
    """One schedule of the settings (already of the schema's shape) for a role whose own
    floor and budget are `floor` and `budget`; ScheduleError names the key at fault."""
    if ("cron" in entry) == ("at" in entry):
        raise ScheduleError(None, "give either cron (a window that repeats) or at (once)")
    zone_name = entry.get("timezone", "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "timezone", f"unknown time zone {zone_name!r} (an IANA name such as Europe/Oslo)"
        ) from None
    duration = _duration(entry["duration"])
    at = None if "at" not in entry else _at(entry["at"], zone)
    schedule = Schedule(
        name=entry["name"],
        duration=duration,
        timezone=zone_name,
        cron=entry.get("cron"),
        at=at,
        min_dynos=entry.get("min_dynos"),
        max_dynos=entry.get("max_dynos"),
    )
    if schedule.cron is not None:
        _check_cron(schedule.cron, zone, now)
    elif at is not None and at + duration <= now:
        raise ScheduleError("at", f"the window {entry['at']!r} is in the past")
    window_floor = floor if schedule.min_dynos is None else schedule.min_dynos
    window_budget = budget if schedule.max_dynos is None else schedule.max_dynos
    if window_floor > window_budget:
        key = "min_dynos" if schedule.min_dynos is not None else "max_dynos"
        raise ScheduleError(
            key,
            f"the window's floor ({window_floor}) is above its budget ({window_budget}); "
            "a window without min_dynos or max_dynos has the role's",
        )
    return schedule


def _duration(value: Any) -> float:
    try:
        seconds = duration_seconds(value) if isinstance(value, str) else float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 365 * 86400:
        raise ScheduleError(
            "duration",
            f"{value!r} is not a duration: seconds, or 35m, 2h, 1h30m (above 0, a year at most)",
        )
    return seconds


def _at(text: str, zone: ZoneInfo) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScheduleError(
            "at", f"{text!r} is not a date and time (2026-11-27T09:55, in the schedule's zone)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def _check_cron(expression: str, zone: ZoneInfo, now: float) -> None:
    """Five fields that cronsim reads and that name a time that exists."""
    if len(expression.split()) != 5:
        raise ScheduleError(
            "cron",
            f"{expression!r} is not a cron expression of five fields "
            "(minute hour day-of-month month weekday)",
        )
    try:  # cronsim refuses a field out of range and a day that never comes (30 2)
        CronSim(expression, datetime.fromtimestamp(now, zone))
    except CronSimError as error:
        raise ScheduleError(
            "cron",
            f"{expression!r} is not a valid cron expression, or names no time that comes "
            f"(cronsim: {error})",
        ) from None
