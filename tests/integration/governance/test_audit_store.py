"""The audit stores (SQLite, PostgreSQL): appends chain, and every kind of tampering done directly
in the store is found by `verify`, which names the first broken record."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.support.postgres import scratch_database
from typer.testing import CliRunner

from shopops.cli.main import app as cli
from shopops.core.registry import BackendSelection
from shopops.governance.backends import open_audit_store
from shopops.governance.model import AuditEntry, AuditKind, verify_chain
from shopops.governance.port import AuditStore

Tamper = Callable[[str], None]


class Backend:
    def __init__(self, kind: str, home: Path, dsn: str | None) -> None:
        self.kind, self.home, self.dsn = kind, home, dsn

    def selection(self) -> BackendSelection:
        if self.kind == "postgres":
            return BackendSelection(type="postgres", dsn=self.dsn)
        return BackendSelection(type="sqlite")

    def open(self) -> AuditStore:
        return open_audit_store(self.selection(), self.home)

    def sql(self, statement: str) -> None:
        """Run ``statement`` straight on the store, as an intruder with database access would."""
        if self.kind == "postgres":
            assert self.dsn is not None
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("SET search_path TO governance")
                conn.execute(statement)  # type: ignore[arg-type]
        else:
            with closing(sqlite3.connect(self.home / "audit.db", isolation_level=None)) as conn:
                conn.execute(statement)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        with scratch_database("shopops_audit") as dsn:
            yield Backend("postgres", tmp_path, dsn)
    else:
        yield Backend("sqlite", tmp_path, None)


def entry(i: int) -> AuditEntry:
    return AuditEntry(AuditKind.KEY, 'Cli::"ops"', "create_key", f'Key::"{i}"', "done", details={"n": i})


def filled(backend: Backend, n: int = 6) -> AuditStore:
    store = backend.open()
    for i in range(1, n + 1, 2):
        store.append([entry(i), entry(i + 1)], ts_ms=1_000 + i)
    return store


def test_appends_chain_across_reopens(backend: Backend) -> None:
    store = filled(backend)
    store.close()
    again = backend.open()
    records = again.append([entry(7)], ts_ms=9_000)
    assert records[0].seq == 7
    report = verify_chain(again.records(), again.head())
    assert (report.ok, report.checked) == (True, 7)
    again.close()


@pytest.mark.parametrize(
    ("tamper", "first_broken", "fragment"),
    [
        ("UPDATE audit_log SET decision = 'deny' WHERE seq = 3", 3, "edited"),
        ("UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 5", 5, "edited"),
        ("DELETE FROM audit_log WHERE seq = 4", 4, "missing"),
        # Reorder: records 2 and 3 swap places (their sequence numbers).
        (
            "UPDATE audit_log SET seq = -seq WHERE seq IN (2, 3);"
            "UPDATE audit_log SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE seq IN (-2, -3)",
            2,
            "does not chain",
        ),
        ("DELETE FROM audit_log WHERE seq >= 5", 5, "truncated"),
        ("DELETE FROM audit_log", 1, "truncated"),
    ],
    ids=["edit-decision", "edit-details", "delete", "reorder", "truncate", "truncate-all"],
)
def test_verify_names_the_first_broken_record(
    backend: Backend, tamper: str, first_broken: int, fragment: str
) -> None:
    store = filled(backend)
    for statement in tamper.split(";"):
        backend.sql(statement.strip())
    report = verify_chain(store.records(), store.head())
    store.close()
    assert not report.ok
    assert report.first_broken == first_broken, report.problem
    assert fragment in report.problem


def test_a_removed_head_note_is_reported(backend: Backend) -> None:
    store = filled(backend)
    backend.sql("DELETE FROM audit_head")
    report = verify_chain(store.records(), store.head())
    store.close()
    assert not report.ok
    assert "head" in report.problem


def test_the_cli_verify_exits_1_naming_the_record(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SHOPOPS_HOME", str(tmp_path))
    backend = Backend("sqlite", tmp_path, None)
    filled(backend).close()
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "6 records verified" in ok.output
    backend.sql("UPDATE audit_log SET principal = 'User::\"mallory\"' WHERE seq = 2")
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "record 2" in broken.output
