"""The inventory model: pure rules, no I/O."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from typing import Any

import orjson
import pytest

from shopops.core.errors import ConflictError, InvalidInputError
from shopops.inventory.model import (
    DAY_MS,
    EVENT_TYPES,
    KIND_EXTENDED,
    KIND_OUT_OF_STOCK,
    KIND_RESERVED,
    KIND_STOCK,
    Action,
    HoldExpiredError,
    IdempotencyConflictError,
    InsufficientStockError,
    OutboxEntry,
    Outcome,
    OutOfStock,
    Replay,
    Reservation,
    ReservationCancelled,
    ReservationConfirmed,
    ReservationExpired,
    ReservationExtended,
    ReservationLimits,
    ReservationLine,
    ReservationReleased,
    ReservationStateError,
    ReservationStatus,
    ReserveStock,
    Shortage,
    StockAdjusted,
    StockChange,
    StockKey,
    StockLevel,
    StockReserved,
    ValidatedReserveStock,
    check_idempotent_repeat,
    check_reserve,
    decide,
    event_from_dict,
    extended_expiry,
    lines_from_json,
    lines_to_json,
    merge_lines,
    out_of_stock_data,
    stock_data,
    transition_kind,
    validate_delta,
    validate_idempotency_key,
    validate_on_hand,
    validate_reason,
    validate_reservation_id,
    validate_reserve,
    validate_ttl,
)

T0 = 1_750_000_000_000
A = StockKey("SKU-A", "wh-1")


def res(
    status: ReservationStatus = ReservationStatus.HELD, expires: int = T0 + 1000, **kw: Any
) -> Reservation:
    values: dict[str, Any] = {
        "id": "r1",
        "idempotency_key": "k1",
        "lines": (ReservationLine("SKU-A", "wh-1", 2), ReservationLine("SKU-B", "wh-2", 1)),
        "status": status,
        "created_at_ms": T0,
        "expires_at_ms": expires,
        "updated_at_ms": T0,
    }
    values.update(kw)
    return Reservation(**values)


# --- keys, lines, levels ------------------------------------------------------------------------


def test_stock_keys_validate_sort_and_encode() -> None:
    assert sorted([StockKey("b", "1"), StockKey("a", "2"), StockKey("a", "1")]) == [
        StockKey("a", "1"),
        StockKey("a", "2"),
        StockKey("b", "1"),
    ]
    assert A.encoded == "SKU-A|wh-1"
    assert StockKey.decode(A.encoded) == A
    assert str(A) == "SKU-A@wh-1"
    for bad in ("", "has space", "a|b", "-leading", "x" * 129, "tab\t", "{brace}"):
        with pytest.raises(InvalidInputError):
            StockKey(bad, "wh-1")
    with pytest.raises(InvalidInputError):
        StockKey.decode("no-separator")


def test_reservation_lines_need_a_positive_integer_quantity() -> None:
    assert ReservationLine("S", "W", 3).key == StockKey("S", "W")
    for quantity in (0, -1, 1.5, True, "2", None):
        with pytest.raises(InvalidInputError):
            ReservationLine("S", "W", quantity)  # type: ignore[arg-type]
    assert ReservationLine.from_any({"sku": "S", "warehouse": "W", "quantity": 2}) == ReservationLine(
        "S", "W", 2
    )
    assert ReservationLine.from_any(("S", "W", 2)) == ReservationLine("S", "W", 2)
    with pytest.raises(InvalidInputError, match="lacks quantity"):
        ReservationLine.from_any({"sku": "S", "warehouse": "W"})
    with pytest.raises(InvalidInputError):
        ReservationLine.from_any("S,W,2")


def test_checked_lines_are_shared_and_loose_quantities_are_still_refused() -> None:
    line = ReservationLine.from_any(("SKU-SHARED", "w", 1))
    assert ReservationLine.from_any(("SKU-SHARED", "w", 1)) is line
    assert ReservationLine.from_any({"sku": "SKU-SHARED", "warehouse": "w", "quantity": 1}) is line
    assert lines_from_json([["SKU-SHARED", "w", 1]])[0] is line
    # True and 1.0 are equal to 1 as keys: they must not pass as the cached line of 1 unit.
    for loose in (True, 1.0):
        with pytest.raises(InvalidInputError):
            ReservationLine.from_any(("SKU-SHARED", "w", loose))
        with pytest.raises(InvalidInputError):
            ReservationLine.from_any({"sku": "SKU-SHARED", "warehouse": "w", "quantity": loose})
    with pytest.raises(InvalidInputError):
        ReservationLine.from_any((["SKU-SHARED"], "w", 1))
    with pytest.raises(InvalidInputError):
        lines_from_json([[["SKU-SHARED"], "w", 1]])
    # Stored JSON with other types is read as before: coerced, then checked.
    assert lines_from_json([["SKU-SHARED", "w", "1"]]) == (line,)


def test_reservations_and_outcomes_stay_frozen_values() -> None:
    positional = Reservation("r1", "k1", res().lines, ReservationStatus.HELD, T0, T0 + 1000, T0)
    assert positional == res()
    assert hash(positional) == hash(res())
    assert repr(positional) == repr(res())
    assert replace(positional, status=ReservationStatus.EXPIRED).status is ReservationStatus.EXPIRED
    with pytest.raises(FrozenInstanceError):
        positional.status = ReservationStatus.EXPIRED  # type: ignore[misc]
    with pytest.raises(TypeError):
        Reservation("r1", "k1", (), ReservationStatus.HELD, T0, T0)  # type: ignore[call-arg]
    outcome = Outcome(positional, True)
    assert outcome == Outcome(reservation=res(), changed=True)
    assert (outcome.reservation, outcome.changed) == (positional, True)
    with pytest.raises(FrozenInstanceError):
        outcome.changed = False  # type: ignore[misc]


def test_merge_lines_sums_lines_of_one_item_and_sorts() -> None:
    merged = merge_lines(
        [
            ReservationLine("B", "w1", 1),
            ReservationLine("A", "w2", 1),
            ReservationLine("A", "w1", 2),
            ReservationLine("B", "w1", 3),
        ]
    )
    assert merged == (
        ReservationLine("A", "w1", 2),
        ReservationLine("A", "w2", 1),
        ReservationLine("B", "w1", 4),
    )
    assert merge_lines([]) == ()


def test_stock_level_available_is_never_negative_and_shows_oversubscription() -> None:
    level = StockLevel(A, on_hand=10, committed=3, held=4)
    assert (level.available, level.oversubscribed) == (3, 0)
    lowered = StockLevel(A, on_hand=5, committed=3, held=4, blocked=2)
    assert (lowered.available, lowered.oversubscribed) == (0, 2)
    assert lowered.to_dict() == {
        "sku": "SKU-A",
        "warehouse": "wh-1",
        "on_hand": 5,
        "committed": 3,
        "held": 4,
        "available": 0,
        "oversubscribed": 2,
        "blocked": 2,
    }
    change = StockChange(level, lowered, "count")
    assert change.drift == 2


def test_stock_value_validation() -> None:
    assert validate_on_hand(0) == 0
    assert validate_delta(-3) == -3
    for bad in (-1, 1.0, True, 10**12):
        with pytest.raises(InvalidInputError):
            validate_on_hand(bad)
    for bad_delta in (0, 2.5, 10**12):
        with pytest.raises(InvalidInputError):
            validate_delta(bad_delta)
    assert validate_reason("cdc") == "cdc"
    for bad_reason in ("", "x" * 201, "line\nbreak", 3):
        with pytest.raises(InvalidInputError):
            validate_reason(bad_reason)


# --- commands ----------------------------------------------------------------------------------


def test_validate_reserve_merges_and_checks_bounds() -> None:
    command = validate_reserve(
        ReserveStock([("A", "w", 1), {"sku": "A", "warehouse": "w", "quantity": 2}], 5_000, "cart-1")
    )
    assert command == ValidatedReserveStock((ReservationLine("A", "w", 3),), 5_000, "cart-1")
    limits = ReservationLimits(max_lines=2, max_quantity=5)
    cases: list[tuple[ReserveStock, str]] = [
        (ReserveStock([], 5_000, "k"), "at least one line"),
        (ReserveStock([("A", "w", 1)] * 3, 5_000, "k"), "at most 2 lines"),
        (ReserveStock([("A", "w", 3), ("A", "w", 3)], 5_000, "k"), "6 units of A@w exceed the limit of 5"),
        (ReserveStock([("A", "w", 1)], 999, "k"), "between 1000 and 86400000 ms"),
        (ReserveStock([("A", "w", 1)], DAY_MS + 1, "k"), "TTL"),
        (ReserveStock([("A", "w", 1)], 5_000, ""), "idempotency key is required"),
        (ReserveStock([("A", "w", 1)], 5_000, "x" * 129), "129 characters"),
        (ReserveStock([("A", "w", 1)], 5_000, "ünïcode"), "printable ASCII"),
    ]
    for cmd, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            validate_reserve(cmd, limits)


def test_check_reserve_is_validate_reserve_from_parts() -> None:
    lines = [("A", "w", 1), {"sku": "A", "warehouse": "w", "quantity": 2}, ("B", "w", 1)]
    assert check_reserve(iter(lines), 5_000, "cart-1") == validate_reserve(
        ReserveStock(lines, 5_000, "cart-1")
    )
    with pytest.raises(InvalidInputError, match="ttl_ms must be an integer"):
        check_reserve(lines, True, "cart-1")
    with pytest.raises(InvalidInputError, match="at least one line"):
        check_reserve(iter([]), 5_000, "cart-1")


def test_limits_must_be_coherent() -> None:
    with pytest.raises(InvalidInputError):
        ReservationLimits(min_ttl_ms=0)
    with pytest.raises(InvalidInputError):
        ReservationLimits(min_ttl_ms=10, max_ttl_ms=5)
    with pytest.raises(InvalidInputError):
        ReservationLimits(max_ttl_ms=DAY_MS, max_hold_lifetime_ms=DAY_MS - 1)
    assert validate_ttl(50, ReservationLimits(min_ttl_ms=50)) == 50
    assert validate_idempotency_key("a:b/c=1") == "a:b/c=1"
    assert validate_reservation_id("r0123abc") == "r0123abc"
    for bad in ("", "has space", "x" * 65, None):
        with pytest.raises(InvalidInputError):
            validate_reservation_id(bad)


# --- reservations and transitions --------------------------------------------------------------


def test_a_hold_lapses_exactly_at_its_expiry() -> None:
    hold = res(expires=T0 + 1000)
    assert hold.is_active_hold(T0 + 999)
    assert not hold.is_lapsed(T0 + 999)
    assert not hold.is_active_hold(T0 + 1000)
    assert hold.is_lapsed(T0 + 1000)
    assert hold.as_of(T0 + 999) is hold
    assert hold.as_of(T0 + 1000).status is ReservationStatus.EXPIRED
    assert res(ReservationStatus.CONFIRMED).as_of(T0 + 10**9).status is ReservationStatus.CONFIRMED
    assert hold.quantity == 3
    assert Reservation.from_dict(orjson.loads(orjson.dumps(hold.to_dict()))) == hold


ACTIVE, LAPSED = T0 + 10, T0 + 2000
S = ReservationStatus


@pytest.mark.parametrize(
    ("action", "status", "now", "outcome"),
    [
        (Action.CONFIRM, S.HELD, ACTIVE, True),
        (Action.CONFIRM, S.HELD, LAPSED, HoldExpiredError),
        (Action.CONFIRM, S.CONFIRMED, ACTIVE, False),
        (Action.CONFIRM, S.EXPIRED, LAPSED, HoldExpiredError),
        (Action.CONFIRM, S.RELEASED, ACTIVE, ReservationStateError),
        (Action.CONFIRM, S.CANCELLED, ACTIVE, ReservationStateError),
        (Action.RELEASE, S.HELD, ACTIVE, True),
        (Action.RELEASE, S.HELD, LAPSED, False),
        (Action.RELEASE, S.RELEASED, ACTIVE, False),
        (Action.RELEASE, S.EXPIRED, LAPSED, False),
        (Action.RELEASE, S.CONFIRMED, ACTIVE, ReservationStateError),
        (Action.RELEASE, S.CANCELLED, ACTIVE, ReservationStateError),
        (Action.EXTEND, S.HELD, ACTIVE, True),
        (Action.EXTEND, S.HELD, LAPSED, HoldExpiredError),
        (Action.EXTEND, S.EXPIRED, LAPSED, HoldExpiredError),
        (Action.EXTEND, S.CONFIRMED, ACTIVE, ReservationStateError),
        (Action.EXTEND, S.RELEASED, ACTIVE, ReservationStateError),
        (Action.CANCEL, S.CONFIRMED, ACTIVE, True),
        (Action.CANCEL, S.CANCELLED, ACTIVE, False),
        (Action.CANCEL, S.HELD, ACTIVE, ReservationStateError),
        (Action.CANCEL, S.RELEASED, ACTIVE, ReservationStateError),
        (Action.CANCEL, S.EXPIRED, ACTIVE, ReservationStateError),
    ],
)
def test_the_transition_table(action: Action, status: ReservationStatus, now: int, outcome: object) -> None:
    reservation = res(status, expires=T0 + 1000)
    if isinstance(outcome, bool):
        assert decide(reservation, action, now, new_expires_at_ms=T0 + 5000) is outcome
    else:
        assert isinstance(outcome, type)
        with pytest.raises(outcome) as info:
            decide(reservation, action, now, new_expires_at_ms=T0 + 5000)
        assert isinstance(info.value, ConflictError)
        assert info.value.http_status == 409


def test_extend_to_an_earlier_expiry_is_a_no_op_and_the_lifetime_is_capped() -> None:
    hold = res(expires=T0 + 1000)
    assert decide(hold, Action.EXTEND, ACTIVE, new_expires_at_ms=T0 + 1000) is False
    limits = ReservationLimits(max_ttl_ms=10_000, max_hold_lifetime_ms=20_000)
    assert extended_expiry(hold, 10_000, T0 + 500, limits) == T0 + 10_500
    with pytest.raises(InvalidInputError, match="20000 ms after it was made"):
        extended_expiry(hold, 10_000, T0 + 15_000, limits)


def test_expired_error_says_it_expired_and_what_to_do() -> None:
    with pytest.raises(HoldExpiredError) as info:
        decide(res(expires=T0), Action.CONFIRM, T0)
    body = info.value.to_dict()
    assert body["error"] == "hold_expired"
    assert "expired" in body["message"]
    assert "reserve again" in body["hint"]
    assert body["details"] == {"reservation_id": "r1", "expires_at_ms": T0}


def test_insufficient_stock_details_list_each_short_line() -> None:
    error = InsufficientStockError(
        [Shortage("A", "w1", 3, 1), Shortage("Z", "w1", 1, 0, known=False)], idempotency_key="cart"
    )
    assert isinstance(error, ConflictError)
    assert error.http_status == 409
    assert error.to_dict()["details"] == {
        "shortages": [
            {"sku": "A", "warehouse": "w1", "requested": 3, "available": 1, "known": True},
            {"sku": "Z", "warehouse": "w1", "requested": 1, "available": 0, "known": False},
        ],
        "idempotency_key": "cart",
    }
    assert "A@w1 (3 asked, 1 available)" in error.message


def test_idempotent_repeat_needs_the_same_lines() -> None:
    stored = res()
    same = ValidatedReserveStock(stored.lines, 9_999, "k1")
    assert check_idempotent_repeat(stored, same).changed is False
    other = ValidatedReserveStock((ReservationLine("SKU-A", "wh-1", 1),), 1000, "k1")
    with pytest.raises(IdempotencyConflictError, match="already used by reservation r1"):
        check_idempotent_repeat(stored, other)


# --- events ------------------------------------------------------------------------------------


def outbox_entries() -> list[OutboxEntry]:
    held = res()
    command = ValidatedReserveStock(held.lines, 1000, "k9")
    before = StockLevel(A, 5, 1, 1)
    change = StockChange(before, StockLevel(A, 2, 1, 1), "count")
    entries = [
        OutboxEntry("1", KIND_STOCK, stock_data("ev-stock", change, T0)),
        OutboxEntry("2", KIND_RESERVED, held.to_dict()),
        OutboxEntry("3", KIND_EXTENDED, res(expires=T0 + 5000, updated_at_ms=T0 + 10).to_dict()),
    ]
    for n, status in enumerate(
        (S.CONFIRMED, S.RELEASED, S.EXPIRED, S.CANCELLED),
        start=4,
    ):
        after = res(status, updated_at_ms=T0 + n)
        entries.append(OutboxEntry(str(n), transition_kind(after), after.to_dict()))
    shortages = [Shortage("SKU-A", "wh-1", 2, 1)]
    entries.append(OutboxEntry("9", KIND_OUT_OF_STOCK, out_of_stock_data("ev-oos", command, shortages, T0)))
    return entries


def test_outbox_entries_become_events_with_stable_ids() -> None:
    events = [entry.event() for entry in outbox_entries()]
    assert [type(e) for e in events] == [
        StockAdjusted,
        StockReserved,
        ReservationExtended,
        ReservationConfirmed,
        ReservationReleased,
        ReservationExpired,
        ReservationCancelled,
        OutOfStock,
    ]
    assert [e.event_id for e in events] == [
        "ev-stock",
        "r1:reserved",
        f"r1:extended:{T0 + 5000}",
        "r1:confirmed",
        "r1:released",
        "r1:expired",
        "r1:cancelled",
        "ev-oos",
    ]
    # Reservation events are keyed by reservation, the others by SKU: per-key order is kept.
    assert [e.key for e in events] == ["SKU-A"] + ["r1"] * 6 + ["SKU-A"]
    assert set(EVENT_TYPES) == {type(e).type_name for e in events}
    adjusted = events[0]
    assert isinstance(adjusted, StockAdjusted)
    assert adjusted.to_dict()["oversubscribed"] == 0
    assert adjusted.on_hand_before == 5


def test_events_round_trip_through_json() -> None:
    for entry in outbox_entries():
        event = entry.event()
        body = orjson.loads(orjson.dumps(event.to_dict()))
        assert body["type"] == event.type_name
        assert event_from_dict(body) == event
    with pytest.raises(InvalidInputError, match="unknown inventory event type"):
        event_from_dict({"type": "Nope", "event_id": "x", "at_ms": 1})
    with pytest.raises(InvalidInputError):
        OutboxEntry("1", "nope", res().to_dict()).event()


def test_replay_rebuilds_stock_and_ignores_duplicates() -> None:
    stock, reserved, _extended, confirmed, released, expired, cancelled, refused = (
        entry.event() for entry in outbox_entries()
    )
    sold = [stock, reserved, confirmed]
    replay = Replay().apply_all([*sold, *sold])  # at-least-once delivery: everything twice
    assert replay.duplicates == 3
    assert replay.level(A) == (2, 2, 0)
    assert replay.status["r1"] is S.CONFIRMED
    assert replay.lines["r1"] == res().lines
    assert Replay().apply_all([*sold, cancelled]).level(A) == (2, 0, 0)
    assert Replay().apply_all([stock, reserved]).level(A) == (2, 0, 2)
    for ending in (released, expired):
        after = Replay().apply_all([stock, reserved, ending, refused])
        assert after.level(A) == (2, 0, 0)
        assert after.refused == 1


def test_lines_json_round_trip() -> None:
    lines = (ReservationLine("A", "w1", 2), ReservationLine("B", "w2", 1))
    assert lines_from_json(orjson.loads(orjson.dumps(lines_to_json(lines)))) == lines
    assert lines_from_json([line.to_dict() for line in lines]) == lines
