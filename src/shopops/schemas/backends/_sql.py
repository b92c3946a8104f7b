"""The schema store on SQL: the queries both backends share; each backend supplies transactions.

Statements are written with ``?`` placeholders; the PostgreSQL backend rewrites them to ``%s``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import orjson

from shopops.schemas.errors import (
    ReferenceExistsError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from shopops.schemas.model import (
    NewSchema,
    Registration,
    SchemaReference,
    SchemaType,
    StoredSchema,
    SubjectVersion,
)
from shopops.schemas.port import RegistrationCheck, SchemaStore, SettingKind


class Cursor(Protocol):
    def execute(self, query: Any, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


#: The global scope of a setting (subjects are never empty strings: the API refuses them).
GLOBAL = ""

_VERSION_COLUMNS = (
    "v.subject, v.version, v.deleted, s.id, s.schema_type, s.schema_text, s.refs "
    "FROM versions v JOIN schemas s ON s.id = v.schema_id"
)


def refs_json(refs: Sequence[SchemaReference]) -> str:
    """References as stored: a JSON list of ``{name, subject, version}``."""
    return orjson.dumps([r.to_dict() for r in refs]).decode()


def _refs(text: str) -> tuple[SchemaReference, ...]:
    return tuple(SchemaReference(r["name"], r["subject"], int(r["version"])) for r in orjson.loads(text))


def _stored(row: Sequence[Any]) -> StoredSchema:
    schema_id, schema_type, text, refs = row
    return StoredSchema(int(schema_id), SchemaType(schema_type), text, _refs(refs))


def _subject_version(row: Sequence[Any]) -> SubjectVersion:
    subject, version, deleted = row[0], row[1], row[2]
    return SubjectVersion(subject, int(version), _stored(row[3:]), bool(deleted))


class SqlSchemaStore(SchemaStore):
    """Queries shared by the SQL backends."""

    @abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Cursor]:
        """A transaction (committed on success, rolled back on error); ``write`` ones are serialised
        where the database needs it (SQLite takes its write lock up front)."""

    @abstractmethod
    def _q(self, sql: str) -> str:
        """The statement in the driver's placeholder style."""

    @abstractmethod
    def _lock_subject(self, cur: Cursor, subject: str) -> None:
        """Serialise writers of ``subject`` until the transaction ends."""

    @abstractmethod
    def _insert_schema(self, cur: Cursor, schema: NewSchema) -> int:
        """The id of the schema with ``schema.fingerprint``, inserting it if new (race-free)."""

    def _rows(self, cur: Cursor, sql: str, *params: Any) -> list[Any]:
        cur.execute(self._q(sql), params)
        return list(cur.fetchall())

    def _row(self, cur: Cursor, sql: str, *params: Any) -> Any:
        cur.execute(self._q(sql), params)
        return cur.fetchone()

    # -- registration --

    def register(
        self, subject: str, schema: NewSchema, check: RegistrationCheck, history: int | None = None
    ) -> Registration:
        with self._transaction(write=True) as cur:
            self._lock_subject(cur, subject)
            existing = self._row(
                cur,
                "SELECT v.version, s.id FROM versions v JOIN schemas s ON s.id = v.schema_id "
                "WHERE v.subject = ? AND s.fingerprint = ? AND v.deleted = ? ORDER BY v.version DESC",
                subject,
                schema.fingerprint,
                False,
            )
            if existing is not None:
                return Registration(int(existing[1]), int(existing[0]), created=False)
            if history != 0:
                # Only the versions the check needs: a non-transitive level reads the latest alone.
                rows = self._rows(
                    cur,
                    f"SELECT {_VERSION_COLUMNS} WHERE v.subject = ? AND v.deleted = ? ORDER BY v.version DESC"
                    + ("" if history is None else f" LIMIT {int(history)}"),
                    subject,
                    False,
                )
                check([_subject_version(r) for r in reversed(rows)])
            else:
                check([])
            schema_id = self._insert_schema(cur, schema)
            top = self._row(cur, "SELECT MAX(version) FROM versions WHERE subject = ?", subject)
            version = (int(top[0]) if top and top[0] is not None else 0) + 1
            cur.execute(
                self._q("INSERT INTO versions (subject, version, schema_id, deleted) VALUES (?, ?, ?, ?)"),
                (subject, version, schema_id, False),
            )
            return Registration(schema_id, version, created=True)

    def _insert_refs(self, cur: Cursor, schema_id: int, refs: Sequence[SchemaReference]) -> None:
        for ref in refs:
            cur.execute(
                self._q("INSERT INTO refs (schema_id, name, subject, version) VALUES (?, ?, ?, ?)"),
                (schema_id, ref.name, ref.subject, ref.version),
            )

    # -- reads --

    def lookup(self, subject: str, fingerprint: str, include_deleted: bool = False) -> SubjectVersion | None:
        with self._transaction(write=False) as cur:
            row = self._row(
                cur,
                f"SELECT {_VERSION_COLUMNS} WHERE v.subject = ? AND s.fingerprint = ? "
                + ("" if include_deleted else "AND v.deleted = ? ")
                + "ORDER BY v.version DESC",
                *((subject, fingerprint) if include_deleted else (subject, fingerprint, False)),
            )
        return _subject_version(row) if row else None

    def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        with self._transaction(write=False) as cur:
            row = self._row(
                cur, "SELECT id, schema_type, schema_text, refs FROM schemas WHERE id = ?", schema_id
            )
        return _stored(row) if row else None

    def schema_usages(self, schema_id: int) -> list[tuple[str, int, bool]]:
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur,
                "SELECT subject, version, deleted FROM versions WHERE schema_id = ? "
                "ORDER BY subject, version",
                schema_id,
            )
        return [(r[0], int(r[1]), bool(r[2])) for r in rows]

    def subjects(self, include_deleted: bool = False) -> list[str]:
        with self._transaction(write=False) as cur:
            if include_deleted:
                rows = self._rows(cur, "SELECT DISTINCT subject FROM versions ORDER BY subject")
            else:
                rows = self._rows(
                    cur, "SELECT DISTINCT subject FROM versions WHERE deleted = ? ORDER BY subject", False
                )
        return [r[0] for r in rows]

    def versions(self, subject: str, include_deleted: bool = False) -> list[SubjectVersion]:
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur, f"SELECT {_VERSION_COLUMNS} WHERE v.subject = ? ORDER BY v.version", subject
            )
        found = [_subject_version(r) for r in rows]
        return found if include_deleted else [v for v in found if not v.deleted]

    def version(self, subject: str, version: int) -> SubjectVersion | None:
        with self._transaction(write=False) as cur:
            row = self._row(
                cur, f"SELECT {_VERSION_COLUMNS} WHERE v.subject = ? AND v.version = ?", subject, version
            )
        return _subject_version(row) if row else None

    def referenced_by(self, subject: str, version: int) -> list[int]:
        with self._transaction(write=False) as cur:
            return self._referenced_by(cur, subject, [version])

    def _referenced_by(self, cur: Cursor, subject: str, versions: Sequence[int]) -> list[int]:
        ids: set[int] = set()
        for version in versions:
            rows = self._rows(
                cur,
                "SELECT DISTINCT r.schema_id FROM refs r JOIN versions v ON v.schema_id = r.schema_id "
                "WHERE r.subject = ? AND r.version = ? AND v.deleted = ?",
                subject,
                version,
                False,
            )
            ids.update(int(r[0]) for r in rows)
        return sorted(ids)

    # -- deletes --

    def delete_version(self, subject: str, version: int, permanent: bool) -> int:
        with self._transaction(write=True) as cur:
            self._lock_subject(cur, subject)
            rows = self._rows(cur, "SELECT version, deleted FROM versions WHERE subject = ?", subject)
            if not rows or (not permanent and all(r[1] for r in rows)):
                raise SubjectNotFoundError(subject)
            state = {int(r[0]): bool(r[1]) for r in rows}
            if version not in state:
                raise VersionNotFoundError(subject, version)
            if permanent and not state[version]:
                raise VersionNotSoftDeletedError(subject, version)
            if not permanent and state[version]:
                raise VersionSoftDeletedError(subject, version)
            self._refuse_referenced(cur, subject, [version])
            if permanent:
                schema_id = self._row(
                    cur, "SELECT schema_id FROM versions WHERE subject = ? AND version = ?", subject, version
                )[0]
                cur.execute(
                    self._q("DELETE FROM versions WHERE subject = ? AND version = ?"), (subject, version)
                )
                self._drop_orphans(cur, [int(schema_id)])
            else:
                cur.execute(
                    self._q("UPDATE versions SET deleted = ? WHERE subject = ? AND version = ?"),
                    (True, subject, version),
                )
            return version

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        with self._transaction(write=True) as cur:
            self._lock_subject(cur, subject)
            rows = self._rows(
                cur, "SELECT version, deleted, schema_id FROM versions WHERE subject = ?", subject
            )
            if not rows:
                raise SubjectNotFoundError(subject)
            live = sorted(int(r[0]) for r in rows if not r[1])
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(subject)
                every = sorted(int(r[0]) for r in rows)
                self._refuse_referenced(cur, subject, every)
                cur.execute(self._q("DELETE FROM versions WHERE subject = ?"), (subject,))
                cur.execute(self._q("DELETE FROM settings WHERE subject = ?"), (subject,))
                self._drop_orphans(cur, sorted({int(r[2]) for r in rows}))
                return every
            if not live:
                raise SubjectSoftDeletedError(subject)
            self._refuse_referenced(cur, subject, live)
            cur.execute(self._q("UPDATE versions SET deleted = ? WHERE subject = ?"), (True, subject))
            return live

    def _refuse_referenced(self, cur: Cursor, subject: str, versions: Sequence[int]) -> None:
        for version in versions:
            ids = self._referenced_by(cur, subject, [version])
            if ids:
                raise ReferenceExistsError(
                    f"One or more references exist to the schema {{subject={subject}, version={version}}}: "
                    f"schema ids {', '.join(map(str, ids))}",
                    hint="delete the referencing schemas first",
                )

    def _drop_orphans(self, cur: Cursor, schema_ids: Sequence[int]) -> None:
        # A schema no version uses any more is gone: GET /schemas/ids/{id} answers 40403 for it.
        for schema_id in schema_ids:
            if self._row(cur, "SELECT 1 FROM versions WHERE schema_id = ?", schema_id) is None:
                cur.execute(self._q("DELETE FROM refs WHERE schema_id = ?"), (schema_id,))
                cur.execute(self._q("DELETE FROM schemas WHERE id = ?"), (schema_id,))

    # -- settings --

    def get_setting(self, kind: SettingKind, subject: str | None) -> str | None:
        with self._transaction(write=False) as cur:
            row = self._row(
                cur, "SELECT value FROM settings WHERE kind = ? AND subject = ?", kind, subject or GLOBAL
            )
        return row[0] if row else None

    def effective_settings(self, subject: str) -> dict[SettingKind, str | None]:
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur,
                "SELECT kind, subject, value FROM settings WHERE subject = ? OR subject = ?",
                subject,
                GLOBAL,
            )
        found = {(str(kind), str(scope)): str(value) for kind, scope, value in rows}
        return {
            "compatibility": found.get(("compatibility", subject), found.get(("compatibility", GLOBAL))),
            "mode": found.get(("mode", subject), found.get(("mode", GLOBAL))),
        }

    def set_setting(self, kind: SettingKind, subject: str | None, value: str) -> None:
        with self._transaction(write=True) as cur:
            self._upsert_setting(cur, kind, subject or GLOBAL, value)

    @abstractmethod
    def _upsert_setting(self, cur: Cursor, kind: str, subject: str, value: str) -> None: ...

    def delete_setting(self, kind: SettingKind, subject: str | None) -> str | None:
        with self._transaction(write=True) as cur:
            row = self._row(
                cur, "SELECT value FROM settings WHERE kind = ? AND subject = ?", kind, subject or GLOBAL
            )
            if row is None:
                return None
            cur.execute(
                self._q("DELETE FROM settings WHERE kind = ? AND subject = ?"), (kind, subject or GLOBAL)
            )
            return str(row[0])

    def ping(self) -> None:
        with self._transaction(write=False) as cur:
            self._row(cur, "SELECT 1")


def iter_statements(script: str) -> Iterator[str]:
    """The statements of a DDL script (separated by ``;``, no ``;`` inside statements)."""
    for statement in script.split(";"):
        if statement.strip():
            yield statement.strip()
