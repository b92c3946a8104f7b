"""The static parts of the simulated world: time lines, the FX market, random streams, value helpers.

Every random stream is a numpy ``Generator`` seeded from ``(seed, region, purpose, day)``, so a
region's events depend only on the seed and that region (not on which other regions run), and a
region-day's draws do not depend on how earlier days were chunked.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from shopops.core.money import minor_units
from shopops.simulator.model import SimulationConfig

US_PER_S = 1_000_000
US_PER_H = 3_600 * US_PER_S
US_PER_DAY = 24 * US_PER_H
EPOCH = date(1970, 1, 1)
#: Days simulated past the window for things that happen after it (settlements, deliveries):
#: they are recorded in the ground truth but not emitted.
HORIZON_DAYS = 90

# Purposes of the random streams, part of each stream's seed.
STREAM_WORLD = 0
STREAM_DAY = 1
STREAM_EMIT = 2
STREAM_FX = 3
#: Bad rows for the data contracts (a stream of its own: no other table changes with its rates).
STREAM_BAD = 4


def stable_id(text: str) -> int:
    """A process-independent integer for ``text`` (Python's ``hash`` of a str is salted)."""
    return zlib.crc32(text.encode())


def rng_for(seed: int, scope: str, purpose: int, day: int = 0) -> np.random.Generator:
    """The random stream of ``scope`` (a region code or a currency) for ``purpose`` on ``day``."""
    return np.random.default_rng([seed, stable_id(scope), purpose, day])


class Timeline:
    """Local days of one region as UTC microsecond boundaries, and its event buckets per day.

    Events are pushed into the bucket of the local day they fall in; events past the window are
    dropped (the caller records them in the ground truth as outside the window).
    """

    def __init__(self, start: date, days: int, tz: ZoneInfo) -> None:
        self.days = days
        self.tz = tz
        self.day_starts: list[int] = [
            to_us(datetime.combine(start + timedelta(days=d), time(), tzinfo=tz))
            for d in range(days + HORIZON_DAYS + 1)
        ]
        self.start_us = self.day_starts[0]
        self.end_us = self.day_starts[days]
        self.buckets: list[list[Event]] = [[] for _ in range(days)]
        #: Days already taken for emission; nothing may be scheduled into them any more.
        self.taken = 0
        self._seq = 0
        self._grp = 0

    def day_of(self, ts_us: int) -> int:
        """Index of the local day holding ``ts_us`` (may be past the window, or -1 before it)."""
        return bisect_right(self.day_starts, ts_us) - 1

    def local_date(self, ts_us: int) -> date:
        return datetime.fromtimestamp(ts_us / US_PER_S, self.tz).date()

    def midnight_us(self, day: date) -> int:
        """The local midnight starting ``day``, in UTC microseconds."""
        return to_us(datetime.combine(day, time(), tzinfo=self.tz))

    def in_window(self, ts_us: int) -> bool:
        return self.start_us <= ts_us < self.end_us

    def group(self) -> int:
        """A new transaction group id: events pushed with the same group share a ``txId``."""
        self._grp += 1
        return self._grp

    def push(
        self,
        ts_us: int,
        tid: int,
        op: str,
        key: dict[str, Any],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        grp: int,
    ) -> bool:
        """Schedule one change event; returns whether it falls inside the window (and is emitted)."""
        if ts_us >= self.end_us or ts_us < self.start_us:
            return False
        day = bisect_right(self.day_starts, ts_us) - 1
        if day < self.taken:
            raise RuntimeError(f"event at {ts_us} scheduled into day {day}, which was already emitted")
        self._seq += 1
        self.buckets[day].append((ts_us, self._seq, tid, op, key, before, after, grp))
        return True

    def take(self, day: int) -> list[Event]:
        """Remove and return the events of ``day``, in event-time order."""
        events = self.buckets[day]
        self.buckets[day] = []
        self.taken = day + 1
        # (ts, seq) is unique, so tuple comparison never reaches the dicts.
        events.sort()
        return events


#: (ts_us, seq, table index, op, key, before, after, transaction group)
Event = tuple[int, int, int, str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None, int]


def to_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def epoch_days(day: date) -> int:
    """A date as Debezium's ``io.debezium.time.Date``: days since 1970-01-01."""
    return (day - EPOCH).days


def money_formatter(currency: str) -> Callable[[int], str]:
    """A function formatting an amount in minor units as a decimal string (``12345`` -> ``"123.45"``)."""
    units = minor_units(currency)
    if units == 0:
        return str
    scale = 10**units

    def fmt(value: int) -> str:
        sign = "-" if value < 0 else ""
        whole, frac = divmod(abs(value), scale)
        return f"{sign}{whole}.{frac:0{units}d}"

    return fmt


def round_half_even(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


class FxMarket:
    """Daily USD reference rates of the region currencies (units of currency per 1 USD).

    Each currency follows its own random walk seeded from ``(seed, currency)``; every region's
    finance database publishes the same market rates each morning.
    """

    def __init__(self, config: SimulationConfig, initial: dict[str, float]) -> None:
        self.start = config.start
        self.days = config.days
        n = config.days + HORIZON_DAYS + 1
        self.rates: dict[str, list[Decimal]] = {}
        for currency, first in sorted(initial.items()):
            rng = rng_for(config.seed, currency, STREAM_FX)
            steps = rng.normal(0.0, 0.004, n)
            steps[0] = 0.0
            path = first * np.exp(np.cumsum(steps))
            self.rates[currency] = [Decimal(f"{x:.6f}") for x in path.tolist()]

    @property
    def currencies(self) -> list[str]:
        return list(self.rates)

    def rate(self, currency: str, day: int) -> Decimal:
        """Units of ``currency`` per USD on window day ``day`` (clamped to the simulated horizon)."""
        if currency == "USD":
            return Decimal(1)
        path = self.rates[currency]
        return path[min(max(day, 0), len(path) - 1)]

    def to_usd(self, amount_minor: int, currency: str, rate: Decimal) -> int:
        """Convert ``amount_minor`` of ``currency`` to USD cents at ``rate``, rounding half-even."""
        major = Decimal(amount_minor).scaleb(-minor_units(currency))
        return round_half_even((major / rate).scaleb(2))

    def from_usd(self, cents: int, currency: str, rate: Decimal) -> int:
        """Convert USD cents to minor units of ``currency`` at ``rate``, rounding half-even."""
        major = Decimal(cents).scaleb(-2) * rate
        return round_half_even(major.scaleb(minor_units(currency)))


def hexes(rng: np.random.Generator, n: int, prefix: str = "", width: int = 16) -> list[str]:
    """``n`` random hexadecimal identifiers."""
    values = rng.integers(0, 2**63 - 1, n, dtype=np.int64).tolist()
    modulus = 16**width
    return [f"{prefix}{v % modulus:0{width}x}" for v in values]


def ips(rng: np.random.Generator, n: int, first_octet: int) -> list[str]:
    """``n`` random IPv4 addresses inside ``first_octet``.0.0.0/8."""
    parts = rng.integers(1, 255, (n, 3)).tolist()
    return [f"{first_octet}.{a}.{b}.{c}" for a, b, c in parts]
