"""Silver on a simulated company: the final state of every key, schema changes, checks and
quarantine, racing workers, bad records, the readers and the CLI."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.types import DoubleType, StringType
from tests.integration.lake.reference import differences, fold, topics_of
from typer.testing import CliRunner

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.debezium import Op, encode_value
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.lake.catalog import open_catalog
from shopops.lake.changes import Truncate
from shopops.lake.checks import CHECK_COLUMN, REASON_COLUMN, BatchVerdict
from shopops.lake.cli import _table_row, _truncated_at
from shopops.lake.ingest import LakeIngestor, ingest_topic
from shopops.lake.quarantine import QuarantineTable, read_quarantine
from shopops.lake.query import silver_connection
from shopops.lake.silver import SilverTable, read_silver
from shopops.simulator.service import SimulationConfig, run_simulation

REGIONS = ["vn", "sg"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated days of two regions in a SQLite event log (mixed envelopes: some topics
    carry Connect schemas, others plain JSON; the four schema changes happen in the window)."""
    home = tmp_path_factory.mktemp("world")
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    config = SimulationConfig(regions=REGIONS, days=3, orders_per_day=40, seed=11, envelope="mixed")
    run_simulation(config, log, home / "truth")
    log.close()
    return home


@pytest.fixture
def log(world: Path) -> Any:
    opened = open_event_log(BackendSelection(type="sqlite"), home=world)
    yield opened
    opened.close()


def _assert_matches(log: EventLog, catalog: Any, skip: Any = None, topics: list[str] | None = None) -> None:
    for topic in topics or topics_of(log, REGIONS):
        region, database, table = topic.split(".")
        expected = fold(log, topic, skip if table == "orders" else None)
        got = read_silver(catalog, f"{database}.{table}", [region])
        assert differences(expected, got) == [], topic


def test_silver_holds_the_final_state_of_every_key(log: EventLog, tmp_path: Path) -> None:
    catalog = open_catalog(None, None, tmp_path)
    ingestor = LakeIngestor(log, catalog, batch_records=700)
    assert ingestor.run_once() > 0
    _assert_matches(log, catalog)
    assert ingestor.run_once() == 0  # nothing new: nothing read, nothing committed

    # Schema changes: a column added, a rename (a new column, the old one kept), a type change
    # Iceberg cannot apply in place (a versioned column), a column made optional (all are).
    for region in REGIONS:
        orders = catalog.load_table(f"silver.{region}__shop__orders").schema()
        assert orders.find_field("channel").field_type == StringType()
        customers = catalog.load_table(f"silver.{region}__shop__customers").schema()
        assert {"phone", "phone_number"} <= {f.name for f in customers.fields}
        shipments = catalog.load_table(f"silver.{region}__logistics__shipments").schema()
        assert shipments.find_field("weight_kg").field_type == DoubleType()
        assert shipments.find_field("weight_kg__v2").field_type == StringType()
        payments = catalog.load_table(f"silver.{region}__payments__payments").schema()
        assert not payments.find_field("provider_ref").required
        assert payments.identifier_field_names() == {"payment_id"}
    shipments = read_silver(catalog, "logistics.shipments")
    assert pc.sum(pc.is_valid(shipments.column("weight_kg"))).as_py() > 0
    assert pc.sum(pc.is_valid(shipments.column("weight_kg__v2"))).as_py() > 0

    # Readers: a union over regions with _region; unknown datasets and regions say so.
    both = read_silver(catalog, "shop.orders")
    assert set(both.column("_region").to_pylist()) == set(REGIONS)
    assert both.num_rows == sum(read_silver(catalog, "shop.orders", [r]).num_rows for r in REGIONS)
    assert "d" not in set(both.column("_op").to_pylist())
    with pytest.raises(NotFoundError, match="regions with one: sg, vn"):
        read_silver(catalog, "shop.orders", ["th"])
    with pytest.raises(InvalidInputError):
        read_silver(catalog, "orders")
    con = silver_connection(catalog, ["shop.orders", "payments.payments"])
    orders = con.table("shop__orders")
    per_region = orders.group_by("_region").agg(n=orders.count()).to_pyarrow().to_pylist()
    assert {r["_region"]: r["n"] for r in per_region} == {
        r: read_silver(catalog, "shop.orders", [r]).num_rows for r in REGIONS
    }
    settled = con.raw_sql("SELECT count(*) FROM payments__payments WHERE status = 'settled'").fetchall()
    assert settled[0][0] > 0


