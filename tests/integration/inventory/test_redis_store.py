"""What the Redis store does beyond the shared contract: the key layout it reads (and the earlier
one it moves forward on open), outbox entries in both formats, the guard on stored lines, lines of
one item on the port, and its retry policy on a lost connection.

Keys are written here the way the earlier version of the store wrote them, with plain commands.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from tests.integration.inventory.helpers import FakeClock, StoreFactory

from shopops.core.errors import BackendUnavailableError
from shopops.inventory.backends.redis import LAYOUT, RedisReservationStore
from shopops.inventory.model import (
    InsufficientStockError,
    ReservationConfirmed,
    ReservationLine,
    ReservationStatus,
    StockKey,
    ValidatedReserveStock,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.parametrize("store_factory", ["redis"], indirect=True)]

A = StockKey("SKU-A", "wh-1")
B = StockKey("SKU-B", "wh-1")


def _client(store_factory: StoreFactory) -> redis.Redis:
    assert store_factory.redis_url is not None
    return redis.Redis.from_url(store_factory.redis_url, decode_responses=True)


def _write_layout_1(client: redis.Redis, p: str, now: int) -> None:
    """A store as layout 1 left it: hold members are bare reservation ids, their units sit in
    ``{p}:hq:<item>``, and there is no ``{p}:layout`` key."""

    def hold(rid: str, key: str, lines: list[list[Any]], expires: int) -> None:
        client.hset(
            f"{p}:r:{rid}",
            mapping={
                "ikey": key,
                "lines": orjson.dumps(lines).decode(),
                "status": "held",
                "created": now,
                "expires": expires,
                "updated": now,
            },
        )
        client.set(f"{p}:i:{key}", rid)
        client.zadd(f"{p}:exp", {rid: expires})
        client.zadd(f"{p}:ids", {rid: 0})
        units: dict[str, int] = {}
        for sku, warehouse, quantity in lines:
            units[f"{sku}|{warehouse}"] = units.get(f"{sku}|{warehouse}", 0) + quantity
        for item, quantity in units.items():
            client.zadd(f"{p}:h:{item}", {rid: expires})
            client.hset(f"{p}:hq:{item}", rid, quantity)

    for item, held in ((A, 3), (B, 3)):
        client.hset(
            f"{p}:s:{item.encoded}",
            mapping={"on_hand": 5, "committed": 0, "held": held, "blocked": 0, "clock": now},
        )
        client.zadd(f"{p}:items", {item.encoded: 0})
    hold("r-active", "k-active", [["SKU-A", "wh-1", 2]], now + 1_000)
    hold("r-lapsed", "k-lapsed", [["SKU-A", "wh-1", 1]], now + 100)
    # Two lines of one item (the earlier script added them up as well).
    hold("r-twice", "k-twice", [["SKU-B", "wh-1", 1], ["SKU-B", "wh-1", 2]], now + 1_000)


def test_a_layout_1_keyspace_is_moved_forward_when_the_store_opens(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    client = _client(store_factory)
    p = "{" + store_factory.namespace + "}"
    start = clock()
    _write_layout_1(client, p, start)

    store = store_factory()
    svc = store_factory.service(clock, store=store)
    assert client.get(f"{p}:layout") == LAYOUT
    assert list(client.scan_iter(match=f"{p}:hq:*")) == []
    assert dict(client.zrange(f"{p}:h:{A.encoded}", 0, -1, withscores=True)) == {
        "r-active:2": start + 1_000,
        "r-lapsed:1": start + 100,
    }
    assert client.zrange(f"{p}:h:{B.encoded}", 0, -1) == ["r-twice:3"]

    clock.advance(500)  # r-lapsed lapsed, not swept yet: its unit is free, exactly
    assert [(lv.held, lv.available) for lv in svc.stock_levels([A, B])] == [(2, 3), (3, 2)]
    assert svc.confirm("r-active").status is ReservationStatus.CONFIRMED
    assert svc.release("r-twice").status is ReservationStatus.RELEASED
    assert [r.id for r in svc.expire_due()] == ["r-lapsed"]
    assert [(lv.committed, lv.held) for lv in svc.stock_levels([A, B])] == [(2, 0), (0, 0)]
    for item in (A, B):
        assert client.hget(f"{p}:s:{item.encoded}", "held") == "0"
        assert client.zcard(f"{p}:h:{item.encoded}") == 0
    # A reserve made with a key of the earlier version is still that reservation.
    assert svc.reserve([("SKU-A", "wh-1", 2)], 1_000, "k-active").id == "r-active"

    # Opening again finds the current layout and changes nothing.
    reopened = store_factory.service(clock)
    assert reopened.get("r-active").status is ReservationStatus.CONFIRMED
    client.close()


def test_a_store_refuses_keys_of_a_layout_it_does_not_know(store_factory: StoreFactory) -> None:
    client = _client(store_factory)
    client.set("{" + store_factory.namespace + "}:layout", "3")
    with pytest.raises(BackendUnavailableError, match="layout '3'"):
        store_factory()
    client.close()


def test_outbox_entries_in_named_fields_are_still_published(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = store_factory()
    client = _client(store_factory)
    p = "{" + store_factory.namespace + "}"
    lines = orjson.dumps([["SKU-A", "wh-1", 2]]).decode()
    # An entry as layout 1 wrote it, then one as this version writes it.
    client.xadd(
        f"{p}:out",
        {
            "kind": "confirmed",
            "id": "r-old",
            "ikey": "k-old",
            "lines": lines,
            "status": "confirmed",
            "created": 10,
            "expires": 20,
            "updated": 15,
        },
    )
    svc = store_factory.service(clock, store=store)
    svc.set_stock(A.sku, A.warehouse, 5)
    hold = svc.reserve([(A.sku, A.warehouse, 2)], 1_000, "k-new")
    svc.confirm(hold.id)
    entries = store.claim_outbox("relay", 5_000, clock())
    old = entries[0].event()
    assert isinstance(old, ReservationConfirmed)
    assert (old.event_id, old.at_ms, old.reservation_id) == ("r-old:confirmed", 15, "r-old")
    assert [(line.sku, line.quantity) for line in old.lines] == [("SKU-A", 2)]
    assert [e.event().type_name for e in entries[1:]] == [
        "StockAdjusted",
        "StockReserved",
        "ReservationConfirmed",
    ]
    confirmed = entries[-1].event()
    assert (confirmed.event_id, confirmed.at_ms) == (f"{hold.id}:confirmed", clock())
    client.close()


def test_a_reservation_whose_lines_cannot_be_read_changes_nothing(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = store_factory()
    svc = store_factory.service(clock, store=store)
    svc.set_stock(A.sku, A.warehouse, 5)
    hold = svc.reserve([(A.sku, A.warehouse, 2)], 1_000, "k")
    client = _client(store_factory)
    # Not the compact JSON the store writes: the script must stop, not confirm nothing.
    client.hset("{" + store_factory.namespace + "}:r:" + hold.id, "lines", '[["SKU-A", "wh-1", 2]]')
    with pytest.raises(BackendUnavailableError, match="unreadable lines"):
        svc.confirm(hold.id)
    (level,) = svc.stock_levels([A])
    assert (level.committed, level.held) == (0, 2)
    # A reserve reads its lines before it takes the idempotency key.
    store_any: Any = store
    args = [
        store_any.prefix,
        str(clock()),
        "r-bad",
        "k-bad",
        '[["SKU-A", "wh-1", 1]]',
        str(clock() + 1_000),
        "e",
    ]
    with pytest.raises(BackendUnavailableError, match="unreadable lines"):
        store_any._run(store_any._reserve, args)
    assert client.exists("{" + store_factory.namespace + "}:i:k-bad") == 0
    assert svc.stock_levels([A])[0].held == 2
    client.close()


def test_lines_repeating_an_item_on_the_port_are_held_as_their_sum(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    store = store_factory()
    svc = store_factory.service(clock, store=store)
    svc.set_stock(A.sku, A.warehouse, 3)
    # The script takes one line per item: the store adds up what a caller of the port did not.
    # Each line fits alone, their sum does not (Medusa #16502).
    twice = (ReservationLine(A.sku, A.warehouse, 2), ReservationLine(A.sku, A.warehouse, 2))
    with pytest.raises(InsufficientStockError):
        store.reserve(ValidatedReserveStock(twice, 1_000, "twice"), "r-twice", clock(), "e1")
    fits = (ReservationLine(A.sku, A.warehouse, 1), ReservationLine(A.sku, A.warehouse, 2))
    assert store.reserve(ValidatedReserveStock(fits, 1_000, "fits"), "r-fits", clock(), "e2").changed
    assert [(lv.held, lv.available) for lv in svc.stock_levels([A])] == [(3, 0)]
    assert store.confirm("r-fits", clock()).reservation.status is ReservationStatus.CONFIRMED
    assert [(lv.committed, lv.held) for lv in svc.stock_levels([A])] == [(3, 0)]


def _kill_script_connection(store: Any, client: redis.Redis) -> None:
    """Close, on the server's side, the connection the store keeps for its scripts."""
    conn = store._idle[-1]
    conn.send_command("CLIENT", "ID")
    client.client_kill_filter(_id=conn.read_response())


def test_a_lost_connection_fails_one_call_without_retries_and_none_with_them(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    client = _client(store_factory)
    plain = store_factory()
    svc = store_factory.service(clock, store=plain)
    svc.set_stock(A.sku, A.warehouse, 5)
    _kill_script_connection(plain, client)
    with pytest.raises(BackendUnavailableError, match="cannot reach Redis"):
        svc.reserve([(A.sku, A.warehouse, 1)], 1_000, "k1")
    assert svc.reserve([(A.sku, A.warehouse, 1)], 1_000, "k1").status is ReservationStatus.HELD

    # A URL that asks for retries: the call is made again on a new connection.
    url = f"{store_factory.redis_url}?retry_on_timeout=true"
    retrying = RedisReservationStore(
        RedisReservationStore.Config(url=url, key_prefix=store_factory.namespace)
    )
    try:
        again = store_factory.service(clock, store=retrying)
        _kill_script_connection(retrying, client)
        assert again.reserve([(A.sku, A.warehouse, 1)], 1_000, "k2").status is ReservationStatus.HELD
    finally:
        retrying.close()
    client.close()
