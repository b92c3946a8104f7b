"""The results-store port: every check run, its per-check outcomes and its failing rows.

Backends (setting ``quality.store.type``): ``sqlite`` (embedded, ``$SHOPOPS_HOME/quality/results.db``)
and ``postgres`` (shared by every process of the platform). Both pass one contract suite
(``tests/integration/quality/test_store_contract.py``). What a store guarantees:

- a run is written in one transaction, with its results and failing rows: a reader sees all of it
  or nothing, and a crash loses nothing that was acknowledged;
- recording the same run again (same ``run_id``, e.g. a retry after a lost acknowledgement) stores
  nothing twice and returns ``False``;
- concurrent writers (threads, processes) never lose or interleave a run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from shopops.quality.model import RunRecord


class ResultsStore(ABC):
    """Where check runs are kept and read back."""

    @abstractmethod
    def record(self, run: RunRecord) -> bool:
        """Store ``run`` with its outcomes and sampled failing rows; ``False`` if it was already there."""

    @abstractmethod
    def runs(
        self,
        dataset: str | None = None,
        *,
        mode: str | None = None,
        failed_only: bool = False,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Run summaries, newest first."""

    @abstractmethod
    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's summary with its ``checks`` (outcome of every check), or ``None``."""

    @abstractmethod
    def failures(self, run_id: str, check: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The failing rows sampled by a run: ``check``, ``key`` (column -> value) and ``reason``."""

    @abstractmethod
    def latest(self, mode: str | None = "table") -> list[dict[str, Any]]:
        """The newest run of every dataset (of ``mode``; ``None``: any), by dataset."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
