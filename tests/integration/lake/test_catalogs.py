"""Bronze and silver on the scale backends: a PostgreSQL SQL catalog shared by several worker
processes and a reader, and an S3 warehouse on a real S3-compatible server (moto_server)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow.compute as pc
import pytest
from pyarrow.fs import FileSelector, S3FileSystem
from tests.e2e.helpers import SHOPOPS, free_port
from tests.integration.lake.reference import differences, fold, refused_by_backward, topics_of
from tests.support.postgres import scratch_database
from typer.testing import CliRunner

from shopops.core.errors import NotFoundError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.lake.silver import read_silver
from shopops.simulator.service import SimulationConfig, run_simulation


def _simulate(home: Path, region: str, orders: int) -> None:
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    run_simulation(
        SimulationConfig(regions=[region], days=1, orders_per_day=orders, seed=2), log, home / "truth"
    )
    log.close()


def _assert_exact(home: Path, catalog: object, region: str) -> None:
    """Silver equals the folded log, without the changes the schema registry refuses (the workers
    run with the default settings, so silver follows the registry)."""
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        for topic in topics_of(log, [region]):
            _, database, table = topic.split(".")
            got = read_silver(catalog, f"{database}.{table}", [region])  # type: ignore[arg-type]
            assert differences(fold(log, topic, refused=refused_by_backward), got) == [], topic
    finally:
        log.close()


def test_worker_processes_and_a_reader_share_a_postgresql_catalog(tmp_path: Path) -> None:
    _simulate(tmp_path, "th", 40)
    with scratch_database("lake") as dsn:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        uri = f"postgresql+psycopg://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
        warehouse = f"file://{tmp_path / 'warehouse'}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SHOPOPS_")},
            "SHOPOPS_HOME": str(tmp_path),
            "SHOPOPS_LOGGING__FORMAT": "json",
            "SHOPOPS_LAKE__CATALOG_URI": uri,
            "SHOPOPS_LAKE__WAREHOUSE": warehouse,
        }
        catalog = open_catalog(uri, warehouse, tmp_path)
        seen: list[int] = []
        problems: list[str] = []
        stop = threading.Event()

        def read() -> None:
            # While the workers commit: every read is one committed state (one row per key), and
            # orders (never deleted) only ever grow.
            while not stop.is_set():
                try:
                    orders = read_silver(catalog, "shop.orders", ["th"])
                except NotFoundError:
                    time.sleep(0.05)
                    continue
                except Exception as exc:
                    problems.append(repr(exc))
                    return
                keys = orders.column("_key")
                if pc.count_distinct(keys).as_py() != len(keys):
                    problems.append("duplicate keys in a read")
                if seen and len(keys) < seen[-1]:
                    problems.append(f"orders went from {seen[-1]} to {len(keys)}")
                seen.append(len(keys))

        reader = threading.Thread(target=read)
        reader.start()
        workers = [
            subprocess.Popen(
                [*SHOPOPS, "lake", "ingest", "--batch", str(batch)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for batch in (400, 600, 900)
        ]
        try:
            outputs = [w.communicate(timeout=240) for w in workers]
        finally:
            stop.set()
            reader.join(30)
            for w in workers:
                if w.poll() is None:
                    w.kill()
        assert [w.returncode for w in workers] == [0, 0, 0], [err[-2000:] for _, err in outputs]
        assert problems == []
        assert len(seen) > 1
        _assert_exact(tmp_path, catalog, "th")


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[str]:
    """A real S3-compatible HTTP server (moto_server) on a free loopback port."""
    # The environment's own moto_server first (a shim on PATH may belong to another Python).
    local = Path(sys.executable).with_name("moto_server")
    binary = str(local) if local.exists() else shutil.which("moto_server") or "moto_server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    "cannot start moto_server for the S3 warehouse tests: install moto[server] "
                    "(it is in the dev extra: pip install -e '.[dev]')",
                    pytrace=False,
                )
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_bronze_and_silver_on_an_s3_warehouse(
    s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _simulate(tmp_path, "my", 40)
    credentials = {"access_key": "lake-key", "secret_key": "lake-secret", "region": "us-east-1"}
    fs = S3FileSystem(endpoint_override=s3_server, allow_bucket_creation=True, **credentials)
    fs.create_dir("lake")
    properties = {
        "s3.endpoint": s3_server,
        "s3.access-key-id": "lake-key",
        "s3.secret-access-key": "lake-secret",
        "s3.region": "us-east-1",
    }
    catalog = open_catalog(None, "s3://lake/warehouse", tmp_path, properties)
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    assert LakeIngestor(log, catalog, topics="^my\\.(shop|payments)\\.", batch_records=400).run_once() > 0
    log.close()
    files = fs.get_file_info(FileSelector("lake/warehouse", recursive=True))
    assert any(f.path.endswith(".parquet") and "/silver/" in f.path for f in files)
    assert not (tmp_path / "lake" / "warehouse").exists()  # nothing went to the local disk
    _assert_exact_topics(tmp_path, catalog, ["my.shop.orders", "my.shop.customers", "my.payments.payments"])

    # The same warehouse through the settings, as `shopops lake` and `shopops up` open it.
    from shopops.cli.main import app

    for key, value in {
        "SHOPOPS_HOME": str(tmp_path),
        "SHOPOPS_LAKE__WAREHOUSE": "s3://lake/warehouse",
        "SHOPOPS_LAKE__S3_ENDPOINT": s3_server,
        "SHOPOPS_LAKE__S3_REGION": "us-east-1",
        "SHOPOPS_LAKE__S3_ACCESS_KEY_ID": "lake-key",
        "SHOPOPS_LAKE__S3_SECRET_ACCESS_KEY": "lake-secret",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    done = runner.invoke(app, ["lake", "ingest", "--topics", "^my\\.finance\\."])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["lake", "show", "finance.ledger_entries", "--limit", "1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert '"_region": "my"' in shown.output
    _assert_exact_topics(tmp_path, catalog, ["my.finance.ledger_entries"])


def _assert_exact_topics(home: Path, catalog: object, topics: list[str]) -> None:
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        for topic in topics:
            region, database, table = topic.split(".")
            got = read_silver(catalog, f"{database}.{table}", [region])  # type: ignore[arg-type]
            assert differences(fold(log, topic), got) == [], topic
    finally:
        log.close()
