"""Results-store backends (``quality.store.type``), looked up by name."""

from __future__ import annotations

from pathlib import Path

from shopops.core.registry import BackendRegistry, BackendSelection
from shopops.quality.port import ResultsStore

RESULTS_STORES: BackendRegistry[ResultsStore] = BackendRegistry(
    "quality results store",
    {
        "sqlite": "shopops.quality.backends.sqlite:SqliteResultsStore",
        "postgres": "shopops.quality.backends.postgres:PostgresResultsStore",
    },
)


def open_results_store(selection: BackendSelection, home: Path) -> ResultsStore:
    """Open the results store named by the settings (``home`` is the data directory)."""
    return RESULTS_STORES.create(selection, home=home)
