"""The online-store port of the feature store: which Feast online store, configured how."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from shopops.core.registry import BackendConfig


class OnlineStoreBackend(ABC):
    """One Feast online store, chosen by ``ml.features.online_store.type``.

    Feast does the reads and writes; a backend only says how Feast reaches the store, how to
    describe it without secrets, and how to check that it answers.
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
