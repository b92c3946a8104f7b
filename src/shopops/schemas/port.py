"""The schema-store port. Backends: ``sqlite`` (embedded) and ``postgres`` (shared by processes).

Every backend passes one contract suite (``tests/integration/schemas/test_store_contract.py``).
What a store guarantees:

- ids are global and never reused; a schema with the same fingerprint gets the same id in every
  subject, even when several processes register it at the same moment;
- registrations under one subject are serialised (across processes too): the compatibility check
  sees the versions as they are when the new version is written, and version numbers have no
  gaps or duplicates;
- each call is one transaction: it fails without writing anything or succeeds completely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

from shopops.schemas.model import NewSchema, Registration, StoredSchema, SubjectVersion

SettingKind = Literal["compatibility", "mode"]

#: Called inside the registering transaction with the subject's live versions (oldest first);
#: raises (e.g. :class:`~shopops.schemas.errors.IncompatibleSchemaError`) to refuse the registration.
RegistrationCheck = Callable[[Sequence[SubjectVersion]], None]


class SchemaStore(ABC):
    """Subjects, versions, schemas and settings of the registry."""

    @abstractmethod
    def register(
        self, subject: str, schema: NewSchema, check: RegistrationCheck, history: int | None = None
    ) -> Registration:
        """Add ``schema`` as the next version of ``subject`` unless it is already a live version.

        Returns the existing version (``created=False``) when the subject has a live version with
        the same fingerprint; otherwise calls ``check`` with the latest ``history`` live versions
        (``None``: all of them; ``0``: none) and, if it returns, stores the version (numbered one
        past the highest, soft-deleted ones included).
        """

    @abstractmethod
    def lookup(self, subject: str, fingerprint: str, include_deleted: bool = False) -> SubjectVersion | None:
        """The latest version of ``subject`` whose schema has ``fingerprint``."""

    @abstractmethod
    def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        """The schema with ``schema_id``, if any version (even soft-deleted) still uses it."""

    @abstractmethod
    def schema_usages(self, schema_id: int) -> list[tuple[str, int, bool]]:
        """``(subject, version, deleted)`` of every version using ``schema_id``, sorted."""

    @abstractmethod
    def subjects(self, include_deleted: bool = False) -> list[str]:
        """Subjects with a live version (with ``include_deleted``, any version), sorted."""

    @abstractmethod
    def versions(self, subject: str, include_deleted: bool = False) -> list[SubjectVersion]:
        """The versions of ``subject``, oldest first."""

    @abstractmethod
    def version(self, subject: str, version: int) -> SubjectVersion | None:
        """One version, soft-deleted or not."""

    @abstractmethod
    def delete_version(self, subject: str, version: int, permanent: bool) -> int:
        """Soft-delete a live version, or permanently delete a soft-deleted one.

        Raises :class:`~shopops.schemas.errors.SubjectNotFoundError`, ``VersionNotFoundError``,
        ``VersionSoftDeletedError`` (soft delete of a soft-deleted version), ``VersionNotSoftDeletedError``
        (permanent delete of a live one) or ``ReferenceExistsError`` (another live schema uses it).
        """

    @abstractmethod
    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft-delete every live version, or permanently delete a soft-deleted subject.

        Returns the versions deleted. Raises ``SubjectNotFoundError``, ``SubjectSoftDeletedError``,
        ``SubjectNotSoftDeletedError`` or ``ReferenceExistsError``. A permanent delete also removes the
        subject's own compatibility and mode settings.
        """

    @abstractmethod
    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of schemas (with a live version) that reference ``subject`` at ``version``."""

    @abstractmethod
    def get_setting(self, kind: SettingKind, subject: str | None) -> str | None:
        """A compatibility level or mode, global (``subject=None``) or the subject's own."""

    def effective_settings(self, subject: str) -> dict[SettingKind, str | None]:
        """The compatibility level and mode that apply to ``subject`` (its own, else the global
        setting, else ``None``), read together: a registration needs both."""
        out: dict[SettingKind, str | None] = {}
        kinds: tuple[SettingKind, ...] = ("compatibility", "mode")
        for kind in kinds:
            own = self.get_setting(kind, subject)
            out[kind] = own if own is not None else self.get_setting(kind, None)
        return out

    @abstractmethod
    def set_setting(self, kind: SettingKind, subject: str | None, value: str) -> None:
        """Set a compatibility level or mode."""

    @abstractmethod
    def delete_setting(self, kind: SettingKind, subject: str | None) -> str | None:
        """Remove a setting; returns what it was."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
