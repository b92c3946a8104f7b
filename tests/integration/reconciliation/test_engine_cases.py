"""The engine on hand-built tables: each situation gets exactly its class, with an explanation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from tests.integration.reconciliation.cases import DAY, SG_MIDNIGHT, Builder, H, build_cases

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.registry import BackendSelection
from shopops.reconciliation.service import ReconciliationService


def _service(home: Path) -> ReconciliationService:
    return ReconciliationService(
        home=home, engine=BackendSelection(type="duckdb"), source=BackendSelection(type="parquet")
    )


@pytest.fixture
def cases(tmp_path: Path) -> dict[tuple[str, str], str]:
    _, expected = build_cases(tmp_path / "reconciliation" / "input")
    return expected


def test_each_situation_gets_its_class(tmp_path: Path, cases: dict[tuple[str, str], str]) -> None:
    service = _service(tmp_path)
    try:
        report = service.run(DAY, DAY, ["sg"])
        table = service.exceptions(limit=None)
    finally:
        service.close()
    found = {(r["class"], r["record"]): r for r in table.to_pylist()}
    assert set(found) == set(cases), {
        "missing": sorted(set(cases) - set(found)),
        "unexpected": sorted(set(found) - set(cases)),
    }
    for (cls, record), row in found.items():
        record_id = record.split(":", 1)[1]
        assert record_id in row["explanation"], (cls, row["explanation"])
        assert row["rule"].startswith("sg@v1 "), row["rule"]
        assert row["severity"] == ("info" if cls in ("fx_difference", "rounding_difference") else "break")
    assert report.exceptions == len(cases)
    assert report.rules == {"sg": "sg@v1"}


def test_rerun_is_idempotent_and_keeps_open_since(tmp_path: Path, cases: dict[tuple[str, str], str]) -> None:
    service = _service(tmp_path)
    try:
        service.run(DAY, DAY, ["sg"])
        first = service.exceptions(limit=None).sort_by("exception_id")
        service.run(DAY, DAY, ["sg"])
        second = service.exceptions(limit=None).sort_by("exception_id")
        summary = service.summary()
        runs = service.store.runs()
    finally:
        service.close()
    assert first.num_rows == second.num_rows == len(cases)
    assert first.column("open_since").equals(second.column("open_since"))
    assert first.drop_columns(["open_since"]).equals(second.drop_columns(["open_since"]))
    assert summary.num_rows == 1  # one region-day, replaced, not appended
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]


def test_a_fixed_break_is_resolved(tmp_path: Path) -> None:
    root, _ = build_cases(tmp_path / "reconciliation" / "input")
    service = _service(tmp_path)
    try:
        service.run(DAY, DAY, ["sg"])
        assert service.exceptions(classes=["missing_payment"]).num_rows == 1
        # The missing payment arrives; the rerun no longer reports it.
        import pyarrow.parquet as pq

        payments = pq.read_table(root / "sg" / "payments.parquet")
        row = payments.slice(0, 1).to_pylist()[0]
        row.update(
            payment_id="sg-p-10",
            order_id="sg-o-10",
            amount=row["amount"].__class__("40.00"),
            settlement_amount=None,
            settlement_currency=None,
            settled_at=None,
            fee=None,
        )
        pq.write_table(
            pa.concat_tables([payments, pa.Table.from_pylist([row], schema=payments.schema)]),
            root / "sg" / "payments.parquet",
        )
        service.run(DAY, DAY, ["sg"])
        assert service.exceptions(classes=["missing_payment"]).num_rows == 0
    finally:
        service.close()


def test_outside_the_window_nothing_is_reported(tmp_path: Path, cases: dict[tuple[str, str], str]) -> None:
    from datetime import timedelta

    service = _service(tmp_path)
    try:
        report = service.run(DAY + timedelta(days=3), DAY + timedelta(days=4), ["sg"])
    finally:
        service.close()
    assert report.exceptions == 0
    assert report.partitions == 2


def test_bad_inputs_are_refused(tmp_path: Path, cases: dict[tuple[str, str], str]) -> None:
    service = _service(tmp_path)
    try:
        with pytest.raises(InvalidInputError, match="empty window"):
            service.run(DAY, DAY.replace(day=1), ["sg"])
        with pytest.raises(InvalidInputError, match="unknown region"):
            service.run(DAY, DAY, ["xx"])
        with pytest.raises(NotFoundError, match="no input tables for region"):
            service.run(DAY, DAY, ["th"])
        with pytest.raises(InvalidInputError, match="unknown exception class"):
            service.exceptions(classes=["nonsense"])
    finally:
        service.close()
    failed = [r for r in _service(tmp_path).store.runs() if r["status"] == "failed"]
    assert len(failed) == 1  # only the run that got as far as reading inputs is logged


def test_a_table_missing_a_column_names_it(tmp_path: Path, cases: dict[tuple[str, str], str]) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "reconciliation" / "input" / "sg" / "orders.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["total"]), path)
    service = _service(tmp_path)
    try:
        with pytest.raises(InvalidInputError, match="lacks column"):
            service.run(DAY, DAY, ["sg"])
    finally:
        service.close()


def test_a_payment_naming_another_merchant_region_is_matched_in_that_region(tmp_path: Path) -> None:
    """Regions are matched one by one: the payment's merchant region says where its order is."""
    b = Builder()
    b.order("sg-o-1", "40.00")
    b.journal("sg-o-1", "40.00")
    b.payment("sg-p-1", "sg-o-1", "40.00")  # recorded by sg's provider ...
    b.rows["sg"]["payments"][-1]["merchant_region"] = "th"  # ... for a th merchant
    at = SG_MIDNIGHT + 2 * H
    b.add("th", "orders", order_id="th-o-1", status="placed", currency="THB", total=Decimal("10"),
          created_at=at, updated_at=at)  # fmt: skip
    b.write(tmp_path / "reconciliation" / "input")
    service = _service(tmp_path)
    try:
        service.run(DAY, DAY, ["sg", "th"])
        rows = service.exceptions(limit=None).to_pylist()
    finally:
        service.close()
    found = {(r["class"], r["record"], r["region"]) for r in rows}
    assert found == {
        ("missing_payment", "orders:sg-o-1", "sg"),
        ("payment_without_order", "payments:sg-p-1", "th"),
        ("cross_region_payment", "payments:sg-p-1", "th"),
    }
    orphan = next(r for r in rows if r["class"] == "payment_without_order")
    assert "does not exist in region th" in orphan["explanation"]
