"""Concurrent runs over the same days, and a run killed mid-way, leave whole and unique results."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from tests.integration.reconciliation.cases import DAY, build_cases

from shopops.core.registry import BackendSelection
from shopops.reconciliation.service import ReconciliationService

WINDOW = (DAY - timedelta(days=5), DAY + timedelta(days=5))


def _service(home: Path) -> ReconciliationService:
    return ReconciliationService(
        home=home, engine=BackendSelection(type="duckdb"), source=BackendSelection(type="parquet")
    )


def _run_many(home: str, times: int) -> None:
    service = _service(Path(home))
    try:
        for _ in range(times):
            service.run(*WINDOW, ["sg"])
    finally:
        service.close()


def _stored(home: Path) -> list[tuple[str, str]]:
    service = _service(home)
    try:
        return sorted(
            (r["exception_id"], str(r["business_date"])) for r in service.exceptions(limit=None).to_pylist()
        )
    finally:
        service.close()


def test_concurrent_runs_store_each_exception_once(tmp_path: Path) -> None:
    _, expected = build_cases(tmp_path / "reconciliation" / "input")
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_run_many, args=(str(tmp_path), 3)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
        assert w.exitcode == 0
    stored = _stored(tmp_path)
    assert len(stored) == len({i for i, _ in stored})
    assert set(expected) <= {(i.split(":", 1)[0], i.split(":", 1)[1]) for i, _ in stored}
    runs = _service(tmp_path).store.runs(100)
    assert len(runs) == 9
    assert {r["status"] for r in runs} == {"succeeded"}
    _run_many(str(tmp_path), 1)  # one run alone gives the same
    assert _stored(tmp_path) == stored


def _wait_for_a_running_run(home: Path, pid: int | None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        service = _service(home)
        try:
            rows = service.store._db.execute(
                "SELECT 1 FROM runs WHERE status = 'running' AND pid = ?", (pid,)
            )
            if rows.fetchone():
                return
        finally:
            service.close()
        time.sleep(0.05)
    raise AssertionError("the worker never started a run")


def test_a_killed_run_leaves_readable_partitions_and_a_rerun_repairs(tmp_path: Path) -> None:
    _, expected = build_cases(tmp_path / "reconciliation" / "input")
    _run_many(str(tmp_path), 1)
    before = _stored(tmp_path)
    ctx = mp.get_context("spawn")
    for delay in (0.0, 0.3, 0.8):
        worker = ctx.Process(target=_run_many, args=(str(tmp_path), 5))
        worker.start()
        _wait_for_a_running_run(tmp_path, worker.pid)
        time.sleep(delay)
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
        # Every partition file is whole (never half-written) and the content is unchanged.
        for path in (tmp_path / "reconciliation" / "results" / "exceptions").glob("*/*.parquet"):
            pq.read_table(path)
        assert _stored(tmp_path) == before
    _run_many(str(tmp_path), 1)
    assert _stored(tmp_path) == before
    assert len(before) >= len(expected)
    statuses = [r["status"] for r in _service(tmp_path).store.runs(100)]
    assert "running" not in statuses
    assert statuses.count("interrupted") == 3
