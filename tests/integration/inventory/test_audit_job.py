"""The periodic audit against the CDC stock stream, over real SQLite backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.debezium import Op, encode_key, encode_value
from shopops.events.port import EventLog
from shopops.inventory.audit_job import AuditJob
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.cdc import CdcStockTracker
from shopops.inventory.model import StockKey
from shopops.inventory.service import InventoryService

TOPIC = "vn.inventory.stock_levels"
SOURCE = {"connector": "postgresql", "db": "inventory", "table": "stock_levels", "ts_ms": 0}


def stock_event(log: EventLog, sku: str, on_hand: int, op: Op = Op.UPDATE) -> None:
    row = {"sku": sku, "warehouse_id": "vn-wh-01", "on_hand": on_hand}
    before, after = (row, None) if op is Op.DELETE else (None, row)
    log.produce(TOPIC, encode_value(op, before, after, SOURCE, 0), key=encode_key({"sku": sku}))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[EventLog, InventoryService]]:
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    log.create_topic(TOPIC, 2)
    service = InventoryService(open_reservation_store(BackendSelection(type="sqlite"), home=tmp_path), log)
    yield log, service
    service.close()
    log.close()


def gauge(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None
    return value


def test_tracker_folds_incrementally_with_deletes_and_negative_stock(
    world: tuple[EventLog, InventoryService],
) -> None:
    log, _ = world
    stock_event(log, "A", 5)
    stock_event(log, "B", 2)
    log.produce(TOPIC, b"not a change event", key=b'{"sku": "C"}')
    log.flush()
    tracker = CdcStockTracker(log)
    first = tracker.refresh()
    assert first.on_hand == {StockKey("A", "vn-wh-01"): 5, StockKey("B", "vn-wh-01"): 2}
    assert first.skipped == 1
    stock_event(log, "A", -3)
    stock_event(log, "B", 2, Op.DELETE)
    log.flush()
    second = tracker.refresh()
    assert second.on_hand == {StockKey("A", "vn-wh-01"): 0}
    assert second.negative == {StockKey("A", "vn-wh-01"): -3}
    assert second.events == 4  # each record read once


def test_audit_job_sets_gauges_for_drift_and_overdue_holds(world: tuple[EventLog, InventoryService]) -> None:
    log, service = world
    stock_event(log, "A", 5)
    stock_event(log, "B", 7)
    log.flush()
    service.set_stock("A", "vn-wh-01", 5)
    service.set_stock("B", "vn-wh-01", 6)  # drifted by one unit from the source
    job = AuditJob(service, log, interval_s=60)
    report = job.run_once()
    assert [(d.key.sku, d.delta) for d in report.drift] == [("B", -1)]
    assert gauge("shopops_inventory_drifted_items") == 1
    assert gauge("shopops_inventory_overdue_holds") == 0

    stock_event(log, "B", 6)  # the source catches up
    log.flush()
    assert job.run_once().ok
    assert gauge("shopops_inventory_drifted_items") == 0
