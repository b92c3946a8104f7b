"""The event-log contract: one suite, run against every backend (sqlite, and kafka on Tansu).

What the port promises (see ``shopops.events.port``) is checked here through the public API only,
so a backend passes or fails on behaviour, never on how it stores things.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pytest

from shopops.core.errors import ConflictError, InvalidInputError, NotFoundError
from shopops.events.model import (
    OutgoingRecord,
    PartitionLag,
    Record,
    TopicInfo,
    TopicPartition,
    partition_for,
)
from shopops.events.port import Consumer

if TYPE_CHECKING:
    from conftest import EventLogFactory

pytestmark = pytest.mark.timeout(180)

#: Kafka group joins take seconds on Tansu; every wait below is bounded by this.
WAIT_S = 30.0

Names = Callable[[str], str]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def drain(consumer: Consumer, expected: int, timeout_s: float = WAIT_S) -> list[Record]:
    """Poll until ``expected`` records arrived (or time is up); returns what arrived."""
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        got += consumer.poll(max_records=1000, timeout_s=0.5)
    return got


def settle(
    consumers: Sequence[Consumer], done: Callable[[], bool], timeout_s: float = WAIT_S
) -> list[Record]:
    """Poll every consumer in turn (group protocols progress inside poll) until ``done()``."""
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the consumer group did not settle in time"
        for consumer in consumers:
            got += consumer.poll(max_records=100, timeout_s=0.2)
    return got


def positions(records: Sequence[Record]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_topics_are_created_once_and_listed_sorted(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    orders, payments = unique_name("orders"), unique_name("payments")
    log.create_topic(orders, 3)
    log.create_topic(payments)
    log.create_topic(orders, 3)  # same count: nothing to do
    with pytest.raises(ConflictError, match="3 partitions"):
        log.create_topic(orders, 2)

    listed = log.list_topics()
    assert [t.name for t in listed] == sorted(t.name for t in listed)
    ours = {t.name: t for t in listed if t.name in (orders, payments)}
    assert ours == {orders: TopicInfo(orders, 3, 0), payments: TopicInfo(payments, 1, 0)}

    # Producing to a topic that does not exist creates it, with one partition.
    implicit = unique_name("implicit")
    log.produce(implicit, b"first")
    log.flush()
    assert TopicInfo(implicit, 1, 1) in log.list_topics()
    assert log.end_offsets(implicit) == {0: 1}


def test_round_trip_keeps_keys_values_headers_timestamps_and_tombstones(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    topic = unique_name("round-trip")
    log.create_topic(topic, 2)
    sent = [
        OutgoingRecord(topic, b"created", b"order-1", (("trace", b"t-1"), ("empty", b"")), 1_700_000_000_000),
        OutgoingRecord(topic, None, b"order-1", (), 1_700_000_000_001),  # tombstone
        OutgoingRecord(topic, b"", b"order-2", timestamp_ms=5),
        OutgoingRecord(topic, bytes(range(256)) * 40, b"order-3"),
    ]
    before = now_ms()
    assert log.produce_many(sent[:2]) == 2
    for record in sent[2:]:
        log.produce(record.topic, record.value, record.key, record.headers, record.timestamp_ms)
    log.flush()
    after = now_ms()

    with log.consumer(unique_name("reader"), [topic]) as consumer:
        got = drain(consumer, len(sent))
        assert consumer.poll(timeout_s=0.2) == []
    assert len(got) == len(sent)
    by_key: dict[bytes | None, list[Record]] = defaultdict(list)
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key[record.key].append(record)
    for want in sent:
        have = by_key[want.key].pop(0)
        assert have.topic == topic
        assert have.partition == partition_for(want.key, 2)
        assert (have.value, have.headers) == (want.value, want.headers)
        if want.timestamp_ms is None:
            assert before <= have.timestamp_ms <= after
        else:
            assert have.timestamp_ms == want.timestamp_ms
    tombstone = next(r for r in got if r.value is None)
    assert (tombstone.key, tombstone.tp) == (b"order-1", TopicPartition(topic, partition_for(b"order-1", 2)))

    # read() gives the same records without a group.
    for partition in range(2):
        in_partition = sorted((r for r in got if r.partition == partition), key=lambda r: r.offset)
        assert log.read(topic, partition, 0, max_records=100) == in_partition
        assert log.read(topic, partition, 1, max_records=1) == in_partition[1:2]
        assert log.read(topic, partition, len(in_partition)) == []


def test_keyed_records_keep_per_key_order_and_land_where_partition_for_says(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    topic = unique_name("per-key")
    partitions, keys, per_key = 6, 120, 15
    log.create_topic(topic, partitions)
    records = [
        OutgoingRecord(topic, f"{k}:{seq}".encode(), f"customer-{k}".encode())
        for seq in range(per_key)
        for k in range(keys)
    ]
    records.append(OutgoingRecord(topic, b"empty-key", b""))  # CRC32 of b"" is 0
    # Several flushes of different sizes: offsets must continue across them.
    for chunk in (records[:7], records[7:8], records[8:1000], records[1000:]):
        log.produce_many(chunk)
        log.flush()

    expected_counts = Counter(partition_for(r.key, partitions) for r in records)
    assert log.end_offsets(topic) == {p: expected_counts[p] for p in range(partitions)}

    with log.consumer(unique_name("ordered"), [topic]) as consumer:
        got = drain(consumer, len(records))
    assert len(got) == len(records)
    last_seq: dict[bytes, int] = {}
    offsets: dict[int, list[int]] = defaultdict(list)
    for record in got:
        assert record.key is not None
        assert record.value is not None
        assert record.partition == partition_for(record.key, partitions), record
        offsets[record.partition].append(record.offset)
        if record.key == b"":
            continue
        seq = int(record.value.split(b":")[1])
        assert seq == last_seq.get(record.key, -1) + 1, f"{record.key!r} out of order"
        last_seq[record.key] = seq
    assert all(seq == per_key - 1 for seq in last_seq.values())
    assert len(last_seq) == keys
    for partition, seen in offsets.items():
        assert seen == list(range(expected_counts[partition])), f"partition {partition} not dense/ordered"


def test_a_new_member_resumes_at_the_committed_offsets_and_lag_is_exact(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    topic, group = unique_name("resume"), unique_name("billing")
    log.create_topic(topic, 2)
    log.produce_many(OutgoingRecord(topic, str(i).encode(), f"k{i}".encode()) for i in range(60))
    log.flush()
    ends = log.end_offsets(topic)
    assert sum(ends.values()) == 60
    assert all(ends.values())
    assert log.committed(group, topic) == {0: None, 1: None}
    assert log.lag(group, [topic]) == [PartitionLag(group, topic, p, None, ends[p]) for p in (0, 1)]

    halfway = {p: end // 2 for p, end in ends.items()}
    first = log.consumer(group, [topic])
    assert len(drain(first, 60)) == 60
    first.commit({TopicPartition(topic, p): off for p, off in halfway.items()})
    first.close()

    assert log.committed(group, topic) == halfway
    assert group in log.list_groups()
    lag = log.lag(group, [topic])
    assert [(x.partition, x.committed, x.end_offset, x.lag) for x in lag] == [
        (p, halfway[p], ends[p], ends[p] - halfway[p]) for p in (0, 1)
    ]

    remaining = sum(ends.values()) - sum(halfway.values())
    with log.consumer(group, [topic]) as second:
        got = drain(second, remaining)
        assert len(got) == remaining
        for p in (0, 1):
            seen = [r.offset for r in got if r.partition == p]
            assert seen == list(range(halfway[p], ends[p])), f"partition {p} did not resume at its commit"
        second.commit()  # the positions after the last polled records
        for p in (0, 1):
            assert second.position(TopicPartition(topic, p)) == ends[p]
    assert log.committed(group, topic) == ends
    assert all(x.lag == 0 for x in log.lag(group, [topic]))
    assert [x for x in log.lag(group) if x.topic == topic] == log.lag(group, [topic])


def test_seek_moves_the_next_poll(event_log_factory: EventLogFactory, unique_name: Names) -> None:
    log = event_log_factory()
    topic = unique_name("seek")
    log.create_topic(topic, 1)
    log.produce_many(OutgoingRecord(topic, str(i).encode()) for i in range(20))
    log.flush()
    tp = TopicPartition(topic, 0)
    with log.consumer(unique_name("replayer"), [topic]) as consumer:
        assert [r.offset for r in drain(consumer, 20)] == list(range(20))
        assert consumer.position(tp) == 20
        assert consumer.assignment() == {tp}
        consumer.seek(tp, 5)
        assert consumer.position(tp) == 5
        assert [r.offset for r in drain(consumer, 15)] == list(range(5, 20))
        consumer.seek(tp, 0)
        replay = drain(consumer, 20)
        assert [r.value for r in replay] == [str(i).encode() for i in range(20)]
    # Seeking right after joining, before any poll: the seek waits for the assignment.
    with log.consumer(unique_name("jumper"), [topic]) as consumer:
        consumer.seek(tp, 12)
        assert [r.offset for r in drain(consumer, 8)] == list(range(12, 20))


def test_members_of_a_group_split_the_partitions_without_sharing_records(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    topic, group = unique_name("split"), unique_name("workers")
    log.create_topic(topic, 4)
    everything = {TopicPartition(topic, p) for p in range(4)}
    one, two = log.consumer(group, [topic]), log.consumer(group, [topic])
    try:

        def stable() -> bool:
            a, b = one.assignment(), two.assignment()
            return bool(a) and bool(b) and not a & b and a | b == everything

        assert settle([one, two], stable) == []
        log.produce_many(OutgoingRecord(topic, str(i).encode(), f"k{i}".encode()) for i in range(400))
        log.flush()
        got_one: list[Record] = []
        got_two: list[Record] = []
        deadline = time.monotonic() + WAIT_S
        while len(got_one) + len(got_two) < 400 and time.monotonic() < deadline:
            got_one += one.poll(max_records=200, timeout_s=0.2)
            got_two += two.poll(max_records=200, timeout_s=0.2)
        assert got_one
        assert got_two
        assert not set(positions(got_one)) & set(positions(got_two)), "a record went to both members"
        assert len(got_one) + len(got_two) == 400
        assert {r.tp for r in got_one} <= one.assignment()
        assert {r.tp for r in got_two} <= two.assignment()

        # A member that leaves hands its partitions over, at the group's committed offsets.
        one.commit()
        two.commit()
        one.close()
        assert settle([two], lambda: two.assignment() == everything) == []
        log.produce_many(OutgoingRecord(topic, str(i).encode(), f"k{i}".encode()) for i in range(400, 500))
        log.flush()
        rest = drain(two, 100)
        assert sorted(int(r.value or b"") for r in rest) == list(range(400, 500))
    finally:
        one.close()
        two.close()


def test_latest_skips_what_was_there_before_the_member_joined(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    topic = unique_name("latest")
    log.create_topic(topic, 1)
    # One flush per record: Tansu answers "latest" correctly only at record-batch boundaries.
    for i in range(5):
        log.produce(topic, f"old-{i}".encode())
        log.flush()
    with log.consumer(unique_name("tail"), [topic], auto_offset_reset="latest") as consumer:
        settle([consumer], lambda: bool(consumer.assignment()))
        assert consumer.poll(timeout_s=1.0) == []
        for i in range(3):
            log.produce(topic, f"new-{i}".encode())
        log.flush()
        got = drain(consumer, 3)
    assert [(r.offset, r.value) for r in got] == [(5 + i, f"new-{i}".encode()) for i in range(3)]


def test_bad_arguments_are_refused_with_clear_errors(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    # Kafka: a seek waits this long for its partition to be assigned before refusing.
    log = event_log_factory(**({"request_timeout_s": 4} if event_log_factory.backend == "kafka" else {}))
    topic, group = unique_name("strict"), unique_name("strict-group")
    with pytest.raises(InvalidInputError, match="invalid topic name"):
        log.create_topic("orders/2024", 1)
    with pytest.raises(InvalidInputError, match="at least 1 partition"):
        log.create_topic(topic, 0)
    with pytest.raises(InvalidInputError, match="invalid topic name"):
        log.produce("no spaces allowed", b"x")
    missing = unique_name("missing")
    with pytest.raises(NotFoundError):
        log.end_offsets(missing)
    with pytest.raises(NotFoundError):
        log.committed(group, missing)
    with pytest.raises(InvalidInputError, match="at least one topic"):
        log.consumer(group, [])
    with pytest.raises(InvalidInputError, match="auto_offset_reset"):
        log.consumer(group, [topic], auto_offset_reset="middle")  # type: ignore[arg-type]

    log.create_topic(topic, 2)
    with pytest.raises(InvalidInputError, match="partition 5"):
        log.read(topic, 5, 0)
    with pytest.raises(InvalidInputError, match="offsets"):
        log.read(topic, 0, -1)
    with pytest.raises(InvalidInputError, match="max_records"):
        log.read(topic, 0, 0, max_records=0)
    with log.consumer(group, [topic]) as consumer:
        with pytest.raises(InvalidInputError, match="max_records"):
            consumer.poll(max_records=0)
        with pytest.raises(InvalidInputError, match="offsets"):
            consumer.seek(TopicPartition(topic, 0), -1)
        with pytest.raises(InvalidInputError, match="subscribes to"):
            consumer.seek(TopicPartition(unique_name("elsewhere"), 0), 0)
        with pytest.raises(InvalidInputError, match="not assigned"):
            consumer.seek(TopicPartition(topic, 7), 0)
        with pytest.raises(InvalidInputError, match="offsets"):
            consumer.commit({TopicPartition(topic, 0): -3})


PRODUCER_PROCESS = """
import sys
from pathlib import Path

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.model import OutgoingRecord

