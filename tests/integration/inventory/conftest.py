"""Reservation stores of every backend for the inventory tests.

- sqlite: a file in the test's tmp_path;
- redis: the server on 127.0.0.1:6379, a key prefix unique to the test, only its keys deleted after;
- postgres: the server on 127.0.0.1:5432, one database created for the session (dropped at the
  end) and a schema unique to each test.

A server that does not answer fails the test with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.integration.inventory.helpers import REDIS_URL, FakeClock, StoreFactory
from tests.support.postgres import scratch_database

BACKENDS = ["sqlite", "redis", "postgres"]


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand, starting at a realistic epoch time."""
    return FakeClock()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis server; fails with how to start it when it does not answer."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.fail(
            f"Redis does not answer at {REDIS_URL} ({exc}). Start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no` "
            "(Debian package redis-server), or set SHOPOPS_TEST_REDIS_URL.",
            pytrace=False,
        )
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A database created for this test session on the test PostgreSQL server, dropped at the end."""
    with scratch_database("shopops_inventory") as dsn:
        yield dsn


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds reservation stores of each backend through the registry, as the platform does."""
    backend: str = request.param
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    dsn = request.getfixturevalue("postgres_dsn") if backend == "postgres" else None
    factory = StoreFactory(backend, tmp_path, url, dsn)
    try:
        yield factory
    finally:
        factory.cleanup()
