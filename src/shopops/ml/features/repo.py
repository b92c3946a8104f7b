"""The Feast repository, generated in code from ``model.py`` (no ``feature_store.yaml``, no ``feast apply``).

Every import of Feast lives in this module's functions: importing Feast costs about a second (it
pulls torch), so only the code paths that talk to Feast pay for it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopops.ml.features.model import (
    ENTITIES,
    ENTITY_BY_NAME,
    USE_CASE_DEFS,
    VIEWS,
    push_source_name,
)

if TYPE_CHECKING:
    from feast import FeatureStore


def data_path(data_dir: Path, view: str) -> Path:
    """The Parquet file behind a view's batch source."""
    return data_dir / f"{view}.parquet"


def open_store(project: str, repo_dir: Path, online_store: dict[str, Any]) -> FeatureStore:
    """A Feast ``FeatureStore`` configured in code: local provider, DuckDB offline store, file registry."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    # Feast logs every registry refresh at INFO; our own logs say what happened.
    logging.getLogger("feast").setLevel(logging.WARNING)
    repo_dir.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=project,
        provider="local",
        registry={"registry_type": "file", "path": str(repo_dir / "registry.db"), "cache_ttl_seconds": 60},
        online_store=online_store,
        # The DuckDB offline store keeps every entity row; Feast's file (Dask) store drops rows that
        # share a key and timestamp and rows with no earlier feature value (Feast issue #6787).
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=repo_dir,
    )
    return FeatureStore(config=config)


def definitions(data_dir: Path) -> list[Any]:
    """Entities, batch and push sources, feature views and one feature service per use case."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Float64, Int64, String

    types = {"int64": Int64, "float64": Float64}
    entities = {
        e.name: Entity(
            name=e.name, join_keys=[e.join_key], value_type=ValueType.STRING, description=e.description
        )
        for e in ENTITIES
    }
    objects: list[Any] = list(entities.values())
    views: dict[str, Any] = {}
    for view in VIEWS:
        source: Any = FileSource(
            name=f"{view.name}_batch",
            path=str(data_path(data_dir, view.name)),
            timestamp_field="event_timestamp",
            description=view.source,
        )
        objects.append(source)
        if view.push:
            source = PushSource(name=push_source_name(view.name), batch_source=source)
            objects.append(source)
        schema = [Field(name=ENTITY_BY_NAME[e].join_key, dtype=String) for e in view.entities]
        schema += [Field(name=name, dtype=types[kind]) for name, kind in view.fields]
        fv = FeatureView(
            name=view.name,
            entities=[entities[e] for e in view.entities],
            # No TTL: every row is valid until the next one, and sliding windows carry their own
            # exit rows, so an old value is never stale.
            ttl=timedelta(0),
            schema=schema,
            source=source,
            online=True,
            description=view.description,
            tags={"source": view.source},
        )
        views[view.name] = fv
        objects.append(fv)
    for case in USE_CASE_DEFS.values():
        by_view: dict[str, list[str]] = {}
        for ref in case.refs:
            name, feature = ref.split(":", 1)
            by_view.setdefault(name, []).append(feature)
        objects.append(
            FeatureService(
                name=case.name,
                features=[views[name][features] for name, features in by_view.items()],
                description=f"Features of {case.description}",
            )
        )
    return objects
