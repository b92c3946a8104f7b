"""The change events: Debezium-valid, following their declared columns, ordered, deterministic."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from tests.unit.simulator.helpers import SMALL, World, simulate

from shopops.events.debezium import Column, Op, row_columns
from shopops.simulator.model import TABLES, SimulationConfig, columns_at
from shopops.simulator.service import topics_for

PY_TYPES: dict[str, type] = {"string": str, "int32": int, "int64": int, "float64": float, "boolean": bool}


def check_row(row: dict[str, Any], columns: tuple[Column, ...] | list[Column], where: str) -> None:
    assert list(row) == [c.name for c in columns], where
    for c in columns:
        value = row[c.name]
        if value is None:
            assert c.optional, f"{where}: {c.name} is null but not optional"
            continue
        assert isinstance(value, PY_TYPES[c.type]), f"{where}: {c.name}={value!r} is not {c.type}"
        assert c.type == "boolean" or not isinstance(value, bool), f"{where}: {c.name} is a bool"
        if c.type == "int32":
            assert -(2**31) <= value < 2**31, where


def change_ms(world: World) -> dict[str, int]:
    return {r["topic"]: r["change_ts_ms"] for r in world.truth_rows("schema_changes")}


def test_every_topic_is_created_with_the_configured_partitions(world: World) -> None:
    assert sorted(world.log.partitions) == sorted(topics_for(SMALL))
    assert set(world.log.partitions.values()) == {SMALL.partitions}
    assert all(count > 0 for count in world.report.per_topic.values())
    assert sum(world.report.per_topic.values()) == world.report.events == len(world.log.sequence)
    assert world.log.flushes >= 1


@pytest.mark.parametrize("fixture", ["world", "schema_world"])
def test_every_event_decodes_and_follows_its_schema_version(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    world: World = request.getfixturevalue(fixture)
    changes = change_ms(world)
    schemas: dict[tuple[str, int], dict[str, Any]] = {}
    for topic in world.log.partitions:
        table_name = topic.split(".", 1)[1]
        for record in world.log.records(topic):
            event = world.event(record)
            if event.is_tombstone:
                continue
            ts_ms = event.source["ts_ms"]
            version = 2 if topic in changes and ts_ms >= changes[topic] else 1
            expected = columns_at(table_name, version)
            if world.config.envelope == "schema":
                assert event.value_schema is not None
                assert event.value_schema["version"] == version
                first = schemas.setdefault((topic, version), event.value_schema)
                if first is event.value_schema:
                    assert row_columns(event.value_schema) == list(expected)
                else:
                    assert event.value_schema == first
                assert orjson.loads(record.key or b"")["schema"]["name"] == f"{topic}.Key"
            else:
                assert event.value_schema is None
            for image in (event.before, event.after):
                if image is not None:
                    check_row(image, expected, f"{topic}@{record.offset}")
            region, db, table = topic.split(".")
            assert event.source["name"] == region
            assert (event.source["db"], event.source["table"]) == (db, table)
            assert event.source["connector"] == "postgresql"
            assert isinstance(event.source["lsn"], int)
            assert isinstance(event.source["txId"], int)
            assert event.ts_ms is not None
            assert event.ts_ms >= ts_ms
            assert record.timestamp_ms == event.ts_ms
            key_fields = next(t.key for t in TABLES if t.name == table_name)
            assert event.key is not None
            assert {k: event.row[k] for k in key_fields} == event.key  # type: ignore[index]


def test_snapshot_reads_reference_tables_first(world: World) -> None:
    for region in SMALL.regions:
        first = [world.event(r) for r in world.log.sequence if r.topic.startswith(f"{region}.")]
        snapshot = [e for e in first if e.op is Op.READ]
        assert {e.topic.split(".", 1)[1] for e in snapshot} == {t.name for t in TABLES if t.snapshot}
        assert first[: len(snapshot)] == snapshot, "the snapshot precedes every streamed change"
        assert [e.source["snapshot"] for e in snapshot][:1] == ["first"]
        assert snapshot[-1].source["snapshot"] == "last"
        assert {e.source["snapshot"] for e in first[len(snapshot) :] if not e.is_tombstone} == {"false"}


def _dedupe(events: list[Any]) -> list[Any]:
    """Drop exact re-deliveries (the injected duplicates) of the record just before."""
    out: list[Any] = []
    for record in events:
        if out and out[-1].value == record.value and out[-1].key == record.key and record.value is not None:
            continue
        out.append(record)
    return out


def test_per_key_order_chains_states_and_ends_deletes_with_a_tombstone(world: World) -> None:
    changes = change_ms(world)
    deletes = 0
    for topic in world.log.partitions:
        by_key: dict[bytes | None, list[Any]] = defaultdict(list)
        for record in world.log.records(topic):
            by_key[record.key].append(record)
        for key, records in by_key.items():
            events = [world.event(r) for r in _dedupe(records)]
            assert events[0].op in (Op.CREATE, Op.READ), f"{topic} {key!r} starts with {events[0].op}"
            assert len({r.partition for r in records}) == 1, "a key stays in one partition"
            state = events[0].after
            last_ts = events[0].source["ts_ms"]
            for prev, event in itertools.pairwise(events):
                if prev.op is Op.DELETE:
                    assert event.is_tombstone, f"{topic} {key!r}: a delete is followed by its tombstone"
                    continue
                assert not prev.is_tombstone, f"{topic} {key!r}: nothing follows a tombstone"
                assert event.op in (Op.UPDATE, Op.DELETE), (
                    f"{topic} {key!r}: {event.op} after the first event"
                )
                assert event.source["ts_ms"] >= last_ts
                last_ts = event.source["ts_ms"]
                if topic not in changes or (prev.source["ts_ms"] >= changes[topic]) == (
                    last_ts >= changes[topic]
                ):
                    # within one schema version, a change's before image is the previous after image
                    assert event.before == state, f"{topic} {key!r}: before is the previous after"
                state = event.after
            if any(e.op is Op.DELETE for e in events):
                deletes += 1
                assert events[-1].is_tombstone
                assert events[-2].op is Op.DELETE
    assert deletes > 0, "the small world deletes some customers"


def test_events_of_a_region_are_produced_in_event_time_order(world: World) -> None:
    last: dict[str, int] = {}
    for record in world.log.sequence:
        if record.value is None:
            continue
        event = world.event(record)
        region = record.topic.split(".")[0]
        assert event.source["ts_ms"] >= last.get(region, 0), record.topic
        last[region] = event.source["ts_ms"]


def test_events_stay_inside_the_window(world: World) -> None:
    manifest = orjson.loads((world.truth_dir / "manifest.json").read_bytes())
    for record in world.log.sequence:
        if record.value is None:
            continue
        window = manifest["window"][record.topic.split(".")[0]]
        assert window["start_ms"] <= world.event(record).source["ts_ms"] < window["end_ms"]


def test_amounts_are_decimal_strings_in_minor_units(world: World) -> None:
    units = {"vn": 0, "sg": 2, "th": 2}
    for region, decimals in units.items():
        for row in world.latest(f"{region}.shop.orders", "order_id").values():
            for field in ("subtotal", "shipping_fee", "tax", "total"):
                text = row[field]
                assert text.count(".") == (1 if decimals else 0), text
                if decimals:
                    assert len(text.split(".")[1]) == decimals


def test_same_seed_gives_identical_bytes_and_truth(tmp_path: Path) -> None:
    config = SimulationConfig(regions=["sg", "vn"], days=2, orders_per_day=25, seed=3, rate_multiplier=10)
    a = simulate(config, tmp_path / "a")
    b = simulate(config, tmp_path / "b")
    as_bytes = [(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms) for r in a.log.sequence]
    assert as_bytes == [
        (r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms) for r in b.log.sequence
    ]
    for name in a.report.truth_files:
        if name != "manifest":
            assert pq.read_table(a.truth_dir / f"{name}.parquet").equals(
                pq.read_table(b.truth_dir / f"{name}.parquet")
            )
    other = simulate(config.model_copy(update={"seed": 4}), tmp_path / "c")
    assert [r.value for r in other.log.sequence] != [r.value for r in a.log.sequence]


def test_a_region_does_not_depend_on_the_other_regions(tmp_path: Path) -> None:
    """Regions draw from their own random streams: adding a region leaves the others' orders alone."""
    config = SimulationConfig(regions=["sg"], days=2, orders_per_day=25, seed=3, rate_multiplier=10)
    alone = simulate(config, tmp_path / "a")
    together = simulate(config.model_copy(update={"regions": ["vn", "sg"]}), tmp_path / "b")
    assert [r.value for r in alone.log.records("sg.shop.orders")] == [
        r.value for r in together.log.records("sg.shop.orders")
    ]


