"""The online-store port of the feature store: which Feast online store, configured how, and how
serving reads it without going through Feast's Python SDK."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from shopops.core.registry import BackendConfig


class OnlineReader(ABC):
    """Reads what Feast stored for entity keys, straight from the online store.

    Feast stays the only writer (apply, materialize, push); a reader only looks up the bytes Feast
    wrote — one serialized ``ValueProto`` per feature — in one round trip per request. Decoding is
    the caller's, with Feast's own helpers.
    """

    @abstractmethod
    def read(self, lookups: Sequence[tuple[str, bytes]]) -> list[dict[str, bytes]]:
        """For each ``(feature view, serialized entity key)`` (Feast's ``serialize_entity_key``):
        ``{feature name: serialized ValueProto}`` of the values stored (``{}`` when none)."""

    def close(self) -> None:  # noqa: B027 - optional for readers without resources
        """Release connections."""


class OnlineStoreBackend(ABC):
    """One Feast online store, chosen by ``ml.features.online_store.type``.

    Feast does the writes; a backend says how Feast reaches the store, how to describe it without
    secrets, how to check that it answers, and (optionally) how to read Feast's rows directly.
    """

    Config: ClassVar[type[BackendConfig]]
    type_name: ClassVar[str]

    def __init__(self, config: BackendConfig, *, repo_dir: Path) -> None:
        self.config = config
        self.repo_dir = repo_dir

    @abstractmethod
    def feast_config(self) -> dict[str, Any]:
        """The ``online_store`` section of Feast's ``RepoConfig``."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for people (never a password)."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~shopops.core.errors.BackendUnavailableError` if the store does not answer."""

    def reader(self, store: Any, views: Mapping[str, Sequence[str]]) -> OnlineReader | None:
        """A direct reader of the feature ``views`` (name → features) of the Feast ``store``, or
        ``None`` when this store is read through Feast only."""
        return None
