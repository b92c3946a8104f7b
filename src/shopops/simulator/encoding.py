"""Turning a region-day's scheduled changes into Debezium records, as the region's connector would.

The hot path of the simulator: per event one ``source`` dict, one :func:`encode_value` and one
:func:`encode_key` call (both orjson), and one record tuple. Each table version's
envelope schema is serialised once, up front. The encoder also assigns what the database would
(LSNs, transaction ids), injects duplicate events, writes a tombstone after every delete, and
remembers where each scheduled schema change first shows in the log.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from shopops.events.debezium import Column, Op, encode_key, encode_value, key_schema, value_schema
from shopops.events.model import partition_for
from shopops.simulator.model import (
    BAD_ROWS,
    SCHEMA_CHANGE_BY_TABLE,
    TABLE_INDEX,
    TABLES,
    SchemaChange,
    SimulationConfig,
)
from shopops.simulator.truth import Truth
from shopops.simulator.world import STREAM_BAD, STREAM_EMIT, Event, stable_id

#: The Debezium release the simulated connectors claim to be.
CONNECTOR_VERSION = "2.7.3.Final"
_OPS = {op.value: op for op in Op}
_DATABASES = ("shop", "payments", "finance", "inventory", "logistics")

RowView = Callable[[dict[str, Any]], dict[str, Any]]
#: Encoded records of one region-day: (topic, value, key, timestamp ms); a ``None`` value is a tombstone.
#: Plain tuples, so that a batch crosses a process boundary cheaply.
Batch = list[tuple[str, bytes | None, bytes, int]]


def _drop_channel(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    del out["channel"]
    return out


def _rename_phone(row: dict[str, Any]) -> dict[str, Any]:
    return {("phone_number" if k == "phone" else k): v for k, v in row.items()}


def _weight_as_text(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "weight_kg": f"{row['weight_kg']:.3f}"}


#: How a stored row looks at each schema version, for the tables with a scheduled change. The
#: generator keeps rows in one shape: orders always carry ``channel`` (dropped before the change),
#: customers carry ``phone`` and shipments a numeric ``weight_kg`` (rewritten after it).
VIEWS: dict[str, tuple[RowView | None, RowView | None]] = {
    "shop.orders": (_drop_channel, None),
    "shop.customers": (None, _rename_phone),
    "logistics.shipments": (None, _weight_as_text),
    "payments.payments": (None, None),
}


def envelope_shape(config: SimulationConfig, topic: str) -> bool:
    """Whether ``topic`` carries JSON with an embedded schema (else plain JSON)."""
    if config.envelope == "mixed":
        # A fixed choice per topic, as when connectors were configured by different teams.
        return zlib.crc32(topic.encode()) % 2 == 0
    return config.envelope == "schema"


@dataclass(slots=True)
class TopicState:
    """Everything the encoder needs about one topic, prepared once."""

    topic: str
    db: str
    table: str
    key_schema: dict[str, Any] | None
    #: Serialised envelope schema per version (index 0: version 1), or ``None`` for plain JSON.
    schema_json: list[bytes | None]
    views: tuple[RowView | None, RowView | None]
    change: SchemaChange | None
    change_us: int | None
    partitions: int
    base_offsets: dict[int, int]
    records: int = 0
    partition_records: list[int] = field(default_factory=list)
    first_v2_ts_ms: int | None = None
    first_v2_key: dict[str, Any] | None = None
    first_v2_offsets: dict[int, int] = field(default_factory=dict)
    records_v2: int = 0


class RegionEncoder:
    """The Debezium connector of one region: encodes that region's events in time order."""

    def __init__(
        self,
        config: SimulationConfig,
        region: str,
        change_us: dict[str, int | None],
        base_offsets: dict[str, dict[int, int]],
        truth: Truth,
    ) -> None:
        self.region = region
        self.truth = truth
        self.seed = config.seed
        self.duplicate_rate = config.effective_rates()["duplicate_event"]
        self.states: list[TopicState] = []
        for t in TABLES:
            topic = t.topic(region)
            with_schema = envelope_shape(config, topic)
            change = SCHEMA_CHANGE_BY_TABLE.get(t.name) if config.schema_changes else None
            versions: list[tuple[Column, ...]] = [t.columns]
            if change is not None:
                versions.append(change.columns_after)
            self.states.append(
                TopicState(
                    topic=topic,
                    db=t.database,
                    table=t.table,
                    key_schema=key_schema(topic, t.key_columns) if with_schema else None,
                    schema_json=[
                        orjson.dumps(value_schema(topic, cols, version=v)) if with_schema else None
                        for v, cols in enumerate(versions, 1)
                    ],
                    views=VIEWS.get(t.name, (None, None)),
                    change=change,
                    change_us=change_us.get(t.name) if change is not None else None,
                    partitions=config.partitions,
                    base_offsets=base_offsets.get(topic, {}),
                    partition_records=[0] * config.partitions,
                )
            )
        # Connector positions: a log sequence number and a transaction counter per database.
        self.lsn = {db: 24_000_000 + 10_000_000 * i for i, db in enumerate(_DATABASES)}
        self.tx = {db: 5_000 + 1_000_000 * i for i, db in enumerate(_DATABASES)}
        self.last_group = dict.fromkeys(_DATABASES, -1)
        self.snapshot_total = 0
        self.snapshot_seen = 0
        self.events = 0
        # Bad rows: per table index, its kinds and rates; and the rows made bad so far (a bad row
        # stays bad: every later change of it carries the same bad value).
        self.bad_rates: dict[int, list[tuple[str, float]]] = {
            TABLE_INDEX[name]: kinds for name, kinds in config.bad_rows.by_table().items()
        }
        self.bad_keys: dict[int, dict[tuple[Any, ...], tuple[str, Any]]] = {tid: {} for tid in self.bad_rates}
        self.n_dangling = 0

    def encode(self, events: list[Event], day: int) -> Batch:
        """Encode one region-day (already in event-time order) into records, duplicates and tombstones."""
        out: Batch = []
        append = out.append
        states = self.states
        lsn, tx, last_group = self.lsn, self.tx, self.last_group
        region = self.region
        dup = self._duplicates(events, day)
        bad = self._bad_draws(events, day) if self.bad_rates else None
        changes = 0
        # The generator reuses one key dict for all changes of a row, so its encoding is cached by
        # identity; the dicts stay alive (in ``events``) for as long as this cache does.
        keys: dict[int, bytes] = {}
        for n, (ts_us, _seq, tid, op, key, before, after, grp) in enumerate(events):
            st = states[tid]
            db = st.db
            if grp != last_group[db]:
                last_group[db] = grp
                tx[db] += 1
            lsn[db] += 184
            ts_ms = ts_us // 1000
            if op == "r":
                self.snapshot_seen += 1
                if self.snapshot_seen == 1:
                    snapshot = "first"
                elif self.snapshot_seen == self.snapshot_total:
                    snapshot = "last"
                else:
                    snapshot = "true"
            else:
                snapshot = "false"
            if bad is not None:
                sticky = self.bad_keys.get(tid)
                if sticky is not None:
                    row_key = tuple(key.values())
                    mutation = sticky.get(row_key)
                    kind = bad[n]
                    if mutation is None and kind is not None and after is not None:
                        mutation = sticky[row_key] = self._inject(kind, st, key, after, ts_us)
                    if mutation is not None:
                        column, bad_value = mutation
                        before = {**before, column: bad_value} if before is not None else None
                        after = {**after, column: bad_value} if after is not None else None
            version = 2 if st.change_us is not None and ts_us >= st.change_us else 1
            view = st.views[version - 1]
            if view is not None:
                before = view(before) if before is not None else None
                after = view(after) if after is not None else None
            source = {
                "version": CONNECTOR_VERSION,
                "connector": "postgresql",
                "name": region,
                "ts_ms": ts_ms,
                "snapshot": snapshot,
                "db": db,
                "schema": "public",
                "table": st.table,
                "txId": tx[db],
                "lsn": lsn[db],
            }
            # The connector processes a change a few milliseconds after the commit.
            emitted_ms = ts_ms + 3 + ts_us % 37
            value = encode_value(_OPS[op], before, after, source, emitted_ms, st.schema_json[version - 1])
            key_bytes = keys.get(id(key))
            if key_bytes is None:
                key_bytes = keys[id(key)] = encode_key(key, st.key_schema)
            record = (st.topic, value, key_bytes, emitted_ms)
            copies = 1
            if dup is not None and dup[n] and op in ("c", "u"):
                copies = 2
                self.truth.pain(
                    "duplicate_event", region, st.topic, key, ts_us, True, op=op, lsn=lsn[db], txId=tx[db]
                )
            tombstone = op == "d"
            if st.change is not None:
                self._track(st, key, key_bytes, ts_ms, version, copies + tombstone)
            for _ in range(copies):
                append(record)
            if tombstone:
                append((st.topic, None, key_bytes, emitted_ms))
            st.records += copies + tombstone
            if op in ("c", "u"):
                changes += 1
        self.events += len(out)
        # Every create or update could have been duplicated: that is the duplicate rate's exposure.
        self.truth.exposures["duplicate_event"] += changes
        return out

    def _duplicates(self, events: list[Event], day: int) -> list[bool] | None:
        """Which events the connector emits twice: drawn per topic, so that a topic's duplicates do
        not shift when another topic (or another region's cross-region payments) has more events."""
        if self.duplicate_rate <= 0:
            return None
        tids = np.fromiter((e[2] for e in events), dtype=np.int64, count=len(events))
        out = np.zeros(len(events), dtype=bool)
        for tid in np.unique(tids).tolist():
            where = np.flatnonzero(tids == tid)
            rng = np.random.default_rng([self.seed, stable_id(self.region), STREAM_EMIT, day, tid])
            out[where] = rng.random(len(where)) < self.duplicate_rate
        result: list[bool] = out.tolist()
        return result

    def _bad_draws(self, events: list[Event], day: int) -> list[str | None]:
        """Which rows written for the first time (snapshot or insert) become bad, and how: drawn
        per table from a stream of its own, so no other output depends on the bad-row rates."""
        out: list[str | None] = [None] * len(events)
        for tid, kinds in self.bad_rates.items():
            where = [i for i, e in enumerate(events) if e[2] == tid and e[3] in ("r", "c")]
            if not where:
                continue
            rng = np.random.default_rng([self.seed, stable_id(self.region), STREAM_BAD, day, tid])
            draws = rng.random(len(where)).tolist()
            for kind, _ in kinds:
                self.truth.exposures[kind] += len(where)
            for i, u in zip(where, draws, strict=True):
                edge = 0.0
                for kind, rate in kinds:
                    edge += rate
                    if u < edge:
                        out[i] = kind
                        break
        return out

    def _inject(
        self, kind: str, st: TopicState, key: dict[str, Any], after: dict[str, Any], ts_us: int
    ) -> tuple[str, Any]:
        """The bad value of a row (``column``, value); recorded in the ground truth."""
        spec = BAD_ROWS[kind]
        good = after.get(spec.column)
        value: Any
        if kind == "bad_null_required":
            value = None
        elif kind == "bad_malformed_email":
            value = str(good).replace("@", ".at.")
        elif kind == "bad_out_of_range_weight":
            value = 999.0
        elif kind == "bad_negative_quantity":
            value = -abs(int(good)) if good else -1
        elif kind == "bad_negative_price":
            value = f"-{good}"
        elif kind == "bad_dangling_reference":
            self.n_dangling += 1
            value = f"{self.region}-o-9{self.n_dangling:08d}"
        else:
            value = "in_limbo"
        self.truth.pain(
            kind,
            self.region,
            st.topic,
            key,
            ts_us,
            True,
            order_id=after.get("order_id") if kind != "bad_dangling_reference" else value,
            table=spec.table,
            column=spec.column,
            check=spec.check,
            good_value=good,
            bad_value=value,
        )
        return spec.column, value

    def _track(
        self, st: TopicState, key: dict[str, Any], key_bytes: bytes, ts_ms: int, version: int, records: int
    ) -> None:
        """Follow per-partition offsets of a topic with a schema change, to record where it shows first."""
        partition = partition_for(key_bytes, st.partitions)
        if version == 2:
            if st.first_v2_ts_ms is None:
                st.first_v2_ts_ms = ts_ms
                st.first_v2_key = key
            if partition not in st.first_v2_offsets:
                st.first_v2_offsets[partition] = (
                    st.base_offsets.get(partition, 0) + st.partition_records[partition]
                )
            st.records_v2 += records
        st.partition_records[partition] += records

    def per_topic(self) -> dict[str, int]:
        return {st.topic: st.records for st in self.states}
