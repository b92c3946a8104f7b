"""Event-log throughput: the sqlite and kafka backends against a raw confluent-kafka loop.

    python bench/bench_events.py [--messages N] [--size 512] [--repeat 3] [--json out.json]

It starts its own Tansu broker on a free loopback port. Each figure is the best of ``--repeat``
runs (this machine is shared and noisy; the best run is the one least disturbed). The baseline is
measured in the same run, on the same broker, with the same producer settings:

- raw produce: ``Producer.produce(topic, value, key)`` in a loop (``poll`` when the queue is
  full), then ``flush()``;
- raw consume: ``Consumer.consume(5000, 1.0)`` batches, checking each message's error and taking
  its value.

Targets: sqlite produce >= 150k records/s and consume >= 300k records/s; kafka backend >= 0.7x the
raw loop for both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Producer as RawProducer
from confluent_kafka import TopicPartition as RawTopicPartition
from rich.console import Console
from rich.table import Table

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.model import OutgoingRecord, TopicPartition
from shopops.events.port import Consumer, EventLog
from shopops.events.tansu import start_tansu

PARTITIONS = 3
BATCH = 5000
KEYS = 10_000
# The producer settings of the kafka backend, so that the raw loop differs only by the wrapper.
RAW_PRODUCER = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 10,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "delivery.report.only.error": True,
}
TARGETS = {
    ("sqlite", "produce"): ("records/s", 150_000.0),
    ("sqlite", "consume"): ("records/s", 300_000.0),
    ("kafka", "produce"): ("ratio", 0.7),
    ("kafka", "consume"): ("ratio", 0.7),
}

console = Console()


@dataclass
class Result:
    backend: str
    operation: str
    runs: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return max(self.runs)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(work: Callable[[], int]) -> float:
    start = time.perf_counter()
    count = work()
    return rate(count, time.perf_counter() - start)


def drain(consumer: Consumer, count: int) -> float:
    """Records/s from the first record to the last (group joins are not throughput)."""
    got = 0
    first: float | None = None
    deadline = time.monotonic() + 120
    while got < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumed {got} of {count} records in 120 s")
        records = consumer.poll(max_records=BATCH, timeout_s=1.0)
        if records and first is None:
            first = time.perf_counter()
        got += len(records)
    assert first is not None
    return rate(count, time.perf_counter() - first)


def make_records(topic: str, count: int, size: int) -> list[OutgoingRecord]:
    value = os.urandom(size)
    return [OutgoingRecord(topic, value, b"key-%d" % (i % KEYS)) for i in range(count)]


def bench_backend(
    log: EventLog, name: str, count: int, size: int, repeat: int, results: dict[tuple[str, str], Result]
) -> str:
    """Produce into a fresh topic per run; consume the first one ``repeat`` times (seeking back)."""
    produce = results.setdefault((name, "produce"), Result(name, "produce"))
    consume = results.setdefault((name, "consume"), Result(name, "consume"))
    first_topic = ""
    for _ in range(repeat):
        topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        log.create_topic(topic, PARTITIONS)
        records = make_records(topic, count, size)

        def work(records: list[OutgoingRecord] = records) -> int:
            produced = log.produce_many(records)
            log.flush(120)
            return produced

        produce.runs.append(timed(work))
        first_topic = first_topic or topic
    with log.consumer(f"bench-{uuid.uuid4().hex[:8]}", [first_topic]) as consumer:
        for run in range(repeat):
            if run:
                for tp in consumer.assignment():
                    consumer.seek(tp, 0)
            consume.runs.append(drain(consumer, count))
    return first_topic


def bench_raw(
    bootstrap: str,
    consume_topic: str,
    count: int,
    size: int,
    repeat: int,
    results: dict[tuple[str, str], Result],
) -> None:
    produce = results.setdefault(("raw kafka", "produce"), Result("raw kafka", "produce"))
    consume = results.setdefault(("raw kafka", "consume"), Result("raw kafka", "consume"))
    value = os.urandom(size)
    keys = [b"key-%d" % (i % KEYS) for i in range(count)]
    for _ in range(repeat):
        topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
        producer = RawProducer({"bootstrap.servers": bootstrap, **RAW_PRODUCER})

        def work(producer: RawProducer = producer, topic: str = topic) -> int:
            send = producer.produce
            for key in keys:
                try:
                    send(topic, value, key)
                except BufferError:
                    producer.poll(0.05)
                    send(topic, value, key)
            if producer.flush(120):
                raise RuntimeError("raw producer did not deliver everything")
            return count

        produce.runs.append(timed(work))
    consumer = RawConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    try:
        for _ in range(repeat):
            consumer.assign([RawTopicPartition(consume_topic, p, 0) for p in range(PARTITIONS)])
            got = 0
            first: float | None = None
            while got < count:
                for message in consumer.consume(BATCH, 1.0):
                    if message.error() is not None:
                        continue
                    message.value()
                    got += 1
                if got and first is None:
                    first = time.perf_counter()
            assert first is not None
            consume.runs.append(rate(count, time.perf_counter() - first))
    finally:
        consumer.close()


def report(results: dict[tuple[str, str], Result], count: int, size: int) -> list[dict[str, Any]]:
    table = Table(
        title=f"event log throughput — {count:,} records of {size} bytes, best of {len(next(iter(results.values())).runs)}"
    )
    for column in ("backend", "operation", "records/s", "MB/s", "vs raw kafka", "target"):
        table.add_column(column, justify="left" if column in ("backend", "operation", "target") else "right")
    rows: list[dict[str, Any]] = []
    for (backend, operation), result in results.items():
        raw = results.get(("raw kafka", operation))
        ratio = result.best / raw.best if raw else None
        target = TARGETS.get((backend, operation))
        verdict = ""
        passed: bool | None = None
        if target is not None:
            kind, threshold = target
            value = ratio if kind == "ratio" else result.best
            passed = value is not None and value >= threshold
            shown = f"{threshold:.1f}x raw" if kind == "ratio" else f"{threshold / 1000:.0f}k/s"
            verdict = f"{'[green]met' if passed else '[red]missed'} (>= {shown})"
        table.add_row(
            backend,
            operation,
            f"{result.best:,.0f}",
            f"{result.best * size / 1e6:,.1f}",
            f"{ratio:.2f}x" if ratio is not None else "",
            verdict,
        )
        rows.append(
            {
                **asdict(result),
                "records_per_s": result.best,
                "ratio_vs_raw_kafka": ratio,
                "target_met": passed,
            }
        )
    console.print(table)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="records per run (default 100000)")
    parser.add_argument("--size", type=int, default=512, help="value size in bytes (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    count, size, repeat = args.messages, args.size, max(1, args.repeat)
    results: dict[tuple[str, str], Result] = {}
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-events-") as home:
        console.print(f"sqlite backend ({count:,} records x {repeat})…")
        with open_event_log(BackendSelection(type="sqlite"), home=Path(home)) as log:
            bench_backend(log, "sqlite", count, size, repeat, results)

    console.print("starting Tansu…")
    with start_tansu() as broker:
        selection = BackendSelection(
            type="kafka",
            bootstrap_servers=broker.bootstrap_servers,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        console.print(f"kafka backend and raw confluent-kafka loops on {broker.bootstrap_servers}…")
        with open_event_log(selection, home=Path(tempfile.gettempdir())) as log:
            topic = bench_backend(log, "kafka", count, size, repeat, results)
        bench_raw(broker.bootstrap_servers, topic, count, size, repeat, results)

    order = [("sqlite", "produce"), ("sqlite", "consume"), ("kafka", "produce"), ("kafka", "consume")]
    order += [("raw kafka", "produce"), ("raw kafka", "consume")]
    rows = report({key: results[key] for key in order}, count, size)
    elapsed = time.perf_counter() - started
    console.print(f"done in {elapsed:.1f} s")
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "benchmark": "events",
                    "messages": count,
                    "size": size,
                    "repeat": repeat,
                    "seconds": elapsed,
                    "results": rows,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
