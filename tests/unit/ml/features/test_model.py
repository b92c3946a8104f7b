"""Feature definitions and derivations: requests, derived features, the streaming folds."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from shopops.core.errors import InvalidInputError
from shopops.ml.features.model import (
    ACCOUNT_AGE,
    ACCOUNT_CREATED,
    MS_PER_DAY,
    US_PER_DAY,
    US_PER_H,
    USE_CASE_DEFS,
    USE_CASES,
    VIEWS,
    FxBook,
    OrderFold,
    OrderPlaced,
    StockFold,
    derive_frame,
    derive_values,
    local_hour,
    parse_request,
    parse_timestamp_ms,
    promised_hours,
    use_case,
    views_of,
)

T0 = int(datetime(2026, 1, 2, tzinfo=UTC).timestamp()) * 1_000_000


def _order(
    i: int, at_us: int, customer: str = "vn-c-1", device: str = "dev-1", card: str = "fp-1"
) -> OrderPlaced:
    return OrderPlaced(f"vn-o-{i}", "vn", customer, device, card, at_us, "VND", "250000", 2)


def test_every_use_case_is_defined_and_its_features_come_from_its_views() -> None:
    assert set(USE_CASES) == set(USE_CASE_DEFS)
    names = {v.name for v in VIEWS}
    for case in USE_CASE_DEFS.values():
        assert set(views_of(case)) <= names
        assert len(case.features) == len(set(case.features))
    fraud = use_case("fraud").features
    assert ACCOUNT_AGE in fraud
    assert ACCOUNT_CREATED not in fraud
    assert fraud.index(ACCOUNT_AGE) == 7  # where the creation time it is derived from is fetched


def test_unknown_use_case_names_the_known_ones() -> None:
    with pytest.raises(InvalidInputError, match="unknown use case 'churn'") as err:
        use_case("churn")
    assert err.value.hint == "known use cases: fraud, eta"


def test_online_request_checks_keys_and_parses_the_time() -> None:
    fraud = use_case("fraud")
    with pytest.raises(
        InvalidInputError, match="missing entity key\\(s\\) for fraud: device_id, card_fingerprint"
    ):
        parse_request(fraud, {"customer_id": "vn-c-1"}, 0)
    with pytest.raises(InvalidInputError, match="unknown entity key\\(s\\) for fraud: colour"):
        parse_request(
            fraud, {"customer_id": "a", "device_id": "b", "card_fingerprint": "c", "colour": "x"}, 0
        )
    with pytest.raises(InvalidInputError, match="missing entity key\\(s\\) for eta: route"):
        parse_request(use_case("eta"), {"carrier": "RedRiver", "route": "  "}, 0)
    keys = {"customer_id": "a", "device_id": "b", "card_fingerprint": "c"}
    assert parse_request(fraud, keys, 42).at_ms == 42
    at = parse_request(fraud, {**keys, "event_timestamp": "2026-01-02T00:00:00Z"}, 42)
    assert at.at_ms == T0 // 1000
    assert at.keys == keys
    assert parse_timestamp_ms("1767312000000") == 1_767_312_000_000
    assert parse_timestamp_ms("2026-01-02T07:00:00+07:00") == T0 // 1000
    with pytest.raises(InvalidInputError, match="neither epoch milliseconds nor an ISO-8601 time"):
        parse_timestamp_ms("yesterday")


def test_derived_features_are_the_same_online_and_in_training_frames() -> None:
    fraud = use_case("fraud")
    created = [T0 // 1000 - 3 * MS_PER_DAY, None, T0 // 1000]
    at = pd.to_datetime([T0 // 1000, T0 // 1000 + 3_600_000, T0 // 1000 + MS_PER_DAY], unit="ms", utc=True)
    frame = pd.DataFrame(
        {"event_timestamp": at, ACCOUNT_CREATED: created, "order_facts__total_usd": [1.0, 2.0, 3.0]}
    )
    derived = derive_frame(fraud, frame.copy())
    assert ACCOUNT_CREATED not in derived.columns
    for i in range(3):
        at_ms = int(at[i].timestamp() * 1000)
        online = derive_values(
            fraud, {ACCOUNT_CREATED: created[i], "order_facts__total_usd": float(i + 1)}, at_ms
        )
        assert list(online) == list(fraud.features)
        offline = derived[ACCOUNT_AGE].iloc[i]
        if online[ACCOUNT_AGE] is None:
            assert math.isnan(offline)
        else:
            assert offline == pytest.approx(online[ACCOUNT_AGE])
    assert list(derived[ACCOUNT_AGE])[::2] == [3.0, 1.0]


def test_local_hour_and_promise_follow_the_region_clock() -> None:
    # 2026-01-02 00:00 UTC is 07:00 in Ho Chi Minh City and 08:00 in Singapore.
    assert local_hour(T0, "vn") == 7
    assert local_hour(T0, "sg") == 8
    day = T0 // US_PER_DAY  # the local date in Vietnam is the same day
    # Promised for that local day: until 24:00 local = 17:00 UTC.
    assert promised_hours(T0, day, "vn") == pytest.approx(17.0)


def test_fx_book_converts_as_of_the_time() -> None:
    fx = FxBook()
    assert fx.usd("100", "VND", T0) is None  # no rate published yet
    fx.add("VND", T0, 25_000.0)
    fx.add("VND", T0 + US_PER_DAY, 26_000.0)
    assert fx.usd("250000", "VND", T0 - 1) is None
    assert fx.usd("250000", "VND", T0) == 10.0
    assert fx.usd("260000", "VND", T0 + US_PER_DAY + 5) == 10.0
    assert fx.usd("12.5", "USD", 0) == 12.5
    assert fx.usd("n/a", "VND", T0) is None


def test_velocity_windows_count_orders_in_the_last_hour_and_day() -> None:
    fold = OrderFold()
    fold.add(_order(1, T0))
    fold.add(_order(2, T0 + 10 * 60_000_000, customer="vn-c-2"))
    rows = fold.drain()
    device = rows["device_usage"][0]
    assert (device["accounts"], device["orders_total"], device["orders_1h"], device["orders_24h"]) == (
        2,
        2,
        2,
        2,
    )
    assert {r["customer_id"]: r["orders_1h"] for r in rows["customer_velocity"]} == {"vn-c-1": 1, "vn-c-2": 1}

    fold.advance(T0 + US_PER_H)  # the first order leaves the hour window at exactly t + 1 h
    device = fold.drain()["device_usage"][0]
    assert device["event_timestamp"] == datetime.fromtimestamp((T0 + US_PER_H) / 1e6, UTC)
    assert (device["orders_1h"], device["orders_24h"]) == (1, 2)

    assert not fold.add(_order(1, T0))  # a replayed event counts once
    fold.advance(T0 + 2 * US_PER_DAY)
    device = fold.drain()["device_usage"][0]
    assert (device["accounts"], device["orders_total"], device["orders_1h"], device["orders_24h"]) == (
        2,
        2,
        0,
        0,
    )


def test_a_late_order_counts_at_the_keys_latest_time() -> None:
    fold = OrderFold()
    fold.add(_order(1, T0 + 30 * 60_000_000))
    fold.drain()
    fold.add(_order(2, T0))  # older than the row already emitted for the key
    row = fold.drain()["card_usage"][0]
    assert row["event_timestamp"] == datetime.fromtimestamp((T0 + 30 * 60_000_000) / 1e6, UTC)
    assert row["orders_1h"] == 2
    snapshot = fold.snapshot()
    assert snapshot["card_usage"] == [row]
    assert fold.drain() == {}


def test_stock_fold_tracks_holds_commits_and_repeats() -> None:
    fold = StockFold()
    line = {"sku": "SKU-1", "warehouse": "vn-wh-01", "quantity": 3}

    def event(kind: str, event_id: str, at_ms: int, **extra: object) -> dict[str, object]:
        return {"type": kind, "event_id": event_id, "at_ms": at_ms, **extra}

    fold.apply(event("StockAdjusted", "s1", 1, sku="SKU-1", warehouse="vn-wh-01", on_hand=5))
    fold.apply(event("StockReserved", "r1:reserved", 2, reservation_id="r1", lines=[line]))
    assert fold.drain()[-1]["available"] == 2
    assert not fold.apply(event("StockReserved", "r1:reserved", 2, reservation_id="r1", lines=[line]))
    fold.apply(event("ReservationConfirmed", "r1:confirmed", 3, reservation_id="r1", lines=[line]))
    row = fold.drain()[-1]
    assert (row["on_hand"], row["held"], row["committed"], row["available"]) == (5, 0, 3, 2)
    fold.apply(event("StockReserved", "r2:reserved", 4, reservation_id="r2", lines=[line]))
    fold.apply(event("ReservationExpired", "r2:expired", 9, reservation_id="r2", lines=[line]))
    fold.apply(event("StockAdjusted", "s2", 10, sku="SKU-1", warehouse="vn-wh-01", on_hand=1))
    row = fold.drain()[-1]
    assert (row["on_hand"], row["held"], row["committed"], row["available"]) == (1, 0, 3, 0)  # never below 0
    assert not fold.apply(event("OutOfStock", "o1", 11))
    assert fold.snapshot() == [row]
