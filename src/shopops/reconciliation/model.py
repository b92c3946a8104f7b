"""Reconciliation model: exception classes, matching rules, windows, run reports (pure).

The rules of a region are data, not code: one versioned YAML file per region (see
docs/reconciliation.md) validated into :class:`RegionRules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shopops.core.errors import InvalidInputError
from shopops.domain.regions import REGIONS

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR


class ExceptionClass(StrEnum):
    """What is wrong with a record (or, for the two tolerated kinds, what explains a difference)."""

    MISSING_PAYMENT = "missing_payment"
    PAYMENT_WITHOUT_ORDER = "payment_without_order"
    AMOUNT_MISMATCH = "amount_mismatch"
    FX_DIFFERENCE = "fx_difference"
    ROUNDING_DIFFERENCE = "rounding_difference"
    DUPLICATE = "duplicate"
    LATE_SETTLEMENT = "late_settlement"
    CROSS_REGION_PAYMENT = "cross_region_payment"
    CURRENCY_MISMATCH = "currency_mismatch"
    LEDGER_BREAK = "ledger_break"
    MISSING_FX_RATE = "missing_fx_rate"
    UNKNOWN_CURRENCY = "unknown_currency"


#: One line per class: what it means. Shown by ``shopops reconcile classes`` and in the docs.
CLASS_DESCRIPTIONS: dict[ExceptionClass, str] = {
    ExceptionClass.MISSING_PAYMENT: "a paid order has no payment record from any provider",
    ExceptionClass.PAYMENT_WITHOUT_ORDER: "a provider recorded a payment for an unknown order",
    ExceptionClass.AMOUNT_MISMATCH: "captured or settled amounts differ from the order beyond tolerance",
    ExceptionClass.FX_DIFFERENCE: "the provider converted at a rate off the reference rate, within tolerance",
    ExceptionClass.ROUNDING_DIFFERENCE: "a settlement is off by a rounding amount, within tolerance",
    ExceptionClass.DUPLICATE: "the same record arrived more than once; it is counted once",
    ExceptionClass.LATE_SETTLEMENT: "the payment was recorded or settled later than the rules allow",
    ExceptionClass.CROSS_REGION_PAYMENT: "the payment was recorded by another region's provider",
    ExceptionClass.CURRENCY_MISMATCH: "the payment is in another currency than the order",
    ExceptionClass.LEDGER_BREAK: "the ledger books an amount or journal that disagrees with the order",
    ExceptionClass.MISSING_FX_RATE: "a conversion cannot be checked: its day has no reference rate",
    ExceptionClass.UNKNOWN_CURRENCY: "a payment or settlement is in a currency shopops does not know",
}

#: Classes that explain a difference the books can close with (severity ``info``); others are breaks.
TOLERATED: frozenset[ExceptionClass] = frozenset(
    {ExceptionClass.FX_DIFFERENCE, ExceptionClass.ROUNDING_DIFFERENCE}
)


def severity(cls: ExceptionClass) -> Literal["info", "break"]:
    return "info" if cls in TOLERATED else "break"


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tolerance(_Rules):
    #: Minor units an order's total and its captured payments may differ after conversion.
    amount: int = Field(default=0, ge=0)
    #: Minor units a settlement may be off the correctly converted amount (``rounding_difference``).
    rounding: int = Field(default=1, ge=0)
    #: Percent a provider's applied FX rate may be off the reference rate (``fx_difference``);
    #: beyond it the settlement is an ``amount_mismatch``.
    fx_rate_pct: float = Field(default=2.5, ge=0, le=100)


class Windows(_Rules):
    #: A payment recorded more than this many hours after its capture is a ``late_settlement``.
    record_within_hours: float = Field(default=24, gt=0)
    #: A payment settled more than this many hours after its capture is a ``late_settlement``.
    settle_within_hours: float = Field(default=48, gt=0)
    #: Hours the ledger may take to book a settlement: a younger unbooked one is pending, not a break.
    book_within_hours: float = Field(default=6, ge=0)
    #: Days before and after the window whose input records are read (late payments, refunds).
    lookback_days: int = Field(default=10, ge=0, le=366)


class Keys(_Rules):
    #: Column of a payment that holds the order key.
    payment_order: str = "order_id"
    #: Columns that identify a provider transaction: a value seen on two payment ids is a ``duplicate``.
    provider_reference: str = "provider_ref"


class Ledger(_Rules):
    clearing_account: str = "provider_clearing"
    order_journal: str = "order_paid"
    settlement_journal: str = "payment_settled"


class RegionRules(_Rules):
    """The matching rules of one region (one YAML file, reviewed in git)."""

    region: str
    #: Bumped on every change; stored with each result so a result names the rules that made it.
    version: int = Field(ge=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    #: Decimals of the currency (VND 0, SGD 2).
    minor_units: int = Field(ge=0, le=4)
    timezone: str
    #: Order statuses that mean the customer paid: such an order must have a payment.
    paid_statuses: tuple[str, ...] = ("paid", "shipped", "delivered", "partially_refunded", "cancelled")
    tolerance: Tolerance = Tolerance()
    windows: Windows = Windows()
    keys: Keys = Keys()
    ledger: Ledger = Ledger()

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in REGIONS:
            raise ValueError(f"unknown region {value!r} (known: {', '.join(REGIONS)})")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RegionRules:
        expected = REGIONS[self.region].currency
        if self.currency != expected:
            raise ValueError(f"currency {self.currency} does not match region {self.region} ({expected})")
        return self

    @property
    def ref(self) -> str:
        """How results cite these rules: ``vn@v1``."""
        return f"{self.region}@v{self.version}"

    def utc_offset_us(self, on: date) -> int:
        """The zone's UTC offset in microseconds on ``on`` (the regions here keep no daylight time)."""
        noon = datetime(on.year, on.month, on.day, 12, tzinfo=ZoneInfo(self.timezone))
        offset = noon.utcoffset() or timedelta(0)
        return int(offset.total_seconds()) * 1_000_000


@dataclass(frozen=True, slots=True)
class Window:
    """Business dates ``start``..``end`` (both included), local to each region."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidInputError(
                f"empty window: {self.end} is before {self.start}", hint="give --to on or after --from"
            )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def epoch_days(self) -> tuple[int, int]:
        epoch = date(1970, 1, 1)
        return (self.start - epoch).days, (self.end - epoch).days

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{what}: {text!r} is not a date", hint="use YYYY-MM-DD") from None


@dataclass(slots=True)
class RunReport:
    """What one reconciliation run did."""

    run_id: str
    window: Window
    regions: list[str]
    engine: str
    rules: dict[str, str]
    started_at: datetime
    seconds: float = 0.0
    orders: int = 0
    payments: int = 0
    ledger_entries: int = 0
    exceptions: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    partitions: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "from": self.window.start.isoformat(),
            "to": self.window.end.isoformat(),
            "regions": self.regions,
            "engine": self.engine,
            "rules": self.rules,
            "started_at": self.started_at.astimezone(UTC).isoformat(),
            "seconds": round(self.seconds, 3),
            "orders": self.orders,
            "payments": self.payments,
            "ledger_entries": self.ledger_entries,
            "exceptions": self.exceptions,
            "by_class": self.by_class,
            "partitions": self.partitions,
        }
