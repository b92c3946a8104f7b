"""Exceptions as the plan returns them, made ready to store: repeats dropped, dates added."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from shopops.reconciliation.engine import EXCEPTION_COLUMNS
from shopops.reconciliation.service import _finish_exceptions


def _raw(ids: list[str]) -> pa.Table:
    n = len(ids)
    values: dict[str, Any] = {name: [None] * n for name in EXCEPTION_COLUMNS}
    values.update(exception_id=ids, region=["sg"] * n, business_day=[20454] * n, explanation=ids)
    return pa.table(
        {
            name: pa.array(v, pa.type_for_alias(t))
            for (name, t), v in zip(EXCEPTION_COLUMNS.items(), values.values(), strict=True)
        }
    )


def test_a_repeated_exception_id_is_kept_once() -> None:
    out = _finish_exceptions(_raw(["a", "b", "b", "c", "c", "c"]))
    assert out.column("exception_id").to_pylist() == ["a", "b", "c"]
    assert out.column("business_date").to_pylist() == [date(2026, 1, 1)] * 3
    assert "business_day" not in out.column_names


def test_without_repeats_every_row_is_kept_in_order() -> None:
    out = _finish_exceptions(_raw(["a", "b", "c"]))
    assert out.column("exception_id").to_pylist() == ["a", "b", "c"]
    assert out.column_names[2] == "business_date"
