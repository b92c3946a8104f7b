"""The embedded online store: Feast's SQLite store, a file in the feature repository's folder."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig
from shopops.ml.features.port import OnlineReader, OnlineStoreBackend


class SqliteOnlineStore(OnlineStoreBackend):
    type_name: ClassVar[str] = "sqlite"

    class Config(BackendConfig):
        #: Database file (default: ``online.db`` in the feature repository's folder).
        path: Path | None = None

    config: Config

    @property
    def path(self) -> Path:
        path = self.config.path or Path("online.db")
        return path if path.is_absolute() else self.repo_dir / path

    def feast_config(self) -> dict[str, Any]:
        return {"type": "sqlite", "path": str(self.path)}

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def check(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(self.path).close()
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(
                f"cannot open the SQLite online store {self.path}: {exc}",
                hint="check that the folder is writable (ml.features.repo_dir)",
            ) from exc

    def reader(self, store: Any, views: Mapping[str, Sequence[str]]) -> OnlineReader:
        from feast.infra.online_stores.helpers import compute_table_id

        versioned = bool(store.config.registry.enable_online_feature_view_versioning)
        tables = {
            name: compute_table_id(store.config.project, store.get_feature_view(name), versioned)
            for name in views
        }
        return SqliteOnlineReader(self.path, tables)


class SqliteOnlineReader(OnlineReader):
    """Reads Feast's SQLite tables (one per view: ``entity_key, feature_name, value, event_ts``).

    One statement per request (``UNION ALL`` over the views asked): one snapshot of the file, so a
    request never mixes two writes of Feast. Each thread has its own read-only connection; Feast's
    writer connection is separate, and SQLite's file locks order the two.
    """

    def __init__(self, path: Path, tables: Mapping[str, str], *, timeout_s: float = 5.0) -> None:
        self.path = path
        self.tables = dict(tables)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._sql: dict[tuple[str, ...], str] = {}

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _statement(self, views: tuple[str, ...]) -> str:
        sql = self._sql.get(views)
        if sql is None:
            parts = []
            for i, view in enumerate(views):
                # Feast's table names (project and view names, checked at apply), quoted as Feast does.
                table = '"' + self.tables[view].replace('"', '""') + '"'
                parts.append(f"SELECT {i}, feature_name, value FROM {table} WHERE entity_key = ?")  # noqa: S608
            sql = " UNION ALL ".join(parts)
            self._sql[views] = sql
        return sql

    def read(self, lookups: Sequence[tuple[str, bytes]]) -> list[dict[str, bytes]]:
        out: list[dict[str, bytes]] = [{} for _ in lookups]
        if not lookups:
            return out
        sql = self._statement(tuple(view for view, _ in lookups))
        for i, name, value in self._conn().execute(sql, [key for _, key in lookups]).fetchall():
            out[i][name] = value
        return out

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()
