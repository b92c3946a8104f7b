"""`catalog sync` over a simulated company: topics, row schemas, lake tables and contracts
registered with owner, SLA, retention, residency and column sensitivity (contracts and the
governance plane's tags); idempotent; lineage of the reconciliation and of the lake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.catalog.world import REGIONS, build_world, open_world

from shopops.bootstrap import Platform
from shopops.catalog.model import DEFAULT_OWNER, DEFAULT_RETENTION, DatasetKind, RunState, Sensitivity
from shopops.catalog.service import SyncReport
from shopops.catalog.setup import platform_sources, sync_platform
from shopops.core.errors import NotFoundError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("catalog") / "data"
    build_world(home)
    return home


@pytest.fixture(scope="module")
def synced(world: Path) -> Iterator[tuple[Platform, SyncReport]]:
    platform = open_world(world)
    report = sync_platform(platform)
    yield platform, report
    platform.close()


def test_sync_registers_every_topic_schema_and_lake_table(synced: tuple[Platform, SyncReport]) -> None:
    platform, report = synced
    topics = {t.name for t in platform.event_log.list_topics()}
    catalog = platform.catalog
    assert report.problems == []
    assert report.counts["topics"] == len(topics)
    assert report.counts["subjects"] >= 20
    names = set(catalog.store.dataset_names())
    assert topics <= names
    for region in REGIONS:
        for layer in ("bronze", "silver"):
            assert f"{layer}.{region}__shop__orders" in names
    assert {d.name for d in catalog.datasets(DatasetKind.SILVER)} <= {
        f"silver.{t.replace('.', '__')}" for t in topics
    }
    assert report.contracts == 3
    assert report.contract_problems == [
        "contract of crm.leads: no topic or table of that dataset is registered"
    ]


def test_a_topic_carries_its_contract_schema_and_personal_data_tags(
    synced: tuple[Platform, SyncReport],
) -> None:
    catalog = synced[0].catalog
    orders = catalog.dataset("vn.shop.orders")
    assert orders.kind is DatasetKind.TOPIC
    assert (orders.owner, orders.domain, orders.residency) == ("checkout", "shop", "vn")
    assert orders.sla == "latency 15min (orders.updated_at)"
    assert orders.retention == "10y"
    assert orders.contract == "contracts/shop.orders.odcs.yaml"
    assert orders.schema_subject == "vn.shop.orders-value"
    assert orders.description == "Every order placed in a region."
    assert orders.namespace.startswith("sqlite://")
    assert orders.namespace.endswith("events.db")
    assert orders.defaulted == ()
    columns = {c.name: c for c in orders.columns}
    assert "order_id" in columns
    assert columns["order_id"].type
    # The contract says ip is personal; the governance plane's tags mask it: both are shown.
    assert columns["ip"].sensitivity is Sensitivity.PII
    assert columns["ip"].masked
    assert set(columns["ip"].sources) == {"contracts/shop.orders.odcs.yaml", "policies/data.toml"}
    # Tagged by governance only (secret: removed unless a policy permits it).
    assert columns["card_fingerprint"].sensitivity is Sensitivity.SECRET
    assert columns["card_fingerprint"].sources == ("policies/data.toml",)
    assert columns["total"].sensitivity is Sensitivity.INTERNAL


def test_contracts_of_odcs_30_and_missing_ones_fall_back_to_defaults(
    synced: tuple[Platform, SyncReport],
) -> None:
    catalog = synced[0].catalog
    customers = catalog.dataset("sg.shop.customers")
    assert (customers.owner, customers.retention, customers.residency) == ("mai", "5y", "sg")
    assert customers.defaulted == ("sla",)
    email = next(c for c in customers.columns if c.name == "email")
    assert email.sensitivity is Sensitivity.PII
    assert email.masked
    payments = catalog.dataset("vn.payments.payments")
    assert payments.owner == DEFAULT_OWNER
    assert payments.retention == DEFAULT_RETENTION[DatasetKind.TOPIC]
    assert set(payments.defaulted) == {"owner", "retention", "sla"}
    assert payments.contract is None


def test_lake_tables_have_their_columns_and_bronze_shows_the_personal_data_it_carries(
    synced: tuple[Platform, SyncReport],
) -> None:
    catalog = synced[0].catalog
    silver = catalog.dataset("silver.vn__shop__orders")
    assert (silver.owner, silver.residency, silver.retention) == ("checkout", "vn", "10y")
    assert silver.namespace.startswith("file://")
    assert "warehouse" in silver.namespace
    assert silver.properties["location"].endswith("silver/vn__shop__orders")
    ip = next(c for c in silver.columns if c.name == "ip")
    assert ip.sensitivity is Sensitivity.PII
    bronze = catalog.dataset("bronze.sg__shop__customers")
    value = next(c for c in bronze.columns if c.name == "value")
    assert value.sensitivity is Sensitivity.PII
    assert not value.masked
    assert "email" in value.description
    assert next(c for c in bronze.columns if c.name == "offset").sensitivity is Sensitivity.INTERNAL


def test_a_second_sync_changes_nothing(synced: tuple[Platform, SyncReport]) -> None:
    platform, first = synced
    again = sync_platform(platform)
    assert (again.registered.created, again.registered.updated) == (0, 0)
    assert again.registered.unchanged == first.counts["datasets"]


def test_reconciliation_lineage_links_topics_inputs_and_results(synced: tuple[Platform, SyncReport]) -> None:
    catalog = synced[0].catalog
    view = catalog.lineage("vn.shop.orders", "downstream", 3)
    assert view.downstream is not None
    assert {"reconciliation.export", "reconciliation.run"} <= view.downstream.names("job")
    reached = view.downstream.names("dataset")
    assert {"reconciliation.input.vn.orders", "reconciliation.results.vn.exceptions"} <= reached
    # Each region's input tables come from that region's topics only.
    assert not any(n.startswith("reconciliation.input.sg.") for n in reached)
    assert "reconciliation.input.vn.duplicates" in reached  # built from every topic of the region
    up = catalog.lineage("reconciliation.input.vn.fx_rates", "upstream", 2).upstream
    assert up is not None
    assert up.names("dataset") == {
        "reconciliation.input.vn.fx_rates",
        "vn.finance.fx_rates",
    }
    columns = catalog.lineage("reconciliation.input.vn.orders", "upstream", 1).columns
    assert {(c.in_dataset, c.in_column, c.out_column) for c in columns} >= {
        ("vn.shop.orders", "order_id", "order_id"),
        ("vn.shop.orders", "total", "total"),
    }
    runs = catalog.runs(job="reconciliation.export")
    assert sorted(r.facets["region"] for r in runs) == sorted(REGIONS)
    assert all(r.state is RunState.COMPLETE for r in runs)
    rows = {k: v for r in runs for k, v in r.facets["output_rows"].items()}
    assert rows["reconciliation.input.vn.orders"] > 0
    (run,) = catalog.runs(job="reconciliation.run")
    assert run.facets["regions"] == REGIONS
    assert run.facets["exceptions"] >= 0
    results = catalog.dataset("reconciliation.results.vn.exceptions")
    assert (results.kind, results.domain, results.residency) == (DatasetKind.REPORT, "reconciliation", "vn")
    assert results.registered_by == "lineage"


def test_lake_ingest_lineage_with_silver_column_lineage(synced: tuple[Platform, SyncReport]) -> None:
    platform = synced[0]
    catalog = platform.catalog
    topics = [f"{r}.shop.orders" for r in REGIONS]
    run = catalog.record_lake_ingest(
        topics, ("bronze", "silver", "quarantine"), records=10, lake=platform_sources(platform).lake
    )
    assert run is not None
    assert run.facets == {"records": 10}
    assert (
        catalog.record_lake_ingest(topics, ("bronze", "silver", "quarantine"), records=5) is None
    )  # throttled
    view = catalog.lineage("vn.shop.orders", "downstream", 1)
    assert view.downstream is not None
    assert {"bronze.vn__shop__orders", "silver.vn__shop__orders"} <= view.downstream.names("dataset")
    assert "silver.sg__shop__orders" not in view.downstream.names("dataset")
    silver_cols = {c.out_column for c in catalog.lineage("silver.vn__shop__orders", "upstream", 1).columns}
    assert {"order_id", "ip", "total"} <= silver_cols
    quarantine = catalog.dataset("quarantine.vn__shop__orders")
    assert quarantine.kind is DatasetKind.QUARANTINE
    assert quarantine.retention == "10y"


def test_unknown_names_get_near_misses(synced: tuple[Platform, SyncReport]) -> None:
    catalog = synced[0].catalog
    with pytest.raises(NotFoundError) as err:
        catalog.dataset("vn.shop.order")
    assert "vn.shop.orders" in err.value.details["suggestions"]
    with pytest.raises(NotFoundError, match="no job named"):
        catalog.runs(job="reconciliation.runs")