def test_columnar_and_per_record_decoding_build_the_same_tables(log: EventLog, tmp_path: Path) -> None:
    topics = [t for t in topics_of(log, REGIONS) if t.split(".", 1)[1] in (
        "shop.orders", "shop.customers", "logistics.shipments", "inventory.stock_levels", "finance.fx_rates",
    )]  # fmt: skip
    tables: dict[bool, dict[str, list[dict[str, Any]]]] = {}
    for fast in (True, False):
        catalog = open_catalog(None, None, tmp_path / str(fast))
        for topic in topics:
            sink = SilverTable(catalog, topic, fast=fast)
            ingest_topic(log, [sink], topic, 400)
        tables[fast] = {
            topic: sorted(
                catalog.load_table(f"silver.{topic.replace('.', '__')}").scan().to_arrow().to_pylist(),
                key=lambda r: r["_key"],
            )
            for topic in topics
        }
    assert tables[True] == tables[False]


class CancelledOrders:
    """Rejects shop.orders rows whose status is ``cancelled`` (deterministic)."""

    def __init__(self) -> None:
        self.datasets: set[str] = set()

    def check_batch(self, dataset: str, rows: pa.Table) -> BatchVerdict:
        self.datasets.add(dataset)
        if dataset != "shop.orders":
            return BatchVerdict(rows, rows.slice(0, 0))
        bad = pc.fill_null(pc.equal(rows.column("status"), "cancelled"), False)
        rejected = rows.filter(bad)
        n = rejected.num_rows
        rejected = rejected.append_column(CHECK_COLUMN, pa.array(["status_allowed"] * n, pa.large_string()))
        rejected = rejected.append_column(
            REASON_COLUMN, pa.array(["status is cancelled"] * n, pa.large_string())
        )
        return BatchVerdict(rows.filter(pc.invert(bad)), rejected)


def _rejected_positions(log: EventLog, topic: str) -> list[tuple[int, int]]:
    out = []
    for record in log.read_all(topic):
        if record.value is None:
            continue
        doc = orjson.loads(record.value)
        payload = doc.get("payload", doc) if "schema" in doc else doc
        if payload["op"] in ("c", "u", "r") and payload["after"]["status"] == "cancelled":
            out.append((record.partition, record.offset))
    return sorted(out)


