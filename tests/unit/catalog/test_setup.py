"""Catalog settings: namespaces from the platform's stores, backend choice by options, bad options."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopops.catalog.backends import CATALOG_STORES, LINEAGE_TRANSPORTS
from shopops.catalog.model import DatasetKind
from shopops.catalog.setup import namespaces_for
from shopops.core.errors import ConfigError
from shopops.core.settings import Settings


def test_namespaces_say_where_the_data_lives(tmp_path: Path) -> None:
    embedded = namespaces_for(Settings(home=tmp_path))
    assert embedded.events == f"sqlite://{tmp_path}/events.db"
    assert embedded.lake == f"file://{tmp_path}/lake/warehouse"
    assert embedded.files == f"file://{tmp_path}"
    assert embedded.default == "shopops"
    scaled = namespaces_for(
        Settings(
            home=tmp_path,
            events={"type": "kafka", "bootstrap_servers": "b1:9092,b2:9092"},
            lake={"warehouse": "s3://lake/warehouse/"},
            catalog={"namespace": "shop-prod"},
        )
    )
    assert scaled.events == "kafka://b1:9092"
    assert scaled.lake == "s3://lake/warehouse"
    assert scaled.for_kind(DatasetKind.SILVER) == "s3://lake/warehouse"
    assert scaled.for_name("vn.shop.orders") == "kafka://b1:9092"
    assert scaled.for_name("reconciliation.results.vn.summary") == f"file://{tmp_path}"
    assert scaled.for_name("models.fraud") == "shop-prod"


def test_backends_are_chosen_by_their_options() -> None:
    catalog = Settings(
        catalog={"store": {"dsn": "postgresql://db/x"}, "openlineage": {"url": "http://m:5000"}}
    ).catalog
    assert (catalog.store.type, catalog.openlineage.type) == ("postgres", "http")
    default = Settings().catalog
    assert (default.store.type, default.openlineage.type) == ("sqlite", "file")


def test_bad_backend_choices_fail_with_the_known_ones() -> None:
    settings = Settings(catalog={"store": {"type": "mongo"}, "openlineage": {"type": "http", "timeout": 3}})
    with pytest.raises(ConfigError) as err:
        CATALOG_STORES.config_for(settings.catalog.store)
    assert err.value.hint == "known types: postgres, sqlite"
    with pytest.raises(ConfigError, match="invalid options for OpenLineage transport backend 'http'"):
        LINEAGE_TRANSPORTS.config_for(settings.catalog.openlineage)
