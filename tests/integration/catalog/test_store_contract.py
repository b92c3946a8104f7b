"""One contract for every catalog store backend (SQLite and PostgreSQL): registrations, run events
stored once whatever the order or the concurrency, lineage edges, the OpenLineage outbox."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.support.postgres import scratch_database

from shopops.catalog.backends import open_catalog_store
from shopops.catalog.model import (
    Column,
    ColumnEdge,
    DatasetKind,
    Edge,
    Flow,
    Job,
    Run,
    RunState,
    Sensitivity,
    new_dataset,
)
from shopops.catalog.port import CatalogStore, RunEventRecord
from shopops.core.registry import BackendSelection


@pytest.fixture(params=["sqlite", "postgres"])
def selection(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendSelection]:
    if request.param == "sqlite":
        yield BackendSelection(type="sqlite", path=str(tmp_path / "catalog.db"))
        return
    with scratch_database("catalog") as dsn:
        yield BackendSelection(type="postgres", dsn=dsn)


@pytest.fixture
def store(selection: BackendSelection, tmp_path: Path) -> Iterator[CatalogStore]:
    opened = open_catalog_store(selection, tmp_path)
    yield opened
    opened.close()


def _event(
    run_id: str, state: RunState, *, job: str = "export", at: int = 1_000, ins=("t",), outs=("o",)
) -> RunEventRecord:  # type: ignore[no-untyped-def]
    run = Run(
        run_id,
        job,
        state,
        started_at_ms=at if state is RunState.START else None,
        ended_at_ms=at if state.terminal else None,
        inputs=tuple(ins),
        outputs=tuple(outs),
        facets={"state": state.value},
    )
    return RunEventRecord(
        run=run,
        event_type=state,
        job=Job(job, "shopops", "builds things" if state is RunState.START else ""),
        edges=(*(Edge(job, i, "in") for i in ins), *(Edge(job, o, "out") for o in outs)),
        flows=tuple(Flow(job, i, o) for i in ins for o in outs) if state.terminal else (),
        column_edges=tuple(ColumnEdge(i, "id", o, "id") for i in ins for o in outs) if state.terminal else (),
        payload={"eventType": state.value, "run": {"runId": run_id}},
        event_time_ms=at,
    )


def test_registrations_create_replace_and_leave_equal_ones_alone(store: CatalogStore) -> None:
    orders = new_dataset(
        "vn.shop.orders", "kafka://b:9092", columns=(Column("ip", "string", Sensitivity.PII, True),)
    )
    bronze = new_dataset("bronze.vn__shop__orders", "file:///wh")
    model = new_dataset("models.fraud", "shopops", owner="risk-ml")
    counts = store.upsert_datasets([orders, bronze, model], now_ms=100)
    assert (counts.created, counts.updated, counts.unchanged) == (3, 0, 0)
    again = store.upsert_datasets([orders, bronze], now_ms=200)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert store.get_dataset("vn.shop.orders").updated_at_ms == 100  # type: ignore[union-attr]
    changed = store.upsert_datasets([replace(orders, owner="checkout")], now_ms=300)
    assert (changed.created, changed.updated) == (0, 1)
    stored = store.get_dataset("vn.shop.orders")
    assert stored is not None
    assert (stored.owner, stored.created_at_ms, stored.updated_at_ms) == ("checkout", 100, 300)
    assert stored.columns[0].sensitivity is Sensitivity.PII
    assert stored.columns[0].masked
    kept = store.upsert_datasets([replace(orders, owner="someone-else")], now_ms=400, only_missing=True)
    assert (kept.created, kept.updated, kept.unchanged) == (0, 0, 1)
    assert store.get_dataset("vn.shop.orders").owner == "checkout"  # type: ignore[union-attr]
    assert store.get_dataset("nope") is None


def test_listing_filters_by_kind_and_domain_sorted_by_name(store: CatalogStore) -> None:
    names = [
        "vn.shop.orders",
        "sg.shop.orders",
        "bronze.vn__shop__orders",
        "vn.payments.payments",
        "models.m",
    ]
    store.upsert_datasets([new_dataset(n, "ns") for n in names], now_ms=1)
    assert store.dataset_names() == sorted(names)
    assert [d.name for d in store.list_datasets(DatasetKind.TOPIC)] == [
        "sg.shop.orders",
        "vn.payments.payments",
        "vn.shop.orders",
    ]
    assert [d.name for d in store.list_datasets(domain="shop")] == [
        "bronze.vn__shop__orders",
        "sg.shop.orders",
        "vn.shop.orders",
    ]
    assert [d.name for d in store.list_datasets(DatasetKind.BRONZE, "shop")] == ["bronze.vn__shop__orders"]
    assert store.list_datasets(DatasetKind.MODEL, "shop") == []


def test_a_run_event_is_stored_once_and_states_merge_whatever_the_order(store: CatalogStore) -> None:
    # COMPLETE arrives before START (a retry of START after a crash): the run stays complete.
    assert store.record_event(_event("r1", RunState.COMPLETE, at=2_000), now_ms=2_000) is True
    assert store.record_event(_event("r1", RunState.START, at=1_000), now_ms=2_100) is True
    assert store.record_event(_event("r1", RunState.START, at=1_000), now_ms=2_200) is False
    assert store.record_event(_event("r1", RunState.COMPLETE, at=2_000), now_ms=2_300) is False
    run = store.get_run("r1")
    assert run is not None
    assert (run.state, run.started_at_ms, run.ended_at_ms, run.seconds) == (
        RunState.COMPLETE,
        1_000,
        2_000,
        1.0,
    )
    assert store.pending_count() == 2
    assert [j.description for j in store.jobs()] == ["builds things"]
    assert set(store.edges()) == {Edge("export", "t", "in"), Edge("export", "o", "out")}
    assert store.flows() == [Flow("export", "t", "o")]
    assert store.column_edges("o") == [ColumnEdge("t", "id", "o", "id")]
    assert store.column_edges("t") == store.column_edges("o")
    assert store.get_run("r2") is None


def test_runs_newest_first_by_job_and_by_dataset(store: CatalogStore) -> None:
    for i in range(5):
        store.record_event(
            _event(f"e{i}", RunState.START, at=1_000 + i, ins=("t",), outs=(f"o{i}",)), now_ms=9
        )
    store.record_event(_event("x", RunState.START, job="mail", at=5_000, ins=("o1",), outs=()), now_ms=9)
    assert [r.run_id for r in store.runs(limit=3)] == ["x", "e4", "e3"]
    assert [r.run_id for r in store.runs(job="export", limit=50)] == ["e4", "e3", "e2", "e1", "e0"]
    assert [r.run_id for r in store.runs(dataset="o1")] == ["x", "e1"]
    assert [r.run_id for r in store.runs(job="mail", dataset="t")] == []


def test_the_outbox_leases_events_to_one_sender_and_takes_them_back_from_a_dead_one(
    store: CatalogStore,
) -> None:
    for i in range(3):
        store.record_event(_event(f"r{i}", RunState.START), now_ms=1)
    first = store.claim_pending(limit=2, lease_ms=1_000, now_ms=10_000)
    assert [e.run_id for e in first] == ["r0", "r1"]
    second = store.claim_pending(limit=10, lease_ms=1_000, now_ms=10_500)
    assert [e.run_id for e in second] == ["r2"]
    assert store.claim_pending(limit=10, lease_ms=1_000, now_ms=10_900) == []
    # The first sender died: its lease runs out and another sender takes the events over.
    taken_over = store.claim_pending(limit=10, lease_ms=1_000, now_ms=11_001)
    assert [e.run_id for e in taken_over] == ["r0", "r1"]
    store.mark_sent([taken_over[0].seq], now_ms=11_002)
    store.mark_failed([taken_over[1].seq], "HTTP 503", now_ms=11_003)
    assert store.pending_count() == 2
    retried = store.claim_pending(limit=10, lease_ms=1_000, now_ms=11_004)
    assert [(e.run_id, e.attempts) for e in retried] == [("r1", 1)]
    assert retried[0].payload == {"eventType": "START", "run": {"runId": "r1"}}
    store.mark_sent([e.seq for e in retried], now_ms=11_005)
    store.mark_sent([second[0].seq], now_ms=11_006)
    assert store.pending_count() == 0
    assert store.claim_pending(limit=10, lease_ms=1_000, now_ms=99_999) == []


def test_threads_storing_the_same_and_different_events_lose_and_duplicate_nothing(
    store: CatalogStore,
) -> None:
    errors: list[BaseException] = []
    stored: list[bool] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(15):
                shared = store.record_event(_event(f"shared-{i}", RunState.START), now_ms=1)
                own = store.record_event(_event(f"own-{n}-{i}", RunState.COMPLETE), now_ms=1)
                with lock:
                    stored.extend([shared, own])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stored.count(True) == 15 + 4 * 15
    assert store.pending_count() == 15 + 4 * 15
    assert len(store.runs(limit=1000)) == 15 + 4 * 15


def _process_worker(selection: dict[str, Any], home: str, n: int) -> list[bool]:
    store = open_catalog_store(BackendSelection(**selection), Path(home))
    try:
        out = []
        for i in range(10):
            out.append(store.record_event(_event(f"shared-{i}", RunState.COMPLETE, at=i), now_ms=1))
            out.append(store.record_event(_event(f"p{n}-{i}", RunState.START, at=i), now_ms=1))
        return out
    finally:
        store.close()


def test_processes_storing_the_same_events_store_each_once(
    selection: BackendSelection, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        results = list(pool.map(_process_worker, [selection.model_dump()] * 3, [str(tmp_path)] * 3, range(3)))
    flat = [x for r in results for x in r]
    assert flat.count(True) == 10 + 3 * 10
    store = open_catalog_store(selection, tmp_path)
    try:
        assert store.pending_count() == 40
        assert {r.state for r in store.runs(job="export", limit=100)} == {RunState.START, RunState.COMPLETE}
        assert len(store.runs(limit=100)) == 40
    finally:
        store.close()
