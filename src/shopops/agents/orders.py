"""Order facts the agents' tools read: orders, their lines, payments, shipments and tracking events.

:class:`OrderFacts` is the port. :class:`EventLogOrderBook`, the embedded default, keeps the
current state of each row as a projection of the CDC topics of the event log
(``<region>.shop.orders``, ``.shop.order_lines``, ``.payments.payments``,
``.logistics.shipments``, ``.logistics.shipment_events``): change events are applied in log order
per key (an insert or update replaces the row, a delete removes it; a change delivered twice
leaves the same state), and each refresh reads only what was appended since the last one, so a
question costs one end-offset look-up per topic once the book is warm. Personal columns (device,
IP, card fingerprint, address hash) are never kept: no tool can reveal what is not there.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from shopops.core.logging import get_logger
from shopops.events.debezium import DebeziumDecodeError, Op, decode
from shopops.events.port import EventLog

log = get_logger(__name__)

Row = dict[str, Any]

#: Topic suffix of each table the book keeps, and the columns it keeps of it.
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "orders": (
        "shop.orders",
        (
            "order_id",
            "customer_id",
            "status",
            "currency",
            "subtotal",
            "shipping_fee",
            "tax",
            "total",
            "item_count",
            "warehouse_id",
            "channel",
            "created_at",
            "updated_at",
        ),
    ),
    "order_lines": (
        "shop.order_lines",
        ("line_id", "order_id", "line_no", "product_id", "sku", "quantity", "unit_price", "line_total"),
    ),
    "payments": (
        "payments.payments",
        (
            "payment_id",
            "order_id",
            "merchant_region",
            "provider",
            "method",
            "status",
            "currency",
            "amount",
            "refunded_amount",
            "captured_at",
            "settled_at",
            "created_at",
            "updated_at",
        ),
    ),
    "shipments": (
        "logistics.shipments",
        (
            "shipment_id",
            "order_id",
            "warehouse_id",
            "carrier",
            "route",
            "status",
            "promised_date",
            "created_at",
            "updated_at",
            "delivered_at",
        ),
    ),
    "shipment_events": (
        "logistics.shipment_events",
        ("event_id", "shipment_id", "status", "location", "occurred_at"),
    ),
}
_TIME_COLUMNS = ("updated_at", "occurred_at", "created_at")


class OrderFacts(ABC):
    """Read access to orders and what hangs off them, by id (no personal columns)."""

    @abstractmethod
    def order(self, order_id: str) -> Row | None:
        """The order's current row, or ``None``."""

    @abstractmethod
    def orders_of(self, customer_id: str, limit: int = 10) -> list[Row]:
        """The customer's orders, newest first."""

    @abstractmethod
    def lines_of(self, order_id: str) -> list[Row]: ...

    @abstractmethod
    def payments_of(self, order_id: str) -> list[Row]: ...

    @abstractmethod
    def shipments_of(self, order_id: str) -> list[Row]: ...

    @abstractmethod
    def tracking_of(self, shipment_id: str) -> list[Row]:
        """Tracking events of a shipment, oldest first."""

    @abstractmethod
    def chargebacks(self, region: str | None = None) -> list[Row]:
        """Payments charged back (status ``charged_back``), newest first."""

    @abstractmethod
    def as_of_us(self) -> int:
        """Event time of the latest change seen (microseconds): the clock of the data."""

    @abstractmethod
    def regions(self) -> list[str]: ...


