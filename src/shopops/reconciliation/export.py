"""Current-state input tables built from the CDC streams of the event log.

Reconciliation reads orders, payments, ledger entries and FX rates either from the lakehouse
(the ``lake`` source) or, by default, as Parquet files built here straight from the event log:
every change event of the four topics of a region is applied in log order (inserts and updates
replace the row, deletes remove it), and a change event delivered twice (same key and same
source LSN) is applied once and listed in ``duplicates``. Each file is written to a temporary name
and renamed, so a reader never sees half a table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shopops.core.errors import NotFoundError
from shopops.events.debezium import DebeziumDecodeError, Op, decode
from shopops.events.port import EventLog
from shopops.reconciliation.tables import CDC_TOPICS, SCHEMAS

_BATCH = 5_000
_AMOUNTS = {"total", "amount", "fee", "settlement_amount", "refunded_amount"}
_FLOATS = {"settlement_fx_rate", "rate"}


def _convert(table: str, region: str, rows: Iterable[dict[str, Any]]) -> pa.Table:
    schema = SCHEMAS[table]
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for row in rows:
        for name, values in columns.items():
            if name == "region":
                values.append(region)
                continue
            value = row.get(name)
            if value is not None:
                if name in _AMOUNTS:
                    value = Decimal(value)
                elif name in _FLOATS:
                    value = float(value)
            values.append(value)
    return pa.table(
        {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()}
    )


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def export_region(log: EventLog, region: str, out_dir: Path) -> dict[str, int]:
    """Build the four tables (and ``duplicates``) of ``region`` under ``out_dir/region``."""
    counts: dict[str, int] = {}
    duplicates: list[dict[str, Any]] = []
    known = {t.name for t in log.list_topics()}
    for table, (suffix, id_column) in CDC_TOPICS.items():
        topic = f"{region}.{suffix}"
        if topic not in known:
            raise NotFoundError(
                f"topic {topic} does not exist", hint="run `shopops simulate` or point at the CDC topics"
            )
        state: dict[bytes, dict[str, Any]] = {}
        seen: dict[tuple[bytes, Any, str], int] = {}
        for record in log.read_all(topic, _BATCH):
            if record.key is None:
                continue
            try:
                event = decode(record)
            except DebeziumDecodeError:
                continue  # malformed events are the drift watch's and the lake's to quarantine
            if event.op is None:
                continue
            lsn = event.source.get("lsn")
            if lsn is not None:
                mark = (record.key, lsn, event.op.value)
                copies = seen.get(mark, 0)
                seen[mark] = copies + 1
                if copies:
                    row = event.row or {}
                    duplicates.append(
                        {
                            "table": table,
                            "record_id": str(row.get(id_column, record.key.decode())),
                            "copies": copies + 1,
                            "event_at": (event.source.get("ts_ms") or record.timestamp_ms) * 1000,
                            "detail": orjson.dumps(
                                {
                                    "topic": topic,
                                    "partition": record.partition,
                                    "offset": record.offset,
                                    "lsn": lsn,
                                    "op": event.op.value,
                                }
                            ).decode(),
                        }
                    )
                    continue
            if event.op is Op.DELETE:
                state.pop(record.key, None)
            elif event.after is not None:
                state[record.key] = event.after
        if table == "fx_rates":
            rows = [{**r, "rate_date": int(r["rate_date"])} for r in state.values()]
        else:
            rows = list(state.values())
        _write(_convert(table, region, rows), out_dir / region / f"{table}.parquet")
        counts[table] = len(rows)
    _write(_convert("duplicates", region, duplicates), out_dir / region / "duplicates.parquet")
    counts["duplicates"] = len(duplicates)
    return counts


def export_from_events(
    log: EventLog,
    regions: Iterable[str],
    out_dir: Path,
    progress: Callable[[str, dict[str, int]], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Build the input tables of every region; returns row counts per region and table."""
    result: dict[str, dict[str, int]] = {}
    for region in regions:
        result[region] = export_region(log, region, out_dir)
        if progress is not None:
            progress(region, result[region])
    return result
