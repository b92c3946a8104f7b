"""The embedded event log: topics, partitions, offsets and consumer groups in one SQLite file.

Several processes and threads can share one database file. Appends take SQLite's write lock
(``BEGIN IMMEDIATE``) and give offsets inside that transaction, so offsets stay dense and unique
whoever writes. Reads never block writes (WAL mode).

Durability: WAL with ``synchronous=NORMAL``. A committed transaction is in the WAL file (the
kernel's page cache) before ``COMMIT`` returns, so flushed records and committed offsets survive
the process being killed, SIGKILL included; only a power loss or kernel crash can lose the last
transactions, which ``FULL`` (an fsync per commit) would also cover at several times the cost.
Machines that need that guarantee run the kafka backend with replication.

Consumer groups: each member has a row with a heartbeat (refreshed by a background thread). The
partitions of the topics the group subscribes to are split among the live members in a fixed
order (topics and partitions sorted, members sorted by id, round-robin). A partition changes
hands explicitly: its owner releases it on its next :meth:`SqliteConsumer.poll` after the group
changed, and only then may the new owner claim it. So one partition never has two owners and,
once the assignment is stable, no record is delivered to two members. A member whose heartbeat is
older than ``session_timeout_s`` (its process died) is removed and its partitions go to the
others, starting at the group's committed offsets.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import struct
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import count, repeat
from operator import add, itemgetter
from pathlib import Path
from typing import Any

from pydantic import Field

from shopops.core.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from shopops.core.logging import get_logger
from shopops.core.registry import BackendConfig
from shopops.core.sqlite import connect_wal
from shopops.events.model import (
    Headers,
    OutgoingRecord,
    Record,
    TopicInfo,
    TopicPartition,
    validate_partition_count,
    validate_subscription,
    validate_topic_name,
)
from shopops.events.port import Consumer, EventLog, OffsetReset

log = get_logger(__name__)

SCHEMA_VERSION = 1

#: produce() flushes by itself once this many records wait in memory.
AUTO_FLUSH_RECORDS = 10_000

#: A member that has not polled for this long stops heartbeating and so loses its partitions,
#: as Kafka's ``max.poll.interval.ms`` does: a stuck worker must not hold partitions forever.
MAX_POLL_INTERVAL_S = 300.0

# 16 KiB pages hold ~30 records of 512 bytes: fewer page splits per append and a third more insert
# throughput than 4 KiB pages. Only takes effect when the file is created.
_PAGE_SIZE = 16384
# Checkpoint the WAL every ~32 MiB instead of every 4 MiB: checkpoints copy every page a second
# time, and doing it in larger, rarer steps is cheaper for an append-only workload.
_WAL_AUTOCHECKPOINT_PAGES = 2048
_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (
    name       TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
-- One row per partition: its number for the records table and its next offset.
CREATE TABLE IF NOT EXISTS partitions (
    pid         INTEGER PRIMARY KEY,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    UNIQUE (topic, partition)
);
CREATE TABLE IF NOT EXISTS records (
    pid     INTEGER NOT NULL,
    offset  INTEGER NOT NULL,
    key     BLOB,
    value   BLOB,
    ts      INTEGER NOT NULL,
    headers BLOB,
    PRIMARY KEY (pid, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    committed_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, pid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    group_id   TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
    group_id     TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    topics       TEXT NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    joined_ms    INTEGER NOT NULL,
    client       TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_owners (
    group_id  TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (group_id, pid)
) WITHOUT ROWID;
"""

_INSERT_RECORD = "INSERT INTO records (key, value, ts, headers, pid, offset) VALUES (?, ?, ?, ?, ?, ?)"
_SELECT_RECORDS = (
    "SELECT offset, key, value, ts, headers FROM records "
    "WHERE pid = ? AND offset >= ? ORDER BY offset LIMIT ?"
)
_HEADER = struct.Struct("<II")

#: A buffered record: key, value, timestamp, encoded headers (the order of _INSERT_RECORD).
_Row = tuple[bytes | None, bytes | None, int, bytes | None]

_new_record = partial(tuple.__new__, Record)
_col0, _col1, _col2, _col3, _col4 = (itemgetter(i) for i in range(5))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode_headers(headers: Headers) -> bytes:
    parts: list[bytes] = []
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, bytes | bytearray):
            raise InvalidInputError(
                f"invalid header {name!r}: names must be str and values bytes",
                hint="encode header values, e.g. value.encode()",
            )
        raw_name = name.encode()
        parts.append(_HEADER.pack(len(raw_name), len(value)))
        parts.append(raw_name)
        parts.append(bytes(value))
    return b"".join(parts)


