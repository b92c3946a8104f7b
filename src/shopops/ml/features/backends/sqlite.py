"""The embedded online store: Feast's SQLite store, a file in the feature repository's folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig
from shopops.ml.features.port import OnlineStoreBackend


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
