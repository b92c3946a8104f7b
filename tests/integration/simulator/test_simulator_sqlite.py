"""The simulator writing into the embedded SQLite event log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from tests.unit.simulator.helpers import MemoryLog

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.debezium import decode
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.simulator.service import SimulationConfig, run_simulation, topics_for

CONFIG = SimulationConfig(regions=["vn", "sg"], days=2, orders_per_day=20, seed=5, rate_multiplier=10)


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[EventLog]:
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    try:
        yield log
    finally:
        log.close()


def read_all(log: EventLog, topic: str, partition: int) -> list[Record]:
    out: list[Record] = []
    while batch := log.read(topic, partition, len(out), 1000):
        out.extend(batch)
    return out


def test_simulation_into_sqlite_matches_the_in_memory_run(sqlite_log: EventLog, tmp_path: Path) -> None:
    report = run_simulation(CONFIG, sqlite_log, tmp_path / "truth")
    topics = {t.name: t for t in sqlite_log.list_topics()}
    assert set(topics) == set(topics_for(CONFIG))
    assert {t.partitions for t in topics.values()} == {CONFIG.partitions}
    assert {name: t.messages for name, t in topics.items()} == report.per_topic

    memory = MemoryLog()
    run_simulation(CONFIG, memory, tmp_path / "truth-memory")
    for topic in topics:
        for partition in range(CONFIG.partitions):
            stored = read_all(sqlite_log, topic, partition)
            expected = memory.logs[topic][partition]
            assert [(r.offset, r.key, r.value, r.timestamp_ms) for r in stored] == [
                (r.offset, r.key, r.value, r.timestamp_ms) for r in expected
            ]
            for record in stored:
                decode(record)  # every stored record is a valid change event or tombstone


def test_schema_change_offsets_point_into_the_sqlite_log(sqlite_log: EventLog, tmp_path: Path) -> None:
    # a first run leaves records behind: the second run's offsets must count from there
    run_simulation(CONFIG, sqlite_log, tmp_path / "first")
    base = {topic: sqlite_log.end_offsets(topic) for topic in topics_for(CONFIG)}
    second = CONFIG.model_copy(update={"seed": 6})
    report = run_simulation(second, sqlite_log, tmp_path / "second")
    changes = pq.read_table(report.truth_files["schema_changes"]).to_pylist()
    assert len(changes) == 4 * len(CONFIG.regions)
    for change in changes:
        first_offsets = {int(p): o for p, o in orjson.loads(change["first_offsets"]).items()}
        assert first_offsets, change["topic"]
        for partition, offset in first_offsets.items():
            record = sqlite_log.read(change["topic"], partition, offset, 1)[0]
            event = decode(record)
            assert event.value_schema is not None
            assert event.value_schema["version"] == 2
            assert event.source["ts_ms"] >= change["change_ts_ms"]
            start = base[change["topic"]][partition]
            assert 0 < start <= offset, "offsets count from where the first run ended"
            records = read_all(sqlite_log, change["topic"], partition)
            before = [decode(r) for r in records[start:offset] if r.value is not None]
            assert all(e.value_schema is not None and e.value_schema["version"] == 1 for e in before)
