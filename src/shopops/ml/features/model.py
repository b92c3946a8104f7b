"""The feature repository as data, and the derivations shared by the batch and the streaming paths.

Pure: no Feast, no I/O. ``repo.py`` turns :data:`ENTITIES`, :data:`VIEWS` and :data:`USE_CASES` into
Feast objects; ``derive.py`` computes the batch rows with DuckDB; ``push.py`` folds the event log
with :class:`OrderFold` and :class:`StockFold` and pushes what they emit. Both paths produce rows
with the same meaning: a row stamped ``t`` holds the value as of ``t``, the event at ``t`` included.

Sliding windows stay exact between events: for every event at ``t`` a window of width ``w`` also
gets a row at ``t + w``, the instant the event leaves it, so an as-of lookup at any time finds the
right count (point-in-time correct, never a stale count from the last event).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from shopops.core.errors import InvalidInputError
from shopops.domain.regions import REGIONS

if TYPE_CHECKING:
    import pandas as pd

US_PER_MS = 1_000
US_PER_S = 1_000_000
US_PER_H = 3_600 * US_PER_S
US_PER_DAY = 24 * US_PER_H
MS_PER_DAY = 86_400_000

#: The use cases training and serving ask features for.
USE_CASES = ("fraud", "eta")
UseCase = Literal["fraud", "eta"]

FeatureType = Literal["int64", "float64"]


@dataclass(frozen=True, slots=True)
class EntityDef:
    """A Feast entity: what features are about, and the one column that identifies it."""

    name: str
    join_key: str
    description: str


@dataclass(frozen=True, slots=True)
class ViewDef:
    """A feature view: features of one entity (or a pair of entities) over time."""

    name: str
    entities: tuple[str, ...]
    fields: tuple[tuple[str, FeatureType], ...]
    #: Also fed in real time by the push worker (a Feast push source over the same batch file).
    push: bool
    #: Where the batch rows come from (documentation, and ``shopops features list``).
    source: str
    description: str

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(ENTITY_BY_NAME[e].join_key for e in self.entities)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the view's Parquet file, in order."""
        return (*self.join_keys, "event_timestamp", *self.feature_names)


ENTITIES: tuple[EntityDef, ...] = (
    EntityDef("customer", "customer_id", "A shop account (region-prefixed id)"),
    EntityDef("product", "product_id", "A catalogue product"),
    EntityDef("order", "order_id", "An order as placed"),
    EntityDef("sku", "sku", "A stock-keeping unit; with a warehouse, one stock item"),
    EntityDef("warehouse", "warehouse_id", "A warehouse; with a SKU, one stock item"),
    EntityDef("device", "device_id", "The device an order was placed from"),
    EntityDef("card", "card_fingerprint", "A payment instrument (card fingerprint)"),
    EntityDef("carrier", "carrier", "A delivery carrier; with a route, one lane"),
    EntityDef("route", "route", "A route class: same_city, domestic or remote"),
    EntityDef("shipment", "shipment_id", "A shipment of an order"),
)
ENTITY_BY_NAME = {e.name: e for e in ENTITIES}

_I: FeatureType = "int64"
_F: FeatureType = "float64"

