"""A small simulated company for the catalog tests: CDC topics in a SQLite event log, row schemas
registered by the drift watch, bronze and silver Iceberg tables, reconciliation inputs and
results (with their lineage), and two data contracts of its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shopops.bootstrap import Platform, build_platform
from shopops.core.settings import Settings
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.schemas.drift import DriftWatch
from shopops.simulator.service import SimulationConfig, run_simulation

REGIONS = ["vn", "sg"]

ORDERS_CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
id: shop-orders
name: Orders
version: 1.0.0
status: active
domain: shop
description: {purpose: Every order placed in a region.}
team:
  name: checkout
  members: [{username: lan@example.com, role: owner}]
schema:
  - name: orders
    physicalName: shop.orders
    properties:
      - {name: order_id, logicalType: string, primaryKey: true}
      - {name: ip, logicalType: string, classification: confidential, tags: [pii]}
      - {name: total, logicalType: string, classification: internal}
slaProperties:
  - {property: latency, value: 15, unit: min, element: orders.updated_at}
  - {property: retention, value: 10, unit: y}
"""

CUSTOMERS_CONTRACT = """
apiVersion: v3.0.2
kind: DataContract
name: shop.customers
team: [{username: mai, role: owner}]
schema:
  - name: customers
    properties:
      - {name: customer_id, logicalType: string}
      - name: email
        logicalType: string
        customProperties: [{property: pii, value: true}]
slaProperties:
  - {property: retention, value: 5, unit: y}
"""

STRAY_CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
name: crm.leads
team: {name: growth}
"""


def settings_for(home: Path) -> Settings:
    contracts = home.parent / "contracts"
    return Settings(home=home, catalog={"contracts_dir": contracts})


def build_world(home: Path) -> None:
    """Simulate two regions for a day, register schemas, fill the lake, reconcile the day."""
    contracts = home.parent / "contracts"
    contracts.mkdir(parents=True, exist_ok=True)
    (contracts / "shop.orders.odcs.yaml").write_text(ORDERS_CONTRACT)
    (contracts / "customers.yaml").write_text(CUSTOMERS_CONTRACT)
    (contracts / "crm.leads.yaml").write_text(STRAY_CONTRACT)
    config = SimulationConfig(regions=REGIONS, days=1, orders_per_day=25, seed=7)
    platform = build_platform(settings_for(home))
    try:
        run_simulation(config, platform.event_log, home / "truth", parallel=False)
        DriftWatch(platform.event_log, platform.schema_client, platform.settings.schemas.drift).drain()
        lake = platform.settings.lake
        LakeIngestor(platform.event_log, open_catalog(lake.catalog_uri, lake.warehouse, home)).run_once()
        service = platform.reconciliation
        service.export_inputs(REGIONS)
        service.run(config.start, config.start + timedelta(days=0), REGIONS)
    finally:
        platform.close()


def open_world(home: Path) -> Platform:
    return build_platform(settings_for(home))
