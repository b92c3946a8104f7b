"""The backends' fast paths: the PostgreSQL functions and the Redis store's direct script calls.

The contract suite runs every operation through them already; these tests pin down what it does
not see from outside: that the PostgreSQL functions leave the same rows and events as the shared
transaction they stand in for, and that the Redis store recovers scripts the server lost.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from tests.integration.inventory.helpers import FakeClock, StoreFactory

from shopops.inventory.backends._sql import SqlReservationStore
from shopops.inventory.model import (
    Action,
    HoldExpiredError,
    IdempotencyConflictError,
    InsufficientStockError,
    ReservationLine,
    ReservationStatus,
    StockKey,
    ValidatedReserveStock,
)

pytestmark = pytest.mark.timeout(120)

A1 = StockKey("SKU-A", "wh-1")
A2 = StockKey("SKU-A", "wh-2")
B1 = StockKey("SKU-B", "wh-1")
B2 = StockKey("SKU-B", "wh-2")
TTL = 1_000


def test_lines_out_of_key_order_on_the_port_are_held_all_or_nothing(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = store_factory()
    svc = store_factory.service(clock, store=store)
    svc.set_stock(A1.sku, A1.warehouse, 3)
    svc.set_stock(B1.sku, B1.warehouse, 1)
    # Not in key order: a backend must still lock, check and hold every line at once.
    unsorted = (ReservationLine(B1.sku, B1.warehouse, 1), ReservationLine(A1.sku, A1.warehouse, 2))
    outcome = store.reserve(ValidatedReserveStock(unsorted, TTL, "unsorted"), "r-unsorted", clock(), "e1")
    assert outcome.changed
    assert [(lv.key, lv.held) for lv in svc.stock_levels([A1, B1])] == [(A1, 2), (B1, 1)]
    with pytest.raises(InsufficientStockError):
        store.reserve(ValidatedReserveStock(unsorted, TTL, "short"), "r-short", clock(), "e2")
    assert [(lv.key, lv.held) for lv in svc.stock_levels([A1, B1])] == [(A1, 2), (B1, 1)]
    assert store.confirm("r-unsorted", clock()).reservation.status is ReservationStatus.CONFIRMED
    assert [(lv.key, lv.committed, lv.held) for lv in svc.stock_levels([A1, B1])] == [(A1, 2, 0), (B1, 1, 0)]


def _published(store: Any) -> list[dict[str, Any]]:
    entries = store.claim_outbox("test", 5_000, 0, 1_000)
    store.ack_outbox("test", [e.entry_id for e in entries])
    return [e.event().to_dict() for e in entries]


def _neutral(event: dict[str, Any], names: dict[str, str]) -> Any:
    """The event with the names that differ between the two mirrored runs replaced."""
    text = orjson.dumps(event).decode()
    for name, neutral in names.items():
        text = text.replace(name, neutral)
    return orjson.loads(text)


def _clocks(store: Any, keys: list[StockKey]) -> list[int]:
    """The item clocks, as stored."""
    clocks = []
    with store._read() as cur:
        for key in keys:
            cur.execute(
                "SELECT clock_ms FROM stock WHERE sku = %s AND warehouse = %s", (key.sku, key.warehouse)
            )
            clocks.append(int(cur.fetchone()[0]))
    return clocks


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_the_postgres_functions_write_what_the_shared_transaction_writes(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    # The same story on two mirrored pairs of items: SKU-A through the functions, SKU-B through
    # the shared transaction. wh-2's clock runs ahead of wh-1's and of the caller's, so the times
    # come from the item clock and wh-1's clock has to be moved up to it.
    store = store_factory()
    svc = store_factory.service(clock, store=store)
    start = clock()
    for key in (A1, A2, B1, B2):
        svc.set_stock(key.sku, key.warehouse, 5)

    def ahead(ms: int) -> None:
        clock.now_ms = start + ms
        svc.adjust_stock(A2.sku, A2.warehouse, 1, "ahead")
        svc.adjust_stock(B2.sku, B2.warehouse, 1, "ahead")

    def command(sku: str, key: str) -> ValidatedReserveStock:
        lines = (ReservationLine(sku, "wh-1", 2), ReservationLine(sku, "wh-2", 1))
        return ValidatedReserveStock(lines, TTL, key)

    ahead(100)
    clock.now_ms = start + 50
    fast = [store.reserve(command("SKU-A", "k-a1"), "r-a1", clock(), "e-a1")]
    shared = [SqlReservationStore.reserve(store, command("SKU-B", "k-b1"), "r-b1", clock(), "e-b1")]
    assert fast[0].reservation.created_at_ms == start + 100
    ahead(200)
    clock.now_ms = start + 120
    fast.append(store.confirm("r-a1", clock()))
    shared.append(SqlReservationStore._transition(store, "r-b1", Action.CONFIRM, clock()))
    assert fast[1].reservation.updated_at_ms == start + 200
    fast.append(store.reserve(command("SKU-A", "k-a2"), "r-a2", clock(), "e-a2"))
    shared.append(SqlReservationStore.reserve(store, command("SKU-B", "k-b2"), "r-b2", clock(), "e-b2"))
    clock.now_ms = start + 300
    fast.append(store.release("r-a2", clock()))
    shared.append(SqlReservationStore._transition(store, "r-b2", Action.RELEASE, clock()))
    fast.append(store.cancel("r-a1", clock()))
    shared.append(SqlReservationStore._transition(store, "r-b1", Action.CANCEL, clock()))

    names = {"SKU-A": "SKU", "SKU-B": "SKU", "r-a": "r-", "r-b": "r-", "k-a": "k-", "k-b": "k-"}
    assert all(o.changed for o in fast + shared)
    assert [_neutral(o.reservation.to_dict(), names) for o in fast] == [
        _neutral(o.reservation.to_dict(), names) for o in shared
    ]
    events = [e for e in _published(store) if e["type"] != "StockAdjusted"]
    a_events = [_neutral(e, names) for e in events if "SKU-A" in repr(e)]
    b_events = [_neutral(e, names) for e in events if "SKU-B" in repr(e)]
    assert len(a_events) == 5
    assert a_events == b_events
    levels = {
        lv.key: (lv.on_hand, lv.committed, lv.held, lv.blocked) for lv in svc.stock_levels([A1, A2, B1, B2])
    }
    assert levels[A1] == levels[B1]
    assert levels[A2] == levels[B2]
    assert _clocks(store, [A1, A2]) == _clocks(store, [B1, B2]) == [start + 300, start + 300]


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_what_the_postgres_functions_leave_to_the_shared_transaction_changes_nothing_twice(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = store_factory()
    svc = store_factory.service(clock, store=store)
    svc.set_stock(A1.sku, A1.warehouse, 3)
    svc.set_stock(B1.sku, B1.warehouse, 1)
    lines = (ReservationLine(A1.sku, A1.warehouse, 2), ReservationLine(B1.sku, B1.warehouse, 1))
    held = store.reserve(ValidatedReserveStock(lines, TTL, "first"), "r-1", clock(), "e-1")
    # The first line fits, the second does not: the function gives the first back.
    second = (ReservationLine(A1.sku, A1.warehouse, 1), ReservationLine(B1.sku, B1.warehouse, 1))
    with pytest.raises(InsufficientStockError):
        store.reserve(ValidatedReserveStock(second, TTL, "second"), "r-2", clock(), "e-2")
    # The key exists: the function gives back what it took, the shared code answers the repeat.
    repeat = store.reserve(ValidatedReserveStock(lines, TTL, "first"), "r-3", clock(), "e-3")
    assert not repeat.changed
    assert repeat.reservation == held.reservation
    assert [(lv.held, lv.committed) for lv in svc.stock_levels([A1, B1])] == [(2, 0), (1, 0)]
    # A hold that lapsed: the function undoes its counters, the shared code raises.
    clock.advance(TTL)
    with pytest.raises(HoldExpiredError):
        store.confirm("r-1", clock())
    assert [(lv.held, lv.committed) for lv in svc.stock_levels([A1, B1])] == [(0, 0), (0, 0)]
    assert [r.status for r in store.expire_due(clock())] == [ReservationStatus.EXPIRED]
    after = [(lv.on_hand, lv.held, lv.committed) for lv in svc.stock_levels([A1, B1])]
    assert after == [(3, 0, 0), (1, 0, 0)]


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_the_postgres_functions_are_prepared_again_after_psycopg_deallocates_them(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    # A refusal runs the shared transaction (psycopg prepares its statements after a few runs);
    # the rollback of a conflict then makes psycopg send DEALLOCATE ALL, which drops the fast
    # path's prepared calls as well. The store must prepare them again, not fail.
    store = store_factory(pool_min_size=1, pool_max_size=1)
    svc = store_factory.service(clock, store=store)
    svc.set_stock(A1.sku, A1.warehouse, 2)
    svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "first")
    for attempt in range(6):
        with pytest.raises(InsufficientStockError):
            svc.reserve([(A1.sku, A1.warehouse, 5)], TTL, f"short-{attempt}")
    with pytest.raises(IdempotencyConflictError):
        svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "first")
    held = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "second")
    assert svc.confirm(held.id).status is ReservationStatus.CONFIRMED


@pytest.mark.parametrize("store_factory", ["redis"], indirect=True)
def test_the_redis_store_loads_a_script_the_server_does_not_know(store_factory: StoreFactory) -> None:
    store: Any = store_factory()
    marker = uuid.uuid4().hex
    # A script never loaded on this server (its text is unique), as after a restart or a flush.
    script = store._redis.register_script(f"return '{marker}'")
    assert store._run(script, []) == marker
    assert store._run(script, []) == marker