VIEWS: tuple[ViewDef, ...] = (
    ViewDef(
        "customer_history",
        ("customer",),
        (
            ("orders_7d", _I),
            ("amount_usd_7d", _F),
            ("orders_30d", _I),
            ("amount_usd_30d", _F),
            ("account_created_ms", _I),
            ("chargebacks", _I),
            ("distinct_devices", _I),
            ("distinct_cards", _I),
        ),
        False,
        "lake: bronze <region>__shop__customers, __shop__orders, __payments__payments, __finance__fx_rates",
        "Orders and spend (USD) over 7 and 30 days, account creation, chargebacks seen, devices and "
        "cards used",
    ),
    ViewDef(
        "product_history",
        ("product",),
        (
            ("price", _F),
            ("price_usd", _F),
            ("price_changes_30d", _I),
            ("price_min_30d", _F),
            ("price_max_30d", _F),
            ("weight_kg", _F),
        ),
        False,
        "lake: bronze <region>__shop__products, __finance__fx_rates",
        "Current price (local and USD), price changes and the price range over 30 days",
    ),
    ViewDef(
        "shipment_performance",
        ("carrier", "route"),
        (
            ("deliveries_30d", _I),
            ("p50_hours_30d", _F),
            ("p90_hours_30d", _F),
            ("slip_rate_30d", _F),
        ),
        False,
        "lake: bronze <region>__logistics__shipments",
        "Delivery hours (p50, p90) and the share delivered after the promised day, per carrier and "
        "route, over the deliveries of the last 30 days",
    ),
    ViewDef(
        "order_facts",
        ("order",),
        (("total_usd", _F), ("item_count", _I), ("local_hour", _I)),
        True,
        "lake: bronze <region>__shop__orders, __finance__fx_rates; push: order created",
        "The order as placed: total in USD, items, local hour of day",
    ),
    ViewDef(
        "shipment_facts",
        ("shipment",),
        (("weight_kg", _F), ("promised_hours", _F), ("local_hour", _I)),
        True,
        "lake: bronze <region>__logistics__shipments; push: shipment created",
        "The shipment as created: weight, hours to the end of the promised day, local hour",
    ),
    ViewDef(
        "customer_velocity",
        ("customer",),
        (("orders_1h", _I), ("orders_24h", _I)),
        True,
        "lake: bronze <region>__shop__orders; push: order created",
        "Orders of the customer in the last hour and day",
    ),
    ViewDef(
        "device_usage",
        ("device",),
        (("accounts", _I), ("orders_total", _I), ("orders_1h", _I), ("orders_24h", _I)),
        True,
        "lake: bronze <region>__shop__orders; push: order created",
        "Accounts that ordered from the device, its orders overall, in the last hour and day",
    ),
    ViewDef(
        "card_usage",
        ("card",),
        (("accounts", _I), ("orders_total", _I), ("orders_1h", _I), ("orders_24h", _I)),
        True,
        "lake: bronze <region>__shop__orders; push: order created",
        "Accounts that paid with the card, its orders overall, in the last hour and day",
    ),
    ViewDef(
        "stock_availability",
        ("sku", "warehouse"),
        (("on_hand", _I), ("held", _I), ("committed", _I), ("available", _I)),
        True,
        "event log: shopops.inventory.events (reservations, stock adjustments); push: same",
        "Stock of one SKU in one warehouse as the reservation engine sees it",
    ),
)
VIEW_BY_NAME = {v.name: v for v in VIEWS}


def push_source_name(view: str) -> str:
    return f"{view}_push"


@dataclass(frozen=True, slots=True)
class UseCaseDef:
    """What one model needs: its entity columns, features, label and ground-truth column."""

    name: UseCase
    #: Columns of the training frame that identify a row (join keys and context).
    entity_columns: tuple[str, ...]
    #: Join keys an online request must carry, and those it may carry.
    required_keys: tuple[str, ...]
    optional_keys: tuple[str, ...]
    #: Feature references fetched from Feast (``view:feature``), derived inputs included.
    refs: tuple[str, ...]
    #: The model's features, in order (``view__feature``; some derived from the refs).
    features: tuple[str, ...]
    label: str
    truth: str
    description: str


def _refs(view: str, *features: str) -> tuple[str, ...]:
    return tuple(f"{view}:{f}" for f in features)


def _names(refs: Iterable[str]) -> tuple[str, ...]:
    return tuple(r.replace(":", "__") for r in refs)


#: Derived feature -> the fetched feature it is computed from (see :func:`derive_values`).
ACCOUNT_AGE = "customer_history__account_age_days"
ACCOUNT_CREATED = "customer_history__account_created_ms"

_FRAUD_REFS = (
    *_refs(
        "customer_history",
        "orders_7d",
        "amount_usd_7d",
        "orders_30d",
        "amount_usd_30d",
        "chargebacks",
        "distinct_devices",
        "distinct_cards",
        "account_created_ms",
    ),
    *_refs("customer_velocity", "orders_1h", "orders_24h"),
    *_refs("device_usage", "accounts", "orders_total", "orders_1h", "orders_24h"),
    *_refs("card_usage", "accounts", "orders_total", "orders_1h", "orders_24h"),
    *_refs("order_facts", "total_usd", "item_count", "local_hour"),
)
_ETA_REFS = (
    *_refs("shipment_performance", "deliveries_30d", "p50_hours_30d", "p90_hours_30d", "slip_rate_30d"),
    *_refs("shipment_facts", "weight_kg", "promised_hours", "local_hour"),
    *_refs("order_facts", "total_usd", "item_count"),
)

