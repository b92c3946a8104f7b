"""The simulated company, as pure data: configuration, pain rates, captured tables, schema changes.

Nothing here does I/O or draws random numbers; the generator reads these definitions. Money is
always held in integer minor units of its currency (``12345`` SGD cents is ``"123.45"``) and times
in integer microseconds since the Unix epoch (UTC), which is what Debezium's
``io.debezium.time.MicroTimestamp`` carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shopops.core.errors import ConfigError, InvalidInputError
from shopops.domain.regions import REGIONS, parse_regions
from shopops.events.debezium import Column

MICRO_TS = "io.debezium.time.MicroTimestamp"
DATE = "io.debezium.time.Date"

#: Kinds of injected pains, as they appear in ``pains.parquet`` and in reports.
PAIN_KINDS: tuple[str, ...] = (
    "late_payment",
    "missing_payment",
    "cross_region_payment",
    "currency_mismatch",
    "fx_difference",
    "rounding_difference",
    "partial_refund",
    "orphan_payment",
    "ledger_break",
    "duplicate_event",
    "schema_change",
    "checkout_burst",
    "fraud_ring_burst",
    "shipment_delay",
)


class SimulationConfigError(InvalidInputError, ConfigError):
    """A simulation setting is out of range. ``problems`` lists ``(field, message)`` pairs.

    It is both an :class:`InvalidInputError` (a bad command argument, exit code 2) and a
    :class:`ConfigError` (bad settings), so callers may catch either.
    """

    code = "invalid_simulation_config"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        text = "; ".join(f"{name}: {message}" if name else message for name, message in problems)
        super().__init__(
            f"invalid simulation config: {text}",
            hint="see docs/simulator.md for every setting and its range",
            problems=[{"field": name, "message": message} for name, message in problems],
        )
        self.problems = problems


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append((name, message))
    return out


class _Validated(BaseModel):
    """A frozen model whose validation problems surface as :class:`SimulationConfigError`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SimulationConfigError(_problems(exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Validate ``obj`` like pydantic does, raising :class:`SimulationConfigError` on problems."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise SimulationConfigError(_problems(exc)) from None


#: Pains whose rate is a probability per opportunity (the rest are expected counts per region-day).
PROBABILITY_RATES: tuple[str, ...] = (
    "late_payment",
    "missing_payment",
    "cross_region_payment",
    "currency_mismatch",
    "fx_difference",
    "rounding_difference",
    "partial_refund",
    "orphan_payment",
    "ledger_break",
    "duplicate_event",
    "shipment_delay",
)

#: At most one of these happens to an order's payment, so their rates must add up to at most 1.
EXCLUSIVE_PAYMENT_PAINS: tuple[str, ...] = (
    "missing_payment",
    "late_payment",
    "cross_region_payment",
    "currency_mismatch",
)


class PainRates(_Validated):
    """How often each pain is injected. See docs/simulator.md for what each one does.

    Probabilities are per opportunity (the ``exposure`` of the pain, e.g. per paid order or per
    settlement); ``checkout_burst`` and ``fraud_ring_burst`` are expected counts per region-day.
    """

    #: Per paid order: the provider's payment record appears 1-5 days after the order was paid.
    late_payment: float = Field(default=0.02, ge=0)
    #: Per paid order: the order is paid and booked, but no payment record ever appears.
    missing_payment: float = Field(default=0.005, ge=0)
    #: Per paid order: the payment is recorded 1-5 days later by another region's provider.
    cross_region_payment: float = Field(default=0.01, ge=0)
    #: Per paid order: the payment is captured in USD instead of the order's currency.
    currency_mismatch: float = Field(default=0.005, ge=0)
    #: Per cross-currency settlement: the provider applies a rate 0.3-2% off the day's reference rate.
    fx_difference: float = Field(default=0.05, ge=0)
    #: Per settlement: the settled amount is one minor unit off the correctly rounded amount.
    rounding_difference: float = Field(default=0.01, ge=0)
    #: Per paid, uncancelled order: 10-60% of the amount is refunded days after delivery.
    partial_refund: float = Field(default=0.02, ge=0)
    #: Per paid order: the provider records a payment for an order that does not exist.
    orphan_payment: float = Field(default=0.002, ge=0)
    #: Per paid order: the ledger books an amount that differs from the order's total.
    ledger_break: float = Field(default=0.003, ge=0)
    #: Per create/update change event: the connector emits the same event twice.
    duplicate_event: float = Field(default=0.001, ge=0)
    #: Expected bursts per region-day of concurrent checkouts for the last units of a SKU.
    checkout_burst: float = Field(default=1.0, ge=0)
    #: Expected fraud-ring velocity bursts per region-day.
    fraud_ring_burst: float = Field(default=0.5, ge=0)
    #: Per shipment: a carrier disruption stretches the delivery-time distribution 1.8-3x.
    shipment_delay: float = Field(default=0.05, ge=0)

    def effective(self, multiplier: float) -> dict[str, float]:
        """Every rate multiplied by ``multiplier``."""
        return {name: float(getattr(self, name)) * multiplier for name in type(self).model_fields}


#: Kinds of injected bad rows (data-quality defects), as they appear in ``pains.parquet``.
BAD_ROW_KINDS: tuple[str, ...] = (
    "bad_null_required",
    "bad_malformed_email",
    "bad_out_of_range_weight",
    "bad_negative_quantity",
    "bad_negative_price",
    "bad_dangling_reference",
    "bad_unknown_status",
)


@dataclass(frozen=True, slots=True)
class BadRowKind:
    """Where a kind of bad row is injected, and the data-contract check that must catch it."""

    kind: str
    table: str  # ``database.table``
    column: str
    check: str


#: Each kind of bad row: the table (only tables the reconciliation does not read), the column
#: made bad, and the name of the check of its contract (``contracts/``) that catches it.
BAD_ROWS: dict[str, BadRowKind] = {
    b.kind: b
    for b in (
        BadRowKind("bad_null_required", "shop.customers", "email", "email.required"),
        BadRowKind("bad_malformed_email", "shop.customers", "email", "email.pattern"),
        BadRowKind("bad_out_of_range_weight", "shop.products", "weight_kg", "weight_kg.range"),
        BadRowKind("bad_negative_quantity", "shop.order_lines", "quantity", "quantity.range"),
        BadRowKind("bad_negative_price", "shop.order_lines", "unit_price", "unit_price_not_negative"),
        BadRowKind("bad_dangling_reference", "shop.order_lines", "order_id", "order_id.references"),
        BadRowKind("bad_unknown_status", "logistics.shipment_events", "status", "status_accepted_values"),
    )
}


class BadRowRates(_Validated):
    """How often each kind of bad row is injected: a probability per row written for the first time
    (snapshot or insert) into the kind's table. Zero by default: the ground truth of the default
    worlds holds only the business pains. A bad row stays bad: later changes of the row carry it."""

    #: ``shop.customers``: ``email`` is null although required.
    bad_null_required: float = Field(default=0.0, ge=0, le=1)
    #: ``shop.customers``: ``email`` loses its ``@``.
    bad_malformed_email: float = Field(default=0.0, ge=0, le=1)
    #: ``shop.products``: ``weight_kg`` is 999.0 (above the contract's 100 kg).
    bad_out_of_range_weight: float = Field(default=0.0, ge=0, le=1)
    #: ``shop.order_lines``: ``quantity`` is negative.
    bad_negative_quantity: float = Field(default=0.0, ge=0, le=1)
    #: ``shop.order_lines``: ``unit_price`` is negative.
    bad_negative_price: float = Field(default=0.0, ge=0, le=1)
    #: ``shop.order_lines``: ``order_id`` names an order that does not exist.
    bad_dangling_reference: float = Field(default=0.0, ge=0, le=1)
    #: ``logistics.shipment_events``: ``status`` is a value no carrier uses.
    bad_unknown_status: float = Field(default=0.0, ge=0, le=1)

    @classmethod
    def every(cls, rate: float) -> BadRowRates:
        """The same rate for every kind."""
        rates: BadRowRates = cls(**dict.fromkeys(BAD_ROW_KINDS, rate))
        return rates

    def by_table(self) -> dict[str, list[tuple[str, float]]]:
        """Per table, its kinds and their rates (kinds with a zero rate left out)."""
        out: dict[str, list[tuple[str, float]]] = {}
        for kind in BAD_ROW_KINDS:
            rate = float(getattr(self, kind))
            if rate > 0:
                out.setdefault(BAD_ROWS[kind].table, []).append((kind, rate))
        return out


class SimulationConfig(_Validated):
    """What to simulate. Invalid values raise :class:`SimulationConfigError` naming the field."""

    #: Region codes (see :data:`shopops.domain.regions.REGIONS`), each its own set of databases.
    regions: list[str] = ["vn", "sg", "th"]
    #: Simulated days, starting at ``start`` (local midnight of each region).
    days: int = Field(default=30, ge=1, le=3660)
    #: Expected orders per day and region (Poisson).
    orders_per_day: int = Field(default=1000, ge=1, le=10_000_000)
    #: The same seed gives byte-identical events and ground truth.
    seed: int = Field(default=42, ge=0)
    start: date = date(2026, 1, 1)
    #: Partitions per topic.
    partitions: int = Field(default=3, ge=1, le=1024)
    #: ``schema``: JSON with an embedded schema; ``plain``: JSON only; ``mixed``: chosen per topic.
    envelope: Literal["schema", "plain", "mixed"] = "schema"
    rates: PainRates = PainRates()
    #: Multiplies every pain rate (tests use 10 to see every pain in a small world).
    rate_multiplier: float = Field(default=1.0, ge=0)
    #: Apply the four scheduled schema changes (see :data:`SCHEMA_CHANGES`).
    schema_changes: bool = True
    #: Bad rows injected for the data contracts to catch (none by default).
    bad_rows: BadRowRates = BadRowRates()

    @field_validator("regions", mode="before")
    @classmethod
    def _known_regions(cls, value: Any) -> list[str]:
        if isinstance(value, str | list):
            # parse_regions raises InvalidInputError naming the unknown codes and the known ones.
            return [r.code for r in parse_regions(value)]
        raise ValueError("must be a list of region codes or a comma-separated string")

    @field_validator("rates", mode="before")
    @classmethod
    def _rates(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            try:
                return PainRates(**value)
            except SimulationConfigError as exc:  # name the nested fields as ``rates.<pain>``
                raise SimulationConfigError(
                    [(f"rates.{name}", message) for name, message in exc.problems]
                ) from None
        return value

    @field_validator("bad_rows", mode="before")
    @classmethod
    def _bad_rows(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            try:
                return BadRowRates(**value)
            except SimulationConfigError as exc:  # name the nested fields as ``bad_rows.<kind>``
                raise SimulationConfigError(
                    [(f"bad_rows.{name}", message) for name, message in exc.problems]
                ) from None
        return value

    @model_validator(mode="after")
    def _rates_in_range(self) -> SimulationConfig:
        rates = self.rates.effective(self.rate_multiplier)
        problems: list[tuple[str, str]] = []
        for name in PROBABILITY_RATES:
            if rates[name] > 1:
                problems.append(
                    (
                        f"rates.{name}",
                        f"is a probability, but {self.rates_value(name)} x rate_multiplier "
                        f"{self.rate_multiplier} = {rates[name]:.4g} is above 1",
                    )
                )
        exclusive = sum(rates[name] for name in EXCLUSIVE_PAYMENT_PAINS)
        per_table = self.bad_rows.by_table()
        for table_name, kinds in per_table.items():
            total = sum(rate for _, rate in kinds)
            if total > 1:
                problems.append(
                    (
                        "bad_rows",
                        f"the bad-row rates of {table_name} ({', '.join(k for k, _ in kinds)}) add up to "
                        f"{total:.4g}; a row gets at most one of them, so keep the sum <= 1",
                    )
                )
        if exclusive > 1:
            problems.append(
                (
                    "rates",
                    f"{' + '.join(EXCLUSIVE_PAYMENT_PAINS)} (x rate_multiplier) add up to "
                    f"{exclusive:.4g}; an order's payment has at most one of them, so keep the sum <= 1",
                )
            )
        if problems:
            raise SimulationConfigError(problems)
        return self

    def rates_value(self, name: str) -> float:
        """The configured (unmultiplied) rate of pain ``name``."""
        return float(getattr(self.rates, name))

    def effective_rates(self) -> dict[str, float]:
        """Every pain rate after ``rate_multiplier``."""
        return self.rates.effective(self.rate_multiplier)


# --- regions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Carrier:
    """A delivery company and how fast it is: delivery hours are lognormal, scaled by ``speed``."""

    name: str
    speed: float  # multiplies the route's median hours
    sigma: float  # lognormal sigma of the delivery hours


@dataclass(frozen=True, slots=True)
class RegionProfile:
    """The commercial facts of a region that the generator needs."""

    code: str
    tax_rate: float
    #: Flat shipping fee and the subtotal from which shipping is free, in minor units.
    shipping_fee: int
    free_shipping_from: int
    provider: str
    provider_prefix: str
    #: Warehouse cities first; customers live in all of them.
    cities: tuple[str, ...]
    #: Cities far from every warehouse (route ``remote``).
    remote_cities: tuple[str, ...]
    carriers: tuple[Carrier, ...]
    #: Local prices are rounded to this many minor units (e.g. VND to 1000).
    price_step: int
    #: Initial USD -> local rate of the FX market.
    usd_rate: float


REGION_PROFILES: dict[str, RegionProfile] = {
    "vn": RegionProfile(
        "vn",
        0.10,
        30_000,
        500_000,
        "VietPay",
        "VP",
        ("Ho Chi Minh City", "Hanoi", "Da Nang", "Can Tho", "Hai Phong", "Ha Giang"),
        ("Can Tho", "Ha Giang"),
        (
            Carrier("MekongExpress", 0.9, 0.40),
            Carrier("SaigonPost", 1.0, 0.50),
            Carrier("RedRiver", 1.15, 0.60),
        ),
        1000,
        25_400.0,
    ),
    "sg": RegionProfile(
        "sg",
        0.09,
        499,
        6_000,
        "LionPay",
        "LP",
        ("Jurong", "Tampines", "Woodlands", "Punggol", "Changi"),
        ("Changi",),
        (
            Carrier("MerlionCouriers", 0.85, 0.35),
            Carrier("StraitsPost", 1.0, 0.45),
            Carrier("IslandDash", 1.1, 0.55),
        ),
        10,
        1.34,
    ),
    "th": RegionProfile(
        "th",
        0.07,
        5_000,
        99_000,
        "SiamPay",
        "SP",
        ("Bangkok", "Chiang Mai", "Khon Kaen", "Phuket", "Hat Yai", "Mae Hong Son"),
        ("Hat Yai", "Mae Hong Son"),
        (
            Carrier("ChaoPhrayaExpress", 0.9, 0.40),
            Carrier("SiamPost", 1.05, 0.50),
            Carrier("ElephantLogistics", 1.2, 0.60),
        ),
        100,
        35.8,
    ),
    "my": RegionProfile(
        "my",
        0.08,
        800,
        15_000,
        "TigerPay",
        "TP",
        ("Kuala Lumpur", "Penang", "Johor Bahru", "Ipoh", "Kota Kinabalu"),
        ("Kota Kinabalu",),
        (
            Carrier("PeninsulaExpress", 0.9, 0.40),
            Carrier("MalayPost", 1.05, 0.50),
            Carrier("BorneoFreight", 1.25, 0.60),
        ),
        10,
        4.45,
    ),
    "id": RegionProfile(
        "id",
        0.11,
        15_000,
        300_000,
        "GarudaPay",
        "GP",
        ("Jakarta", "Surabaya", "Bandung", "Medan", "Makassar", "Jayapura"),
        ("Makassar", "Jayapura"),
        (
            Carrier("JavaExpress", 0.9, 0.45),
            Carrier("NusantaraPost", 1.1, 0.55),
            Carrier("ArchipelagoCargo", 1.3, 0.65),
        ),
        1000,
        16_200.0,
    ),
    "ph": RegionProfile(
        "ph",
        0.12,
        10_000,
        150_000,
        "IslaPay",
        "IP",
        ("Manila", "Cebu", "Davao", "Quezon City", "Iloilo", "Zamboanga"),
        ("Iloilo", "Zamboanga"),
        (
            Carrier("LuzonExpress", 0.9, 0.45),
            Carrier("PinoyPost", 1.1, 0.55),
            Carrier("VisayasCargo", 1.3, 0.65),
        ),
        100,
        58.5,
    ),
}
assert set(REGION_PROFILES) == set(REGIONS), "every region needs a profile"

#: Median delivery hours of a route before the carrier's speed factor.
ROUTE_MEDIAN_HOURS: dict[str, float] = {"same_city": 20.0, "domestic": 46.0, "remote": 100.0}
#: The promise is this quantile (in standard deviations) of the undisturbed distribution.
PROMISE_Z = 1.28

# --- normal behaviour (not pains) ------------------------------------------------------------------

#: Share of settlements the provider pays out in USD instead of the local currency.
USD_SETTLEMENT_SHARE = 0.15
#: Share of orders the customer cancels after paying, before shipment.
CANCEL_SHARE = 0.015
#: Provider fee: a percentage of the amount plus a fixed part (in USD, converted).
PROVIDER_FEE_RATE = 0.024
PROVIDER_FEE_FIXED_USD = 0.10
#: Share of payments created after the ``made_nullable`` change that have no provider reference yet.
NULL_PROVIDER_REF_SHARE = 0.04

# --- captured tables -------------------------------------------------------------------------------


def _ts(name: str, optional: bool = False) -> Column:
    return Column(name, "int64", optional, MICRO_TS)


def _s(name: str, optional: bool = False) -> Column:
    return Column(name, "string", optional)


def _i(name: str, optional: bool = False) -> Column:
    return Column(name, "int32", optional)


@dataclass(frozen=True, slots=True)
class TableDef:
    """A captured table of a regional database; its topic is ``<region>.<database>.<table>``."""

    database: str
    table: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    #: Rows present before the window start, read by the initial snapshot (op ``r``).
    snapshot: bool = False

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"

    def topic(self, region: str) -> str:
        return f"{region}.{self.database}.{self.table}"

    @property
    def key_columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[k] for k in self.key)


TABLES: tuple[TableDef, ...] = (
    TableDef(
        "shop",
        "customers",
        ("customer_id",),
        (
            _s("customer_id"),
            _s("email"),
            _s("phone"),
            _s("full_name"),
            _s("city"),
            _s("address_hash"),
            _s("segment"),
            Column("marketing_opt_in", "boolean"),
            _ts("created_at"),
            _ts("updated_at"),
        ),
        snapshot=True,
    ),
    TableDef(
        "shop",
        "products",
        ("product_id",),
        (
            _s("product_id"),
            _s("sku"),
            _s("name"),
            _s("category"),
            _s("price"),
            _s("currency"),
            Column("weight_kg", "float64"),
            Column("active", "boolean"),
            _ts("created_at"),
            _ts("updated_at"),
        ),
        snapshot=True,
    ),
    TableDef(
        "shop",
        "orders",
        ("order_id",),
        (
            _s("order_id"),
            _s("customer_id"),
            _s("status"),
            _s("currency"),
            _s("subtotal"),
            _s("shipping_fee"),
            _s("tax"),
            _s("total"),
            _i("item_count"),
            _s("warehouse_id"),
            _s("device_id"),
            _s("card_fingerprint"),
            _s("ip"),
            _s("shipping_address_hash"),
            _ts("created_at"),
            _ts("updated_at"),
        ),
    ),
    TableDef(
        "shop",
        "order_lines",
        ("line_id",),
        (
            _s("line_id"),
            _s("order_id"),
            _i("line_no"),
            _s("product_id"),
            _s("sku"),
            _i("quantity"),
            _s("unit_price"),
            _s("discount"),
            _s("line_total"),
            _s("currency"),
            _ts("created_at"),
        ),
    ),
    TableDef(
        "payments",
        "payments",
        ("payment_id",),
        (
            _s("payment_id"),
            _s("order_id"),
            _s("merchant_region"),
            _s("provider"),
            _s("provider_ref"),
            _s("method"),
            _s("status"),
            _s("currency"),
            _s("amount"),
            _s("fee", True),
            _s("settlement_currency", True),
            _s("settlement_amount", True),
            _s("settlement_fx_rate", True),
            _s("refunded_amount"),
            _ts("captured_at", True),
            _ts("settled_at", True),
            _ts("created_at"),
            _ts("updated_at"),
        ),
    ),
    TableDef(
        "finance",
        "ledger_entries",
        ("entry_id",),
        (
            _s("entry_id"),
            _s("journal_id"),
            _s("kind"),
            _s("account"),
            _s("side"),
            _s("amount"),
            _s("currency"),
            _s("order_id", True),
            _s("payment_id", True),
            _s("orig_currency", True),
            _s("orig_amount", True),
            _s("fx_rate", True),
            _ts("booked_at"),
        ),
    ),
    TableDef(
        "finance",
        "fx_rates",
        ("rate_date", "base", "quote"),
        (
            Column("rate_date", "int32", False, DATE),
            _s("base"),
            _s("quote"),
            _s("rate"),
            _s("source"),
            _ts("published_at"),
        ),
    ),
    TableDef(
        "inventory",
        "warehouses",
        ("warehouse_id",),
        (
            _s("warehouse_id"),
            _s("name"),
            _s("city"),
            _s("timezone"),
            _i("capacity"),
            Column("active", "boolean"),
            _ts("created_at"),
        ),
        snapshot=True,
    ),
    TableDef(
        "inventory",
        "stock_levels",
        ("warehouse_id", "sku"),
        (
            _s("warehouse_id"),
            _s("sku"),
            _s("product_id"),
            _i("on_hand"),
            _i("reorder_point"),
            _ts("updated_at"),
        ),
        snapshot=True,
    ),
    TableDef(
        "inventory",
        "movements",
        ("movement_id",),
        (
            _s("movement_id"),
            _s("warehouse_id"),
            _s("sku"),
            _s("kind"),
            _i("quantity"),
            _s("reference", True),
            _s("reason", True),
            _ts("moved_at"),
        ),
    ),
    TableDef(
        "inventory",
        "checkouts",
        ("checkout_id",),
        (
            _s("checkout_id"),
            _s("cart_id"),
            _s("customer_id"),
            _s("sku"),
            _s("warehouse_id"),
            _i("quantity"),
            _s("status"),
            _s("order_id", True),
            _s("failure_reason", True),
            _ts("created_at"),
            _ts("updated_at"),
        ),
    ),
    TableDef(
        "logistics",
        "shipments",
        ("shipment_id",),
        (
            _s("shipment_id"),
            _s("order_id"),
            _s("warehouse_id"),
            _s("carrier"),
            _s("route"),
            _s("status"),
            Column("weight_kg", "float64"),
            Column("promised_date", "int32", False, DATE),
            _ts("created_at"),
            _ts("updated_at"),
            _ts("delivered_at", True),
        ),
    ),
    TableDef(
        "logistics",
        "shipment_events",
        ("event_id",),
        (
            _s("event_id"),
            _s("shipment_id"),
            _s("status"),
            _s("location"),
            _ts("occurred_at"),
        ),
    ),
)

TABLE_INDEX: dict[str, int] = {t.name: i for i, t in enumerate(TABLES)}


def table(name: str) -> TableDef:
    """The table named ``database.table``."""
    return TABLES[TABLE_INDEX[name]]


# --- scheduled schema changes ----------------------------------------------------------------------

SchemaChangeKind = Literal["column_added", "column_renamed", "type_changed", "made_nullable"]


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A migration of one table, applied at ``fraction`` of the simulated window in every region.

    Events whose source time is at or after the change carry the new columns and, in the
    JSON-with-schema envelope, schema ``version`` 2 instead of 1.
    """

    kind: SchemaChangeKind
    table: str  # ``database.table``
    column: str
    fraction: float
    new_column: str | None = None  # column_renamed
    new_type: str | None = None  # type_changed
    columns_after: tuple[Column, ...] = field(default=())

    @property
    def old_type(self) -> str | None:
        """The column's Connect type before the change (``None`` for an added column)."""
        return next((c.type for c in table(self.table).columns if c.name == self.column), None)

    @property
    def after_type(self) -> str:
        """The column's Connect type after the change."""
        name = self.new_column or self.column
        return next(c.type for c in self.columns_after if c.name == name)


def _changed_columns(
    table_name: str, kind: SchemaChangeKind, column: str, new_column: str | None, new_type: str | None
) -> tuple[Column, ...]:
    cols = list(table(table_name).columns)
    if kind == "column_added":
        # A column added by ALTER TABLE is nullable: rows written before it have no value.
        cols.append(Column(column, "string", optional=True))
    else:
        i = next(i for i, c in enumerate(cols) if c.name == column)
        old = cols[i]
        if kind == "column_renamed":
            assert new_column is not None
            cols[i] = Column(new_column, old.type, old.optional, old.logical)
        elif kind == "type_changed":
            assert new_type is not None
            cols[i] = Column(old.name, new_type, old.optional, None)
        else:
            cols[i] = Column(old.name, old.type, True, old.logical)
    return tuple(cols)


def _change(
    kind: SchemaChangeKind,
    table_name: str,
    column: str,
    fraction: float,
    new_column: str | None = None,
    new_type: str | None = None,
) -> SchemaChange:
    return SchemaChange(
        kind,
        table_name,
        column,
        fraction,
        new_column,
        new_type,
        _changed_columns(table_name, kind, column, new_column, new_type),
    )


SCHEMA_CHANGES: tuple[SchemaChange, ...] = (
    _change("column_added", "shop.orders", "channel", 0.2),
    _change("column_renamed", "shop.customers", "phone", 0.4, new_column="phone_number"),
    _change("type_changed", "logistics.shipments", "weight_kg", 0.6, new_type="string"),
    _change("made_nullable", "payments.payments", "provider_ref", 0.8),
)
SCHEMA_CHANGE_BY_TABLE: dict[str, SchemaChange] = {c.table: c for c in SCHEMA_CHANGES}


def columns_at(table_name: str, version: int) -> tuple[Column, ...]:
    """The columns of ``table_name`` at schema ``version`` (1 before its scheduled change, 2 after)."""
    if version == 1:
        return table(table_name).columns
    change = SCHEMA_CHANGE_BY_TABLE.get(table_name)
    if version != 2 or change is None:
        raise InvalidInputError(f"{table_name} has no schema version {version}")
    return change.columns_after
