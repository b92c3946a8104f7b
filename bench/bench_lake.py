"""Lake ingestion: change events/s from the event log into Iceberg bronze and silver, end to end.

    python bench/bench_lake.py [--events 300000] [--size 400] [--keys 0.4] [--envelope plain|schema]
                               [--batch 50000] [--repeat 2] [--logs sqlite,kafka] [--checks]
                               [--json out.json]

For each event log (the embedded SQLite log, and the Kafka backend on a Tansu broker it starts on
a free loopback port) it writes ``--events`` Debezium change events of about ``--size`` bytes over
3 topics of 3 partitions: per topic, ``--keys`` times events distinct keys, each inserted (``c``) then
updated (``u``) in key order, so silver replaces rows in every batch. Then, alternately:

- **raw**: a read-and-discard loop over the same topics (``EventLog.read`` partition by
  partition, touching each record's key and value) — what any reader of the log pays: the baseline;
- **bronze**: ``LakeIngestor.run_once`` with bronze only, into a fresh SQLite-catalog warehouse;
- **silver**: silver only (decode, type, merge per key, commit with the position);
- **both**: bronze and silver from one read of the log, what ``shopops lake ingest`` does;
- **checked** (with ``--checks``): ``both`` with the data-contract checks on every silver batch
  (a :class:`~shopops.quality.checker.ContractChecker` over a contract of the bench's columns:
  required columns, a primary key, accepted values, a pattern and a range; nothing fails), what
  ``shopops up`` runs when checks are on.

Targets (issue): end to end >= 50k events/s and >= 0.5x the raw loop, on 2 cores. Beside the
rates it prints each stage's process CPU seconds (every thread), which other work on a shared
machine disturbs less than rates.
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
from shopops.events.debezium import Column, Op, encode_key, encode_value, value_schema
from shopops.events.port import EventLog
from shopops.events.tansu import start_tansu
from shopops.lake.catalog import open_catalog
from shopops.lake.checks import BatchChecker
from shopops.lake.ingest import LakeIngestor

console = Console()
TOPICS = ["vn.shop.orders", "vn.payments.payments", "vn.finance.ledger_entries"]
COLUMNS = [
    Column("id", "int64"),
    Column("status", "string"),
    Column("amount", "string"),
    Column("quantity", "int32"),
    Column("created_at", "int64", logical="io.debezium.time.MicroTimestamp"),
    Column("note", "string"),
]
STAGES = {"bronze": (True, False), "silver": (False, True), "both": (True, True)}
CHECKED = "checked"
#: The contract of every bench dataset (its columns, as ``_fill`` writes them).
CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: bench-{id}
name: Bench {dataset}
version: 1.0.0
status: active
schema:
  - name: {table}
    physicalName: {dataset}
    physicalType: table
    logicalType: object
    properties:
      - {{name: id, logicalType: integer, physicalType: int64, primaryKey: true, primaryKeyPosition: 1,
         required: true}}
      - name: status
        logicalType: string
        physicalType: string
        required: true
        logicalTypeOptions: {{pattern: '^(placed|s[0-9]+)$'}}
      - name: amount
        logicalType: string
        physicalType: string
        required: true
        logicalTypeOptions: {{pattern: '^[0-9]+\\.[0-9]{{2}}$'}}
      - name: quantity
        logicalType: integer
        physicalType: int32
        required: true
        logicalTypeOptions: {{minimum: 0, maximum: 6}}
      - {{name: created_at, logicalType: {created_at}, physicalType: {created_at_physical}, required: true}}
      - {{name: note, logicalType: string, physicalType: string}}
"""


def _checker(envelope: str) -> BatchChecker:
    """A contract checker over the bench datasets' contracts (every event passes them). Plain JSON
    carries no logical types: ``created_at`` is then an integer."""
    from shopops.quality.checker import ContractChecker
    from shopops.quality.contracts import parse_contract

    contracts = []
    for topic in TOPICS:
        _region, database, table = topic.split(".")
        dataset = f"{database}.{table}"
        kind = ("timestamp", "timestamp") if envelope == "schema" else ("integer", "int64")
        text = CONTRACT.format(
            id=dataset.replace(".", "-"),
            dataset=dataset,
            table=table,
            created_at=kind[0],
            created_at_physical=kind[1],
        )
        parsed = parse_contract(text)
        if parsed.contract is None or not parsed.ok:
            raise SystemExit(f"bench contract of {dataset}: {[i.message for i in parsed.issues]}")
        contracts.append(parsed.contract)
    return ContractChecker(contracts)


def _fill(log: EventLog, events: int, size: int, keys: float, envelope: str) -> None:
    per_topic = events // len(TOPICS)
    distinct = max(1, int(per_topic * keys))
    for n, topic in enumerate(TOPICS):
        log.create_topic(topic, 3)
        schema = orjson.dumps(value_schema(topic, COLUMNS)) if envelope == "schema" else None
        base = encode_value(Op.CREATE, None, {"id": 0, "note": ""}, {}, 0)
        pad = "x" * max(size - len(base) - 170, 0)
        for i in range(per_topic):
            key = i % distinct
            row = {
                "id": key,
                "status": "placed" if i < distinct else f"s{i // distinct}",
                "amount": f"{(key * 37) % 100000}.{i % 100:02d}",
                "quantity": i % 7,
                "created_at": 1_767_225_600_000_000 + i * 1_000,
                "note": pad,
            }
            source = {"name": "vn", "db": topic.split(".")[1], "ts_ms": 1_000 + i, "lsn": n * 10**9 + i}
            op = Op.CREATE if i < distinct else Op.UPDATE
            value = encode_value(op, None, row, source, 1_000 + i, schema)
            log.produce(topic, value, key=encode_key({"id": key}), timestamp_ms=1_000 + i)
    log.flush()