def test_rejected_rows_are_quarantined_once_even_after_a_crash_between_the_two_commits(
    log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = open_catalog(None, None, tmp_path)
    topic = "vn.shop.orders"
    expected = _rejected_positions(log, topic)
    assert expected  # the simulated window has cancellations

    # The worker dies after the quarantine commit of its second batch, before the silver one.
    real_commit = SilverTable._commit
    calls = {"n": 0}

    def dying_commit(self: SilverTable, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        real_commit(self, *args)

    monkeypatch.setattr(SilverTable, "_commit", dying_commit)
    checker = CancelledOrders()
    with pytest.raises(RuntimeError, match="killed"):
        LakeIngestor(
            log, catalog, topics="^vn\\.shop\\.orders$", batch_records=150, checker=checker
        ).run_once()
    monkeypatch.setattr(SilverTable, "_commit", real_commit)
    assert (
        QuarantineTable(catalog, topic).committed_offsets() != SilverTable(catalog, topic).committed_offsets()
    )

    # A new worker, other batch boundaries: every rejected row once, silver without them.
    LakeIngestor(log, catalog, topics="^vn\\.shop\\.orders$", batch_records=97, checker=checker).run_once()
    quarantined = read_quarantine(catalog, "shop.orders")
    positions = sorted(
        zip(
            quarantined.column("_partition").to_pylist(),
            quarantined.column("_offset").to_pylist(),
            strict=True,
        )
    )
    assert positions == expected
    assert set(quarantined.column(REASON_COLUMN).to_pylist()) == {"status is cancelled"}
    assert checker.datasets == {"shop.orders"}
    _assert_matches(log, catalog, skip=lambda after: after["status"] == "cancelled", topics=[topic])
    assert "cancelled" not in set(read_silver(catalog, "shop.orders").column("status").to_pylist())


def test_workers_racing_on_the_same_tables_apply_every_change_once(log: EventLog, tmp_path: Path) -> None:
    topics = "^vn\\.(shop\\.orders|inventory\\.stock_levels|shop\\.customers)$"
    errors: list[BaseException] = []

    def work(batch: int) -> None:
        try:
            LakeIngestor(
                log, open_catalog(None, None, tmp_path), topics=topics, batch_records=batch
            ).run_once()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in (211, 307, 401)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    catalog = open_catalog(None, None, tmp_path)
    _assert_matches(log, catalog, topics=["vn.shop.orders", "vn.inventory.stock_levels", "vn.shop.customers"])


def _event(log: EventLog, key: str, op: Op | None, lsn: int, **row: Any) -> None:
    value = None
    if op is not None:
        after = {"id": key, **row}
        before = after if op is Op.DELETE else None
        value = encode_value(op, before, None if op is Op.DELETE else after, {"lsn": lsn, "ts_ms": lsn}, lsn)
    log.produce("zz.app.items", value, key=orjson.dumps({"id": key}), timestamp_ms=lsn)


def test_late_duplicate_deleted_and_bad_events_across_batches(tmp_path: Path) -> None:
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path / "log")
    log.create_topic("zz.app.items", 1)
    catalog = open_catalog(None, None, tmp_path)
    ingestor = LakeIngestor(log, catalog, topics="^zz\\.", batch_records=2)
    _event(log, "a", Op.CREATE, 10, n=1)
    _event(log, "a", Op.UPDATE, 12, n=2)
    _event(log, "b", Op.CREATE, 11, n=1)
    _event(log, "b", Op.DELETE, 13, n=1)
    _event(log, "b", None, 13)  # the tombstone after the delete
    log.flush()
    ingestor.run_once()
    _event(log, "a", Op.UPDATE, 12, n=2)  # duplicate (a connector restart), later batch
    _event(log, "a", Op.UPDATE, 11, n=99)  # a replayed older event: must not win
    _event(log, "b", Op.UPDATE, 12, n=99)  # older than the delete: must not bring b back
    log.produce("zz.app.items", b"{oops", key=b'{"id": "c"}')  # not JSON: skipped, stream goes on
    _event(log, "c", Op.CREATE, 20, n="three")  # n was a long column: a new column, not a failure
    _event(log, "d", Op.CREATE, 21, n=4)
    _event(log, "b", Op.CREATE, 30, n=5)  # re-created after its delete
    log.flush()
    ingestor.run_once()
    rows = {r["id"]: r for r in read_silver(catalog, "app.items").to_pylist()}
    assert {k: (r["n"], r.get("n__v2"), r["_lsn"]) for k, r in rows.items()} == {
        "a": (2, None, 12),
        "b": (5, None, 30),
        "c": (None, "three", 20),
        "d": (4, None, 21),
    }
    table = catalog.load_table("silver.zz__app__items")
    assert SilverTable(catalog, "zz.app.items").committed_offsets() == log.end_offsets("zz.app.items")
    assert table.scan().to_arrow().num_rows == 4  # one row per key, no copies
    log.close()


_ITEMS = "zz.app.items"


def _at(partition: int, offset: int, key: str | None, op: Op, lsn: int | None, ts: int, **row: Any) -> Record:
    """A change event of ``_ITEMS`` at a given position (a truncate when ``op`` is TRUNCATE)."""
    source = {"ts_ms": ts} if lsn is None else {"lsn": lsn, "ts_ms": ts}
    after = None if op in (Op.DELETE, Op.TRUNCATE) else {"id": key, **row}
    before = {"id": key} if op is Op.DELETE else None
    raw_key = None if key is None else orjson.dumps({"id": key})
    return Record(_ITEMS, partition, offset, raw_key, encode_value(op, before, after, source, ts), ts)


def _items(catalog: Any) -> dict[str, tuple[Any, Any]]:
    return {r["id"]: (r.get("n"), r["_lsn"]) for r in read_silver(catalog, "app.items").to_pylist()}


@pytest.mark.parametrize("fast", [True, False], ids=["columnar", "per-record"])
def test_a_truncate_empties_the_table_and_keeps_late_older_events_out(tmp_path: Path, fast: bool) -> None:
    catalog = open_catalog(None, None, tmp_path)
    silver = SilverTable(catalog, _ITEMS, fast=fast)
    silver.write(
        [
            _at(0, 0, "a", Op.CREATE, 10, 1, n=1),
            _at(1, 0, "b", Op.CREATE, 11, 2, n=1),
            _at(0, 1, "c", Op.CREATE, 12, 3, n=1),
            _at(0, 2, "a", Op.UPDATE, 13, 4, n=2),
        ],
        {0: 3, 1: 1},
    )
    assert _items(catalog) == {"a": (2, 13), "b": (1, 11), "c": (1, 12)}
    assert silver.truncated() is None

    # The truncate (keyless, as Debezium sends it) comes with events from both sides of it: b's
    # update was made before it but is read after it, from the other partition.
    silver.write(
        [
            _at(0, 3, None, Op.TRUNCATE, 20, 5),
            _at(0, 4, "d", Op.CREATE, 21, 6, n=1),
            _at(1, 1, "b", Op.UPDATE, 15, 4, n=99),
            _at(1, 2, "e", Op.CREATE, 22, 7, n=1),
        ],
        {0: 5, 1: 3},
    )
    assert _items(catalog) == {"d": (1, 21), "e": (1, 22)}
    table = catalog.load_table("silver.zz__app__items")
    assert table.scan().to_arrow().num_rows == 2  # the rows are gone, not hidden
    assert silver.truncated() == Truncate(20, 0, 3, 5)
    listed = _table_row(catalog, "silver.zz__app__items")  # what `shopops lake tables` shows
    assert listed["truncated"] == {"lsn": 20, "partition": 0, "offset": 3, "ts_ms": 5}
    assert _truncated_at(listed["truncated"]) == "LSN 20 (0@3)"

    # After a restart: a late event from before the truncate still does not apply; later ones do,
    # and a replayed copy of the truncate changes nothing.
    silver = SilverTable(catalog, _ITEMS, fast=fast)
    silver.write([_at(1, 3, "c", Op.UPDATE, 18, 4, n=99), _at(1, 4, "d", Op.UPDATE, 23, 8, n=9)], {1: 5})
    silver.write([_at(1, 5, "f", Op.CREATE, 30, 9, n=1)], {1: 6})
    assert silver.truncated() == Truncate(20, 0, 3, 5)  # carried by every later commit
    silver.write([_at(0, 3, None, Op.TRUNCATE, 20, 5)], {0: 5, 1: 6})
    assert _items(catalog) == {"d": (9, 23), "e": (1, 22), "f": (1, 30)}
    assert SilverTable(catalog, _ITEMS).truncated() == Truncate(20, 0, 3, 5)
    assert SilverTable(catalog, _ITEMS).committed_offsets() == {0: 5, 1: 6}

    # A second truncate empties it again, delete markers included.
    silver.write([_at(0, 5, "e", Op.DELETE, 31, 10), _at(0, 6, None, Op.TRUNCATE, 40, 11)], {0: 7, 1: 6})
    assert _items(catalog) == {}
    assert catalog.load_table("silver.zz__app__items").scan().to_arrow().num_rows == 0
    assert silver.truncated() == Truncate(40, 0, 6, 11)


def test_a_truncate_without_lsn_orders_by_partition_offset_then_source_time(tmp_path: Path) -> None:
    catalog = open_catalog(None, None, tmp_path)
    silver = SilverTable(catalog, _ITEMS)
    silver.write(
        [
            _at(0, 0, "x", Op.CREATE, None, 100, n=1),
            _at(1, 0, "z", Op.CREATE, None, 150, n=1),  # before the truncate by source time
            _at(0, 1, None, Op.TRUNCATE, None, 200),
            _at(0, 2, "y", Op.CREATE, None, 190, n=1),  # after it in its partition, whatever its time
            _at(1, 1, "w", Op.CREATE, None, 200, n=1),  # at its millisecond: after it
        ],
        {0: 3, 1: 2},
    )
    assert set(_items(catalog)) == {"y", "w"}


def test_cli_lists_and_shows_the_lake(
    log: EventLog, world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopops.cli.main import app

    # A catalog in tmp_path over the world's event log.
    monkeypatch.setenv("SHOPOPS_HOME", str(world))
    monkeypatch.setenv("SHOPOPS_LAKE__CATALOG_URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("SHOPOPS_LAKE__WAREHOUSE", f"file://{tmp_path / 'warehouse'}")
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    done = runner.invoke(app, ["lake", "ingest", "--topics", "^sg\\.shop\\.(orders|customers)$"])
    assert done.exit_code == 0, done.output
    assert "rows written to silver" in done.output
    listed = runner.invoke(app, ["lake", "tables", "--json"])
    assert listed.exit_code == 0, listed.output
    stages = {(t["stage"], t["topic"]) for t in orjson.loads(listed.output)}
    assert all(t["truncated"] is None for t in orjson.loads(listed.output))
    assert {
        ("bronze", "sg.shop.orders"),
        ("silver", "sg.shop.orders"),
        ("silver", "sg.shop.customers"),
    } <= stages
    shown = runner.invoke(app, ["lake", "show", "shop.orders", "--region", "sg", "--limit", "2", "--json"])
    assert shown.exit_code == 0, shown.output
    rows = orjson.loads(shown.output)
    assert len(rows) == 2
    assert rows[0]["_region"] == "sg"
    assert "order_id" in rows[0]
    assert "_lsn" not in rows[0]
    table = runner.invoke(app, ["lake", "show", "shop.orders", "--limit", "3"])
    assert table.exit_code == 0
    assert "shop.orders:" in table.output
    missing = runner.invoke(app, ["lake", "show", "shop.orders", "--region", "th"])
    assert missing.exit_code == 3
    assert "no silver table of shop.orders" in missing.output
    bad = runner.invoke(app, ["lake", "show", "orders"])
    assert bad.exit_code == 2
    assert "is not <database>.<table>" in bad.output
