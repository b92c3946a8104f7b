"""The stream push worker: real-time features from the event log into the online store.

It follows each region's ``shop.orders``, ``logistics.shipments`` and ``finance.fx_rates`` CDC
topics and the reservation engine's ``shopops.inventory.events``, folds them with the same rules
as the batch derivation (``model.OrderFold``, ``model.StockFold``, the FX as-of lookup) and calls
Feast's ``store.push`` for every key that changed: customer, device and card velocity, order and
shipment facts, stock availability.

State lives in memory and is rebuilt on start by replaying the topics from their first offset (no
consumer group: nothing to lose on a crash, and a push is an upsert of a key's latest value, so
pushing a value again changes nothing). After a materialization (which may have written values
older than the pushed ones) the worker re-pushes its whole state.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from shopops.core.logging import get_logger
from shopops.events.debezium import DebeziumDecodeError, Op, decode
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.ml.features.model import (
    VIEW_BY_NAME,
    FxBook,
    OrderFold,
    OrderPlaced,
    ShipmentCreated,
    StockFold,
    order_fact_row,
    region_of,
    shipment_fact_row,
    to_float,
)
from shopops.ml.features.service import FeatureService

log = get_logger("shopops.ml.features.push")

INVENTORY_TOPIC = "shopops.inventory.events"
_CDC_TABLES = ("shop.orders", "logistics.shipments", "finance.fx_rates")
_CREATES = (Op.CREATE, Op.READ)


@dataclass
class PushRound:
    """What one round read and pushed."""

    records: int = 0
    pushed: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    repushed: bool = False

    @property
    def rows(self) -> int:
        return sum(self.pushed.values())


class FeaturePusher:
    """Folds the event log into real-time features and pushes them (``run_once``, or a thread)."""

    def __init__(
        self,
        service: FeatureService,
        event_log: EventLog,
        *,
        regions: list[str] | None = None,
        interval_s: float = 1.0,
        max_records_per_partition: int = 20_000,
        inventory_topic: str = INVENTORY_TOPIC,
    ) -> None:
        self.service = service
        self.event_log = event_log
        self.regions = regions
        self.interval_s = interval_s
        self.max_records = max_records_per_partition
        self.inventory_topic = inventory_topic
        self.orders = OrderFold()
        self.stock = StockFold()
        self.fx = FxBook()
        self.positions: dict[tuple[str, int], int] = {}
        self._generation: int | None = None
        self._outbox: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def topics(self) -> list[str]:
        """The topics followed: the CDC tables of the configured (or every) region, the inventory events."""
        names = [t.name for t in self.event_log.list_topics()]
        wanted = []
        for name in names:
            parts = name.split(".")
            if len(parts) == 3 and f"{parts[1]}.{parts[2]}" in _CDC_TABLES:
                if self.regions is None or parts[0] in self.regions:
                    wanted.append(name)
            elif name == self.inventory_topic:
                wanted.append(name)
        return sorted(wanted)

    def _read(self) -> list[Record]:
        """New records of every followed partition (up to ``max_records`` each, so all progress evenly)."""
        records: list[Record] = []
        for topic in self.topics():
            for partition, end in self.event_log.end_offsets(topic).items():
                position = self.positions.get((topic, partition), 0)
                taken = 0
                while position < end and taken < self.max_records:
                    chunk = self.event_log.read(
                        topic, partition, position, min(5_000, self.max_records - taken)
                    )
                    if not chunk:
                        break
                    records.extend(chunk)
                    taken += len(chunk)
                    position = chunk[-1].offset + 1
                self.positions[(topic, partition)] = position
        return records

    def run_once(self) -> PushRound:
        """Read what is new, fold it, push every changed key; re-push all after a materialization."""
        result = PushRound()
        records = self._read()
        result.records = len(records)
        events: list[tuple[int, int, Any]] = []  # (time µs, kind, payload)
        for record in records:
            parsed = self._parse(record)
            if parsed is None:
                result.skipped += 1
            else:
                events.append(parsed)
        # Every record of a round in time order: FX rates before the orders they convert, orders
        # before the windows they leave.
        events.sort(key=lambda e: (e[0], e[1]))
        facts: dict[str, list[dict[str, Any]]] = {"order_facts": [], "shipment_facts": []}
        for at, kind, payload in events:
            if kind == 0:
                quote, rate = payload
                self.fx.add(quote, at, rate)
            elif kind == 1:
                self.orders.advance(at)
                if self.orders.add(payload):
                    facts["order_facts"].append(order_fact_row(payload, self.fx))
            elif kind == 2:
                facts["shipment_facts"].append(shipment_fact_row(payload))
            else:
                self.stock.apply(payload)
        cdc = [r.timestamp_ms for r in records if r.topic != self.inventory_topic]
        if cdc:
            # The data's clock: the newest CDC record read. Windows close up to it (in a live system
            # change events flow all the time, so it stays close to the wall clock; a simulated
            # world keeps its own time, while the reservation engine stamps events with the wall's).
            self.orders.advance(max(cdc) * 1000)
        rows = {**self.orders.drain(), **facts, "stock_availability": self.stock.drain()}
        generation = self._materialized_generation()
        if self._generation is not None and generation != self._generation:
            # A materialization loaded the online store from the lake, possibly with older values.
            rows.update(self.orders.snapshot())
            rows["stock_availability"] = self.stock.snapshot()
            result.repushed = True
        self._generation = generation
        # Rows wait in the outbox until Feast took them: a failed push is retried next round
        # (a newer row of the same key replaces the waiting one).
        for view, view_rows in rows.items():
            keys = VIEW_BY_NAME[view].join_keys
            box = self._outbox.setdefault(view, {})
            for row in view_rows:
                box[tuple(row[k] for k in keys)] = row
        for view, box in list(self._outbox.items()):
            if box:
                result.pushed[view] = self.service.push(view, list(box.values()))
                del self._outbox[view]
        return result

    def _parse(self, record: Record) -> tuple[int, int, Any] | None:
        """``(time µs, kind, payload)``: 0 FX rate, 1 order placed, 2 shipment created, 3 stock event."""
        if record.topic == self.inventory_topic:
            if record.value is None:
                return None
            try:
                data = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(data, dict) or "at_ms" not in data:
                return None
            return int(data["at_ms"]) * 1000, 3, data
        try:
            event = decode(record)
        except DebeziumDecodeError:
            return None
        row = event.after
        if row is None:
            return None
        table = record.topic.split(".", 1)[1]
        region = region_of(record.topic)
        if table == "finance.fx_rates":
            rate, published = to_float(row.get("rate")), row.get("published_at")
            if rate is None or not isinstance(published, int) or not row.get("quote"):
                return None
            return published, 0, (str(row["quote"]), rate)
        if event.op not in _CREATES:
            return None
        created = row.get("created_at")
        if not isinstance(created, int):
            return None
        if table == "shop.orders":
            if not row.get("order_id") or not row.get("customer_id"):
                return None
            count = row.get("item_count")
            return (
                created,
                1,
                OrderPlaced(
                    order_id=str(row["order_id"]),
                    region=region,
                    customer_id=str(row["customer_id"]),
                    device_id=row.get("device_id"),
                    card_fingerprint=row.get("card_fingerprint"),
                    created_at_us=created,
                    currency=str(row.get("currency") or ""),
                    total=row.get("total"),
                    item_count=int(count) if isinstance(count, int) else None,
                ),
            )
        if not row.get("shipment_id"):
            return None
        promised = row.get("promised_date")
        return (
            created,
            2,
            ShipmentCreated(
                shipment_id=str(row["shipment_id"]),
                region=region,
                created_at_us=created,
                weight_kg=to_float(row.get("weight_kg")),
                promised_date=promised if isinstance(promised, int) else None,
            ),
        )

    def _materialized_generation(self) -> int:
        manifest = self.service.manifest() or {}
        return int(manifest.get("generation", 0))

    # --- the thread ----------------------------------------------------------------------------

    def start(self) -> FeaturePusher:
        self._thread = threading.Thread(target=self._loop, name="feature-push", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                result = self.run_once()
                if result.rows:
                    log.info(
                        "features pushed",
                        records=result.records,
                        rows=result.pushed,
                        repushed=result.repushed,
                        seconds=round(time.perf_counter() - started, 3),
                    )
            except Exception as exc:  # keep the worker alive; the next round picks up where it is
                log.error("feature push failed", error=str(exc))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