def test_mixed_envelope_uses_both_shapes_per_topic(tmp_path: Path) -> None:
    config = SimulationConfig(regions=["vn", "th"], days=1, orders_per_day=10, envelope="mixed")
    world = simulate(config, tmp_path)
    shapes: dict[str, set[bool]] = defaultdict(set)
    for record in world.log.sequence:
        if record.value is not None:
            shapes[record.topic].add(world.event(record).value_schema is not None)
    assert all(len(s) == 1 for s in shapes.values()), "one shape per topic"
    assert {next(iter(s)) for s in shapes.values()} == {True, False}


def test_progress_counts_region_days(world: World) -> None:
    total = len(SMALL.regions) * SMALL.days
    assert world.progress[0] == (0, total)
    assert world.progress[-1] == (total, total)
    assert [d for d, _ in world.progress] == list(range(total + 1))


def test_schema_is_serialised_once_per_table_version(schema_world: World) -> None:
    """Every event of a table version carries byte-identical schema text."""
    schemas: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    for record in schema_world.log.records("vn.shop.orders"):
        if record.value is None:
            continue
        doc = orjson.loads(record.value)
        schemas[(record.topic, doc["schema"]["version"])].add(orjson.dumps(doc["schema"]))
    assert set(schemas) == {("vn.shop.orders", 1), ("vn.shop.orders", 2)}
    assert all(len(s) == 1 for s in schemas.values())
