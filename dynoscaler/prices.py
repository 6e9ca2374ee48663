"""What a dyno costs: Heroku's published prices per dyno type, overridable in settings.

Heroku bills a dyno by the second, prorated from its monthly price: an hour is
1/720 of the month (the Heroku CLI's `ps:type` computes hourly prices so), and a
dyno never costs more than its monthly price in a month. The figures are
heroku.com/pricing's in US dollars, as the Heroku CLI carries them
(lib/commands/ps/type.js): the Cedar common runtime, Private and Shield spaces,
and Fir's sizes (dyno-<cores>c-<memory>gb). Eco is one $5 plan for a pool of 1,000
dyno-hours, so its hour is counted at $0.005.

Settings may override a type's price or add a type (`prices:`, dollars per
dyno-hour). Dyno type names are case-insensitive (the API answers
"Standard-1X" for "standard-1x").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HOURS_PER_MONTH = 720
ECO_POOL_HOURS = 1000

# Dollars per dyno per month.
MONTHLY: dict[str, float] = {
    "basic": 7,
    "standard-1x": 25,
    "standard-2x": 50,
    "performance-m": 250,
    "performance-l": 500,
    "performance-l-ram": 500,
    "performance-xl": 750,
    "performance-2xl": 1500,
    "private-s": 225,
    "private-m": 450,
    "private-l": 900,
    "private-memory-l": 500,
    "private-memory-xl": 750,
    "private-memory-2xl": 1500,
    "shield-s": 270,
    "shield-m": 540,
    "shield-l": 1080,
    "shield-memory-l": 600,
    "shield-memory-xl": 900,
    "shield-memory-2xl": 1800,
    # Fir
    "dyno-1c-0.5gb": 25,
    "dyno-2c-1gb": 50,
    "dyno-1c-4gb": 80,
    "dyno-2c-8gb": 160,
    "dyno-4c-16gb": 320,
    "dyno-8c-32gb": 640,
    "dyno-16c-64gb": 1000,
    "dyno-2c-4gb": 150,
    "dyno-4c-8gb": 300,
    "dyno-8c-16gb": 600,
    "dyno-16c-32gb": 1200,
    "dyno-32c-64gb": 2400,
    "dyno-1c-8gb": 100,
    "dyno-2c-16gb": 250,
    "dyno-4c-32gb": 500,
    "dyno-8c-64gb": 750,
    "dyno-16c-128gb": 1500,
}

HOURLY: dict[str, float] = {
    "eco": 5 / ECO_POOL_HOURS,
    **{size: monthly / HOURS_PER_MONTH for size, monthly in MONTHLY.items()},
}

# The size of a formation Heroku has not told (a new process type's default).
DEFAULT_SIZE = "standard-1x"


class UnknownDynoType(ValueError):
    """A dyno type the price table does not hold; the message names it."""


@dataclass(frozen=True)
class Prices:
    """Dollars per dyno-hour per dyno type: Heroku's, with the settings' overrides."""

    overrides: Mapping[str, float] = field(default_factory=dict)

    def hourly(self, size: str) -> float:
        """Dollars per hour of one dyno of `size`; UnknownDynoType if no price is known."""
        name = size.lower()
        overrides = {k.lower(): v for k, v in self.overrides.items()}
        if name in overrides:
            return overrides[name]
        if name in HOURLY:
            return HOURLY[name]
        raise UnknownDynoType(
            f"no price for dyno type {size!r}: add it under prices: (dollars per dyno-hour)"
        )

    def cost(self, size: str, dyno_seconds: float) -> float:
        """Dollars for `dyno_seconds` of dynos of `size`."""
        return self.hourly(size) * dyno_seconds / 3600

    @property
    def sizes(self) -> tuple[str, ...]:
        """Every dyno type with a price, cheapest first."""
        names = dict.fromkeys([*HOURLY, *(k.lower() for k in self.overrides)])
        return tuple(sorted(names, key=lambda name: (self.hourly(name), name)))
