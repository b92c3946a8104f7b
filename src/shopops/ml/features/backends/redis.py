"""The scale online store: Feast's Redis store (one Redis, a cluster or Sentinel)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig
from shopops.ml.features.port import OnlineReader, OnlineStoreBackend


class RedisOnlineStore(OnlineStoreBackend):
    type_name: ClassVar[str] = "redis"

    class Config(BackendConfig):
        #: Feast's format: ``host:port`` then options, e.g. ``redis:6379,db=2,password=...,ssl=true``.
        connection_string: SecretStr = SecretStr("127.0.0.1:6379")
        redis_type: Literal["redis", "redis_cluster", "redis_sentinel"] = "redis"
        #: Expire entity keys this long after their last write (default: never).
        key_ttl_seconds: int | None = Field(default=None, ge=1)

    config: Config

    def feast_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "redis",
            "connection_string": self.config.connection_string.get_secret_value(),
            "redis_type": self.config.redis_type,
        }
        if self.config.key_ttl_seconds is not None:
            out["key_ttl_seconds"] = self.config.key_ttl_seconds
        return out

    def describe(self) -> str:
        text = self.config.connection_string.get_secret_value()
        return f"redis {re.sub(r'password=[^,]*', 'password=***', text)}"

    def _client_options(self) -> dict[str, Any]:
        first, *options = self.config.connection_string.get_secret_value().split(",")
        host, _, port = first.partition(":")
        kwargs: dict[str, Any] = {"host": host or "127.0.0.1", "port": int(port or 6379)}
        for option in options:
            name, _, value = option.partition("=")
            if name == "db":
                kwargs["db"] = int(value)
            elif name == "password":
                kwargs["password"] = value
            elif name == "ssl":
                kwargs["ssl"] = value.lower() == "true"
        return kwargs

    def check(self) -> None:
        if self.config.redis_type != "redis":
            return  # cluster and Sentinel clients are Feast's to build; it reports failures itself
        import redis

        try:
            client = redis.Redis(socket_connect_timeout=2, **self._client_options())
            try:
                client.ping()
            finally:
                client.close()
        except (redis.RedisError, ValueError) as exc:
            raise BackendUnavailableError(
                f"the Redis online store at {self.describe()} does not answer: {exc}",
                hint="start Redis or fix ml.features.online_store.connection_string",
            ) from exc

    def reader(self, store: Any, views: Mapping[str, Sequence[str]]) -> OnlineReader:
        from feast.infra.online_stores.helpers import compute_versioned_name
        from feast.infra.online_stores.redis import RedisOnlineStore as FeastRedis

        versioned = bool(store.config.registry.enable_online_feature_view_versioning)
        names = {name: compute_versioned_name(store.get_feature_view(name), versioned) for name in views}
        # Feast's own client construction: plain Redis, cluster and Sentinel alike.
        client = FeastRedis()._get_client(store.config.online_store)
        return RedisOnlineReader(client, store.config.project, names, views)


class RedisOnlineReader(OnlineReader):
    """Reads Feast's Redis hashes: one per entity key (``serialized key + project``), one field per
    feature (``murmur3("<view>:<feature>")``), all views of a request in one pipeline."""

    def __init__(
        self, client: Any, project: str, names: Mapping[str, str], views: Mapping[str, Sequence[str]]
    ) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        self.client = client
        self.suffix = project.encode()
        self.fields: dict[str, tuple[list[bytes], tuple[str, ...]]] = {
            view: ([_mmh3(f"{names[view]}:{f}") for f in features], tuple(features))
            for view, features in views.items()
        }

    def read(self, lookups: Sequence[tuple[str, bytes]]) -> list[dict[str, bytes]]:
        with self.client.pipeline(transaction=False) as pipe:
            for view, key in lookups:
                pipe.hmget(key + self.suffix, self.fields[view][0])
            replies = pipe.execute()
        out: list[dict[str, bytes]] = []
        for (view, _), values in zip(lookups, replies, strict=True):
            names = self.fields[view][1]
            out.append({name: value for name, value in zip(names, values, strict=True) if value is not None})
        return out

    def close(self) -> None:
        self.client.close()
