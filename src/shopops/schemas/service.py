"""The schema registry's use cases, with the Confluent Schema Registry's semantics.

The service parses schemas with their format's library, resolves references, enforces modes and
compatibility levels, and keeps two caches: parsed schemas by id (ids are never reused, so an entry
is never stale) and the schemas served by id (refreshed after ``id_cache_ttl_s``, so that a
permanent delete made by another registry process is noticed).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import Counter

from shopops.schemas.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidSubjectError,
    OperationNotPermittedError,
    SchemaNotFoundError,
    SubjectCompatibilityNotConfiguredError,
    SubjectModeNotConfiguredError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from shopops.schemas.formats import Change, Dependency, ParsedSchema, parse_schema
from shopops.schemas.model import (
    CompatibilityLevel,
    Mode,
    Registration,
    SchemaReference,
    SchemaType,
    StoredSchema,
    SubjectVersion,
)
from shopops.schemas.port import SchemaStore

SCHEMAS_REGISTERED = Counter(
    "shopops_schema_registrations_total",
    "Schema registrations by outcome (created, existing, incompatible)",
    ["outcome"],
)

K = TypeVar("K")
V = TypeVar("V")

#: Subject names are free text in the Confluent API, but not empty, not huge, no control characters.
MAX_SUBJECT_LENGTH = 1000


class _Lru(Generic[K, V]):
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def drop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass(frozen=True, slots=True)
class CompatibilityReport:
    """The verdict on a candidate schema, with every incompatibility in words."""

    is_compatible: bool
    #: Confluent-style messages (incompatibilities, then the version and level they were found against).
    messages: list[str] = field(default_factory=list)
    #: The incompatible changes found, per existing version checked.
    changes: dict[int, list[Change]] = field(default_factory=dict)
    level: CompatibilityLevel = CompatibilityLevel.BACKWARD


def _missing_reference(ref: SchemaReference) -> InvalidSchemaError:
    return InvalidSchemaError(
        f"Invalid schema: reference {ref.name!r}: subject {ref.subject!r} has no version {ref.version}",
        hint="register the referenced schema first, or fix the reference's subject and version",
    )


def validate_subject(subject: str) -> str:
    """A subject name the registry accepts (the API refuses others with 42208)."""
    if not subject or not subject.strip():
        raise InvalidSubjectError(subject, "it is empty")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidSubjectError(subject[:40] + "…", f"it is longer than {MAX_SUBJECT_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in subject):
        raise InvalidSubjectError(subject, "it contains control characters")
    return subject


class SchemaRegistry:
    """Subjects, versions, compatibility and modes over a :class:`SchemaStore`."""

    def __init__(
        self,
        store: SchemaStore,
        default_compatibility: CompatibilityLevel = CompatibilityLevel.BACKWARD,
        *,
        cache_size: int = 10_000,
        id_cache_ttl_s: float = 30.0,
        max_request_bytes: int = 1_048_576,
    ) -> None:
        self.store = store
        self.default_compatibility = default_compatibility
        #: The API refuses larger request bodies with 42209 (schema too large).
        self.max_request_bytes = max_request_bytes
        self._parsed: _Lru[int, ParsedSchema] = _Lru(cache_size)
        self._by_id: _Lru[int, tuple[float, StoredSchema]] = _Lru(cache_size)
        self._ttl = id_cache_ttl_s

    def close(self) -> None:
        self.store.close()

    # -- parsing and references --

    def parse(
        self, schema_type: SchemaType, text: str, references: Sequence[SchemaReference] = ()
    ) -> ParsedSchema:
        """Parse a submitted schema; references must name existing versions (``-1``: the latest)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidSchemaError("Invalid schema: the schema is empty")
        resolved = [self._resolve_reference(r) for r in references]
        names = [r.name for r in resolved]
        if len(set(names)) != len(names):
            raise InvalidSchemaError("Invalid schema: two references have the same name")
        return parse_schema(schema_type, text, resolved, self._dependencies(resolved))

    def _resolve_reference(self, ref: SchemaReference) -> SchemaReference:
        if not ref.name or not ref.subject:
            raise InvalidSchemaError("Invalid schema: a reference needs a name, a subject and a version")
        if ref.version == -1:
            versions = self.store.versions(ref.subject)
            if not versions:
                raise InvalidSchemaError(
                    f"Invalid schema: reference {ref.name!r}: subject {ref.subject!r} not found"
                )
            return SchemaReference(ref.name, ref.subject, versions[-1].version)
        found = self.store.version(ref.subject, ref.version)
        if found is None or found.deleted:
            raise _missing_reference(ref)
        return ref

    def _dependencies(self, references: Sequence[SchemaReference]) -> list[Dependency]:
        """Every schema ``references`` reaches, dependencies before the schemas that use them."""
        ordered: list[Dependency] = []
        done: set[tuple[str, int]] = set()

        def visit(ref: SchemaReference, path: tuple[tuple[str, int], ...]) -> None:
            key = (ref.subject, ref.version)
            if key in path:
                raise InvalidSchemaError(
                    f"Invalid schema: circular reference through {ref.subject} version {ref.version}"
                )
            if key in done:
                return
            found = self.store.version(ref.subject, ref.version)
            if found is None:
                raise _missing_reference(ref)
            for inner in found.schema.references:
                visit(inner, (*path, key))
            done.add(key)
            ordered.append(Dependency(ref.name, found.schema.schema_type, found.schema.text))

        for ref in references:
            visit(ref, ())
        return ordered

    def parsed(self, stored: StoredSchema) -> ParsedSchema:
        """A stored schema, parsed (cached by id: ids are never reused)."""
        cached = self._parsed.get(stored.id)
        if cached is None:
            cached = parse_schema(
                stored.schema_type, stored.text, stored.references, self._dependencies(stored.references)
            )
            self._parsed.put(stored.id, cached)
        return cached

    # -- registration and lookup --

    def register(
        self,
        subject: str,
        schema_type: SchemaType,
        text: str,
        references: Sequence[SchemaReference] = (),
        *,
        normalize: bool = False,
    ) -> Registration:
        """Register a schema under ``subject``; the same schema again returns its existing id/version."""
        validate_subject(subject)
        settings = self.store.effective_settings(subject)
        self._require_writable(subject, Mode(settings["mode"] or Mode.READWRITE))
        candidate = self.parse(schema_type, text, references)
        level = CompatibilityLevel(settings["compatibility"] or self.default_compatibility)

        def check(live: Sequence[SubjectVersion]) -> None:
            report = self._report(candidate, live, level)
            if not report.is_compatible:
                SCHEMAS_REGISTERED.labels("incompatible").inc()
                raise IncompatibleSchemaError(subject, report.messages)

        history = 0 if level is CompatibilityLevel.NONE else (None if level.transitive else 1)
        registration = self.store.register(
            subject, candidate.to_new_schema(normalize=normalize), check, history
        )
        self._parsed.put(registration.id, candidate)
        SCHEMAS_REGISTERED.labels("created" if registration.created else "existing").inc()
        return registration

    def lookup(
        self,
        subject: str,
        schema_type: SchemaType,
        text: str,
        references: Sequence[SchemaReference] = (),
        *,
        include_deleted: bool = False,
    ) -> SubjectVersion:
        """The version of ``subject`` holding this schema (40401 no subject, 40403 not there)."""
        candidate = self.parse(schema_type, text, references)
        found = self.store.lookup(subject, candidate.fingerprint, include_deleted)
        if found is not None:
            return found
        if not self.store.versions(subject, include_deleted=True):
            raise SubjectNotFoundError(subject)
        raise SchemaNotFoundError()

    # -- compatibility --

    def _report(
        self, candidate: ParsedSchema, live: Sequence[SubjectVersion], level: CompatibilityLevel
    ) -> CompatibilityReport:
        if level is CompatibilityLevel.NONE or not live:
            return CompatibilityReport(True, level=level)
        targets = list(reversed(live)) if level.transitive else [live[-1]]
        messages: list[str] = []
        changes: dict[int, list[Change]] = {}
        for target in targets:
            existing = self.parsed(target.schema)
            found: list[Change] = []
            if level.backward:
                found += candidate.changes_from(existing, reader_role="new schema", writer_role="old schema")
            if level.forward:
                found += existing.changes_from(candidate, reader_role="old schema", writer_role="new schema")
            bad = [c for c in found if not c.compatible]
            if bad:
                changes[target.version] = bad
                messages += [c.confluent() for c in bad]
                messages += [
                    f"{{oldSchemaVersion: {target.version}}}",
                    f"{{oldSchema: '{target.schema.text}'}}",
                    f"{{validateFields: 'false', compatibility: '{level.value}'}}",
                ]
        return CompatibilityReport(not changes, messages, changes, level)

    def check_compatibility(
        self,
        subject: str,
        version: int | None,
        schema_type: SchemaType,
        text: str,
        references: Sequence[SchemaReference] = (),
        *,
        all_versions: bool = False,
    ) -> CompatibilityReport:
        """Would this schema be accepted? Against one version (``None``: latest) or, with
        ``all_versions``, against the versions the subject's level checks on registration."""
        candidate = self.parse(schema_type, text, references)
        level = self.compatibility(subject)
        live = self.store.versions(subject)
        if all_versions:
            return self._report(candidate, live, level)
        if not live:
            raise SubjectNotFoundError(subject)
        target = self.version(subject, version)
        if level is CompatibilityLevel.NONE:
            return CompatibilityReport(True, level=level)
        # Against one version only the direction of the level applies, transitive or not.
        if level.backward and level.forward:
            single = CompatibilityLevel.FULL
        else:
            single = CompatibilityLevel.BACKWARD if level.backward else CompatibilityLevel.FORWARD
        report = self._report(candidate, [target], single)
        return CompatibilityReport(report.is_compatible, report.messages, report.changes, level)

    def diff(
        self, subject: str, old: int | None, new: int | None
    ) -> tuple[SubjectVersion, SubjectVersion, list[Change], list[Change]]:
        """Two versions and their changes both ways: (old, new, new-reads-old, old-reads-new)."""
        a, b = self.version(subject, old), self.version(subject, new)
        pa, pb = self.parsed(a.schema), self.parsed(b.schema)
        backward = pb.changes_from(
            pa, reader_role=f"new schema (v{b.version})", writer_role=f"old schema (v{a.version})"
        )
        forward = pa.changes_from(
            pb, reader_role=f"old schema (v{a.version})", writer_role=f"new schema (v{b.version})"
        )
        return a, b, backward, forward

    # -- reads --

    def subjects(
        self, prefix: str = "", include_deleted: bool = False, deleted_only: bool = False
    ) -> list[str]:
        if deleted_only:
            live = set(self.store.subjects())
            names = [s for s in self.store.subjects(include_deleted=True) if s not in live]
        else:
            names = self.store.subjects(include_deleted)
        return [s for s in names if s.startswith(prefix)]

    def schemas(
        self, prefix: str = "", include_deleted: bool = False, latest_only: bool = False
    ) -> list[SubjectVersion]:
        """Every subject's versions (or only the latest of each), subjects in name order."""
        out: list[SubjectVersion] = []
        for subject in self.subjects(prefix, include_deleted):
            versions = self.store.versions(subject, include_deleted=include_deleted)
            out += versions[-1:] if latest_only else versions
        return out

    def versions(self, subject: str, include_deleted: bool = False, deleted_only: bool = False) -> list[int]:
        every = self.store.versions(subject, include_deleted=True)
        live = [v.version for v in every if not v.deleted]
        if not live and not (every and (include_deleted or deleted_only)):
            raise SubjectNotFoundError(subject)
        if deleted_only:
            return [v.version for v in every if v.deleted]
        return [v.version for v in every] if include_deleted else live

    def version(self, subject: str, version: int | None, include_deleted: bool = False) -> SubjectVersion:
        """One version (``None``: the latest live one)."""
        if version is None:
            live = self.store.versions(subject)
            if not live:
                raise SubjectNotFoundError(subject)
            return live[-1]
        found = self.store.version(subject, version)
        if found is None or (found.deleted and not include_deleted):
            if not self.store.versions(subject, include_deleted=include_deleted):
                raise SubjectNotFoundError(subject)
            raise VersionNotFoundError(subject, version)
        return found

    def cached_schema(self, schema_id: int) -> StoredSchema | None:
        """The schema with ``schema_id`` if it is in the cache and fresh, without touching the store."""
        cached = self._by_id.get(schema_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def schema(self, schema_id: int) -> StoredSchema:
        """The schema with ``schema_id`` (40403 when no version uses it any more)."""
        cached = self._by_id.get(schema_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        stored = self.store.schema_by_id(schema_id)
        if stored is None:
            self._by_id.drop(schema_id)
            raise SchemaNotFoundError(schema_id)
        self._by_id.put(schema_id, (now, stored))
        return stored

    def schema_versions(
        self, schema_id: int, subject: str | None = None, include_deleted: bool = False
    ) -> list[tuple[str, int]]:
        usages = self.store.schema_usages(schema_id)
        if not usages:
            raise SchemaNotFoundError(schema_id)
        return [
            (s, v)
            for s, v, deleted in usages
            if (include_deleted or not deleted) and (subject is None or s == subject)
        ]

    def referenced_by(self, subject: str, version: int | None) -> list[int]:
        target = self.version(subject, version)
        return self.store.referenced_by(subject, target.version)

    # -- deletes --

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        self._require_writable(subject)
        deleted = self.store.delete_subject(subject, permanent)
        self._forget_deleted()
        return deleted

    def delete_version(self, subject: str, version: int | None, permanent: bool = False) -> int:
        self._require_writable(subject)
        if version is None:
            version = self.version(subject, None).version
        deleted = self.store.delete_version(subject, version, permanent)
        self._forget_deleted()
        return deleted

    def _forget_deleted(self) -> None:
        # Deletes are rare: forget every schema served by id so that 40403 shows at once here.
        self._by_id.clear()

    # -- compatibility levels and modes --

    def compatibility(
        self, subject: str | None = None, *, default_to_global: bool = True
    ) -> CompatibilityLevel:
        """The level that applies to ``subject`` (its own, else the global one, else the default)."""
        if subject is not None:
            own = self.store.get_setting("compatibility", subject)
            if own is not None:
                return CompatibilityLevel(own)
            if not default_to_global:
                raise SubjectCompatibilityNotConfiguredError(subject)
        value = self.store.get_setting("compatibility", None)
        return CompatibilityLevel(value) if value is not None else self.default_compatibility

    def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> CompatibilityLevel:
        if subject is not None:
            validate_subject(subject)
        self.store.set_setting("compatibility", subject, level.value)
        return level

    def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove a level; returns the one that was set (the global one falls back to the default)."""
        previous = self.store.delete_setting("compatibility", subject)
        if previous is None:
            if subject is not None:
                raise SubjectCompatibilityNotConfiguredError(subject)
            return self.default_compatibility
        return CompatibilityLevel(previous)

    def mode(self, subject: str | None = None, *, default_to_global: bool = True) -> Mode:
        if subject is not None:
            own = self.store.get_setting("mode", subject)
            if own is not None:
                return Mode(own)
            if not default_to_global:
                raise SubjectModeNotConfiguredError(subject)
        value = self.store.get_setting("mode", None)
        return Mode(value) if value is not None else Mode.READWRITE

    def set_mode(self, mode: Mode, subject: str | None = None) -> Mode:
        if subject is not None:
            validate_subject(subject)
        self.store.set_setting("mode", subject, mode.value)
        return mode

    def delete_mode(self, subject: str | None = None) -> Mode:
        previous = self.store.delete_setting("mode", subject)
        if previous is None:
            if subject is not None:
                raise SubjectModeNotConfiguredError(subject)
            return Mode.READWRITE
        return Mode(previous)

    def _require_writable(self, subject: str, mode: Mode | None = None) -> None:
        mode = mode or self.mode(subject)
        if not mode.writable:
            raise OperationNotPermittedError(
                f"Subject {subject} is in {mode.value.lower()} mode",
                hint=f'set the mode back with PUT /mode/{subject} {{"mode": "READWRITE"}} '
                "(or the global /mode)",
            )
