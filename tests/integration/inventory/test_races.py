"""The two Medusa oversell bugs, replayed against every backend, and against the naive store to
show that these tests do catch them.

- Medusa #16569: two direct reservations of the last unit, concurrently, at READ COMMITTED: both
  read "1 available", both write. Here exactly one may win.
- Medusa #16502: a cart with two lines of one inventory item, each line fitting on its own but
  not their sum. It must be refused, alone and when two such carts race.

Each racer has its own store instance (its own connection), and the racers start together on a
barrier, round after round, so the database sees truly concurrent transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.integration.inventory.helpers import TEST_LIMITS, StoreFactory

from shopops.inventory.model import (
    InsufficientStockError,
    ReservationLine,
    StockKey,
    ValidatedReserveStock,
)
from shopops.inventory.naive import NaiveReservationStore
from shopops.inventory.port import ReservationStore
from shopops.inventory.service import InventoryService

pytestmark = pytest.mark.timeout(180)

ROUNDS = 40
TTL = 60_000


def race(services: Sequence[InventoryService], carts: Sequence[list[Any]], key: str) -> list[bool]:
    """Reserve ``carts[i]`` with ``services[i]``, all at once; which of them won."""
    barrier = threading.Barrier(len(services))
    won = [False] * len(services)
    errors: list[BaseException] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            services[i].reserve(carts[i], TTL, f"{key}-{i}")
            won[i] = True
        except InsufficientStockError:
            won[i] = False
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(services))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return won


def racers(open_store: Callable[[], ReservationStore], n: int = 2) -> list[InventoryService]:
    return [InventoryService(open_store(), limits=TEST_LIMITS, publish_inline=False) for _ in range(n)]


def last_unit_rounds(services: list[InventoryService]) -> list[int]:
    """Play #16569 ``ROUNDS`` times; the number of winners per round."""
    admin = services[0]
    winners = []
    for r in range(ROUNDS):
        sku = f"LAST-{r}"
        admin.set_stock(sku, "wh-1", 1)
        won = race(services, [[(sku, "wh-1", 1)]] * len(services), f"direct-{r}")
        winners.append(sum(won))
    return winners


def shared_item_rounds(services: list[InventoryService]) -> list[int]:
    """Play the concurrent #16502 ``ROUNDS`` times: two carts of 1 + 1 units of one item with 3
    on hand (either cart fits, both do not); the number of winners per round."""
    admin = services[0]
    winners = []
    for r in range(ROUNDS):
        sku = f"SHARED-{r}"
        admin.set_stock(sku, "wh-1", 3)
        cart = [(sku, "wh-1", 1), (sku, "wh-1", 1)]
        winners.append(sum(race(services, [cart, cart], f"shared-{r}")))
    return winners


def test_medusa_16569_two_direct_reservations_for_last_unit(store_factory: StoreFactory) -> None:
    services = racers(store_factory)
    winners = last_unit_rounds(services)
    assert winners == [1] * ROUNDS
    levels = services[0].store.all_stock(services[0].clock())
    assert all(lv.held == 1 and lv.available == 0 for lv in levels)
    # Every loser was counted as a blocked oversell attempt.
    assert sum(lv.blocked for lv in levels) == ROUNDS


def test_medusa_16502_two_lines_sharing_one_item(store_factory: StoreFactory) -> None:
    services = racers(store_factory)
    admin = services[0]
    admin.set_stock("SKU-X", "wh-1", 3)
    # Alone: 2 + 2 of an item with 3 on hand is refused as 4 requested.
    with pytest.raises(InsufficientStockError) as info:
        admin.reserve([("SKU-X", "wh-1", 2), ("SKU-X", "wh-1", 2)], TTL, "two-lines")
    assert (info.value.shortages[0].requested, info.value.shortages[0].available) == (4, 3)
    (level,) = admin.stock_levels([StockKey("SKU-X", "wh-1")])
    assert level.held == 0
    # Concurrently: two carts of 1 + 1 against 3 units; exactly one wins, every round.
    assert shared_item_rounds(services) == [1] * ROUNDS
    assert all(lv.held <= lv.on_hand for lv in admin.store.all_stock(admin.clock()))


# --- the same tests against the deliberately wrong store ---------------------------------------


def naive_racers(home: Path, n: int = 2) -> list[InventoryService]:
    config = NaiveReservationStore.Config(path=home / "naive.db", think_ms=5)
    return racers(lambda: NaiveReservationStore(config, home), n)


def test_the_naive_store_oversells_in_medusa_16569(tmp_path: Path) -> None:
    winners = last_unit_rounds(naive_racers(tmp_path))
    assert max(winners) == 2, "the naive store never let both racers win: the race test proves nothing"


def test_the_naive_store_oversells_in_medusa_16502(tmp_path: Path) -> None:
    services = naive_racers(tmp_path)
    admin = services[0]
    admin.set_stock("SKU-X", "wh-1", 3)
    # Without the model's merge, lines are checked one by one: 2 and 2 each fit in 3, 4 are held.
    line = ReservationLine("SKU-X", "wh-1", 2)
    unmerged = ValidatedReserveStock((line, line), TTL, "two-lines")
    admin.store.reserve(unmerged, "r-two-lines", admin.clock(), "refusal")
    (level,) = admin.stock_levels([StockKey("SKU-X", "wh-1")])
    assert level.held == 4
    assert level.oversubscribed == 1
    assert max(shared_item_rounds(services)) == 2
