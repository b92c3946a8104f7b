"""The embedded key and audit stores: SQLite files in the data directory."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import Field

from shopops.core.registry import BackendConfig
from shopops.core.sqlite import connect_wal
from shopops.governance.backends._rows import (
    AUDIT_COLUMNS,
    KEY_COLUMNS,
    audit_from_row,
    audit_params,
    key_from_row,
    key_params,
)
from shopops.governance.model import GENESIS_HASH, ApiKeyRecord, AuditEntry, AuditRecord, ChainHead, seal
from shopops.governance.port import AuditStore, KeyStore


class SqliteConfig(BackendConfig):
    #: Default: ``$SHOPOPS_HOME/governance.db``.
    path: Path | None = None
    busy_timeout_ms: int = Field(default=30_000, ge=0)


class SqliteKeyStore(KeyStore):
    Config = SqliteConfig

    def __init__(self, config: SqliteConfig, home: Path) -> None:
        self._conn = connect_wal(config.path or home / "governance.db", config.busy_timeout_ms, "key store")
        self._lock = threading.Lock()
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, "
            "kind TEXT NOT NULL, name TEXT NOT NULL, roles TEXT NOT NULL, home_region TEXT NOT NULL, "
            "description TEXT NOT NULL, created_at_ms INTEGER NOT NULL, created_by TEXT NOT NULL, "
            "revoked_at_ms INTEGER)"
        )

    def add(self, record: ApiKeyRecord) -> None:
        with self._lock:
            self._conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                key_params(record),
            )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?",  # noqa: S608
                (key_id,),
            ).fetchone()
        return key_from_row(row) if row else None

    def list(self, include_revoked: bool = False) -> list[ApiKeyRecord]:
        where = "" if include_revoked else " WHERE revoked_at_ms IS NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys{where} ORDER BY created_at_ms"  # noqa: S608 - fixed column lists and table names
            ).fetchall()
        return [key_from_row(r) for r in rows]

    def revoke(self, key_id: str, at_ms: int) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_at_ms = ? WHERE key_id = ? AND revoked_at_ms IS NULL",
                (at_ms, key_id),
            )
        return cur.rowcount == 1

    def close(self) -> None:
        self._conn.close()


class SqliteAuditStore(AuditStore):
    Config = SqliteConfig

    def __init__(self, config: SqliteConfig, home: Path) -> None:
        self._conn = connect_wal(config.path or home / "audit.db", config.busy_timeout_ms, "audit store")
        self._lock = threading.Lock()
        self._conn.executescript(
            "CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, "
            "kind TEXT NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL, "
            "decision TEXT NOT NULL, reasons TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, "
            "hash TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), "
            "seq INTEGER NOT NULL, hash TEXT NOT NULL);"
        )

    def append(self, entries: Sequence[AuditEntry], ts_ms: int) -> list[AuditRecord]:
        if not entries:
            return []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                seq, prev = (row[0], row[1]) if row else self._last()
                out = []
                for entry in entries:
                    seq += 1
                    record = seal(entry, seq, ts_ms, prev)
                    out.append(record)
                    prev = record.hash
                self._conn.executemany(
                    f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - fixed column lists and table names
                    [audit_params(r) for r in out],
                )
                self._conn.execute(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    (seq, prev),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return out

    def _last(self) -> tuple[int, str]:
        # No head yet (a fresh store): continue after the last record, if any.
        row = self._conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def records(self, from_seq: int = 1) -> Iterator[AuditRecord]:
        last = from_seq - 1
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT 1000",  # noqa: S608
                    (last,),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield audit_from_row(row)
            last = rows[-1][0]

    def head(self) -> ChainHead | None:
        with self._lock:
            row = self._conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return ChainHead(int(row[0]), str(row[1])) if row else None

    def close(self) -> None:
        self._conn.close()
