"""The result store's carrying of ``open_since`` from the stored partition to its replacement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shopops.reconciliation.store import ResultStore

TS = pa.timestamp("us", tz="UTC")


def test_an_exception_seen_before_keeps_its_open_since_and_new_ones_start_now(tmp_path: Path) -> None:
    first, second, now = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 9))
    stored = tmp_path / "2026-01-01.parquet"
    # Two row groups: the lookup must work across chunks.
    pq.write_table(
        pa.table({"exception_id": ["c", "b", "e"], "open_since": pa.array([first, second, first], TS)}),
        stored,
        row_group_size=2,
    )
    part = pa.table({"exception_id": ["a", "b", "d", "e"], "explanation": ["x", "y", "z", "w"]})

    out, gone = ResultStore._carry_open_since(part, stored, now)

    assert out.column("exception_id").to_pylist() == ["a", "b", "d", "e"]  # order kept
    assert out.column("open_since").to_pylist() == [now, second, now, first]
    assert gone == 1  # "c" is resolved


def test_a_first_partition_opens_everything_now(tmp_path: Path) -> None:
    now = datetime(2026, 1, 9, tzinfo=UTC)
    part = pa.table({"exception_id": ["a", "b"]})
    out, gone = ResultStore._carry_open_since(part, tmp_path / "absent.parquet", now)
    assert out.column("open_since").to_pylist() == [now, now]
    assert gone == 0
