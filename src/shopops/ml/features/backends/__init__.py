"""Online stores of the feature store, looked up by the ``ml.features.online_store.type`` setting."""

from __future__ import annotations

from pathlib import Path

from shopops.core.registry import BackendRegistry, BackendSelection
from shopops.ml.features.port import OnlineStoreBackend

ONLINE_STORES: BackendRegistry[OnlineStoreBackend] = BackendRegistry(
    "feature online store",
    {
        "sqlite": "shopops.ml.features.backends.sqlite:SqliteOnlineStore",
        "redis": "shopops.ml.features.backends.redis:RedisOnlineStore",
    },
)


def open_online_store(selection: BackendSelection, repo_dir: Path) -> OnlineStoreBackend:
    """The online store named by the settings (``repo_dir``: the feature repository's folder)."""
    return ONLINE_STORES.create(selection, repo_dir=repo_dir)