selection, home, topic, name, count = sys.argv[1:]
with open_event_log(BackendSelection.model_validate_json(selection), home=Path(home)) as log:
    for start in range(0, int(count), 250):
        log.produce_many(
            OutgoingRecord(topic, f"{name}:{i}".encode(), f"{name}-{i % 10}".encode())
            for i in range(start, min(start + 250, int(count)))
        )
        log.flush()
"""


def test_concurrent_producers_in_processes_and_threads_get_dense_unique_offsets(
    event_log_factory: EventLogFactory, unique_name: Names
) -> None:
    log = event_log_factory()
    topic = unique_name("concurrent")
    log.create_topic(topic, 3)
    per_producer = 2000
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PRODUCER_PROCESS,
                event_log_factory.selection().model_dump_json(),
                str(event_log_factory.home),
                topic,
                f"process{n}",
                str(per_producer),
            ]
        )
        for n in range(2)
    ]
    shared = event_log_factory()  # two threads share one log object

    def produce(name: str) -> None:
        for start in range(0, per_producer, 250):
            shared.produce_many(
                OutgoingRecord(topic, f"{name}:{i}".encode(), f"{name}-{i % 10}".encode())
                for i in range(start, start + 250)
            )
            shared.flush()

    threads = [threading.Thread(target=produce, args=(f"thread{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert all(process.wait(WAIT_S * 2) == 0 for process in processes)

    total = 4 * per_producer
    ends = log.end_offsets(topic)
    assert sum(ends.values()) == total
    with log.consumer(unique_name("auditor"), [topic]) as consumer:
        got = drain(consumer, total)
    assert len(got) == total
    assert len({r.value for r in got}) == total, "a record was stored twice"
    for partition, end in ends.items():
        assert sorted(r.offset for r in got if r.partition == partition) == list(range(end))
    last: dict[bytes, int] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        assert record.value is not None
        seq = int(record.value.split(b":")[1])
        assert seq > last.get(record.key, -1), f"{record.key!r} out of order"
        last[record.key] = seq
