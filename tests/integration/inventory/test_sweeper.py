"""The sweeper on every backend, in real time: a lapsed hold is marked EXPIRED and its
``ReservationExpired`` event is in the event log within a second of the TTL; the metrics say so."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY
from tests.integration.inventory.helpers import FakeClock, StoreFactory

from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.model import OutgoingRecord
from shopops.events.port import EventLog
from shopops.inventory.model import (
    IdempotencyConflictError,
    InsufficientStockError,
    Reservation,
    ReservationStatus,
)
from shopops.inventory.service import TOPIC, InventoryService, Sweeper, wall_clock_ms

pytestmark = pytest.mark.timeout(60)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_expired_holds_are_announced_within_a_second(store_factory: StoreFactory, tmp_path: Path) -> None:
    event_log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    svc = store_factory.service(wall_clock_ms, event_log=event_log, publish_inline=False)
    svc.set_stock("SKU-S", "wh-1", 3)
    expired_before = metric("shopops_inventory_holds_expired_total")
    blocked_before = metric("shopops_inventory_oversell_blocked_total")
    with svc.sweeper(interval_s=0.2) as sweeper:
        holds = [svc.reserve([("SKU-S", "wh-1", 1)], 300 + 100 * i, f"s{i}") for i in range(3)]
        with pytest.raises(InsufficientStockError):
            svc.reserve([("SKU-S", "wh-1", 1)], 300, "s-none")
        seen: dict[str, int] = {}
        deadline = time.time() + 5
        while len(seen) < 3 and time.time() < deadline:
            try:
                records = event_log.read(TOPIC, 0, 0, 1000)
            except NotFoundError:  # nothing published yet
                records = []
            for record in records:
                event = orjson.loads(record.value or b"{}")
                if event["type"] == "ReservationExpired" and event["reservation_id"] not in seen:
                    seen[event["reservation_id"]] = wall_clock_ms()
            time.sleep(0.02)
        assert sweeper.running
    assert set(seen) == {h.id for h in holds}
    for hold in holds:
        late_ms = seen[hold.id] - hold.expires_at_ms
        assert late_ms < 1_000, f"{hold.id} announced {late_ms} ms after its TTL"
        assert svc.store.get(hold.id).status is ReservationStatus.EXPIRED
    assert metric("shopops_inventory_holds_expired_total") - expired_before == 3
    assert metric("shopops_inventory_oversell_blocked_total") - blocked_before == 1
    assert metric("shopops_inventory_sweeper_lag_seconds") < 1.0
    assert metric("shopops_inventory_reservations_total", outcome="refused") >= 1
    event_log.close()


def test_reservations_and_transitions_are_counted_once_each(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    svc = store_factory.service(clock)
    svc.set_stock("SKU-M", "wh-1", 2)
    names = (
        ("shopops_inventory_reservations_total", "outcome", "reserved"),
        ("shopops_inventory_reservations_total", "outcome", "repeated"),
        ("shopops_inventory_reservations_total", "outcome", "refused"),
        ("shopops_inventory_reservations_total", "outcome", "conflict"),
        ("shopops_inventory_reservations_total", "outcome", "invalid"),
        ("shopops_inventory_transitions_total", "status", "held"),
        ("shopops_inventory_transitions_total", "status", "confirmed"),
        ("shopops_inventory_transitions_total", "status", "expired"),
    )
    before = [metric(name, **{label: value}) for name, label, value in names]
    hold = svc.reserve([("SKU-M", "wh-1", 1)], 1_000, "m1")
    svc.reserve([("SKU-M", "wh-1", 1)], 1_000, "m1")
    svc.confirm(hold.id)
    svc.confirm(hold.id)
    with pytest.raises(InsufficientStockError):
        svc.reserve([("SKU-M", "wh-1", 2)], 1_000, "m2")
    with pytest.raises(IdempotencyConflictError):
        svc.reserve([("SKU-M", "wh-1", 1), ("SKU-N", "wh-1", 1)], 1_000, "m1")
    with pytest.raises(InvalidInputError):
        svc.reserve([("SKU-M", "wh-1", 0)], 1_000, "m3")
    svc.reserve([("SKU-M", "wh-1", 1)], 1_000, "m4")
    clock.advance(1_000)
    assert len(svc.expire_due()) == 1
    after = [metric(name, **{label: value}) for name, label, value in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1, 1, 2, 1, 1]


class FailingService(InventoryService):
    """A service whose backend is down for the first sweeps."""

    def __init__(self, svc: InventoryService, failures: int) -> None:
        super().__init__(svc.store, clock=svc.clock, limits=svc.limits)
        self.failures = failures

    def expire_due(self, limit: int = 500) -> list:  # type: ignore[type-arg]
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailableError("down for the test")
        return super().expire_due(limit)


def test_the_sweeper_survives_backend_outages(store_factory: StoreFactory) -> None:
    svc = FailingService(store_factory.service(wall_clock_ms), failures=2)
    svc.set_stock("SKU-O", "wh-1", 1)
    hold = svc.reserve([("SKU-O", "wh-1", 1)], 100, "o1")
    sweeper = Sweeper(svc, interval_s=0.05).start()
    try:
        deadline = time.time() + 5
        while svc.store.get(hold.id).status is ReservationStatus.HELD and time.time() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert sweeper.errors == 2
    assert svc.store.get(hold.id).status is ReservationStatus.EXPIRED


class FlakyLog:
    """An event log that is down until ``up`` is set; then it forwards to a real one."""

    def __init__(self, real: EventLog) -> None:
        self.real = real
        self.up = False

    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        if not self.up:
            raise BackendUnavailableError("the event log is down")
        return self.real.produce_many(records)

    def flush(self, timeout_s: float = 30.0) -> None:
        self.real.flush(timeout_s)


def test_changes_succeed_while_the_event_log_is_down_and_their_events_follow(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    real = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    flaky = FlakyLog(real)
    svc = store_factory.service(wall_clock_ms, event_log=flaky)
    svc.set_stock("SKU-F", "wh-1", 2)
    hold = svc.reserve([("SKU-F", "wh-1", 1)], 60_000, "f1")
    svc.confirm(hold.id)
    assert svc.store.pending_outbox() == 3
    flaky.up = True
    assert svc.publish_events() == 3
    types = [orjson.loads(r.value or b"{}")["type"] for r in real.read(TOPIC, 0, 0, 100)]
    assert types == ["StockAdjusted", "StockReserved", "ReservationConfirmed"]
    assert svc.store.pending_outbox() == 0
    real.close()


DAY = 86_400_000


def _stocked(store_factory: StoreFactory) -> tuple[FakeClock, InventoryService]:
    clock = FakeClock()
    svc = store_factory.service(clock)
    svc.set_stock("SKU-P", "wh-1", 10)
    return clock, svc


def _released(svc: InventoryService, clock: FakeClock, key: str) -> Reservation:
    clock.advance(1)  # ids sort by creation time (and at random within a millisecond)
    return svc.release(svc.reserve([("SKU-P", "wh-1", 1)], 1_000, key).id)


def test_the_sweeper_prunes_settled_reservations_a_batch_at_a_time_once_per_interval(
    store_factory: StoreFactory,
) -> None:
    clock, svc = _stocked(store_factory)
    kept = svc.confirm(svc.reserve([("SKU-P", "wh-1", 1)], 1_000, "p-kept").id)
    old = [_released(svc, clock, f"p{i}") for i in range(5)]
    clock.advance(2 * DAY)
    pruned_before = metric("shopops_inventory_reservations_pruned_total")
    sweeper = Sweeper(svc, interval_s=0.2, batch=2, retention_ms=DAY, prune_interval_s=60)
    # With no time budget, each step is one batch of ids: the pass is spread over the sweeps.
    assert [sweeper.prune_step(100.0 + i / 10, budget_s=0) for i in range(5)] == [1, 2, 2, 0, 0]
    assert sweeper.pruned == 5
    assert metric("shopops_inventory_reservations_pruned_total") - pruned_before == 5
    for gone in old:
        with pytest.raises(NotFoundError):
            svc.get(gone.id)
    assert svc.get(kept.id).status is ReservationStatus.CONFIRMED
    # The next pass starts an interval after the last one began.
    late = svc.release(svc.reserve([("SKU-P", "wh-1", 1)], 1_000, "p-late").id)
    clock.advance(2 * DAY)
    assert sweeper.prune_step(150.0, budget_s=0) == 0
    assert sweeper.prune_step(161.0) == 1
    with pytest.raises(NotFoundError):
        svc.get(late.id)
    # No retention: nothing is ever pruned.
    assert Sweeper(svc, retention_ms=None).prune_step(1e9) == 0
    with pytest.raises(InvalidInputError, match="prune interval"):
        Sweeper(svc, prune_interval_s=0)


def test_a_retention_pass_stops_at_the_reservations_made_after_its_cutoff(
    store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, svc = _stocked(store_factory)
    old = _released(svc, clock, "p-old")
    clock.advance(3 * DAY)
    recent = [_released(svc, clock, f"p-new{i}") for i in range(6)]
    calls: list[str] = []
    prune = svc.store.prune_settled

    def counted(before: int, after_id: str = "", limit: int = 500) -> tuple[int, str]:
        calls.append(after_id)
        return prune(before, after_id, limit)

    monkeypatch.setattr(svc.store, "prune_settled", counted)
    # The first batch reaches a reservation made after the cutoff: nothing later can be due.
    assert svc.prune_settled(retention_ms=DAY, batch=2) == 1
    assert calls == [""]
    with pytest.raises(NotFoundError):
        svc.get(old.id)
    assert all(svc.get(r.id).status is ReservationStatus.RELEASED for r in recent)