def _decode_headers(blob: bytes | None) -> Headers:
    if not blob:
        return ()
    out: list[tuple[str, bytes]] = []
    pos, end = 0, len(blob)
    while pos < end:
        name_len, value_len = _HEADER.unpack_from(blob, pos)
        pos += _HEADER.size
        name = blob[pos : pos + name_len].decode()
        pos += name_len
        out.append((name, blob[pos : pos + value_len]))
        pos += value_len
    return tuple(out)


def _rows_to_records(topic: str, partition: int, rows: list[Any]) -> list[Record]:
    """Build records from ``(offset, key, value, ts, headers)`` rows with as little Python per row as
    possible: the common case (no headers) runs entirely in C through ``map``/``zip``."""
    if any(map(_col4, rows)):
        return [
            _new_record((topic, partition, off, key, value, ts, _decode_headers(hdr)))
            for off, key, value, ts, hdr in rows
        ]
    return list(
        map(
            _new_record,
            zip(
                repeat(topic),
                repeat(partition),
                map(_col0, rows),
                map(_col1, rows),
                map(_col2, rows),
                map(_col3, rows),
                repeat(()),
                strict=False,
            ),
        )
    )


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = connect_wal(path, busy_timeout_ms, "the event log", page_size=_PAGE_SIZE)
    conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taking the write lock up front so no upgrade deadlock can happen."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _db_errors(path: Path, busy_timeout_ms: int) -> Iterator[None]:
    """Turn SQLite failures into the error tree, with what to do about them."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise BackendUnavailableError(
                f"the event log {path} stayed locked by another writer for {busy_timeout_ms} ms",
                hint="raise events.busy_timeout_ms, or look for a process holding a long transaction",
            ) from exc
        raise BackendUnavailableError(
            f"the event log {path} failed: {text}", hint="check free disk space and file permissions"
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise BackendUnavailableError(
            f"the event log {path} is unusable: {exc}",
            hint="restore it from a backup or move it away to start a new log",
        ) from exc


def _assign(
    members: Sequence[tuple[str, frozenset[str]]], partitions: Sequence[tuple[int, str, int]]
) -> dict[int, str]:
    """The target owner of each partition: partitions in (topic, partition) order dealt round-robin
    to the members (sorted by id) that subscribe to their topic. Every member computes the same
    answer from the same rows, so no leader is needed."""
    target: dict[int, str] = {}
    turn = 0
    for pid, topic, _partition in partitions:
        candidates = [member for member, topics in members if topic in topics]
        if candidates:
            target[pid] = candidates[turn % len(candidates)]
            turn += 1
    return target


class SqliteEventLog(EventLog):
    """The :class:`~shopops.events.port.EventLog` port on one SQLite file (see the module doc)."""

    class Config(BackendConfig):
        """Options of the ``sqlite`` event-log backend."""

        #: The database file; relative paths are relative to the data directory.
        #: ``None`` means ``<home>/events.db``.
        path: Path | None = None
        #: Partitions of a topic created by producing to it.
        default_partitions: int = Field(default=1, ge=1)
        #: A group member silent this long loses its partitions.
        session_timeout_s: float = Field(default=10.0, gt=0)
        #: How long a writer waits for another process's transaction before failing.
        busy_timeout_ms: int = Field(default=30_000, ge=0)

    def __init__(self, config: Config, home: Path) -> None:
        self.config = config
        path = config.path if config.path is not None else Path("events.db")
        self.path = path if path.is_absolute() else Path(home) / path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the directory of the event log {self.path}: {exc.strerror}",
                hint="set events.path (or the data directory) to a writable place",
            ) from exc
        self._busy_ms = config.busy_timeout_ms
        self._lock = threading.RLock()
        self._closed = False
        #: Records waiting for flush(), per partition id, in produce order.
        self._buffer: dict[int, list[_Row]] = {}
        self._buffered = 0
        #: Topic name -> partition ids by partition number. Partition counts never change.
        self._pids: dict[str, tuple[int, ...]] = {}
        self._round_robin = 0
        self._consumers: weakref.WeakSet[SqliteConsumer] = weakref.WeakSet()
        with self._errors():
            self._conn = _connect(self.path, self._busy_ms)
            self._init_schema()

    # -- plumbing -----------------------------------------------------------------------------

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _db_errors(self.path, self._busy_ms)

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"the event log {self.path} is closed", hint="open a new one")

    def _init_schema(self) -> None:
        with _write(self._conn) as conn:
            # One statement at a time: executescript() would commit the open transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                conn.execute("INSERT INTO meta (key, value) VALUES ('topics_version', 0)")
            elif row[0] != SCHEMA_VERSION:
                raise ConfigError(
                    f"the event log {self.path} has schema version {row[0]}, "
                    f"this shopops reads {SCHEMA_VERSION}",
                    hint="use the shopops version that wrote it, or point events.path at a new file",
                )

    def _load_topic(self, conn: sqlite3.Connection, topic: str) -> tuple[int, ...] | None:
        rows = conn.execute(
            "SELECT pid FROM partitions WHERE topic = ? ORDER BY partition", (topic,)
        ).fetchall()
        if not rows:
            return None
        pids = tuple(r[0] for r in rows)
        self._pids[topic] = pids
        return pids

    def _topic_pids(self, topic: str) -> tuple[int, ...] | None:
        """Partition ids of ``topic``, or ``None`` when it does not exist (yet)."""
        pids = self._pids.get(topic)
        if pids is None:
            with self._lock:
                pids = self._load_topic(self._conn, topic)
        return pids

    def _require_topic(self, topic: str) -> tuple[int, ...]:
        pids = self._topic_pids(validate_topic_name(topic))
        if pids is None:
            raise NotFoundError(f"topic {topic!r} does not exist", hint="create it first or list topics")
        return pids

    # -- topics -------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions (idempotent for the same count)."""
        validate_topic_name(name)
        validate_partition_count(partitions)
        with self._lock, self._errors():
            self._check_open()
            self._create(name, partitions, exist_ok_any_count=False)

    def _create(self, name: str, partitions: int, *, exist_ok_any_count: bool) -> tuple[int, ...]:
        with _write(self._conn) as conn:
            row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if row[0] != partitions and not exist_ok_any_count:
                    raise ConflictError(
                        f"topic {name!r} exists with {row[0]} partitions, not {partitions}",
                        hint="partition counts never change: use the existing count or another topic name",
                    )
            else:
                conn.execute(
                    "INSERT INTO topics (name, partitions, created_ms) VALUES (?, ?, ?)",
                    (name, partitions, _now_ms()),
                )
                conn.executemany(
                    "INSERT INTO partitions (topic, partition, next_offset) VALUES (?, ?, 0)",
                    ((name, p) for p in range(partitions)),
                )
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'topics_version'")
            pids = self._load_topic(conn, name)
        assert pids is not None
        return pids

    def list_topics(self) -> list[TopicInfo]:
        """All topics with their partition counts and record counts, sorted by name."""
        with self._lock, self._errors():
            self._check_open()
            rows = self._conn.execute(
                "SELECT t.name, t.partitions, COALESCE(SUM(p.next_offset), 0) FROM topics t "
                "JOIN partitions p ON p.topic = t.name GROUP BY t.name ORDER BY t.name"
            ).fetchall()
        return [TopicInfo(name, parts, messages) for name, parts, messages in rows]

    # -- producing ----------------------------------------------------------------------------

    def _pids_for_produce(self, topic: str) -> tuple[int, ...]:
        pids = self._pids.get(topic)
        if pids is None:
            validate_topic_name(topic)
            with self._lock, self._errors():
                self._check_open()
                pids = self._load_topic(self._conn, topic) or self._create(
                    topic, self.config.default_partitions, exist_ok_any_count=True
                )
        return pids

    def _row(
        self,
        pids: tuple[int, ...],
        value: bytes | None,
        key: bytes | None,
        headers: Headers,
        timestamp_ms: int,
    ) -> tuple[int, _Row]:
        """The partition id and buffered row of one record, checking what the fast paths assume."""
        if key is None:
            # Unkeyed records have no order to keep: spread them over the partitions.
            self._round_robin += 1
            pid = pids[self._round_robin % len(pids)]
        else:
            try:
                pid = pids[zlib.crc32(key) % len(pids)]
            except TypeError:
                raise InvalidInputError(
                    f"a record key must be bytes (got {type(key).__name__})", hint="encode the key"
                ) from None
        if value is not None and not isinstance(value, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"a record value must be bytes or None (got {type(value).__name__})", hint="encode the value"
            )
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms < 0:
            raise InvalidInputError(f"timestamp_ms must be an integer >= 0 (got {timestamp_ms!r})")
        return pid, (key, value, timestamp_ms, _encode_headers(headers) if headers else None)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record; it is written by :meth:`flush` (or once 10,000 records wait)."""
        pids = self._pids_for_produce(topic)
        pid, row = self._row(pids, value, key, headers, _now_ms() if timestamp_ms is None else timestamp_ms)
        with self._lock:
            self._check_open()
            rows = self._buffer.get(pid)
            if rows is None:
                rows = self._buffer[pid] = []
            rows.append(row)
            self._buffered += 1
            if self._buffered >= AUTO_FLUSH_RECORDS:
                self._flush_locked()

    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        """Queue many records, flushing every 10,000; returns how many were queued."""
        total = 0
        pending = 0
        local: dict[int, list[_Row]] = {}
        cached = self._pids
        crc32 = zlib.crc32
        now = _now_ms()
        for record in records:
            topic = record.topic
            pids = cached.get(topic) or self._pids_for_produce(topic)
            key = record.key
            value = record.value
            ts = record.timestamp_ms
            if type(key) is bytes and (value is None or type(value) is bytes) and not record.headers:
                # The common case, kept short: a keyed record of bytes with no headers.
                pid = pids[crc32(key) % len(pids)]
                row: _Row = (key, value, now if ts is None else ts, None)
            else:
                pid, row = self._row(pids, value, key, record.headers, now if ts is None else ts)
            rows = local.get(pid)
            if rows is None:
                rows = local[pid] = []
            rows.append(row)
            pending += 1
            if pending >= AUTO_FLUSH_RECORDS:
                total += pending
                self._queue(local, pending)
                local, pending = {}, 0
                now = _now_ms()
        if pending:
            total += pending
            self._queue(local, pending)
        return total

    def _queue(self, rows_by_pid: dict[int, list[_Row]], count: int) -> None:
        with self._lock:
            self._check_open()
            buffer = self._buffer
            for pid, rows in rows_by_pid.items():
                queued = buffer.get(pid)
                if queued is None:
                    buffer[pid] = rows
                else:
                    queued.extend(rows)
            self._buffered += count
            if self._buffered >= AUTO_FLUSH_RECORDS:
                self._flush_locked()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Write every queued record in one transaction; durable when this returns.

        ``timeout_s`` is not needed here: waiting for the write lock is bounded by ``busy_timeout_ms``.
        """
        with self._lock:
            self._check_open()
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._buffer:
            return
        buffer, self._buffer, buffered, self._buffered = self._buffer, {}, self._buffered, 0
        try:
            with self._errors(), _write(self._conn) as conn:
                # Offsets are given under the write lock, from the partitions' next offsets: dense
                # and unique even with other processes appending to the same partitions.
                marks = ",".join("?" * len(buffer))
                next_offsets = dict(
                    conn.execute(
                        f"SELECT pid, next_offset FROM partitions WHERE pid IN ({marks})",  # noqa: S608
                        list(buffer),
                    ).fetchall()
                )
                for pid, rows in buffer.items():
                    base = next_offsets[pid]
                    # Each row gets (pid, offset) appended in C: no Python code runs per record.
                    conn.executemany(_INSERT_RECORD, map(add, rows, zip(repeat(pid), count(base))))
                    next_offsets[pid] = base + len(rows)
                conn.executemany(
                    "UPDATE partitions SET next_offset = ? WHERE pid = ?",
                    [(end, pid) for pid, end in next_offsets.items()],
                )
        except BaseException:
            # Nothing was written: put the records back, in order, for the next flush.
            for pid, rows in self._buffer.items():
                buffer.setdefault(pid, []).extend(rows)
            self._buffer, self._buffered = buffer, buffered + self._buffered
            raise

    # -- reading ------------------------------------------------------------------------------

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        """Up to ``max_records`` records of one partition from ``offset``, without a group."""
        pids = self._require_topic(topic)
        if not 0 <= partition < len(pids):
            raise InvalidInputError(
                f"partition {partition} does not exist in {topic!r}", hint=f"use 0..{len(pids) - 1}"
            )
        _check_offset(offset)
        _check_max_records(max_records)
        with self._lock, self._errors():
            self._check_open()
            rows = self._conn.execute(_SELECT_RECORDS, (pids[partition], offset, max_records)).fetchall()
        return _rows_to_records(topic, partition, rows)

    def consumer(
        self,
        group_id: str,
        topics: Iterable[str],
        auto_offset_reset: OffsetReset = "earliest",
    ) -> SqliteConsumer:
        """Join ``group_id`` (a new member) and subscribe to ``topics``; returns with an assignment."""
        self._check_open()
        consumer = SqliteConsumer(self, group_id, topics, auto_offset_reset)
        self._consumers.add(consumer)
        return consumer

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get."""
        self._require_topic(topic)
        with self._lock, self._errors():
            self._check_open()
            rows = self._conn.execute(
                "SELECT partition, next_offset FROM partitions WHERE topic = ? ORDER BY partition", (topic,)
            ).fetchall()
        return dict(rows)

    def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        """Per partition, the group's committed offset (``None`` where it never committed)."""
        self._require_topic(topic)
        with self._lock, self._errors():
            self._check_open()
            rows = self._conn.execute(
                "SELECT p.partition, o.offset FROM partitions p LEFT JOIN group_offsets o "
                "ON o.pid = p.pid AND o.group_id = ? WHERE p.topic = ? ORDER BY p.partition",
                (group_id, topic),
            ).fetchall()
        return dict(rows)

    def list_groups(self) -> list[str]:
        """Groups that have committed offsets, sorted."""
        with self._lock, self._errors():
            self._check_open()
            rows = self._conn.execute(
                "SELECT DISTINCT group_id FROM group_offsets ORDER BY group_id"
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        """Flush, close the consumers opened here, and release the database."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                for consumer in list(self._consumers):
                    consumer.close()
                self._closed = True
                self._conn.close()


def _check_offset(offset: int) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offsets are integers >= 0 (got {offset!r})")


def _check_max_records(max_records: int) -> None:
    if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
        raise InvalidInputError(f"max_records must be at least 1 (got {max_records!r})")


class _MemberState:
    """What the poll thread and the heartbeat thread of one member share."""

    def __init__(self) -> None:
        self.last_poll = time.monotonic()
        self.last_beat = time.monotonic()
        self.expelled = False
        self.stop = threading.Event()


class _Heartbeat(threading.Thread):
    """Keeps a member alive and removes members whose heartbeat is older than the session timeout.

    It holds no reference to the consumer, so an abandoned consumer can be garbage collected (its
    finalizer stops this thread and the member then expires like a dead process).
    """

    def __init__(
        self, path: Path, busy_ms: int, group_id: str, member_id: str, timeout_s: float, state: _MemberState
    ) -> None:
        super().__init__(name=f"events-heartbeat-{group_id}", daemon=True)
        self._path = path
        self._busy_ms = busy_ms
        self._group_id = group_id
        self._member_id = member_id
        self._timeout_ms = int(timeout_s * 1000)
        self._interval = min(max(timeout_s / 3, 0.05), 3.0)
        self._state = state

    def run(self) -> None:
        state = self._state
        try:
            conn = _connect(self._path, self._busy_ms)
        except sqlite3.Error as exc:
            log.warning("event-log heartbeat cannot open the database", error=str(exc))
            return
        try:
            while not state.stop.wait(self._interval):
                if time.monotonic() - state.last_poll > MAX_POLL_INTERVAL_S:
                    log.warning(
                        "consumer has not polled for too long; leaving the group",
                        group=self._group_id,
                        max_poll_interval_s=MAX_POLL_INTERVAL_S,
                    )
                    return
                try:
                    self._beat(conn)
                except sqlite3.Error as exc:
                    # A busy database delays one heartbeat; the session timeout absorbs it.
                    log.warning("event-log heartbeat failed", group=self._group_id, error=str(exc))
        finally:
            conn.close()

    def _beat(self, conn: sqlite3.Connection) -> None:
        now = _now_ms()
        updated = conn.execute(
            "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
            (now, self._group_id, self._member_id),
        ).rowcount
        if updated == 0:
            self._state.expelled = True
        else:
            self._state.last_beat = time.monotonic()
        stale = conn.execute(
            "SELECT 1 FROM group_members WHERE group_id = ? AND heartbeat_ms < ? LIMIT 1",
            (self._group_id, now - self._timeout_ms),
        ).fetchone()
        if stale:
            with _write(conn):
                _expire(conn, self._group_id, now - self._timeout_ms)


def _expire(conn: sqlite3.Connection, group_id: str, older_than_ms: int) -> None:
    """Remove members silent since ``older_than_ms`` and free their partitions (in a transaction)."""
    gone = conn.execute(
        "DELETE FROM group_members WHERE group_id = ? AND heartbeat_ms < ?", (group_id, older_than_ms)
    ).rowcount
    if gone:
        conn.execute(
            "DELETE FROM group_owners WHERE group_id = ? AND member_id NOT IN "
            "(SELECT member_id FROM group_members WHERE group_id = ?)",
            (group_id, group_id),
        )
        _bump_generation(conn, group_id)
        log.info("removed silent consumer-group members", group=group_id, members=gone)


def _bump_generation(conn: sqlite3.Connection, group_id: str) -> None:
    conn.execute(
        "INSERT INTO groups (group_id, generation) VALUES (?, 1) "
        "ON CONFLICT (group_id) DO UPDATE SET generation = generation + 1",
        (group_id,),
    )


class SqliteConsumer(Consumer):
    """A member of a consumer group of the SQLite event log. Use it from one thread at a time."""

    #: How often a member waiting for a partition that another member still has to release checks
    #: again.
    _PENDING_RECHECK_S = 0.05

    def __init__(
        self,
        log_: SqliteEventLog,
        group_id: str,
        topics: Iterable[str],
        auto_offset_reset: OffsetReset,
    ) -> None:
        names = validate_subscription(group_id, topics, auto_offset_reset)
        self.group_id = group_id
        self.topics = tuple(names)
        self.auto_offset_reset = auto_offset_reset
        self.member_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._log = log_
        self._path = log_.path
        self._busy_ms = log_.config.busy_timeout_ms
        self._timeout_s = log_.config.session_timeout_s
        self._lock = threading.RLock()
        self._closed = False
        #: Owned partitions: pid -> (topic partition, topic, partition number), in a stable order.
        self._owned: dict[int, tuple[TopicPartition, str, int]] = {}
        self._positions: dict[int, int] = {}
        #: Positions moved by poll() or seek(): what commit(None) commits.
        self._progress: dict[int, int] = {}
        self._pending = False
        self._seen: tuple[Any, ...] | None = None
        self._last_sync = 0.0
        self._rotation = 0
        self._idle_version: int | None = None
        self._state = _MemberState()
        with self._errors():
            self._conn = _connect(self._path, self._busy_ms)
            try:
                self._sync()
            except BaseException:
                self._conn.close()
                raise
        self._heartbeat = _Heartbeat(
            self._path, self._busy_ms, group_id, self.member_id, self._timeout_s, self._state
        )
        self._heartbeat.start()
        weakref.finalize(self, self._state.stop.set)

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _db_errors(self._path, self._busy_ms)

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"the consumer of group {self.group_id!r} is closed")

    # -- group membership ---------------------------------------------------------------------

    def _group_state(self) -> tuple[Any, ...]:
        row: tuple[Any, ...] = self._conn.execute(
            "SELECT (SELECT generation FROM groups WHERE group_id = ?), "
            "(SELECT value FROM meta WHERE key = 'topics_version')",
            (self.group_id,),
        ).fetchone()
        return row

    def _maybe_sync(self) -> None:
        now = time.monotonic()
        state = self._state
        if (
            state.expelled
            or now - state.last_beat > self._timeout_s / 2
            or (self._pending and now - self._last_sync >= self._PENDING_RECHECK_S)
            or self._group_state() != self._seen
        ):
            self._sync()

    def _sync(self) -> None:
        """Heartbeat, remove silent members, then release and claim partitions (one transaction)."""
        group, me = self.group_id, self.member_id
        now = _now_ms()
        with _write(self._conn) as conn:
            rejoined = (
                conn.execute(
                    "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                    (now, group, me),
                ).rowcount
                == 0
            )
            if rejoined:
                conn.execute(
                    "INSERT INTO group_members (group_id, member_id, topics, heartbeat_ms, joined_ms, "
                    "client) VALUES (?, ?, ?, ?, ?, ?)",
                    (group, me, json.dumps(self.topics), now, now, f"{socket.gethostname()}:{os.getpid()}"),
                )
                # Partitions this member held before it was removed may have moved on.
                conn.execute("DELETE FROM group_owners WHERE group_id = ? AND member_id = ?", (group, me))
                _bump_generation(conn, group)
            _expire(conn, group, now - int(self._timeout_s * 1000))
            members = [
                (member, frozenset(json.loads(topics)))
                for member, topics in conn.execute(
                    "SELECT member_id, topics FROM group_members WHERE group_id = ? ORDER BY member_id",
                    (group,),
                )
            ]
            subscribed = sorted(set().union(*(topics for _, topics in members)))
            marks = ",".join("?" * len(subscribed))
            partitions: list[tuple[int, str, int]] = conn.execute(
                f"SELECT pid, topic, partition FROM partitions WHERE topic IN ({marks}) "  # noqa: S608
                "ORDER BY topic, partition",
                subscribed,
            ).fetchall()
            target = _assign(members, partitions)
            owners = dict(
                conn.execute("SELECT pid, member_id FROM group_owners WHERE group_id = ?", (group,))
            )
            release = [pid for pid, owner in owners.items() if owner == me and target.get(pid) != me]
            claim = [pid for pid, owner in target.items() if owner == me and pid not in owners]
            conn.executemany(
                "DELETE FROM group_owners WHERE group_id = ? AND pid = ?", [(group, pid) for pid in release]
            )
            conn.executemany(
                "INSERT INTO group_owners (group_id, pid, member_id) VALUES (?, ?, ?)",
                [(group, pid, me) for pid in claim],
            )
            owned = {pid for pid, owner in owners.items() if owner == me and target.get(pid) == me}
            owned.update(claim)
            pending = any(owner == me and pid not in owned for pid, owner in target.items())
            fresh = owned - set(self._owned) if not rejoined else owned
            starts = self._start_offsets(conn, fresh) if fresh else {}
            seen = self._group_state()
        info = {pid: (topic, part) for pid, topic, part in partitions}
        # Progress on partitions given up is dropped: their new owner resumes from the group's
        # committed offsets (at-least-once, like a Kafka rebalance).
        for pid in list(self._owned):
            if pid not in owned or rejoined:
                self._owned.pop(pid)
                self._positions.pop(pid, None)
                self._progress.pop(pid, None)
        for pid in sorted(owned, key=lambda p: info[p]):
            if pid not in self._owned:
                topic, part = info[pid]
                self._owned[pid] = (TopicPartition(topic, part), topic, part)
                self._positions[pid] = starts[pid]
        self._pending = pending
        self._seen = seen
        self._last_sync = time.monotonic()
        self._state.last_beat = self._last_sync
        self._state.expelled = False
        self._idle_version = None
        if release or claim or rejoined:
            log.debug(
                "consumer-group assignment changed",
                group=group,
                member=me,
                released=len(release),
                claimed=len(claim),
                owned=len(owned),
            )

    def _start_offsets(self, conn: sqlite3.Connection, pids: set[int]) -> dict[int, int]:
        marks = ",".join("?" * len(pids))
        committed = dict(
            conn.execute(
                f"SELECT pid, offset FROM group_offsets WHERE group_id = ? AND pid IN ({marks})",  # noqa: S608
                [self.group_id, *pids],
            ).fetchall()
        )
        starts: dict[int, int] = {}
        for pid in pids:
            if pid in committed:
                starts[pid] = committed[pid]
            elif self.auto_offset_reset == "latest":
                starts[pid] = conn.execute(
                    "SELECT next_offset FROM partitions WHERE pid = ?", (pid,)
                ).fetchone()[0]
            else:
                starts[pid] = conn.execute(
                    "SELECT COALESCE((SELECT MIN(offset) FROM records WHERE pid = ?), "
                    "(SELECT next_offset FROM partitions WHERE pid = ?))",
                    (pid, pid),
                ).fetchone()[0]
        return starts

    # -- the Consumer port --------------------------------------------------------------------

    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records from the owned partitions, waiting up to ``timeout_s`` for one."""
        _check_max_records(max_records)
        if timeout_s < 0:
            raise InvalidInputError(f"timeout_s must be >= 0 (got {timeout_s!r})")
        deadline = time.monotonic() + timeout_s
        backoff = 0.001
        with self._lock, self._errors():
            self._check_open()
            self._state.last_poll = time.monotonic()
            while True:
                self._maybe_sync()
                # PRAGMA data_version changes only when another connection commits. Once a fetch
                # found nothing at one version, nothing can be new until it changes, and checking
                # it reads no table.
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self._idle_version:
                    records = self._fetch(max_records)
                    if records:
                        self._idle_version = None
                        return records
                    self._idle_version = version
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, 0.05)

    def _fetch(self, max_records: int) -> list[Record]:
        if not self._owned:
            return []
        pids = list(self._owned)
        # Start with a different partition each poll so that a busy partition cannot starve the others.
        self._rotation = (self._rotation + 1) % len(pids)
        pids = pids[self._rotation :] + pids[: self._rotation]
        marks = ",".join("?" * len(pids))
        ends = dict(
            self._conn.execute(
                f"SELECT pid, next_offset FROM partitions WHERE pid IN ({marks})",  # noqa: S608
                pids,
            ).fetchall()
        )
        positions = self._positions
        out: list[Record] = []
        remaining = max_records
        for pid in pids:
            position = positions[pid]
            if ends[pid] <= position:
                continue
            rows = self._conn.execute(_SELECT_RECORDS, (pid, position, remaining)).fetchall()
            if not rows:
                continue
            _tp, topic, partition = self._owned[pid]
            out.extend(_rows_to_records(topic, partition, rows))
            positions[pid] = self._progress[pid] = rows[-1][0] + 1
            remaining -= len(rows)
            if remaining <= 0:
                break
        return out

    def _pid_of(self, tp: TopicPartition) -> int | None:
        for pid, (owned_tp, _topic, _part) in self._owned.items():
            if owned_tp == tp:
                return pid
        return None

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (or the positions after the last polled records) durably.

        Only partitions this member owns can be committed: a partition that moved to another
        member is that member's to commit, and an older position would rewind it.
        """
        with self._lock, self._errors():
            self._check_open()
            if offsets is None:
                items = [(pid, off) for pid, off in self._progress.items() if pid in self._owned]
            else:
                items = []
                for tp, offset in offsets.items():
                    _check_offset(offset)
                    pid = self._pid_of(tp)
                    if pid is None:
                        self._require_partition(tp)
                        raise ConflictError(
                            f"cannot commit {tp}: it is not assigned to this consumer "
                            f"of group {self.group_id!r}",
                            hint="commit only partitions in assignment(); the group may have rebalanced",
                        )
                    items.append((pid, offset))
            if not items:
                return
            now = _now_ms()
            with _write(self._conn) as conn:
                alive = conn.execute(
                    "SELECT 1 FROM group_members WHERE group_id = ? AND member_id = ?",
                    (self.group_id, self.member_id),
                ).fetchone()
                owned_now = {
                    pid
                    for (pid,) in conn.execute(
                        "SELECT pid FROM group_owners WHERE group_id = ? AND member_id = ?",
                        (self.group_id, self.member_id),
                    )
                }
                lost = [pid for pid, _ in items if pid not in owned_now]
                if not alive or lost:
                    self._state.expelled = True
                    raise ConflictError(
                        f"offsets not committed: this consumer lost its partitions in group "
                        f"{self.group_id!r} (silent for more than {self._timeout_s} s)",
                        hint="poll more often or raise events.session_timeout_s; the uncommitted records "
                        "will be delivered again",
                    )
                conn.executemany(
                    "INSERT INTO group_offsets (group_id, pid, offset, committed_ms) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (group_id, pid) DO UPDATE SET offset = excluded.offset, "
                    "committed_ms = excluded.committed_ms",
                    [(self.group_id, pid, offset, now) for pid, offset in items],
                )

    def _require_partition(self, tp: TopicPartition) -> None:
        pids = self._log._topic_pids(validate_topic_name(tp.topic))
        if pids is None or not 0 <= tp.partition < len(pids):
            raise InvalidInputError(f"partition {tp} does not exist")

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next poll of ``tp`` (an owned partition) start at ``offset``."""
        _check_offset(offset)
        if tp.topic not in self.topics:
            raise InvalidInputError(
                f"cannot seek {tp}: this consumer subscribes to {', '.join(self.topics)} only"
            )
        with self._lock, self._errors():
            self._check_open()
            pid = self._pid_of(tp)
            if pid is None:
                self._maybe_sync()
                pid = self._pid_of(tp)
            if pid is None:
                raise InvalidInputError(
                    f"cannot seek {tp}: it is not assigned to this consumer of group {self.group_id!r}",
                    hint=f"assigned: {', '.join(sorted(map(str, self.assignment()))) or 'nothing'}",
                )
            self._positions[pid] = self._progress[pid] = offset
            self._idle_version = None

    def position(self, tp: TopicPartition) -> int | None:
        """The offset the next poll of ``tp`` returns, or ``None`` when ``tp`` is not owned."""
        pid = self._pid_of(tp)
        return None if pid is None else self._positions.get(pid)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now."""
        return {tp for tp, _topic, _part in self._owned.values()}

    def close(self) -> None:
        """Leave the group: the other members take over the partitions. Does not commit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._state.stop.set()
            self._heartbeat.join(timeout=5)
            try:
                with _write(self._conn) as conn:
                    conn.execute(
                        "DELETE FROM group_members WHERE group_id = ? AND member_id = ?",
                        (self.group_id, self.member_id),
                    )
                    conn.execute(
                        "DELETE FROM group_owners WHERE group_id = ? AND member_id = ?",
                        (self.group_id, self.member_id),
                    )
                    _bump_generation(conn, self.group_id)
            except sqlite3.Error as exc:
                # The member then expires after the session timeout, as if its process had died.
                log.warning("consumer could not leave its group cleanly", group=self.group_id, error=str(exc))
            finally:
                self._conn.close()
                self._owned.clear()
                self._positions.clear()
                self._progress.clear()
