"""`shopops features` end to end: materialize from the lake, read online features, list; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.e2e.helpers import run_cli

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.simulator.service import SimulationConfig, run_simulation


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("features-cli") / "data"
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        run_simulation(
            SimulationConfig(regions=["vn", "sg"], days=3, orders_per_day=50, seed=5), log, home / "truth"
        )
        LakeIngestor(log, open_catalog(None, None, home)).run_once()
    finally:
        log.close()
    return home


def test_materialize_get_and_list(home: Path) -> None:
    done = run_cli(home, "features", "materialize", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["regions"] == ["vn", "sg"]
    assert report["rows"]["customer_history"] > 0
    assert report["entities"]["fraud"] > 0
    assert report["end"].startswith("2026-01-03")

    orders = pq.read_table(home / "ml" / "feast" / "data" / "fraud_entities.parquet").to_pylist()
    last = orders[-1]
    got = run_cli(
        home, "features", "get", "fraud",
        "-e", f"customer_id={last['customer_id']}", "-e", f"device_id={last['device_id']}",
        "-e", f"card_fingerprint={last['card_fingerprint']}", "-e", f"order_id={last['order_id']}",
        "--json",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    online = json.loads(got.stdout)
    assert online["missing"] == []
    assert online["values"]["customer_history__orders_30d"] >= 1

    table = run_cli(home, "features", "list")
    assert table.returncode == 0, table.stderr
    assert "shipment_performance" in table.stdout
    assert "use cases" in table.stdout

    listed = run_cli(home, "features", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    info = json.loads(listed.stdout)
    assert info["materialized"] == report["end"]
    assert {v["name"]: v["rows"] for v in info["views"]}["order_facts"] == report["rows"]["order_facts"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "fraud", "-e", "customer_id"], "is not key=value"),
        (["get", "churn", "-e", "x=y"], "unknown use case 'churn'"),
        (["materialize", "--end", "next week"], "--end 'next week' is neither"),
    ],
)
def test_bad_input_exits_2_with_the_reason(home: Path, args: list[str], message: str) -> None:
    done = run_cli(home, "features", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
