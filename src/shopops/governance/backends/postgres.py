"""Key and audit stores on PostgreSQL, for several platform processes sharing one trail."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from shopops.core.errors import BackendUnavailableError
from shopops.core.postgres import PostgresStoreConfig, create_tables_once, open_pool
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


class GovernancePostgresConfig(PostgresStoreConfig):
    schema_name: str = "governance"
    pool_max_size: int = 4


class _PostgresStore:
    def __init__(self, config: GovernancePostgresConfig, what: str, setting: str, ddl: Sequence[str]) -> None:
        create_tables_once(config, ddl, what=f"the {what}", setting=setting, error=BackendUnavailableError)
        self._pool = open_pool(config, name=what, what=what, setting=setting, error=BackendUnavailableError)
        self._what = what

    def close(self) -> None:
        self._pool.close()


class _Errors:
    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, psycopg.OperationalError):
            raise BackendUnavailableError(
                f"PostgreSQL for the {self.what} cannot be used: {exc}",
                hint="start PostgreSQL and check the dsn of the store in the governance settings",
            ) from exc


class PostgresKeyStore(_PostgresStore, KeyStore):
    Config = GovernancePostgresConfig

    def __init__(self, config: GovernancePostgresConfig, home: Path | None = None) -> None:
        super().__init__(
            config,
            "API key store",
            "governance.keys.dsn",
            [
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, "
                "kind TEXT NOT NULL, name TEXT NOT NULL, roles TEXT NOT NULL, home_region TEXT NOT NULL, "
                "description TEXT NOT NULL, created_at_ms BIGINT NOT NULL, created_by TEXT NOT NULL, "
                "revoked_at_ms BIGINT)"
            ],
        )

    def add(self, record: ApiKeyRecord) -> None:
        with _Errors(self._what), self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",  # noqa: S608
                key_params(record),
            )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with _Errors(self._what), self._pool.connection() as conn:
            sql = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = %s"  # noqa: S608
            row = conn.execute(sql, (key_id,)).fetchone()
        return key_from_row(row) if row else None

    def list(self, include_revoked: bool = False) -> list[ApiKeyRecord]:
        where = "" if include_revoked else " WHERE revoked_at_ms IS NULL"
        with _Errors(self._what), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys{where} ORDER BY created_at_ms"  # noqa: S608 - fixed column lists and table names
            ).fetchall()
        return [key_from_row(r) for r in rows]

    def revoke(self, key_id: str, at_ms: int) -> bool:
        with _Errors(self._what), self._pool.connection() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at_ms = %s WHERE key_id = %s AND revoked_at_ms IS NULL",
                (at_ms, key_id),
            )
            return bool(cur.rowcount == 1)


class PostgresAuditStore(_PostgresStore, AuditStore):
    Config = GovernancePostgresConfig

    def __init__(self, config: GovernancePostgresConfig, home: Path | None = None) -> None:
        super().__init__(
            config,
            "audit store",
            "governance.audit.dsn",
            [
                "CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT PRIMARY KEY, ts_ms BIGINT NOT NULL, "
                "kind TEXT NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL, "
                "decision TEXT NOT NULL, reasons TEXT NOT NULL, details TEXT NOT NULL, "
                "prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS audit_head (id INT PRIMARY KEY CHECK (id = 1), "
                "seq BIGINT NOT NULL, hash TEXT NOT NULL)",
                f"INSERT INTO audit_head (id, seq, hash) SELECT 1, 0, '{GENESIS_HASH}' "  # noqa: S608 - fixed column lists and table names
                "WHERE NOT EXISTS (SELECT 1 FROM audit_log) ON CONFLICT (id) DO NOTHING",
            ],
        )

    def append(self, entries: Sequence[AuditEntry], ts_ms: int) -> list[AuditRecord]:
        if not entries:
            return []
        with _Errors(self._what), self._pool.connection() as conn:
            # The head row's lock serializes appenders of every process: one chain, no forks.
            row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE").fetchone()
            if row is None:
                last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
                row = (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)
                conn.execute(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, %s, %s) ON CONFLICT (id) DO NOTHING",
                    row,
                )
                conn.execute("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
            seq, prev = int(row[0]), str(row[1])
            out = []
            for entry in entries:
                seq += 1
                record = seal(entry, seq, ts_ms, prev)
                out.append(record)
                prev = record.hash
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})",  # noqa: S608 - fixed column lists and table names
                    [audit_params(r) for r in out],
                )
            conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, prev))
        return out

    def records(self, from_seq: int = 1) -> Iterator[AuditRecord]:
        last = from_seq - 1
        while True:
            with _Errors(self._what), self._pool.connection() as conn:
                rows = conn.execute(
                    f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > %s ORDER BY seq LIMIT 1000",  # noqa: S608
                    (last,),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield audit_from_row(row)
            last = rows[-1][0]

    def head(self) -> ChainHead | None:
        with _Errors(self._what), self._pool.connection() as conn:
            row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        if row is None or int(row[0]) == 0:
            return None
        return ChainHead(int(row[0]), str(row[1]))
