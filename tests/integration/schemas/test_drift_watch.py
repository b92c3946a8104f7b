"""The drift watch on hand-made CDC streams: verdicts, quarantine headers, metrics, alerts, replay."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from prometheus_client import REGISTRY

from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendSelection
from shopops.core.settings import SchemaDriftSettings
from shopops.events.backends import open_event_log
from shopops.events.debezium import Column, Op, encode_key, encode_value, value_schema
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.schemas.client import BuiltinRegistryClient, RegistryClient, SchemaSpec
from shopops.schemas.drift import (
    H_KIND,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_REASONS,
    H_REPLAYED_FROM,
    H_SUBJECT,
    H_TOPIC,
    DriftWatch,
    replay_quarantined,
    topic_records,
)
from shopops.schemas.model import CompatibilityLevel, SchemaType
from shopops.schemas.service import SchemaRegistry

TOPIC = "vn.shop.orders"
SUBJECT = f"{TOPIC}-value"
V1 = [Column("order_id", "string"), Column("total", "string"), Column("item_count", "int32")]
ADDED = [*V1, Column("channel", "string", optional=True)]
RENAMED = [Column("order_id", "string"), Column("amount", "string"), Column("item_count", "int32")]
RETYPED = [Column("order_id", "string"), Column("total", "float64"), Column("item_count", "int32")]
SOURCE = {"connector": "postgresql", "db": "shop", "table": "orders", "ts_ms": 0}


def row(columns: Sequence[Column], i: int) -> dict[str, Any]:
    values = {"string": f"v{i}", "int32": i, "float64": i + 0.5}
    return {c.name: values[c.type] for c in columns}


def produce(
    log: EventLog, columns: Sequence[Column], count: int, *, topic: str = TOPIC, start: int = 0
) -> None:
    schema = orjson.dumps(value_schema(topic, columns))
    for i in range(start, start + count):
        log.produce(
            topic,
            encode_value(Op.CREATE, None, row(columns, i), SOURCE, 1_000 + i, schema),
            key=encode_key({"order_id": f"o-{i}"}),
            timestamp_ms=1_000 + i,
        )
    log.flush()


def header(record: Record, name: str) -> str:
    return next(v.decode() for k, v in record.headers if k == name)


def drift(subject: str, kind: str) -> float:
    return REGISTRY.get_sample_value("shopops_schema_drift_total", {"subject": subject, "kind": kind}) or 0.0


class World:
    def __init__(self, home: Path, **drift_settings: Any) -> None:
        self.log = open_event_log(BackendSelection(type="sqlite"), home)
        from shopops.schemas.backends.sqlite import SqliteSchemaStore

        self.registry = SchemaRegistry(SqliteSchemaStore(SqliteSchemaStore.Config(), home))
        self.client = BuiltinRegistryClient(BuiltinRegistryClient.Config(), home, lambda: self.registry)
        self.settings = SchemaDriftSettings(**drift_settings)

    def watch(self, client: RegistryClient | None = None, **options: Any) -> DriftWatch:
        return DriftWatch(self.log, client or self.client, self.settings, poll_timeout_s=0.05, **options)

    def quarantined(self) -> list[Record]:
        return list(topic_records(self.log, self.settings.quarantine_topic))

    def changes(self) -> list[dict[str, Any]]:
        return [
            orjson.loads(r.value) for r in topic_records(self.log, self.settings.changes_topic) if r.value
        ]

    def close(self) -> None:
        self.registry.close()
        self.log.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def test_a_compatible_change_is_registered_and_recorded(world: World) -> None:
    produce(world.log, V1, 3)
    produce(world.log, ADDED, 3, start=3)
    before = drift(SUBJECT, "compatible")
    stats = world.watch().drain()
    assert (stats.checked, stats.passed, stats.quarantined) == (6, 6, 0)
    assert world.registry.versions(SUBJECT) == [1, 2]
    assert drift(SUBJECT, "compatible") == before + 1
    events = [(c["event"], c["version"]) for c in world.changes()]
    assert events == [("SchemaVersionRegistered", 1), ("SchemaVersionRegistered", 2)]
    assert world.quarantined() == []


def test_an_incompatible_change_is_quarantined_alerted_and_the_stream_flows_on(world: World) -> None:
    produce(world.log, V1, 2)
    produce(world.log, RETYPED, 3, start=2)
    produce(world.log, V1, 2, start=5)  # an old-schema record after the change still passes
    produce(world.log, V1, 2, topic="sg.shop.orders")  # and other streams are untouched
    before = drift(SUBJECT, "incompatible")
    with structlog.testing.capture_logs() as logs:
        stats = world.watch().drain()
    assert (stats.checked, stats.quarantined) == (9, 3)
    assert world.registry.versions(SUBJECT) == [1]
    assert drift(SUBJECT, "incompatible") == before + 1  # once per refused schema, not per record

    quarantined = world.quarantined()
    assert [int(header(q, H_OFFSET)) for q in quarantined] == [2, 3, 4]
    first = quarantined[0]
    assert header(first, H_TOPIC) == TOPIC
    assert header(first, H_PARTITION) == "0"
    assert header(first, H_SUBJECT) == SUBJECT
    assert header(first, H_KIND) == "incompatible_schema"
    assert "TYPE_CHANGED" in header(first, H_REASON)
    assert "'#/properties/total'" in header(first, H_REASON)
    assert "number in the new schema" in header(first, H_REASON)
    assert any("oldSchemaVersion: 1" in m for m in orjson.loads(header(first, H_REASONS)))
    original = world.log.read(TOPIC, 0, 2, 1)[0]
    assert (first.key, first.value) == (original.key, original.value)

    alerts = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(alerts) == 1
    assert alerts[0]["event"] == "schema drift: incompatible change quarantined"
    assert alerts[0]["subject"] == SUBJECT
    refusal = [c for c in world.changes() if c["event"] == "SchemaChangeQuarantined"]
    assert len(refusal) == 1
    assert refusal[0]["subject"] == SUBJECT
    assert any("TYPE_CHANGED" in r for r in refusal[0]["reasons"])


def test_malformed_records_and_tombstones(world: World) -> None:
    produce(world.log, V1, 1)
    world.log.produce(TOPIC, b"{not json", key=b'{"order_id":"x"}')
    payload = {"before": None, "after": {"a": 1}, "source": {}, "op": "c", "ts_ms": 1}
    odd_schema = orjson.dumps({"schema": {"type": "struct", "fields": [1, 2]}, "payload": payload})
    world.log.produce(TOPIC, odd_schema, key=b'{"order_id":"y"}')
    world.log.produce(TOPIC, None, key=b'{"order_id":"o-0"}')
    world.log.flush()
    stats = world.watch().drain()
    assert (stats.checked, stats.quarantined, stats.malformed) == (4, 2, 2)
    bad, odd = world.quarantined()
    assert header(bad, H_KIND) == "malformed_event"
    assert "not valid JSON" in header(bad, H_REASON)
    assert header(odd, H_KIND) == "malformed_event"
    assert "unreadable schema" in header(odd, H_REASON)


def test_avro_format_registers_avro_and_refuses_a_rename(tmp_path: Path) -> None:
    world = World(tmp_path, format="avro")
    try:
        produce(world.log, V1, 1)
        produce(world.log, ADDED, 1, start=1)
        produce(world.log, RENAMED, 1, start=2)
        stats = world.watch().drain()
        assert stats.quarantined == 1
        latest = world.registry.version(SUBJECT, None)
        assert latest.schema.schema_type is SchemaType.AVRO
        assert orjson.loads(latest.schema.text)["name"] == "Value"
        assert world.registry.versions(SUBJECT) == [1, 2]
        assert "READER_FIELD_MISSING_DEFAULT_VALUE" in header(world.quarantined()[0], H_REASON)
    finally:
        world.close()


def test_records_in_confluent_wire_format_are_judged_by_their_schema_id(world: World) -> None:
    good = world.registry.register(
        SUBJECT, SchemaType.JSON, '{"type":"object","properties":{"order_id":{"type":"string"}}}'
    )
    world.log.produce(TOPIC, b"\x00" + good.id.to_bytes(4, "big") + b'{"order_id":"o-1"}')
    world.log.produce(TOPIC, b"\x00" + (9999).to_bytes(4, "big") + b"{}")
    world.log.flush()
    stats = world.watch().drain()
    assert (stats.passed, stats.quarantined) == (1, 1)
    (unknown,) = world.quarantined()
    assert header(unknown, H_KIND) == "unknown_schema"
    assert "9999" in header(unknown, H_REASON)


def test_replay_after_the_level_is_fixed(world: World) -> None:
    produce(world.log, V1, 2)
    produce(world.log, RETYPED, 2, start=2)
    world.watch().drain()
    assert len(world.quarantined()) == 2

    still = replay_quarantined(world.log, world.client, world.settings)
    assert still.replayed == []
    assert [r[:3] for r in still.refused] == [(TOPIC, 0, 2), (TOPIC, 0, 3)]
    assert "TYPE_CHANGED" in still.refused[0][3]

    world.registry.set_compatibility(CompatibilityLevel.NONE, SUBJECT)  # the engineer's fix
    dry = replay_quarantined(world.log, world.client, world.settings, dry_run=True)
    assert dry.replayed == [(TOPIC, 0, 2), (TOPIC, 0, 3)]
    assert world.registry.versions(SUBJECT) == [1], "a dry run registers nothing"
    end = world.log.end_offsets(TOPIC)[0]
    done = replay_quarantined(world.log, world.client, world.settings)
    assert done.replayed == [(TOPIC, 0, 2), (TOPIC, 0, 3)]
    assert world.registry.versions(SUBJECT) == [1, 2]
    replayed = world.log.read(TOPIC, 0, end, 10)
    assert [header(r, H_REPLAYED_FROM) for r in replayed] == ["0:0", "0:1"]
    assert [r.value for r in replayed] == [q.value for q in world.quarantined()]

    again = replay_quarantined(world.log, world.client, world.settings)
    assert (again.replayed, again.already_replayed) == ([], 2)
    # The watch now lets the replayed records through.
    stats = world.watch().drain()
    assert (stats.checked, stats.quarantined) == (2, 0)


class FlakyClient(BuiltinRegistryClient):
    """The built-in registry, unreachable for the first ``failures`` lookups."""

    def __init__(self, registry: SchemaRegistry, failures: int) -> None:
        super().__init__(BuiltinRegistryClient.Config(), Path("."), lambda: registry)
        self.failures = failures

    def lookup(self, subject: str, spec: SchemaSpec) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailableError("registry down")
        return super().lookup(subject, spec)


def test_an_unreachable_registry_makes_the_watch_wait_not_skip(world: World) -> None:
    produce(world.log, V1, 2)
    flaky = FlakyClient(world.registry, failures=2)
    stats = world.watch(flaky, retry_initial_s=0.01).drain()
    assert (stats.checked, stats.passed, stats.quarantined) == (2, 2, 0)
    assert flaky.failures == 0


def test_the_worker_thread_commits_and_resumes(world: World) -> None:
    produce(world.log, V1, 3)
    watch = world.watch().start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and watch.stats.checked < 3:
        time.sleep(0.05)
    watch.stop()
    assert watch.stats.checked == 3
    assert sum(p.lag for p in world.log.lag(world.settings.group_id, [TOPIC])) == 0
    produce(world.log, RETYPED, 1, start=3)
    stats = world.watch().drain()
    assert (stats.checked, stats.quarantined) == (1, 1), "a new watch resumes after the committed offsets"


@pytest.mark.kafka
def test_the_watch_runs_on_kafka_with_headers(kafka_bootstrap: str, tmp_path: Path) -> None:
    import re
    import uuid

    from tests.conftest import KAFKA_TEST_OPTIONS

    suffix = uuid.uuid4().hex[:8]
    topic = f"zz.t{suffix}.orders"
    log = open_event_log(
        BackendSelection(type="kafka", bootstrap_servers=kafka_bootstrap, **KAFKA_TEST_OPTIONS), tmp_path
    )
    world = World(tmp_path)
    try:
        settings = SchemaDriftSettings(
            topics=f"^{re.escape(topic)}$",
            quarantine_topic=f"q-{suffix}",
            changes_topic=f"c-{suffix}",
            group_id=f"g-{suffix}",
        )
        log.create_topic(topic, 1)
        produce(log, V1, 2, topic=topic)
        produce(log, RETYPED, 1, topic=topic, start=2)
        stats = DriftWatch(log, world.client, settings, poll_timeout_s=0.2).drain(idle_polls=3)
        assert (stats.checked, stats.quarantined) == (3, 1)
        (q,) = list(topic_records(log, settings.quarantine_topic))
        assert header(q, H_TOPIC) == topic
        assert header(q, H_OFFSET) == "2"
        assert "TYPE_CHANGED" in header(q, H_REASON)
    finally:
        world.close()
        log.close()