def _raw_read(log: EventLog) -> tuple[float, float, int]:
    """Seconds, process CPU seconds and records of one read-and-discard loop."""
    started, cpu = time.perf_counter(), time.process_time()
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
    return time.perf_counter() - started, time.process_time() - cpu, n


def _ingest(
    log: EventLog, home: Path, batch: int, stage: str, checker: BatchChecker | None = None
) -> tuple[float, float, int]:
    """One ``run_once`` of ``stage`` into a fresh warehouse (``checker``: the checks, built once
    outside the timing, as a long-running worker does): seconds, process CPU seconds (every
    thread, DuckDB's and Arrow's included) and records."""
    bronze, silver = STAGES.get(stage, (True, True))
    catalog = open_catalog(None, None, home)
    ingestor = LakeIngestor(
        log,
        catalog,
        topics="|".join(TOPICS),
        batch_records=batch,
        bronze=bronze,
        silver=silver,
        checker=checker,
    )
    started, cpu = time.perf_counter(), time.process_time()
    n = ingestor.run_once()
    return time.perf_counter() - started, time.process_time() - cpu, n


def _measure(name: str, log: EventLog, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    stages = _stages(args)
    out: dict[str, Any] = {"log": name, "raw_per_s": [], "raw_cpu_s": []}
    out |= {f"{s}_per_s": [] for s in stages} | {f"{s}_cpu_s": [] for s in stages}
    expected = args.events // len(TOPICS) * len(TOPICS)
    for i in range(args.repeat):
        seconds, cpu, n = _raw_read(log)
        out["raw_per_s"].append(n / seconds)
        out["raw_cpu_s"].append(cpu)
        for stage in stages:
            checker = _checker(args.envelope) if stage == CHECKED else None
            seconds, cpu, n = _ingest(log, tmp / f"{name}-{stage}-{i}", args.batch, stage, checker)
            assert n == expected, (stage, n)
            out[f"{stage}_per_s"].append(n / seconds)
            out[f"{stage}_cpu_s"].append(cpu)
    best_raw = max(out["raw_per_s"])
    out["ratio"] = {stage: max(out[f"{stage}_per_s"]) / best_raw for stage in stages}
    return out


def _stages(args: argparse.Namespace) -> list[str]:
    return [*STAGES, CHECKED] if args.checks else list(STAGES)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--keys", type=float, default=0.4, help="distinct keys per event")
    parser.add_argument("--envelope", choices=("plain", "schema"), default="plain")
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--logs", default="sqlite,kafka")
    parser.add_argument("--checks", action="store_true", help="also bronze+silver with contract checks")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    logs = args.logs.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if "sqlite" in logs:
            log = open_event_log(BackendSelection(type="sqlite"), home=tmp / "sqlite")
            with console.status("writing the sqlite log"):
                _fill(log, args.events, args.size, args.keys, args.envelope)
            results.append(_measure("sqlite", log, args, tmp))
            log.close()
        if "kafka" in logs:
            with start_tansu() as broker:
                selection = BackendSelection(type="kafka", bootstrap_servers=broker.bootstrap_servers)
                log = open_event_log(selection, home=tmp / "kafka")
                with console.status("writing the kafka log"):
                    _fill(log, args.events, args.size, args.keys, args.envelope)
                results.append(_measure("kafka", log, args, tmp))
                log.close()
    table = Table(
        title=f"lake ingestion, {args.events:,} {args.envelope} events of ~{args.size} B, "
        f"{os.cpu_count()} cores (best of {args.repeat}; x = / raw)"
    )
    stages = _stages(args)
    titles = {"bronze": "bronze/s", "silver": "silver/s", "both": "bronze+silver/s", CHECKED: "+ checks/s"}
    for column in ("event log", "raw read/s", *(titles[s] for s in stages)):
        table.add_column(column, justify="left" if column == "event log" else "right")
    for r in results:
        table.add_row(
            r["log"],
            f"{max(r['raw_per_s']):,.0f}",
            *(f"{max(r[f'{s}_per_s']):,.0f} ({r['ratio'][s]:.2f}x)" for s in stages),
        )
    console.print(table)
    for r in results:
        # CPU seconds depend far less on what else runs on the machine than rates do.
        cpu = ", ".join(f"{s} {min(r[f'{s}_cpu_s']):.2f}" for s in ["raw", *stages])
        console.print(f"{r['log']} CPU seconds per run (least of {args.repeat}): {cpu}")
    for r in results:
        for stage in stages:
            ok = max(r[f"{stage}_per_s"]) >= 50_000 and r["ratio"][stage] >= 0.5
            console.print(f"{r['log']} {stage}: target >= 50k/s and >= 0.5x raw: {'met' if ok else 'missed'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
