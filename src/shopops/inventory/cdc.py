"""The source system's stock, read from its CDC stream (``<region>.inventory.stock_levels``).

The warehouse system owns ``on_hand``; its table streams to the event log as Debezium change
events. Folding that stream (per key, in log order; a delete removes the item) gives the source's
current units per item: the snapshot the audit compares the reservation store with, and the one
``sync`` applies (restock / adjust from CDC). :class:`CdcStockTracker` folds incrementally, so a
periodic audit reads each record once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shopops.events.debezium import Op, decode_batch
from shopops.events.model import is_cdc_topic
from shopops.events.port import EventLog
from shopops.inventory.model import StockKey

STOCK_TABLE = "inventory.stock_levels"
_READ_BATCH = 5_000


@dataclass
class CdcStockSnapshot:
    """Units on hand per item as the source system last reported them."""

    on_hand: dict[StockKey, int] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    events: int = 0
    #: Records that were not valid change events, or rows without sku/warehouse_id/on_hand.
    skipped: int = 0
    #: Items the source last reported below zero: it sold units it did not have. They count as 0
    #: on hand (nothing can be held against them) and are listed so that someone looks.
    negative: dict[StockKey, int] = field(default_factory=dict)


class CdcStockTracker:
    """Keeps a :class:`CdcStockSnapshot` up to date with the stock_levels topics of ``regions``."""

    def __init__(self, log: EventLog, regions: Iterable[str] | None = None) -> None:
        self._log = log
        self._regions = {r.lower() for r in regions} if regions is not None else None
        self._positions: dict[tuple[str, int], int] = {}
        self.snapshot = CdcStockSnapshot()

    def _wanted(self, name: str) -> bool:
        if not (is_cdc_topic(name) and name.endswith(f".{STOCK_TABLE}")):
            return False
        return self._regions is None or name.split(".", 1)[0] in self._regions

    def refresh(self) -> CdcStockSnapshot:
        """Fold the records written since the last refresh (topics created since included)."""
        snapshot = self.snapshot
        for info in self._log.list_topics():
            if not self._wanted(info.name):
                continue
            if info.name not in snapshot.topics:
                snapshot.topics.append(info.name)
            for partition, end in sorted(self._log.end_offsets(info.name).items()):
                self._fold(info.name, partition, end)
        return snapshot

    def _fold(self, topic: str, partition: int, end: int) -> None:
        snapshot = self.snapshot
        offset = self._positions.get((topic, partition), 0)
        while offset < end:
            records = self._log.read(topic, partition, offset, _READ_BATCH)
            if not records:
                break
            offset = records[-1].offset + 1
            batch = decode_batch(records)
            snapshot.skipped += len(batch.failures)
            for event in batch.events:
                if event.is_tombstone:
                    continue
                snapshot.events += 1
                row = event.row or {}
                try:
                    key = StockKey(str(row["sku"]), str(row["warehouse_id"]))
                    units = int(row["on_hand"])
                except (KeyError, TypeError, ValueError):
                    snapshot.skipped += 1
                    continue
                snapshot.negative.pop(key, None)
                if event.op is Op.DELETE:
                    snapshot.on_hand.pop(key, None)
                    continue
                if units < 0:
                    snapshot.negative[key] = units
                snapshot.on_hand[key] = max(0, units)
        self._positions[(topic, partition)] = offset


def read_cdc_stock(log: EventLog, regions: Iterable[str] | None = None) -> CdcStockSnapshot:
    """Fold every ``<region>.inventory.stock_levels`` topic (of ``regions``, default all) once."""
    return CdcStockTracker(log, regions).refresh()
