"""Ports of the governance plane: the API-key store, the audit store, the secret provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from pydantic import SecretStr

from shopops.governance.model import ApiKeyRecord, AuditEntry, AuditRecord, ChainHead


class KeyStore(ABC):
    """API keys, stored with the hash of their secret only."""

    @abstractmethod
    def add(self, record: ApiKeyRecord) -> None: ...

    @abstractmethod
    def get(self, key_id: str) -> ApiKeyRecord | None: ...

    @abstractmethod
    def list(self, include_revoked: bool = False) -> list[ApiKeyRecord]: ...

    @abstractmethod
    def revoke(self, key_id: str, at_ms: int) -> bool:
        """Mark the key revoked; ``False`` when it does not exist or was revoked already."""

    def close(self) -> None:  # noqa: B027 - optional for stores without resources
        """Release connections."""


class AuditStore(ABC):
    """An append-only, hash-chained trail: each record holds the hash of the one before it."""

    @abstractmethod
    def append(self, entries: Sequence[AuditEntry], ts_ms: int) -> list[AuditRecord]:
        """Seal and store ``entries`` in order, atomically, after the current head."""

    @abstractmethod
    def records(self, from_seq: int = 1) -> Iterator[AuditRecord]:
        """Every record from ``from_seq``, in sequence order (as stored: verification's input)."""

    @abstractmethod
    def head(self) -> ChainHead | None:
        """The store's note of its last record (``None`` when empty or when the note is gone)."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""


class SecretProvider(ABC):
    """Where secret settings come from: the environment, files, HashiCorp Vault."""

    @abstractmethod
    def get(self, name: str) -> SecretStr | None:
        """The secret called ``name``, or ``None`` when this provider has none by that name."""

    @abstractmethod
    def describe(self, name: str) -> str:
        """Where ``name`` would be looked up, for messages (never the value)."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""
