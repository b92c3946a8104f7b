"""A simulated company, its CDC streams turned into input tables, and a service over them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.reconciliation.service import ReconciliationService
from shopops.simulator.service import SimulationConfig, run_simulation


@dataclass
class World:
    home: Path
    truth: Path
    start: date
    end: date
    regions: list[str]

    def service(self, **engine: Any) -> ReconciliationService:
        return ReconciliationService(
            home=self.home,
            engine=BackendSelection(type=engine.pop("type", "duckdb"), **engine),
            source=BackendSelection(type="parquet"),
        )


def simulate(home: Path, *, days: int, orders_per_day: int, multiplier: float, seed: int) -> World:
    config = SimulationConfig(
        regions=["vn", "sg", "th"],
        days=days,
        orders_per_day=orders_per_day,
        seed=seed,
        rate_multiplier=multiplier,
    )
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        run_simulation(config, log, home / "truth", parallel=False)
        service = ReconciliationService(
            home=home,
            engine=BackendSelection(type="duckdb"),
            source=BackendSelection(type="parquet"),
            event_log=log,
        )
        service.export_inputs(list(config.regions))
        service.close()
    finally:
        log.close()
    return World(
        home=home,
        truth=home / "truth",
        start=config.start,
        end=config.start + timedelta(days=days - 1),
        regions=list(config.regions),
    )
