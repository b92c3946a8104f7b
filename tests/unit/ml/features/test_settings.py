"""The feature store's settings and its online-store backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopops.core.errors import ConfigError
from shopops.core.registry import BackendSelection
from shopops.core.settings import load_settings
from shopops.ml.features.backends import ONLINE_STORES, open_online_store


def test_online_store_by_name_or_by_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOPOPS_ML__FEATURES__ONLINE_STORE__TYPE", "redis")
    assert load_settings(home=tmp_path).ml.features.online_store.type == "redis"
    monkeypatch.delenv("SHOPOPS_ML__FEATURES__ONLINE_STORE__TYPE")
    assert (
        load_settings(home=tmp_path, ml={"features": {"online_store": "redis"}}).ml.features.online_store.type
        == "redis"
    )
    settings = load_settings(
        home=tmp_path, ml={"features": {"online_store": {"connection_string": "r:6379,db=2"}}}
    )
    assert settings.ml.features.online_store.type == "redis"
    assert load_settings(home=tmp_path).ml.features.online_store.type == "sqlite"
    with pytest.raises(ConfigError, match=r"ml\.features\.project"):
        load_settings(home=tmp_path, ml={"features": {"project": "has-dash"}})
    with pytest.raises(ConfigError, match=r"ml\.features\.colour"):
        load_settings(home=tmp_path, ml={"features": {"colour": "red"}})


def test_backends_say_where_they_are_without_secrets(tmp_path: Path) -> None:
    sqlite = open_online_store(BackendSelection(type="sqlite"), tmp_path)
    assert sqlite.feast_config() == {"type": "sqlite", "path": str(tmp_path / "online.db")}
    redis = open_online_store(
        BackendSelection(
            type="redis", connection_string="cache:6380,db=3,password=hunter2", key_ttl_seconds=60
        ),
        tmp_path,
    )
    assert redis.describe() == "redis cache:6380,db=3,password=***"
    assert redis.feast_config()["connection_string"] == "cache:6380,db=3,password=hunter2"
    assert redis.feast_config()["key_ttl_seconds"] == 60
    with pytest.raises(ConfigError, match="unknown feature online store backend type 'dynamo'") as err:
        ONLINE_STORES.config_for(BackendSelection(type="dynamo"))
    assert err.value.hint == "known types: redis, sqlite"
    with pytest.raises(ConfigError, match="key_ttl_seconds"):
        ONLINE_STORES.config_for(BackendSelection(type="redis", key_ttl_seconds=0))
