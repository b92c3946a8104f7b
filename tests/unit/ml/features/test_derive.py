"""The batch derivation (DuckDB over order creations) and the streaming fold agree row for row."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from shopops.ml.features.derive import usage_sql
from shopops.ml.features.model import US_PER_DAY, US_PER_H, OrderFold, OrderPlaced

T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
VIEWS = {
    "customer_velocity": ("customer_id", False),
    "device_usage": ("device_id", True),
    "card_usage": ("card_fingerprint", True),
}


def _orders(seed: int, n: int = 400) -> list[OrderPlaced]:
    rng = random.Random(seed)
    times = sorted(T0 + rng.randrange(3 * US_PER_DAY) for _ in range(n))
    # Bursts: some orders 1-20 minutes after the previous one, as fraud rings place them.
    for i in range(1, n, 7):
        times[i] = times[i - 1] + rng.randrange(60, 1_200) * 1_000_000
    times.sort()
    return [
        OrderPlaced(
            f"vn-o-{i:05d}",
            "vn",
            f"vn-c-{rng.randrange(25):03d}",
            f"dev-{rng.randrange(10):02d}",
            f"fp-{rng.randrange(8):02d}" if rng.random() > 0.05 else None,
            t,
            "VND",
            "100000",
            1,
        )
        for i, t in enumerate(times)
    ]


def _fold_rows(orders: list[OrderPlaced], end: int) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
    fold = OrderFold()
    out: dict[str, dict[tuple[str, int], dict[str, Any]]] = {v: {} for v in VIEWS}

    def collect() -> None:
        for view, rows in fold.drain().items():
            key = VIEWS[view][0]
            for row in rows:
                out[view][(row[key], int(row["event_timestamp"].timestamp() * 1e6))] = row

    # Drain at every instant a window closes: between two drains a key keeps only its latest row.
    exits = sorted({o.created_at_us + w for o in orders for w in (US_PER_H, US_PER_DAY)})
    pending = iter(exits)
    upcoming = next(pending, None)
    for order in [*orders, None]:
        limit = end if order is None else order.created_at_us
        while upcoming is not None and upcoming <= limit:
            fold.advance(upcoming)
            collect()
            upcoming = next(pending, None)
        if order is None:
            break
        fold.advance(order.created_at_us)
        collect()
        fold.add(order)
        collect()
    fold.advance(end)
    collect()
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_duckdb_velocity_rows_equal_the_streaming_fold(seed: int) -> None:
    orders = _orders(seed)
    end = orders[-1].created_at_us + 6 * US_PER_H
    table = pa.Table.from_pylist(
        [
            {
                "order_id": o.order_id,
                "customer_id": o.customer_id,
                "device_id": o.device_id,
                "card_fingerprint": o.card_fingerprint,
                "created_at": o.created_at_us,
            }
            for o in orders
        ]
    )
    con = duckdb.connect()
    con.register("order_created_arrow", table)
    con.execute("CREATE TEMP TABLE order_created AS SELECT * FROM order_created_arrow")
    folded = _fold_rows(orders, end)
    for view, (key, counters) in VIEWS.items():
        batch = con.sql(usage_sql(key, counters)).to_arrow_table().to_pylist()
        batch_rows = {(r[key], r["ts"]): r for r in batch if r["ts"] <= end}
        assert set(batch_rows) == set(folded[view]), view
        columns = ["orders_1h", "orders_24h"] + (["accounts", "orders_total"] if counters else [])
        for point, row in batch_rows.items():
            assert {c: row[c] for c in columns} == {c: folded[view][point][c] for c in columns}, (view, point)
    assert any(r["orders_1h"] >= 2 for r in folded["device_usage"].values())