class EventLogOrderBook(OrderFacts):
    """The current state of the order tables, projected from the CDC topics of an event log."""

    def __init__(
        self, event_log: EventLog, regions: Iterable[str] | None = None, refresh_s: float = 1.0
    ) -> None:
        self.event_log = event_log
        self._wanted = sorted(set(regions)) if regions is not None else None
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._positions: dict[str, dict[int, int]] = {}
        self._rows: dict[str, dict[bytes, Row]] = {table: {} for table in TABLES}
        self._by_order: dict[str, dict[str, set[bytes]]] = {
            table: defaultdict(set) for table in ("order_lines", "payments", "shipments")
        }
        self._by_customer: dict[str, set[bytes]] = defaultdict(set)
        self._by_shipment: dict[str, set[bytes]] = defaultdict(set)
        self._order_key: dict[str, bytes] = {}
        self._latest_us = 0
        self._checked_at = 0.0
        self._regions: list[str] = []

    # --- projection -------------------------------------------------------------------------------

    def _topics(self) -> list[tuple[str, str, str]]:
        """``(topic, table, region)`` of every order topic present in the log."""
        present = {t.name for t in self.event_log.list_topics()}
        regions = self._wanted or sorted({name.split(".", 1)[0] for name in present if name.count(".") == 2})
        out = []
        for region in regions:
            for table, (suffix, _) in TABLES.items():
                topic = f"{region}.{suffix}"
                if topic in present:
                    out.append((topic, table, region))
        return out

    def refresh(self, force: bool = False) -> int:
        """Apply what was appended to the topics since the last refresh; returns changes applied."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.refresh_s:
            return 0
        with self._lock:
            applied = 0
            topics = self._topics()
            self._regions = sorted({region for _, _, region in topics})
            for topic, table, _ in topics:
                applied += self._catch_up(topic, table)
            self._checked_at = time.monotonic()
        if applied:
            log.debug("order book refreshed", changes=applied)
        return applied

    def _catch_up(self, topic: str, table: str) -> int:
        positions = self._positions.setdefault(topic, {})
        applied = 0
        for partition, end in sorted(self.event_log.end_offsets(topic).items()):
            offset = positions.get(partition, 0)
            while offset < end:
                records = self.event_log.read(topic, partition, offset, min(5_000, end - offset))
                if not records:
                    break
                for record in records:
                    if record.key is not None:
                        applied += self._apply(table, record)
                offset = records[-1].offset + 1
            positions[partition] = offset
        return applied

    def _apply(self, table: str, record: Any) -> int:
        try:
            event = decode(record)
        except DebeziumDecodeError:
            return 0  # malformed events are the drift watch's to quarantine
        key: bytes = record.key
        rows = self._rows[table]
        if event.op is None or event.op is Op.DELETE:
            old = rows.pop(key, None)
            if old is not None:
                self._unindex(table, key, old)
            return 1 if old is not None else 0
        if event.after is None:
            return 0
        keep = TABLES[table][1]
        row = {column: event.after.get(column) for column in keep}
        old = rows.get(key)
        if old is not None:
            self._unindex(table, key, old)
        rows[key] = row
        self._index(table, key, row)
        for column in _TIME_COLUMNS:
            value = row.get(column)
            if isinstance(value, int) and value > self._latest_us:
                self._latest_us = value
                break
        return 1

    def _index(self, table: str, key: bytes, row: Row) -> None:
        if table == "orders":
            self._order_key[str(row["order_id"])] = key
            if row.get("customer_id"):
                self._by_customer[str(row["customer_id"])].add(key)
        elif table in self._by_order and row.get("order_id"):
            self._by_order[table][str(row["order_id"])].add(key)
        elif table == "shipment_events" and row.get("shipment_id"):
            self._by_shipment[str(row["shipment_id"])].add(key)

    def _unindex(self, table: str, key: bytes, row: Row) -> None:
        if table == "orders":
            self._order_key.pop(str(row["order_id"]), None)
            self._by_customer.get(str(row.get("customer_id")), set()).discard(key)
        elif table in self._by_order:
            self._by_order[table].get(str(row.get("order_id")), set()).discard(key)
        elif table == "shipment_events":
            self._by_shipment.get(str(row.get("shipment_id")), set()).discard(key)

    # --- reads ------------------------------------------------------------------------------------

    def _related(self, table: str, keys: Iterable[bytes]) -> list[Row]:
        rows = self._rows[table]
        return [dict(rows[k]) for k in keys if k in rows]

    def order(self, order_id: str) -> Row | None:
        self.refresh()
        with self._lock:
            key = self._order_key.get(order_id)
            row = self._rows["orders"].get(key) if key is not None else None
            return dict(row) if row is not None else None

    def orders_of(self, customer_id: str, limit: int = 10) -> list[Row]:
        self.refresh()
        with self._lock:
            found = self._related("orders", self._by_customer.get(customer_id, ()))
        found.sort(key=lambda r: (r.get("created_at") or 0, r["order_id"]), reverse=True)
        return found[:limit]

    def lines_of(self, order_id: str) -> list[Row]:
        self.refresh()
        with self._lock:
            found = self._related("order_lines", self._by_order["order_lines"].get(order_id, ()))
        return sorted(found, key=lambda r: r.get("line_no") or 0)

    def payments_of(self, order_id: str) -> list[Row]:
        self.refresh()
        with self._lock:
            found = self._related("payments", self._by_order["payments"].get(order_id, ()))
        return sorted(found, key=lambda r: r.get("created_at") or 0)

    def shipments_of(self, order_id: str) -> list[Row]:
        self.refresh()
        with self._lock:
            found = self._related("shipments", self._by_order["shipments"].get(order_id, ()))
        return sorted(found, key=lambda r: r.get("created_at") or 0)

    def tracking_of(self, shipment_id: str) -> list[Row]:
        self.refresh()
        with self._lock:
            found = self._related("shipment_events", self._by_shipment.get(shipment_id, ()))
        return sorted(found, key=lambda r: (r.get("occurred_at") or 0, r["event_id"]))

    def chargebacks(self, region: str | None = None) -> list[Row]:
        self.refresh()
        with self._lock:
            found = [
                dict(row)
                for row in self._rows["payments"].values()
                if row.get("status") == "charged_back"
                and (region is None or str(row.get("payment_id", "")).startswith(f"{region}-"))
            ]
        return sorted(found, key=lambda r: r.get("updated_at") or 0, reverse=True)

    def as_of_us(self) -> int:
        self.refresh()
        return self._latest_us

    def regions(self) -> list[str]:
        self.refresh()
        return list(self._regions)

    def all_orders(self) -> list[Row]:
        """Every order's current row (the evaluation picks its fixtures from them)."""
        self.refresh()
        with self._lock:
            return [dict(row) for row in self._rows["orders"].values()]

    def sizes(self) -> dict[str, int]:
        """Rows kept per table (for tests and the stats line)."""
        with self._lock:
            return {table: len(rows) for table, rows in self._rows.items()}
