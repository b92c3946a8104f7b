"""The lake worker as ``shopops up`` builds it, with the contract checks on: every injected bad row
a batch can judge is quarantined under the check its truth names, no clean row is, and the bad rows
a batch cannot judge (foreign keys) reach silver and are caught by the whole-table run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from shopops.bootstrap import build_lake_ingestor, build_quality
from shopops.core.registry import BackendSelection
from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.lake.quarantine import read_quarantine
from shopops.lake.silver import read_silver
from shopops.quality.sources import SilverSource
from shopops.simulator.model import BAD_ROWS, BadRowRates
from shopops.simulator.service import SimulationConfig, run_simulation

#: Foreign keys are not checked per batch (the streams of two tables are not in step).
WHOLE_TABLE_ONLY = {"bad_dangling_reference"}
#: The key column of each dataset bad rows are injected into.
BAD_ROWS_KEYS = {
    "shop.customers": "customer_id",
    "shop.products": "product_id",
    "shop.order_lines": "line_id",
    "logistics.shipment_events": "event_id",
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[dict[str, object]]]:
    home: Path = tmp_path_factory.mktemp("lake-checks")
    # Every schema change accepted (silver evolves for all four): this test is about the contract
    # checks; tests/integration/lake/test_schema_decisions.py covers the changes the registry refuses.
    settings = Settings(home=home, schemas={"default_compatibility": "NONE"})
    config = SimulationConfig(
        regions=["vn", "sg"],
        days=2,
        orders_per_day=80,
        seed=11,
        bad_rows=BadRowRates.every(0.03).model_copy(update={"bad_out_of_range_weight": 0.2}),
    )
    log = open_event_log(BackendSelection(type="sqlite"), home)
    try:
        run_simulation(config, log, home / "truth")
        build_lake_ingestor(settings, log, checks=True).run_once()
    finally:
        log.close()
    bad = []
    for pain in pq.read_table(home / "truth" / "pains.parquet").to_pylist():
        if pain["kind"] in BAD_ROWS:
            detail = orjson.loads(pain["detail"])
            bad.append({"kind": pain["kind"], "region": pain["region"], "key": orjson.loads(pain["key"]),
                        "dataset": detail["table"], "check": detail["check"]})  # fmt: skip
    return settings, bad


def _key(dataset: str, row: dict[str, object]) -> str:
    column = BAD_ROWS_KEYS[dataset]
    return str(row[column])


def test_the_worker_quarantines_exactly_the_bad_rows(lake: tuple[Settings, list[dict[str, object]]]) -> None:
    settings, bad = lake
    from shopops.lake.catalog import open_lake_catalog

    catalog = open_lake_catalog(settings)
    assert Counter(b["kind"] for b in bad).keys() == BAD_ROWS.keys()  # every kind was injected
    expected = {
        (b["dataset"], b["region"], _key(str(b["dataset"]), b["key"]), b["check"])  # type: ignore[arg-type]
        for b in bad
        if b["kind"] not in WHOLE_TABLE_ONLY
    }
    found: set[tuple[object, ...]] = set()
    datasets = sorted({str(d) for d in BAD_ROWS_KEYS} | {"inventory.movements", "shop.orders"})
    for dataset in datasets:
        rows = read_quarantine(catalog, dataset).to_pylist()
        for row in rows:
            key_column = BAD_ROWS_KEYS.get(dataset)
            assert key_column is not None, f"clean rows of {dataset} quarantined: {row}"
            for check in str(row["_check"]).split(";"):
                found.add((dataset, row["_region"], str(row[key_column]), check))
    assert found == expected

    # The dangling references reached silver; the whole-table run names each of them.
    dangling = {_key("shop.order_lines", b["key"]) for b in bad if b["kind"] in WHOLE_TABLE_ONLY}  # type: ignore[arg-type]
    lines = set(read_silver(catalog, "shop.order_lines").column("line_id").to_pylist())
    assert dangling <= lines
    quality = build_quality(settings)
    try:
        [run] = quality.check(SilverSource(catalog), ["shop.order_lines"])
    finally:
        quality.close()
    failed = {c.check: c for c in run.checks if not c.passed}
    assert "order_id.references" in failed
    assert failed["order_id.references"].rows_failed == len(dangling)
