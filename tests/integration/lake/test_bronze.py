"""Bronze ingestion on both event logs: every change event exactly once, across reruns, races and kills."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest
from tests.conftest import EventLogFactory
from tests.e2e.helpers import SHOPOPS

from shopops.events.port import EventLog
from shopops.lake.bronze import BronzeTable
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor


@pytest.fixture
def topics() -> list[str]:
    # Unique per test: the Kafka broker outlives a test, and CDC-like names match lake.topics.
    suffix = uuid.uuid4().hex[:8]
    return [f"vn.shop.orders_{suffix}", f"sg.payments.payments_{suffix}"]


def _produce(log: EventLog, topics: list[str], n: int, start: int = 0) -> None:
    for topic in topics:
        for i in range(start, start + n):
            log.produce(
                topic, f'{{"i": {i}}}'.encode(), key=f'{{"id": {i}}}'.encode(), timestamp_ms=1_000 + i
            )
    log.flush()


def _positions(home: Path, topic: str) -> list[tuple[int, int]]:
    table = BronzeTable(open_catalog(None, None, home), topic).table
    rows = table.scan(selected_fields=("partition", "offset")).to_arrow()
    return sorted(zip(rows.column("partition").to_pylist(), rows.column("offset").to_pylist(), strict=True))


def _expected(log: EventLog, topic: str) -> list[tuple[int, int]]:
    return sorted((p, o) for p, end in log.end_offsets(topic).items() for o in range(end))


def test_every_event_once_then_only_new_ones(
    event_log_factory: EventLogFactory, tmp_path: Path, topics: list[str]
) -> None:
    log = event_log_factory()
    for topic in topics:
        log.create_topic(topic, 3)
    _produce(log, topics, 400)
    catalog = open_catalog(None, None, tmp_path)
    ingestor = LakeIngestor(log, catalog, topics="|".join(topics), batch_records=150, silver=False)
    assert ingestor.run_once() == 800
    assert ingestor.run_once() == 0
    _produce(log, topics, 100, start=400)
    assert ingestor.run_once() == 200
    for topic in topics:
        assert _positions(tmp_path, topic) == _expected(log, topic)
    table = BronzeTable(catalog, topics[0])
    assert table.committed_offsets() == log.end_offsets(topics[0])
    values = table.table.scan().to_arrow()
    assert pc.all(pc.starts_with(values.column("value"), '{"i": ')).as_py()


def test_two_workers_racing_append_each_event_once(
    tmp_path: Path, event_log_factory: EventLogFactory, topics: list[str]
) -> None:
    log = event_log_factory()
    for topic in topics:
        log.create_topic(topic, 2)
    _produce(log, topics, 1_000)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            catalog = open_catalog(None, None, tmp_path)
            LakeIngestor(log, catalog, topics="|".join(topics), batch_records=97, silver=False).run_once()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for topic in topics:
        assert _positions(tmp_path, topic) == _expected(log, topic)


def _committed(home: Path, topics: list[str]) -> int:
    """Events the bronze tables' current snapshots say are in (their committed positions)."""
    catalog = open_catalog(None, None, home)
    return sum(sum(BronzeTable(catalog, t).committed_offsets().values()) for t in topics)


def test_a_worker_killed_at_random_points_loses_and_repeats_nothing(
    event_log_factory: EventLogFactory, tmp_path: Path, topics: list[str]
) -> None:
    log = event_log_factory()
    for topic in topics:
        log.create_topic(topic, 3)
    _produce(log, topics, 20_000)
    selection = event_log_factory.selection()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHOPOPS_")},
        "SHOPOPS_HOME": str(tmp_path),
        "SHOPOPS_LOGGING__FORMAT": "json",
        "SHOPOPS_EVENTS__TYPE": selection.type,
        **{f"SHOPOPS_EVENTS__{k.upper()}": str(v) for k, v in selection.options().items()},
    }
    # These records are not change events: bronze only (silver has its own kill test).
    command = [*SHOPOPS, "lake", "ingest", "--no-silver", "--batch", "200", "--topics", "|".join(topics)]
    rng = random.Random(7)
    ingested = 0
    partial = False
    for _ in range(3):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for the worker's first new commit (a start costs ~5 s), then kill it a moment later.
        deadline = time.monotonic() + 90
        while (
            time.monotonic() < deadline and proc.poll() is None and _committed(tmp_path, topics) <= ingested
        ):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        now = sum(len(_positions(tmp_path, t)) for t in topics)
        assert now == _committed(tmp_path, topics)  # rows and position moved together
        assert now >= ingested  # what was committed stays
        partial = partial or 0 < now < 40_000
        ingested = now
    assert partial  # at least one kill landed mid-way
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for topic in topics:
        assert _positions(tmp_path, topic) == _expected(log, topic)


def test_a_bad_topic_pattern_is_refused_with_the_reason(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SHOPOPS, "lake", "ingest", "--topics", "(["],
        env={**os.environ, "SHOPOPS_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "is not a regular expression" in done.stderr
