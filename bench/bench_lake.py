"""Lake ingestion: change events/s from the event log into Iceberg bronze tables, end to end.

    python bench/bench_lake.py [--events 300000] [--size 400] [--batch 50000] [--repeat 2] [--json out.json]

For each event log (the embedded SQLite log, and the Kafka backend on a Tansu broker it starts on
a free loopback port) it writes ``--events`` Debezium-sized records (``--size`` bytes) over 3
topics of 3 partitions, then measures, alternately:

- **baseline**: a raw read-and-discard loop over the same topics (``EventLog.read`` partition by
  partition, touching each record's key and value) — what any reader of the log pays;
- **ingest**: ``LakeIngestor.run_once`` into a fresh SQLite-catalog warehouse: read, build the
  Arrow batch, write the Parquet file and commit the snapshot with its position, ``--batch``
  records per commit.

Targets (issue): ingestion >= 0.5x the raw loop and >= 50k events/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from shopops.core.logging import configure_logging
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.port import EventLog
from shopops.events.tansu import start_tansu
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor

console = Console()
TOPICS = ["vn.shop.orders", "vn.payments.payments", "vn.finance.ledger_entries"]


def _fill(log: EventLog, events: int, size: int) -> None:
    pad = "x" * max(size - 200, 0)
    per_topic = events // len(TOPICS)
    for topic in TOPICS:
        log.create_topic(topic, 3)
        for i in range(per_topic):
            value = orjson.dumps(
                {"payload": {"op": "c", "after": {"id": i, "note": pad}, "source": {"lsn": i}, "ts_ms": i}}
            )
            log.produce(topic, value, key=orjson.dumps({"id": i}), timestamp_ms=1_000 + i)
    log.flush()


def _raw_read(log: EventLog) -> tuple[float, int]:
    started = time.perf_counter()
    n = 0
    for topic in TOPICS:
        for partition, end in log.end_offsets(topic).items():
            offset = 0
            while offset < end:
                records = log.read(topic, partition, offset, 5_000)
                if not records:
                    break
                for r in records:
                    n += len(r.value or b"") > 0 and r.key is not None
                offset = records[-1].offset + 1
    return time.perf_counter() - started, n


def _ingest(log: EventLog, home: Path, batch: int) -> tuple[float, int]:
    catalog = open_catalog(None, None, home)
    ingestor = LakeIngestor(log, catalog, topics="|".join(TOPICS), batch_records=batch)
    started = time.perf_counter()
    n = ingestor.run_once()
    return time.perf_counter() - started, n


def _measure(name: str, log: EventLog, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    raw, ingest = [], []
    for i in range(args.repeat):
        seconds, n = _raw_read(log)
        raw.append(n / seconds)
        seconds, n = _ingest(log, tmp / f"{name}-{i}", args.batch)
        assert n == args.events // len(TOPICS) * len(TOPICS), n
        ingest.append(n / seconds)
    return {"log": name, "raw_read_per_s": raw, "ingest_per_s": ingest, "ratio": max(ingest) / max(raw)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        log = open_event_log(BackendSelection(type="sqlite"), home=tmp / "sqlite")
        with console.status("writing the sqlite log"):
            _fill(log, args.events, args.size)
        results.append(_measure("sqlite", log, args, tmp))
        log.close()
        with start_tansu() as broker:
            selection = BackendSelection(type="kafka", bootstrap_servers=broker.bootstrap_servers)
            log = open_event_log(selection, home=tmp / "kafka")
            with console.status("writing the kafka log"):
                _fill(log, args.events, args.size)
            results.append(_measure("kafka", log, args, tmp))
            log.close()
    table = Table(title=f"lake ingestion, {args.events:,} events of ~{args.size} B, {os.cpu_count()} cores")
    for column in ("event log", "raw read events/s (best)", "ingest events/s (best)", "ingest / raw"):
        table.add_column(column, justify="left" if column == "event log" else "right")
    for r in results:
        table.add_row(
            r["log"],
            f"{max(r['raw_read_per_s']):,.0f}",
            f"{max(r['ingest_per_s']):,.0f}",
            f"{r['ratio']:.2f}x",
        )
    console.print(table)
    for r in results:
        ok = max(r["ingest_per_s"]) >= 50_000 and r["ratio"] >= 0.5
        console.print(f"{r['log']}: target >= 50k/s and >= 0.5x raw: {'met' if ok else 'missed'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
