"""Reconciliation reading the lakehouse (silver, duplicates from bronze) finds what it finds from the
CDC export: the same exceptions, scored against the simulator's truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from tests.integration.reconciliation.world import World, simulate

from shopops.core.errors import NotFoundError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.reconciliation.scoring import Score
from shopops.reconciliation.service import ReconciliationService


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home: Path = tmp_path_factory.mktemp("lake-world")
    world = simulate(home, days=6, orders_per_day=60, multiplier=10.0, seed=5)
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        LakeIngestor(
            log, open_catalog(None, None, home), topics=r"^[a-z]{2}\.(shop|payments|finance)\."
        ).run_once()
    finally:
        log.close()
    return world


def _exceptions(world: World, source: str) -> tuple[pa.Table, Score]:
    """Run over the world's window reading ``source``; the exceptions stored and their score."""
    service = ReconciliationService(
        home=world.home, engine=BackendSelection(type="duckdb"), source=BackendSelection(type=source)
    )
    try:
        service.run(world.start, world.end, world.regions)
        found = service.exceptions(limit=None)
        score = service.score(world.truth, world.start, world.end, world.regions)
    finally:
        service.close()
    return found, score


def test_lake_source_finds_the_same_exceptions_as_the_export(world: World) -> None:
    from_export, _ = _exceptions(world, "parquet")
    from_lake, score = _exceptions(world, "lake")
    key = ["class", "region", "business_date", "exception_id"]
    assert from_export.num_rows > 0
    assert from_lake.select(key).sort_by([(k, "ascending") for k in key]).to_pylist() == (
        from_export.select(key).sort_by([(k, "ascending") for k in key]).to_pylist()
    )
    assert score.recall == 1.0, score.missed_examples
    assert score.precision == 1.0, score.false_examples
    assert "duplicate" in set(from_lake.column("class").to_pylist())


def test_lake_source_without_silver_tables_says_what_to_do(tmp_path: Path) -> None:
    service = ReconciliationService(
        home=tmp_path, engine=BackendSelection(type="duckdb"), source=BackendSelection(type="lake")
    )
    try:
        with pytest.raises(NotFoundError, match="lake worker"):
            service.run(date(2026, 1, 1), date(2026, 1, 2), ["vn"])
    finally:
        service.close()
