"""A scratch database on the test PostgreSQL server, shared by the suites that need one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

#: The server the tests use; any database on it that the user may create databases from.
PG_ADMIN_DSN = os.environ.get("SHOPOPS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Create a database named ``<prefix>_<random>``, yield its DSN, drop it afterwards.

    A server that does not answer fails the test with the command that starts it (no skip).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer at {PG_ADMIN_DSN} ({exc}). Start it with "
            "`pg_ctlcluster 15 main start` (Debian package postgresql-15; trust auth for user "
            "postgres on 127.0.0.1), or set SHOPOPS_TEST_PG_DSN.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
        info["dbname"] = name
        try:
            yield psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
