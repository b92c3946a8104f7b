"""An independent reference for silver: the final state per key, folded from the raw log in plain
Python (orjson only — none of the code under test), and a comparison with what silver holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pyarrow as pa

from shopops.events.model import Record
from shopops.events.port import EventLog

DELETED = None
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1)
_METADATA = {"_region", "_key", "_op", "_lsn", "_source_ts_ms", "_partition", "_offset"}


def _payload(raw: bytes) -> Any:
    doc = orjson.loads(raw)
    if isinstance(doc, dict) and "schema" in doc and "payload" in doc:
        return doc["payload"]
    return doc


def _key_text(raw: bytes) -> str:
    """The key's payload as JSON text (the connector writes compact JSON)."""
    doc = orjson.loads(raw)
    if isinstance(doc, dict) and "schema" in doc and "payload" in doc:
        return orjson.dumps(doc["payload"]).decode()
    return raw.decode()


def fold(
    log: EventLog,
    topic: str,
    skip: Callable[[dict[str, Any]], bool] | None = None,
    refused: Callable[[Record], bool] | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Key (its payload as JSON text) -> final after-image, or ``None`` if the key was deleted.

    Debezium semantics: per key, the event with the highest ``source.lsn`` wins; a duplicate
    (same LSN) or an older replay changes nothing; a tombstone deletes the key. Events whose
    after-image ``skip`` says so (rejected by a check), and records ``refused`` says so (their
    schema refused by the registry), are left out.
    """
    state: dict[str, dict[str, Any] | None] = {}
    last_lsn: dict[str, int] = {}
    for partition, end in sorted(log.end_offsets(topic).items()):
        offset = 0
        while offset < end:
            records = log.read(topic, partition, offset, 2_000)
            if not records:
                break
            for record in records:
                assert record.key is not None
                key = _key_text(record.key)
                if record.value is None:
                    if key in state:
                        state[key] = DELETED
                    continue
                if refused is not None and refused(record):
                    continue
                payload = _payload(record.value)
                if skip is not None and payload["after"] is not None and skip(payload["after"]):
                    continue
                lsn = payload["source"]["lsn"]
                if key in last_lsn and lsn <= last_lsn[key]:
                    continue
                last_lsn[key] = lsn
                state[key] = payload["after"] if payload["op"] in ("c", "u", "r") else DELETED
            offset = records[-1].offset + 1
    return state


def refused_by_backward(record: Record) -> bool:
    """Whether the registry refuses ``record``'s schema at its default level (BACKWARD), for the
    simulator's schema changes: the rename of ``shop.customers.phone`` and the change of
    ``logistics.shipments.weight_kg`` from double to string are incompatible, the other two are not
    (docs/schemas.md). A declared schema is judged for rows and deletes; a plain-JSON row by its
    columns (silver asks about plain rows that bring a column change; deletes carry no row)."""
    if record.value is None:
        return False
    doc = orjson.loads(record.value)
    if isinstance(doc, dict) and "schema" in doc and "payload" in doc:
        after = next(f for f in doc["schema"]["fields"] if f["field"] == "after")
        types = {f["field"]: f["type"] for f in after["fields"]}
        return "phone_number" in types or types.get("weight_kg") == "string"
    row = doc.get("after")
    return isinstance(row, dict) and ("phone_number" in row or isinstance(row.get("weight_kg"), str))


def _plain(value: Any) -> Any:
    """A silver value back in its JSON form (timestamps as microseconds, dates as days)."""
    if isinstance(value, dt.datetime):
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return (value - _EPOCH_DAY).days
    return value


def differences(expected: dict[str, dict[str, Any] | None], silver: pa.Table, limit: int = 10) -> list[str]:
    """What differs between the reference and silver's live rows (at most ``limit`` lines)."""
    rows = silver.to_pylist()
    problems: list[str] = []
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["_key"] in by_key:
            problems.append(f"duplicate key {row['_key']}")
        by_key[row["_key"]] = row
    live = {k: v for k, v in expected.items() if v is not None}
    for key in sorted(set(live) - set(by_key))[:limit]:
        problems.append(f"missing {key}")
    for key in sorted(set(by_key) - set(live))[:limit]:
        problems.append(f"unexpected {key} ({by_key[key]['_op']})")
    for key in sorted(set(live) & set(by_key)):
        want, got = live[key], by_key[key]
        for column, value in want.items():
            versions = [got.get(column)] + [got.get(f"{column}__v{n}") for n in range(2, 5)]
            have = next((_plain(v) for v in versions if v is not None), None)
            if have != value:
                problems.append(f"{key}.{column}: silver {have!r}, expected {value!r}")
        for column, value in got.items():
            base = column.split("__v")[0]
            if column not in _METADATA and base not in want and value is not None:
                problems.append(f"{key}.{column}: silver {value!r}, expected no value")
        if len(problems) >= limit:
            break
    return problems[:limit]


def topics_of(log: EventLog, regions: Iterable[str]) -> list[str]:
    wanted = tuple(f"{r}." for r in regions)
    return [t.name for t in log.list_topics() if t.name.startswith(wanted) and t.name.count(".") == 2]
