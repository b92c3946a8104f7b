"""The SQLite store finds a reservation's items by index, however many items and holds it keeps."""

from __future__ import annotations

from pathlib import Path

from shopops.inventory.backends.sqlite import SqliteReservationStore
from shopops.inventory.model import StockKey

KEYS = [StockKey(f"SKU-{i}", "hcm-1") for i in range(3)]


def _plan(store: SqliteReservationStore, sql: str, params: list[str]) -> str:
    rows = store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


def test_lines_are_looked_up_by_index_not_by_scanning(tmp_path: Path) -> None:
    store = SqliteReservationStore(SqliteReservationStore.Config(), home=tmp_path)
    try:
        match, params = store._keys_match(KEYS)
        stock = _plan(store, f"SELECT * FROM stock WHERE {match}", params)
        holds = _plan(
            store, f"SELECT SUM(quantity) FROM holds WHERE ({match}) AND expires_at_ms <= 0", params
        )
    finally:
        store.close()
    assert "SEARCH stock USING" in stock
    assert "SCAN stock" not in stock
    assert "SEARCH holds USING INDEX holds_by_item" in holds
    assert "SCAN holds" not in holds


def test_many_keys_at_once_still_work(tmp_path: Path) -> None:
    store = SqliteReservationStore(SqliteReservationStore.Config(), home=tmp_path)
    keys = [StockKey(f"SKU-{i}", "hcm-1") for i in range(500)]
    try:
        for i, key in enumerate(keys[:50]):
            store.set_stock(key, 10, 1_000, "test", f"e-{i}")
        levels = store.stock_levels(keys, 2_000)
    finally:
        store.close()
    assert len(levels) == 50
    assert {lv.on_hand for lv in levels} == {10}
