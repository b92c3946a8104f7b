"""`shopops lake clean`: old snapshots expired and the files no kept snapshot references deleted —
and nothing a kept snapshot reads, nor a file being written now."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from tests.integration.lake.reference import differences, fold
from typer.testing import CliRunner

from shopops.core.errors import InvalidInputError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.debezium import Op, encode_key, encode_value
from shopops.events.port import EventLog
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.lake.maintenance import clean_lake, clean_table, referenced_files
from shopops.lake.silver import SilverTable, read_silver
from shopops.simulator.service import SimulationConfig, run_simulation

REGION = "id"


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    """Two simulated days of one region's CDC topics in an embedded event log."""
    events = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    try:
        run_simulation(
            SimulationConfig(regions=[REGION], days=2, orders_per_day=120, seed=5), events, tmp_path / "truth"
        )
        yield events
    finally:
        events.close()


def test_clean_deletes_only_what_no_kept_snapshot_references(tmp_path: Path, log: EventLog) -> None:
    catalog = open_catalog(None, None, tmp_path)
    # Small batches: merges rewrite files, compactions run, old snapshots are expired.
    topics = f"^{REGION}\\.shop\\.(orders|customers)$"
    ingestor = LakeIngestor(log, catalog, topics=topics, batch_records=40)
    ingestor.run_once()
    warehouse = tmp_path / "lake" / "warehouse"
    before = _files(warehouse)
    stray = warehouse / "silver" / f"{REGION}__shop__orders" / "data" / "being-written.parquet"
    stray.write_bytes(b"a commit in flight")

    dry = clean_lake(catalog, older_than_s=0, dry_run=True)
    assert _files(warehouse) == before | {str(stray)}  # a dry run changes nothing
    listed = {path for r in dry for path in r.deleted}
    assert str(stray) in listed
    assert sum(r.expired for r in dry) == 0

    # A young file is kept (a worker may be about to commit it); the orphans of old snapshots go.
    reports = clean_lake(catalog, older_than_s=3600, keep_snapshots=3)
    assert stray.exists()
    assert sum(r.young for r in reports) >= 1
    assert not any(r.deleted for r in reports)
    reports = clean_lake(catalog, older_than_s=0, keep_snapshots=3)
    deleted = {path for r in reports for path in r.deleted}
    assert str(stray) in deleted
    assert len(deleted) > 10, "merges and compactions leave replaced files"
    assert not any(Path(p).exists() for p in deleted)
    assert listed <= deleted  # and the files only the expired snapshots referenced

    for topic in ingestor.topics():
        table = SilverTable(catalog, topic).table
        assert len(table.metadata.snapshots) <= 3
        # Every kept snapshot still reads: its files are all there.
        for snapshot in table.metadata.snapshots:
            table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
        assert all(Path(p).exists() for p in referenced_files(table))
        _, database, name = topic.split(".")
        assert differences(fold(log, topic), read_silver(catalog, f"{database}.{name}", [REGION])) == []

    # Nothing left to do; and ingestion goes on on top of the cleaned tables.
    assert not any(r.deleted for r in clean_lake(catalog, older_than_s=0, keep_snapshots=3))
    topic = f"{REGION}.shop.orders"
    source = {"lsn": 10**12, "ts_ms": 1}
    value = encode_value(Op.CREATE, None, {"order_id": "late"}, source, 1)
    log.produce(topic, value, encode_key({"order_id": "late"}))
    log.flush()
    assert ingestor.run_once() == 1
    orders = read_silver(catalog, "shop.orders", [REGION])
    assert differences(fold(log, topic), orders) == []


def test_bad_options_are_refused_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shopops.cli.main import app

    catalog = open_catalog(None, None, tmp_path)
    with pytest.raises(InvalidInputError, match="negative"):
        clean_table(catalog, "silver.x__y__z", older_than_s=-1)
    with pytest.raises(InvalidInputError, match="at least 1"):
        clean_table(catalog, "silver.x__y__z", keep_snapshots=0)
    monkeypatch.setenv("SHOPOPS_HOME", str(tmp_path))
    runner = CliRunner()
    bad = runner.invoke(app, ["lake", "clean", "--older-than", "-5"])
    assert bad.exit_code == 2
    assert "older-than" in bad.output
    empty = runner.invoke(app, ["lake", "clean", "--dry-run", "--json"])
    assert empty.exit_code == 0, empty.output
    assert orjson.loads(empty.output) == []


def test_the_worker_cleans_the_warehouse_when_due_and_ingestion_goes_on(
    tmp_path: Path, log: EventLog
) -> None:
    catalog = open_catalog(None, None, tmp_path)
    topic = f"{REGION}.shop.orders"
    ingestor = LakeIngestor(
        log, catalog, topics=f"^{topic}$", batch_records=40,
        clean_interval_s=600, clean_keep_snapshots=2, clean_older_than_s=0,
    )  # fmt: skip
    started = ingestor._last_clean
    ingestor.run_once()
    assert ingestor.clean_if_due(now=started + 599) is None  # not due yet
    reports = ingestor.clean_if_due(now=started + 600)
    assert reports is not None
    assert sum(len(r.deleted) for r in reports) > 0, "merges leave replaced files"
    assert sum(r.expired for r in reports) > 0
    assert ingestor.clean_if_due(now=started + 1199) is None  # the next one is an interval later

    # Ingestion goes on on top of the cleaned tables, and silver is still the fold of the log.
    source = {"lsn": 10**12, "ts_ms": 1}
    log.produce(
        topic,
        encode_value(Op.CREATE, None, {"order_id": "late"}, source, 1),
        encode_key({"order_id": "late"}),
    )
    log.flush()
    assert ingestor.run_once() == 1
    assert differences(fold(log, topic), read_silver(catalog, "shop.orders", [REGION])) == []
    assert len(SilverTable(catalog, topic).table.metadata.snapshots) <= 3


def test_a_worker_without_an_interval_never_cleans(tmp_path: Path) -> None:
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    try:
        ingestor = LakeIngestor(log, open_catalog(None, None, tmp_path), clean_interval_s=0)
        assert ingestor.clean_if_due(now=ingestor._last_clean + 10**9) is None
    finally:
        log.close()
