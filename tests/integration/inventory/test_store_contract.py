"""The reservation-store contract: one suite, run against every backend (sqlite, redis, postgres).

What the port promises (``shopops.inventory.port``) is checked through the service and the port's
public methods only, with a fake clock, so a backend passes or fails on behaviour alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from tests.integration.inventory.helpers import TEST_LIMITS, FakeClock, StoreFactory

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.inventory.model import (
    HoldExpiredError,
    IdempotencyConflictError,
    InsufficientStockError,
    Replay,
    ReservationLine,
    ReservationStateError,
    ReservationStatus,
    StockKey,
    ValidatedReserveStock,
    event_from_dict,
)
from shopops.inventory.service import TOPIC, InventoryService

pytestmark = pytest.mark.timeout(120)

A1 = StockKey("SKU-A", "wh-1")
A2 = StockKey("SKU-A", "wh-2")
B1 = StockKey("SKU-B", "wh-1")
TTL = 1_000


def level(svc: InventoryService, key: StockKey) -> tuple[int, int, int, int]:
    """``(on_hand, committed, held, available)`` of ``key``."""
    (found,) = svc.stock_levels([key])
    return found.on_hand, found.committed, found.held, found.available


@pytest.fixture
def svc(store_factory: StoreFactory, clock: FakeClock) -> InventoryService:
    service = store_factory.service(clock)
    service.set_stock(A1.sku, A1.warehouse, 5)
    service.set_stock(A2.sku, A2.warehouse, 2)
    service.set_stock(B1.sku, B1.warehouse, 1)
    return service


# --- stock ------------------------------------------------------------------------------------


def test_stock_is_kept_per_sku_and_warehouse(svc: InventoryService) -> None:
    assert [(lv.key, lv.on_hand, lv.available) for lv in svc.stock("SKU-A")] == [(A1, 5, 5), (A2, 2, 2)]
    assert svc.stock("SKU-NONE") == []
    # Unknown keys are left out; the rest come sorted.
    levels = svc.stock_levels([B1, StockKey("SKU-Z", "wh-1"), A1])
    assert [lv.key for lv in levels] == [A1, B1]
    assert [lv.key for lv in svc.store.all_stock(svc.clock())] == [A1, A2, B1]


def test_restock_and_adjust_change_on_hand(svc: InventoryService) -> None:
    change = svc.adjust_stock(A1.sku, A1.warehouse, 3, reason="restock")
    assert change.before is not None
    assert change.before.on_hand == 5
    assert change.after.on_hand == 8
    assert change.drift == 0
    svc.adjust_stock(A1.sku, A1.warehouse, -2, reason="damaged")
    assert level(svc, A1) == (6, 0, 0, 6)
    svc.set_stock(A1.sku, A1.warehouse, 10, reason="count")
    assert level(svc, A1) == (10, 0, 0, 10)
    # A new item can be created by a restock too.
    svc.adjust_stock("SKU-NEW", "wh-9", 4)
    assert level(svc, StockKey("SKU-NEW", "wh-9")) == (4, 0, 0, 4)


def test_on_hand_never_goes_negative(svc: InventoryService) -> None:
    with pytest.raises(InvalidInputError, match="only 1 are on hand"):
        svc.adjust_stock(B1.sku, B1.warehouse, -2)
    with pytest.raises(InvalidInputError, match="no stock"):
        svc.adjust_stock("SKU-NEW", "wh-9", -1)
    with pytest.raises(InvalidInputError, match="on_hand"):
        svc.set_stock(B1.sku, B1.warehouse, -1)
    assert level(svc, B1) == (1, 0, 0, 1)
    assert svc.stock_levels([StockKey("SKU-NEW", "wh-9")]) == []


def test_lowering_on_hand_under_promises_is_drift_and_blocks_new_holds(svc: InventoryService) -> None:
    held = svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "k-held")
    svc.confirm(svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "k-sold").id)
    change = svc.set_stock(A1.sku, A1.warehouse, 3, reason="count found damage")
    assert change.drift == 1
    assert level(svc, A1) == (3, 2, 2, 0)
    (lv,) = svc.stock_levels([A1])
    assert lv.oversubscribed == 1
    assert lv.available == 0
    with pytest.raises(InsufficientStockError) as info:
        svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "k-more")
    assert info.value.shortages[0].available == 0
    report = svc.audit()
    assert [x.key for x in report.oversubscribed] == [A1]
    assert not report.ok
    # Releasing the hold heals it; a restock gives units back to sell.
    svc.release(held.id)
    svc.adjust_stock(A1.sku, A1.warehouse, 1)
    assert level(svc, A1) == (4, 2, 0, 2)
    assert svc.audit().oversubscribed == ()


# --- reserve ------------------------------------------------------------------------------------


def test_reserve_holds_every_line_until_the_ttl(svc: InventoryService, clock: FakeClock) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 2), (B1.sku, B1.warehouse, 1)], TTL, "cart-1")
    assert res.status is ReservationStatus.HELD
    assert res.lines == (ReservationLine("SKU-A", "wh-1", 2), ReservationLine("SKU-B", "wh-1", 1))
    assert res.created_at_ms == clock.now_ms
    assert res.expires_at_ms == clock.now_ms + TTL
    assert level(svc, A1) == (5, 0, 2, 3)
    assert level(svc, B1) == (1, 0, 1, 0)
    assert svc.get(res.id) == res
    assert svc.store.find_by_idempotency_key("cart-1") == res


def test_reserve_is_all_or_nothing_across_lines_and_warehouses(svc: InventoryService) -> None:
    with pytest.raises(InsufficientStockError) as info:
        svc.reserve(
            [(A1.sku, A1.warehouse, 1), (A2.sku, A2.warehouse, 3), (B1.sku, B1.warehouse, 1)], TTL, "cart-2"
        )
    error = info.value
    assert error.http_status == 409
    assert error.details["shortages"] == [
        {"sku": "SKU-A", "warehouse": "wh-2", "requested": 3, "available": 2, "known": True}
    ]
    # Nothing of the cart was held, not even the lines that fitted.
    assert level(svc, A1) == (5, 0, 0, 5)
    assert level(svc, B1) == (1, 0, 0, 1)
    assert svc.store.find_by_idempotency_key("cart-2") is None
    # The blocked attempt is counted on the short item only.
    blocked = {lv.key: lv.blocked for lv in svc.store.all_stock(svc.clock())}
    assert blocked == {A1: 0, A2: 1, B1: 0}


def test_several_short_lines_are_all_reported(svc: InventoryService) -> None:
    with pytest.raises(InsufficientStockError) as info:
        svc.reserve([(A2.sku, A2.warehouse, 5), (B1.sku, B1.warehouse, 2), ("SKU-Q", "wh-1", 1)], TTL, "c")
    assert [(s.sku, s.warehouse, s.requested, s.available, s.known) for s in info.value.shortages] == [
        ("SKU-A", "wh-2", 5, 2, True),
        ("SKU-B", "wh-1", 2, 1, True),
        ("SKU-Q", "wh-1", 1, 0, False),
    ]


def test_lines_sharing_one_item_are_summed_before_the_check(svc: InventoryService) -> None:
    # Medusa #16502: 2 + 2 of an item with 2 on hand must not pass line by line.
    with pytest.raises(InsufficientStockError) as info:
        svc.reserve([(A2.sku, A2.warehouse, 1), (A2.sku, A2.warehouse, 2)], TTL, "dup-lines")
    assert info.value.shortages[0].requested == 3
    assert level(svc, A2) == (2, 0, 0, 2)
    res = svc.reserve([(A2.sku, A2.warehouse, 1), (A2.sku, A2.warehouse, 1)], TTL, "dup-ok")
    assert res.lines == (ReservationLine("SKU-A", "wh-2", 2),)
    assert level(svc, A2) == (2, 0, 2, 0)


def test_unknown_item_is_refused_as_unknown(svc: InventoryService) -> None:
    with pytest.raises(InsufficientStockError) as info:
        svc.reserve([("SKU-GHOST", "wh-1", 1)], TTL, "ghost")
    assert info.value.shortages[0].known is False


# --- idempotency -------------------------------------------------------------------------------


def test_a_repeated_key_returns_the_same_reservation_and_holds_once(svc: InventoryService) -> None:
    first = svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "retry-me")
    again = svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "retry-me")
    assert again == first
    # Split differently, the same lines are the same request.
    assert svc.reserve([(A1.sku, A1.warehouse, 1), (A1.sku, A1.warehouse, 1)], 5 * TTL, "retry-me") == first
    assert level(svc, A1) == (5, 0, 2, 3)
    # After a confirm the repeat returns the confirmed reservation; nothing more is held.
    svc.confirm(first.id)
    assert svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "retry-me").status is ReservationStatus.CONFIRMED
    assert level(svc, A1) == (5, 2, 0, 3)


def test_a_repeated_key_with_other_lines_is_a_conflict(svc: InventoryService) -> None:
    first = svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "cart-9")
    with pytest.raises(IdempotencyConflictError) as info:
        svc.reserve([(A1.sku, A1.warehouse, 3)], TTL, "cart-9")
    assert info.value.http_status == 409
    assert first.id in info.value.message
    assert level(svc, A1) == (5, 0, 2, 3)


def test_a_repeat_of_a_sold_out_reservation_is_not_refused(svc: InventoryService) -> None:
    # The original took the last unit; its retry must get it back, not "out of stock".
    first = svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "last-unit")
    assert svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "last-unit") == first


# --- expiry ------------------------------------------------------------------------------------


def test_a_hold_stops_counting_the_instant_its_ttl_passes(svc: InventoryService, clock: FakeClock) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 4)], TTL, "soon-gone")
    clock.advance(TTL - 1)
    assert level(svc, A1) == (5, 0, 4, 1)
    assert svc.get(res.id).status is ReservationStatus.HELD
    clock.advance(1)
    # Not swept yet: the store still says HELD, yet the units are available.
    assert svc.store.get(res.id).status is ReservationStatus.HELD
    assert level(svc, A1) == (5, 0, 0, 5)
    assert svc.get(res.id).status is ReservationStatus.EXPIRED


def test_an_expired_hold_frees_its_units_for_a_write_before_any_sweep(
    svc: InventoryService, clock: FakeClock
) -> None:
    old = svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "first")
    clock.advance(TTL)
    new = svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "second")
    assert level(svc, B1) == (1, 0, 1, 0)
    # The sweep marks the old one expired and leaves the new hold alone.
    assert [r.id for r in svc.expire_due()] == [old.id]
    assert svc.store.get(old.id).status is ReservationStatus.EXPIRED
    assert svc.get(new.id).status is ReservationStatus.HELD
    assert level(svc, B1) == (1, 0, 1, 0)


def test_expire_due_takes_due_holds_once_oldest_first_within_the_limit(
    svc: InventoryService, clock: FakeClock
) -> None:
    start = clock.now_ms
    ids = []
    for i in range(4):
        ids.append(svc.reserve([(A1.sku, A1.warehouse, 1)], TTL + 100 * (3 - i), f"h{i}").id)
    keeper = svc.reserve([(A2.sku, A2.warehouse, 1)], 10 * TTL, "keeper").id
    clock.now_ms = start + TTL + 250  # h3 (TTL) and h2 (TTL + 100), h1 (TTL + 200) are due
    store = svc.store
    first = store.expire_due(clock.now_ms, limit=2)
    assert [r.id for r in first] == [ids[3], ids[2]]
    assert all(r.status is ReservationStatus.EXPIRED for r in first)
    assert first[0].updated_at_ms >= clock.now_ms
    assert [r.id for r in store.expire_due(clock.now_ms, limit=10)] == [ids[1]]
    assert store.expire_due(clock.now_ms, limit=10) == []
    assert {r.id for r in store.reservations(ReservationStatus.HELD)} == {ids[0], keeper}
    assert level(svc, A1) == (5, 0, 1, 4)


def test_an_expired_hold_cannot_be_confirmed(svc: InventoryService, clock: FakeClock) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "late")
    clock.advance(TTL)
    with pytest.raises(HoldExpiredError, match="expired") as info:
        svc.confirm(res.id)
    assert info.value.http_status == 409
    svc.expire_due()
    with pytest.raises(HoldExpiredError, match="expired"):
        svc.confirm(res.id)
    assert level(svc, A1) == (5, 0, 0, 5)


# --- confirm, release, extend, cancel ---------------------------------------------------------


def test_confirm_turns_held_units_into_committed_ones(svc: InventoryService) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 2), (B1.sku, B1.warehouse, 1)], TTL, "buy")
    done = svc.confirm(res.id)
    assert done.status is ReservationStatus.CONFIRMED
    assert level(svc, A1) == (5, 2, 0, 3)
    assert level(svc, B1) == (1, 1, 0, 0)
    assert svc.confirm(res.id) == done  # idempotent
    assert level(svc, A1) == (5, 2, 0, 3)
    with pytest.raises(ReservationStateError, match="cancel"):
        svc.release(res.id)


def test_release_gives_units_back_once(svc: InventoryService, clock: FakeClock) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 3)], TTL, "changed-mind")
    released = svc.release(res.id)
    assert released.status is ReservationStatus.RELEASED
    assert level(svc, A1) == (5, 0, 0, 5)
    assert svc.release(res.id) == released
    with pytest.raises(ReservationStateError):
        svc.confirm(res.id)
    # Releasing a hold that already lapsed changes nothing and says it expired.
    lapsed = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "gone")
    clock.advance(TTL)
    assert svc.release(lapsed.id).status is ReservationStatus.EXPIRED
    assert [r.id for r in svc.expire_due()] == [lapsed.id]


def test_extend_keeps_a_hold_past_its_first_ttl(svc: InventoryService, clock: FakeClock) -> None:
    res = svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "slow-payer")
    clock.advance(TTL - 100)
    extended = svc.extend(res.id, 2 * TTL)
    assert extended.expires_at_ms == clock.now_ms + 2 * TTL
    clock.advance(TTL)  # past the first expiry
    assert svc.expire_due() == []
    assert level(svc, B1) == (1, 0, 1, 0)
    with pytest.raises(InsufficientStockError):
        svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "other")
    # A shorter "extension" changes nothing.
    assert svc.extend(res.id, 100).expires_at_ms == extended.expires_at_ms
    assert svc.confirm(res.id).status is ReservationStatus.CONFIRMED


def test_extend_refuses_expired_holds_and_endless_holds(svc: InventoryService, clock: FakeClock) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "x")
    clock.advance(1)
    # The whole life of a hold is capped, however often it is extended.
    with pytest.raises(InvalidInputError, match="after it was made"):
        svc.extend(res.id, TEST_LIMITS.max_hold_lifetime_ms)
    clock.advance(TTL)
    with pytest.raises(HoldExpiredError):
        svc.extend(res.id, TTL)


def test_cancel_after_confirm_returns_committed_units(svc: InventoryService) -> None:
    res = svc.confirm(svc.reserve([(A2.sku, A2.warehouse, 2)], TTL, "refund").id)
    assert level(svc, A2) == (2, 2, 0, 0)
    cancelled = svc.cancel(res.id)
    assert cancelled.status is ReservationStatus.CANCELLED
    assert level(svc, A2) == (2, 0, 0, 2)
    assert svc.cancel(res.id) == cancelled
    held = svc.reserve([(A2.sku, A2.warehouse, 1)], TTL, "not-yet")
    with pytest.raises(ReservationStateError, match="release"):
        svc.cancel(held.id)


def test_unknown_reservations_are_not_found(svc: InventoryService) -> None:
    for call in (svc.confirm, svc.release, svc.cancel, svc.get):
        with pytest.raises(NotFoundError):
            call("r-missing")
    with pytest.raises(NotFoundError):
        svc.extend("r-missing", TTL)


def test_invalid_commands_are_refused_before_the_store(svc: InventoryService) -> None:
    for lines, ttl, key, match in [
        ([], TTL, "k", "at least one line"),
        ([(A1.sku, A1.warehouse, 0)], TTL, "k", "positive"),
        ([(A1.sku, A1.warehouse, -1)], TTL, "k", "positive"),
        ([(A1.sku, A1.warehouse, 1)], 10, "k", "TTL"),
        ([(A1.sku, A1.warehouse, 1)], TEST_LIMITS.max_ttl_ms + 1, "k", "TTL"),
        ([(A1.sku, A1.warehouse, 1)], TTL, "has space", "idempotency key"),
        ([(A1.sku, A1.warehouse, 1)], TTL, "x" * 200, "at most 128"),
        ([("bad sku", A1.warehouse, 1)], TTL, "k", "invalid sku"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            svc.reserve(lines, ttl, key)
    with pytest.raises(InvalidInputError):
        svc.confirm("not an id!")
    assert level(svc, A1) == (5, 0, 0, 5)


# --- listing, audit, persistence ---------------------------------------------------------------


def test_reservations_are_listed_by_id_and_status_with_paging(svc: InventoryService) -> None:
    made = [svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, f"list-{i}") for i in range(5)]
    svc.confirm(made[1].id)
    ids = sorted(r.id for r in made)
    store = svc.store
    assert [r.id for r in store.reservations(limit=3)] == ids[:3]
    assert [r.id for r in store.reservations(after_id=ids[2])] == ids[3:]
    assert [r.id for r in store.reservations(ReservationStatus.CONFIRMED)] == [made[1].id]
    assert len(store.reservations(ReservationStatus.HELD)) == 4


def test_settled_reservations_are_pruned_after_the_retention_and_the_others_stay(
    svc: InventoryService, clock: FakeClock
) -> None:
    day = 86_400_000
    released = svc.release(svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "old-released").id)
    expired = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "old-expired")
    clock.advance(TTL)
    assert [r.id for r in svc.expire_due()] == [expired.id]
    cancelled = svc.cancel(svc.confirm(svc.reserve([(A2.sku, A2.warehouse, 1)], TTL, "old-cancelled").id).id)
    confirmed = svc.confirm(svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "old-confirmed").id)
    lapsed = svc.reserve([(B1.sku, B1.warehouse, 1)], TTL, "old-lapsed")  # HELD, never swept
    clock.advance(10 * day)
    recent = svc.release(svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "recent-released").id)
    levels = [level(svc, key) for key in (A1, A2, B1)]

    # Small batches: the pass goes on from call to call until the ids run out.
    assert svc.prune_settled(retention_ms=5 * day, batch=2) == 3
    for gone in (released, expired, cancelled):
        with pytest.raises(NotFoundError):
            svc.get(gone.id)
    assert svc.get(confirmed.id).status is ReservationStatus.CONFIRMED
    assert svc.store.get(lapsed.id).status is ReservationStatus.HELD
    assert svc.get(recent.id).status is ReservationStatus.RELEASED
    assert [level(svc, key) for key in (A1, A2, B1)] == levels
    assert svc.store.find_by_idempotency_key("old-released") is None
    assert svc.store.find_by_idempotency_key("recent-released") == recent
    # A second pass finds nothing; the freed key makes a new reservation; a confirmed one can
    # still be cancelled.
    assert svc.prune_settled(retention_ms=5 * day) == 0
    again = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "old-released")
    assert again.id != released.id
    assert svc.cancel(confirmed.id).status is ReservationStatus.CANCELLED
    with pytest.raises(InvalidInputError, match="retention"):
        svc.prune_settled(retention_ms=-1)


def test_audit_reports_overdue_holds_drift_and_blocked_attempts(
    svc: InventoryService, clock: FakeClock
) -> None:
    res = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "forgotten")
    for i in range(3):
        with pytest.raises(InsufficientStockError):
            svc.reserve([(B1.sku, B1.warehouse, 2)], TTL, f"greedy-{i}")
    clock.advance(TTL + 5_000)
    report = svc.audit(source_on_hand={A1: 5, A2: 7, StockKey("SKU-C", "wh-1"): 3}, grace_ms=2_000)
    assert [r.id for r in report.overdue_holds] == [res.id]
    assert [(d.key, d.store_on_hand, d.source_on_hand) for d in report.drift] == [
        (A2, 2, 7),
        (StockKey("SKU-C", "wh-1"), None, 3),
    ]
    assert report.blocked_attempts == {B1: 3}
    assert report.blocked_total == 3
    assert not report.ok
    body = orjson.loads(orjson.dumps(report.to_dict()))
    assert body["overdue_holds"][0]["overdue_ms"] == 5_000
    # The sweeper and a sync from the source fix both.
    svc.expire_due()
    svc.sync_stock({A2: 7, StockKey("SKU-C", "wh-1"): 3})
    assert svc.audit(source_on_hand={A1: 5, A2: 7}).ok


def test_state_survives_reopening_the_store(store_factory: StoreFactory, clock: FakeClock) -> None:
    svc = store_factory.service(clock)
    svc.set_stock(A1.sku, A1.warehouse, 3)
    res = svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "durable")
    svc.store.close()
    again = store_factory.service(clock)
    assert again.get(res.id) == res
    assert level(again, A1) == (3, 0, 2, 1)


# --- events --------------------------------------------------------------------------------------


def read_events(home: Path) -> list[dict[str, object]]:
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        out: list[dict[str, object]] = []
        for partition in sorted(log.end_offsets(TOPIC)):
            out += [orjson.loads(r.value or b"{}") for r in log.read(TOPIC, partition, 0, 10_000)]
        return out
    finally:
        log.close()


def test_every_change_publishes_its_event_and_a_replay_rebuilds_the_stock(
    store_factory: StoreFactory, clock: FakeClock, tmp_path: Path
) -> None:
    event_log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    svc = store_factory.service(clock, event_log=event_log)
    svc.set_stock(A1.sku, A1.warehouse, 3, reason="cdc")
    kept = svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "e1")
    svc.extend(kept.id, 2 * TTL)
    svc.confirm(kept.id)
    svc.release(svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "e2").id)
    with pytest.raises(InsufficientStockError):
        svc.reserve([(A1.sku, A1.warehouse, 9)], TTL, "e3")
    lapsed = svc.reserve([(A1.sku, A1.warehouse, 2)], TTL, "e4")
    clock.advance(TTL)
    svc.expire_due()
    svc.publish_events()
    svc.cancel(kept.id)
    event_log.close()

    events = read_events(tmp_path)
    assert [e["type"] for e in events] == [
        "StockAdjusted",
        "StockReserved",
        "ReservationExtended",
        "ReservationConfirmed",
        "StockReserved",
        "ReservationReleased",
        "OutOfStock",
        "StockReserved",
        "ReservationExpired",
        "ReservationCancelled",
    ]
    expired = next(e for e in events if e["type"] == "ReservationExpired")
    assert expired["reservation_id"] == lapsed.id
    assert expired["expires_at_ms"] == lapsed.expires_at_ms
    refused = next(e for e in events if e["type"] == "OutOfStock")
    assert refused["shortages"] == [
        {"sku": "SKU-A", "warehouse": "wh-1", "requested": 9, "available": 2, "known": True}
    ]
    assert svc.store.pending_outbox() == 0
    replay = Replay().apply_all(event_from_dict(e) for e in events)
    assert replay.level(A1) == (3, 0, 0) == level(svc, A1)[:3]
    assert replay.status[kept.id] is ReservationStatus.CANCELLED
    assert replay.refused == 1


def test_the_outbox_has_one_publisher_at_a_time_and_redelivers_unacknowledged_entries(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = store_factory()
    svc = store_factory.service(clock, store=store, publish_inline=False)
    svc.set_stock(A1.sku, A1.warehouse, 3)
    svc.reserve([(A1.sku, A1.warehouse, 1)], TTL, "o1")
    now = clock.now_ms
    first = store.claim_outbox("relay-a", 1_000, now)
    assert [e.kind for e in first] == ["stock", "reserved"]
    assert store.claim_outbox("relay-b", 1_000, now) == []  # a's lease runs
    # relay-a dies without acknowledging: once its lease ran out, b gets the same entries.
    clock.advance(1_100)
    time.sleep(1.1)  # the redis lease runs on the server's clock
    second = store.claim_outbox("relay-b", 1_000, clock.now_ms)
    assert [e.entry_id for e in second] == [e.entry_id for e in first]
    assert [e.event().event_id for e in second] == [e.event().event_id for e in first]
    assert store.ack_outbox("relay-b", [e.entry_id for e in second]) == 2
    assert store.pending_outbox() == 0
    assert store.claim_outbox("relay-b", 1_000, clock.now_ms) == []


def test_reserve_on_the_port_directly(store_factory: StoreFactory, clock: FakeClock) -> None:
    store = store_factory()
    svc = store_factory.service(clock, store=store)
    svc.set_stock(B1.sku, B1.warehouse, 2)
    command = ValidatedReserveStock((ReservationLine(B1.sku, B1.warehouse, 2),), 500, "direct")
    outcome = store.reserve(command, "r-direct-1", clock.now_ms, "refusal-1")
    assert outcome.changed
    assert outcome.reservation.id == "r-direct-1"
    repeat = store.reserve(command, "r-direct-2", clock.now_ms, "refusal-2")
    assert not repeat.changed
    assert repeat.reservation.id == "r-direct-1"


def test_a_reserve_by_a_caller_behind_the_item_clock_holds_from_the_item_clock(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    fast = store_factory.service(clock)
    slow_clock = FakeClock(clock.now_ms)
    slow = store_factory.service(slow_clock, store=store_factory())
    fast.set_stock(A1.sku, A1.warehouse, 3)
    fast.set_stock(B1.sku, B1.warehouse, 3)
    clock.advance(500)
    fast.adjust_stock(B1.sku, B1.warehouse, 1)  # B1's clock is now 500 ms ahead of the slow caller
    held = slow.reserve([(A1.sku, A1.warehouse, 1), (B1.sku, B1.warehouse, 1)], TTL, "behind")
    assert (held.created_at_ms, held.expires_at_ms) == (clock.now_ms, clock.now_ms + TTL)
    assert slow.get(held.id) == held
    # Its TTL runs from that time too: the hold still counts 1 ms before it ends, not after.
    clock.advance(TTL - 1)
    assert level(fast, A1)[2] == 1
    clock.advance(1)
    assert level(fast, A1)[2] == 0


def test_a_caller_with_a_stale_clock_cannot_revive_a_lapsed_hold(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    # Two service processes; the slow one read its clock before waiting on a lock.
    fast = store_factory.service(clock)
    slow_clock = FakeClock(clock.now_ms)
    slow = store_factory.service(slow_clock, store=store_factory())
    fast.set_stock(B1.sku, B1.warehouse, 1)
    old = fast.reserve([(B1.sku, B1.warehouse, 1)], TTL, "old")
    clock.advance(TTL)  # the hold lapsed: the fast process sells the unit again
    new = fast.reserve([(B1.sku, B1.warehouse, 1)], TTL, "new")
    slow_clock.now_ms = clock.now_ms - 10  # 10 ms behind: "old" would still look active
    with pytest.raises(HoldExpiredError):
        slow.confirm(old.id)
    with pytest.raises(HoldExpiredError):
        slow.extend(old.id, TTL)
    assert slow.release(old.id).status is ReservationStatus.EXPIRED
    # Readers with the stale time see the item as the writers left it, never oversold.
    (seen,) = slow.stock_levels([B1])
    assert (seen.on_hand, seen.committed, seen.held) == (1, 0, 1)
    assert fast.confirm(new.id).status is ReservationStatus.CONFIRMED
