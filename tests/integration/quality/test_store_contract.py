"""One contract suite for every results store: SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.postgres import scratch_database

from shopops.core.registry import BackendSelection
from shopops.quality.backends import open_results_store
from shopops.quality.model import CheckOutcome, FailingRow, RunRecord
from shopops.quality.port import ResultsStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultsStore]:
    if request.param == "sqlite":
        opened = open_results_store(BackendSelection(type="sqlite"), tmp_path)
        yield opened
        opened.close()
        return
    with scratch_database("quality") as dsn:
        opened = open_results_store(BackendSelection(type="postgres", dsn=dsn), tmp_path)
        yield opened
        opened.close()


def make_run(
    dataset: str = "shop.orders", *, at: int = 1_000, failed: bool = False, mode: str = "table"
) -> RunRecord:
    checks = [
        CheckOutcome(
            "order_id.required", "required", "row", ["order_id"], "error", True, 10, 0, 0.0, "= 0", ""
        ),
        CheckOutcome(
            "status_accepted_values",
            "accepted_values",
            "row",
            ["status"],
            "error",
            not failed,
            10,
            2 if failed else 0,
            2.0 if failed else 0.0,
            "= 0",
            "status='lost' is not an accepted value" if failed else "",
            samples=[
                FailingRow({"_region": "vn", "order_id": "vn-o-1"}, "status='lost' is not an accepted value"),
                FailingRow({"_region": "vn", "order_id": "vn-o-2"}, "status='gone' is not an accepted value"),
            ]
            if failed
            else [],
        ),
        CheckOutcome(
            "freshness",
            "freshness",
            "dataset",
            ["updated_at"],
            "error",
            True,
            10,
            0,
            12.5,
            "age <= 900 s",
            "",
        ),
    ]
    return RunRecord(
        run_id=uuid.uuid4().hex,
        dataset=dataset,
        mode=mode,  # type: ignore[arg-type]
        source="events",
        contract_id="shop-orders",
        contract_version="1.1.0",
        started_at_ms=at - 10,
        finished_at_ms=at,
        rows_checked=10,
        rows_failed=2 if failed else 0,
        checks=checks,
    )


def test_a_run_reads_back_whole(store: ResultsStore) -> None:
    run = make_run(failed=True)
    assert store.record(run) is True
    got = store.run(run.run_id)
    assert got is not None
    assert got["dataset"] == "shop.orders"
    assert got["outcome"] == "failed"
    assert (got["rows_checked"], got["rows_failed"], got["checks_total"], got["checks_failed"]) == (
        10,
        2,
        3,
        1,
    )
    assert [c["check"] for c in got["checks"]] == ["order_id.required", "status_accepted_values", "freshness"]
    failed = got["checks"][1]
    assert failed["outcome"] == "failed"
    assert failed["columns"] == ["status"]
    assert failed["observed"] == 2.0
    assert got["checks"][2]["observed"] == 12.5
    rows = store.failures(run.run_id)
    assert rows == [
        {
            "check": "status_accepted_values",
            "key": {"_region": "vn", "order_id": "vn-o-1"},
            "reason": "status='lost' is not an accepted value",
        },
        {
            "check": "status_accepted_values",
            "key": {"_region": "vn", "order_id": "vn-o-2"},
            "reason": "status='gone' is not an accepted value",
        },
    ]
    assert store.failures(run.run_id, "order_id.required") == []
    assert len(store.failures(run.run_id, limit=1)) == 1
    assert store.run("nope") is None


def test_recording_the_same_run_twice_stores_it_once(store: ResultsStore) -> None:
    run = make_run(failed=True)
    assert store.record(run) is True
    assert store.record(run) is False
    assert len(store.runs()) == 1
    assert len(store.failures(run.run_id)) == 2


def test_listing_filters_and_orders_newest_first(store: ResultsStore) -> None:
    a = make_run("shop.orders", at=1_000)
    b = make_run("shop.orders", at=3_000, failed=True)
    c = make_run("payments.payments", at=2_000)
    d = make_run("payments.payments", at=4_000, mode="batch")
    for r in (a, b, c, d):
        store.record(r)
    assert [r["run_id"] for r in store.runs()] == [d.run_id, b.run_id, c.run_id, a.run_id]
    assert [r["run_id"] for r in store.runs("shop.orders")] == [b.run_id, a.run_id]
    assert [r["run_id"] for r in store.runs(failed_only=True)] == [b.run_id]
    assert [r["run_id"] for r in store.runs(mode="batch")] == [d.run_id]
    assert [r["run_id"] for r in store.runs(limit=1)] == [d.run_id]
    latest = store.latest("table")
    assert [(r["dataset"], r["run_id"]) for r in latest] == [
        ("payments.payments", c.run_id),
        ("shop.orders", b.run_id),
    ]
    assert {r["run_id"] for r in store.latest(None)} == {d.run_id, b.run_id}


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(store: ResultsStore) -> None:
    runs = [make_run(f"shop.t{i % 4}", at=1_000 + i, failed=i % 2 == 0) for i in range(40)]
    errors: list[BaseException] = []

    def write(part: list[RunRecord]) -> None:
        try:
            for r in part:
                store.record(r)
                store.record(r)  # a retry of the same run
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(runs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = store.runs(limit=1000)
    assert sorted(r["run_id"] for r in stored) == sorted(r.run_id for r in runs)
    for r in runs[:6]:
        assert len(store.failures(r.run_id)) == (2 if r.rows_failed else 0)


def test_ping(store: ResultsStore) -> None:
    store.ping()
