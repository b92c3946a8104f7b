"""A small simulated company for the agents' tests: its event log, governance, knowledge base."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopops.agents.orders import EventLogOrderBook, Row
from shopops.bootstrap import Platform, build_platform
from shopops.core.settings import Settings
from shopops.simulator.service import SimulationConfig, run_simulation

KNOWLEDGE = Path(__file__).resolve().parents[3] / "docs" / "knowledge"


def world_settings(home: Path, **agents: Any) -> Settings:
    return Settings(
        home=home,
        events={"type": "sqlite"},
        inventory={"type": "sqlite"},
        agents={"tracing": {"exporter": "file"}, **agents},
        rag={"knowledge_dir": KNOWLEDGE, "ingest_on_start": False},
    )


@pytest.fixture(scope="package")
def world_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of two regions, and the runbooks in the knowledge base (built once)."""
    home = tmp_path_factory.mktemp("agents-world")
    platform = build_platform(world_settings(home))
    try:
        run_simulation(
            SimulationConfig(regions=["vn", "sg"], days=3, orders_per_day=20, seed=7),
            platform.event_log,
            platform.truth_dir,
            parallel=False,
        )
        platform.rag.ingest(KNOWLEDGE / "runbooks")
    finally:
        platform.close()
    return home


@pytest.fixture
def platform(world_home: Path, tmp_path: Path) -> Iterator[Platform]:
    """The world's platform; governance, traces and the triage ledger of this test only."""
    settings = world_settings(world_home)
    data = settings.model_dump(mode="python")
    data["governance"] = {**data["governance"], "keys": {"type": "sqlite", "path": str(tmp_path / "keys.db")}}
    data["governance"]["audit"] = {"type": "sqlite", "path": str(tmp_path / "audit.db")}
    data["agents"]["tracing"] = {**data["agents"]["tracing"], "file": tmp_path / "traces.jsonl"}
    built = build_platform(Settings(**data))
    yield built
    built.close()


class Orders:
    """Orders of the world, to pick the ones a test asks about."""

    def __init__(self, book: EventLogOrderBook) -> None:
        self.book = book
        self.rows = sorted(book.all_orders(), key=lambda r: str(r["order_id"]))

    def first(self, status: str, region: str | None = None, not_customer: str | None = None) -> Row:
        for row in self.rows:
            if row["status"] != status or (region and not str(row["order_id"]).startswith(region)):
                continue
            if not_customer and row["customer_id"] == not_customer:
                continue
            return row
        raise AssertionError(f"no {status} order in the test world")


@pytest.fixture
def orders(platform: Platform) -> Orders:
    return Orders(EventLogOrderBook(platform.event_log))
