"""The torture run on every backend: 4 processes x 16 threads racing for the last units of a few
items with multi-line carts, short TTLs, the sweeper running, and one worker killed with SIGKILL
mid-run; then the proofs (see ``torture.py``). The same run on the naive read-then-write store
must find an oversell, or the checks prove nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.inventory.helpers import StoreFactory
from tests.integration.inventory.torture import run_torture

from shopops.core.registry import BackendSelection

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def test_torture(store_factory: StoreFactory, tmp_path: Path) -> None:
    # 4 workers x 8 pooled connections stay well under PostgreSQL's default 100 connections.
    options = {"pool_max_size": 8} if store_factory.backend == "postgres" else {}
    report = run_torture(store_factory.selection(**options), store_factory.home, tmp_path / "run")
    print(f"{store_factory.backend}: {report.summary()}")
    assert report.samples > 200, report.summary()
    assert report.oversell == [], report.summary()
    assert report.lost_confirms == [], report.summary()
    assert report.unsettled == [], report.summary()
    assert report.table_mismatch == [], report.summary()
    assert report.event_mismatch == [], report.summary()
    assert report.client_errors == [], report.summary()
    # The run was a real fight: holds were refused, confirmed, expired and confirmed too late.
    stats = report.stats
    assert stats["refused"] > 100, report.summary()
    assert stats["blocked"] > 100, report.summary()
    assert stats["confirmed"] > 30, report.summary()
    assert stats["late"] > 0, report.summary()
    assert stats["abandoned"] > 0, report.summary()
    assert report.killed_worker == 0


def test_the_torture_catches_the_naive_store_overselling(tmp_path: Path) -> None:
    selection = BackendSelection(type="sqlite", path=str(tmp_path / "naive.db"))
    report = run_torture(selection, tmp_path, tmp_path / "run", naive=True, duration_s=5.0, kill=False)
    print(f"naive: {report.summary()}")
    assert report.oversell, "the naive store was not caught overselling: the torture proves nothing"