USE_CASE_DEFS: dict[str, UseCaseDef] = {
    "fraud": UseCaseDef(
        name="fraud",
        entity_columns=("order_id", "customer_id", "device_id", "card_fingerprint", "region"),
        required_keys=("customer_id", "device_id", "card_fingerprint"),
        optional_keys=("order_id",),
        refs=_FRAUD_REFS,
        features=tuple(ACCOUNT_AGE if n == ACCOUNT_CREATED else n for n in _names(_FRAUD_REFS)),
        label="is_fraud",
        truth="truth_fraud_probability",
        description="an order at the moment it is placed (its customer, device and card)",
    ),
    "eta": UseCaseDef(
        name="eta",
        entity_columns=("shipment_id", "order_id", "carrier", "route", "warehouse_id", "region"),
        required_keys=("carrier", "route"),
        optional_keys=("shipment_id", "order_id", "warehouse_id"),
        refs=_ETA_REFS,
        features=_names(_ETA_REFS),
        label="delivery_hours",
        truth="truth_median_hours",
        description="a shipment at the moment it is created (its lane, the order, the parcel)",
    ),
}


def use_case(name: str) -> UseCaseDef:
    """The definition of use case ``name``; an unknown one is an :class:`InvalidInputError`."""
    found = USE_CASE_DEFS.get(name)
    if found is None:
        raise InvalidInputError(f"unknown use case {name!r}", hint=f"known use cases: {', '.join(USE_CASES)}")
    return found


def views_of(case: UseCaseDef) -> list[str]:
    """The feature views a use case reads, in order of first reference."""
    return list(dict.fromkeys(ref.split(":", 1)[0] for ref in case.refs))


# --- online requests ------------------------------------------------------------------------------

#: The entity key that sets the time derived features are computed at (else: now).
AT_KEY = "event_timestamp"


@dataclass(frozen=True, slots=True)
class OnlineRequest:
    """A validated online request: the join keys given, and the time to derive features at."""

    keys: dict[str, str]
    at_ms: int


def parse_timestamp_ms(text: str, what: str = AT_KEY) -> int:
    """Epoch milliseconds from ``text``: an integer (ms) or ISO-8601 (UTC if no offset given)."""
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{what} {text!r} is neither epoch milliseconds nor an ISO-8601 time",
            hint="e.g. 2026-01-05T10:00:00Z or 1767607200000",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_request(case: UseCaseDef, entity: Mapping[str, str], now_ms: int) -> OnlineRequest:
    """Check an online request's keys against the use case; say which are missing or unknown."""
    allowed = (*case.required_keys, *case.optional_keys)
    unknown = [k for k in entity if k not in allowed and k != AT_KEY]
    if unknown:
        raise InvalidInputError(
            f"unknown entity key(s) for {case.name}: {', '.join(sorted(unknown))}",
            hint=f"{case.name} takes {', '.join(allowed)} and optionally {AT_KEY}",
        )
    missing = [k for k in case.required_keys if not str(entity.get(k, "")).strip()]
    if missing:
        raise InvalidInputError(
            f"missing entity key(s) for {case.name}: {', '.join(missing)}",
            hint=f"{case.name} needs {', '.join(case.required_keys)}"
            + (f" (optional: {', '.join(case.optional_keys)})" if case.optional_keys else ""),
        )
    keys = {k: str(v).strip() for k, v in entity.items() if k != AT_KEY and str(v).strip()}
    at_text = entity.get(AT_KEY)
    at_ms = parse_timestamp_ms(str(at_text)) if at_text not in (None, "") else now_ms
    return OnlineRequest(keys, at_ms)


# --- derived features -----------------------------------------------------------------------------


def account_age_days(created_ms: float | None, at_ms: float) -> float | None:
    """Days between the account's creation and ``at_ms`` (``None`` if the creation is unknown)."""
    if created_ms is None or created_ms != created_ms:  # NaN: no value
        return None
    return (at_ms - created_ms) / MS_PER_DAY


def derive_values(
    case: UseCaseDef, values: Mapping[str, float | None], at_ms: int
) -> dict[str, float | None]:
    """The use case's features from fetched values (one online row), in ``case.features`` order."""
    out: dict[str, float | None] = {}
    for name in case.features:
        if name == ACCOUNT_AGE:
            out[name] = account_age_days(values.get(ACCOUNT_CREATED), at_ms)
        else:
            out[name] = values.get(name)
    return out


def derive_frame(case: UseCaseDef, frame: pd.DataFrame) -> pd.DataFrame:
    """The same derivation over a training frame (``event_timestamp`` is the time of each row)."""
    if ACCOUNT_CREATED in frame.columns:
        at_ms = frame["event_timestamp"].astype("datetime64[ms, UTC]").astype("int64")
        created = frame[ACCOUNT_CREATED].astype("float64")
        frame[ACCOUNT_AGE] = (at_ms - created) / MS_PER_DAY
        frame = frame.drop(columns=[ACCOUNT_CREATED])
    return frame


# --- shared value rules (the DuckDB derivation in derive.py follows the same formulas) ------------


@cache
def utc_offset_us(region: str) -> int:
    """The region's offset from UTC in microseconds (the regions keep no daylight saving)."""
    info = REGIONS.get(region)
    if info is None:
        return 0
    offset = datetime(2026, 1, 1, tzinfo=UTC).astimezone(info.tz).utcoffset()
    return int(offset.total_seconds()) * US_PER_S if offset is not None else 0


def local_hour(ts_us: int, region: str) -> int:
    return ((ts_us + utc_offset_us(region)) // US_PER_H) % 24


def promised_hours(created_us: int, promised_date: int, region: str) -> float:
    """Hours from creation to the end of the promised local day (``promised_date``: days since epoch)."""
    promised_by = (promised_date + 1) * US_PER_DAY - utc_offset_us(region)
    return (promised_by - created_us) / US_PER_H


def to_float(value: Any) -> float | None:
    """A decimal string or number as a float (``None`` if absent or unparsable)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def region_of(topic: str) -> str:
    return topic.split(".", 1)[0]


class FxBook:
    """Reference rates by currency, looked up as of a time (the latest published at or before it)."""

    def __init__(self) -> None:
        self._rates: dict[str, list[tuple[int, float]]] = {}

    def add(self, currency: str, published_us: int, rate: float) -> None:
        insort(self._rates.setdefault(currency, []), (published_us, rate))

    def rate(self, currency: str, at_us: int) -> float | None:
        """Units of ``currency`` per 1 USD as of ``at_us`` (1 for USD; ``None`` before the first)."""
        if currency == "USD":
            return 1.0
        rates = self._rates.get(currency)
        if not rates:
            return None
        i = bisect_right(rates, (at_us, float("inf")))
        return rates[i - 1][1] if i else None

    def usd(self, amount: Any, currency: str, at_us: int) -> float | None:
        value, rate = to_float(amount), self.rate(currency, at_us)
        if value is None or rate is None or rate == 0:
            return None
        return value / rate


# --- streaming folds -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """An order's creation as the CDC stream tells it (the fields real-time features need)."""

    order_id: str
    region: str
    customer_id: str
    device_id: str | None
    card_fingerprint: str | None
    created_at_us: int
    currency: str
    total: str | None
    item_count: int | None


@dataclass(frozen=True, slots=True)
class ShipmentCreated:
    shipment_id: str
    region: str
    created_at_us: int
    weight_kg: float | None
    promised_date: int | None


def _ts(us: int) -> datetime:
    return datetime.fromtimestamp(us // US_PER_S, UTC).replace(microsecond=us % US_PER_S)


def order_fact_row(order: OrderPlaced, fx: FxBook) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "event_timestamp": _ts(order.created_at_us),
        "total_usd": fx.usd(order.total, order.currency, order.created_at_us),
        "item_count": order.item_count,
        "local_hour": local_hour(order.created_at_us, order.region),
    }


def shipment_fact_row(shipment: ShipmentCreated) -> dict[str, Any]:
    return {
        "shipment_id": shipment.shipment_id,
        "event_timestamp": _ts(shipment.created_at_us),
        "weight_kg": shipment.weight_kg,
        "promised_hours": None
        if shipment.promised_date is None
        else promised_hours(shipment.created_at_us, shipment.promised_date, shipment.region),
        "local_hour": local_hour(shipment.created_at_us, shipment.region),
    }


#: The sliding windows of the velocity views: feature name -> width.
VELOCITY_WINDOWS: tuple[tuple[str, int], ...] = (("orders_1h", US_PER_H), ("orders_24h", US_PER_DAY))
_LONGEST = max(w for _, w in VELOCITY_WINDOWS)


@dataclass
class _KeyState:
    times: list[int] = field(default_factory=list)  # order times inside the longest window, sorted
    latest: int = -1  # timestamp of the last row emitted for the key
    orders: int = 0
    accounts: set[str] = field(default_factory=set)


class OrderFold:
    """Velocity of customers, devices and cards, folded from order creations.

    ``add`` takes orders in any order (late ones included); ``advance`` moves the clock and emits
    the rows of windows that events left; ``drain`` hands over the latest row of every key that
    changed since the last drain. A key's rows never go back in time: a late order is counted in a
    row stamped at the key's latest time. Replays of the same order (duplicate CDC events) count once.
    """

    #: view name -> (join key, order attribute, with the account/total counters?)
    KEYS: tuple[tuple[str, str, str, bool], ...] = (
        ("customer_velocity", "customer_id", "customer_id", False),
        ("device_usage", "device_id", "device_id", True),
        ("card_usage", "card_fingerprint", "card_fingerprint", True),
    )

    def __init__(self) -> None:
        self._state: dict[str, dict[str, _KeyState]] = {view: {} for view, *_ in self.KEYS}
        self._spec = {view: (join_key, counters) for view, join_key, _, counters in self.KEYS}
        self._exits: list[tuple[int, str, str]] = []
        self._seen: dict[str, int] = {}
        self._pending: dict[str, dict[str, dict[str, Any]]] = {view: {} for view, *_ in self.KEYS}
        self.clock = -1

    def add(self, order: OrderPlaced) -> bool:
        """Count ``order`` (returns ``False`` for a replay of an order already counted)."""
        if order.order_id in self._seen:
            return False
        self._seen[order.order_id] = order.created_at_us
        t = order.created_at_us
        for view, join_key, attr, counters in self.KEYS:
            key = getattr(order, attr)
            if not key:
                continue
            state = self._state[view].setdefault(key, _KeyState())
            insort(state.times, t)
            state.orders += 1
            if counters:
                state.accounts.add(order.customer_id)
            self._emit(view, join_key, key, state, max(t, state.latest), counters)
            for _, width in VELOCITY_WINDOWS:
                heapq.heappush(self._exits, (t + width, view, key))
        return True

    def advance(self, clock_us: int) -> None:
        """Move the clock to ``clock_us``: emit a row wherever an order left a window by then."""
        if clock_us <= self.clock:
            return
        self.clock = clock_us
        while self._exits and self._exits[0][0] <= clock_us:
            at, view, key = heapq.heappop(self._exits)
            state = self._state[view][key]
            if at > state.latest:
                join_key, counters = self._spec[view]
                self._emit(view, join_key, key, state, at, counters)
        horizon = clock_us - 2 * _LONGEST
        if len(self._seen) > 4096:
            self._seen = {k: v for k, v in self._seen.items() if v >= horizon}

    def _emit(self, view: str, join_key: str, key: str, state: _KeyState, at: int, counters: bool) -> None:
        state.latest = at
        cut = bisect_right(state.times, at - _LONGEST)
        if cut:  # orders that left every window for good
            del state.times[:cut]
        self._pending[view][key] = self._row(join_key, key, state, at, counters)

    @staticmethod
    def _row(join_key: str, key: str, state: _KeyState, at: int, counters: bool) -> dict[str, Any]:
        end = bisect_right(state.times, at)
        row: dict[str, Any] = {join_key: key, "event_timestamp": _ts(at)}
        if counters:
            row["accounts"] = len(state.accounts)
            row["orders_total"] = state.orders
        for name, width in VELOCITY_WINDOWS:
            row[name] = end - bisect_right(state.times, at - width)
        return row

    def drain(self) -> dict[str, list[dict[str, Any]]]:
        """The latest row of every key changed since the last drain, per view."""
        out = {view: list(rows.values()) for view, rows in self._pending.items() if rows}
        self._pending = {view: {} for view, *_ in self.KEYS}
        return out

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """The current row of every key (to re-push everything, e.g. after a materialization).

        Clears what ``drain`` would have returned: the snapshot holds it.
        """
        self._pending = {view: {} for view, *_ in self.KEYS}
        out: dict[str, list[dict[str, Any]]] = {}
        for view, join_key, _, counters in self.KEYS:
            rows = [
                self._row(join_key, key, state, state.latest, counters)
                for key, state in self._state[view].items()
            ]
            if rows:
                out[view] = rows
        return out


class StockFold:
    """Stock per SKU and warehouse, folded from the reservation engine's events.

    The same bookkeeping as ``shopops.inventory.model.Replay`` (repeats of an ``event_id`` are
    applied once): ``on_hand`` from stock adjustments, ``held`` and ``committed`` from the
    reservation events; ``available`` is what a new hold could take (never below 0).
    """

    def __init__(self) -> None:
        self._on_hand: dict[tuple[str, str], int] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._committed: dict[tuple[str, str], int] = {}
        self._latest: dict[tuple[str, str], int] = {}
        self._seen: set[str] = set()
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one event (``InventoryEvent.to_dict`` JSON); ``False`` for a repeat or an unknown type."""
        event_id = str(event.get("event_id", ""))
        kind = event.get("type")
        if not event_id or event_id in self._seen:
            return False
        self._seen.add(event_id)
        at_us = int(event.get("at_ms", 0)) * US_PER_MS
        touched: list[tuple[str, str]] = []
        if kind == "StockAdjusted":
            key = (str(event["sku"]), str(event["warehouse"]))
            self._on_hand[key] = int(event["on_hand"])
            touched.append(key)
        else:
            moves = {
                "StockReserved": ((self._held, +1),),
                "ReservationConfirmed": ((self._held, -1), (self._committed, +1)),
                "ReservationReleased": ((self._held, -1),),
                "ReservationExpired": ((self._held, -1),),
                "ReservationCancelled": ((self._committed, -1),),
            }.get(str(kind))
            if moves is None:
                return False
            for line in event.get("lines", ()):
                key = (str(line["sku"]), str(line["warehouse"]))
                for table, sign in moves:
                    table[key] = table.get(key, 0) + sign * int(line["quantity"])
                touched.append(key)
        for key in dict.fromkeys(touched):
            self._emit(key, at_us)
        return True

    def _emit(self, key: tuple[str, str], at_us: int) -> None:
        at = max(at_us, self._latest.get(key, -1))
        self._latest[key] = at
        on_hand, held, committed = (
            self._on_hand.get(key, 0),
            self._held.get(key, 0),
            self._committed.get(key, 0),
        )
        self._pending[key] = {
            "sku": key[0],
            "warehouse_id": key[1],
            "event_timestamp": _ts(at),
            "on_hand": on_hand,
            "held": held,
            "committed": committed,
            "available": max(0, on_hand - held - committed),
        }

    def drain(self) -> list[dict[str, Any]]:
        rows = list(self._pending.values())
        self._pending = {}
        return rows

    def snapshot(self) -> list[dict[str, Any]]:
        """The current row of every key; clears what ``drain`` would have returned."""
        for key, at in self._latest.items():
            self._emit(key, at)
        return self.drain()


# --- reports -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What ``apply`` registered in the Feast registry."""

    project: str
    entities: list[str]
    feature_views: list[str]
    push_sources: list[str]
    feature_services: list[str]
    online_store: str
    registry: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "entities": self.entities,
            "feature_views": self.feature_views,
            "push_sources": self.push_sources,
            "feature_services": self.feature_services,
            "online_store": self.online_store,
            "registry": self.registry,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class MaterializeReport:
    """What ``materialize`` derived from the lake and loaded into the online store."""

    end: datetime
    rows: dict[str, int]
    entities: dict[str, int]
    data_versions: dict[str, int]
    regions: list[str]
    derive_seconds: float
    load_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "end": self.end.isoformat(),
            "rows": self.rows,
            "entities": self.entities,
            "data_versions": {k: str(v) for k, v in self.data_versions.items()},
            "regions": self.regions,
            "derive_seconds": round(self.derive_seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
        }


@dataclass
class TrainingFrame:
    """A point-in-time correct training set of one use case.

    ``frame`` holds the entity columns, ``event_timestamp``, ``region``, the features (in
    ``features`` order), the label and the ground-truth column.
    """

    frame: pd.DataFrame
    label: str
    truth: str
    features: list[str]
    data_versions: dict[str, int]


@dataclass
class OnlineFeatures:
    """Online feature values of one entity; ``missing`` lists features with no online value."""

    values: dict[str, float | None]
    missing: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "missing": self.missing}
