"""One simulated world with every kind of bad row injected, shared by the quality tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.quality.contracts import lint_paths
from shopops.quality.model import Contract
from shopops.quality.sources import EventsSource
from shopops.simulator.model import BAD_ROW_KINDS, BadRowRates
from shopops.simulator.service import SimulationConfig, SimulationReport, run_simulation

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
#: Every kind of bad row, frequent enough that a small world shows each many times.
BAD_ROW_RATE = 0.02


@dataclass
class BadWorld:
    home: Path
    config: SimulationConfig
    report: SimulationReport
    contracts: dict[str, Contract]
    #: dataset -> current state per key, typed by its contract (what silver holds)
    tables: dict[str, pa.Table]
    #: the ground truth's bad rows: kind, dataset, key, check
    bad_rows: list[dict[str, object]]
    end_ms: int


def build_world(home: Path) -> BadWorld:
    config = SimulationConfig(
        regions=["vn", "sg"],
        days=3,
        orders_per_day=120,
        seed=5,
        envelope="plain",
        # products are few (30 per region): a higher rate so that their kind shows several times
        bad_rows=BadRowRates.every(BAD_ROW_RATE).model_copy(update={"bad_out_of_range_weight": 0.15}),
    )
    log = open_event_log(BackendSelection(type="sqlite"), home)
    try:
        report = run_simulation(config, log, home / "truth")
        contracts = {c.dataset: c for c in lint_paths([CONTRACTS]).contracts}
        source = EventsSource(log)
        tables = {name: source.read(c) for name, c in contracts.items()}
    finally:
        log.close()
    pains = pq.read_table(home / "truth" / "pains.parquet").to_pylist()
    bad: list[dict[str, object]] = []
    for p in pains:
        if p["kind"] in BAD_ROW_KINDS:
            detail = orjson.loads(p["detail"])
            bad.append(
                {
                    "kind": p["kind"],
                    "dataset": detail["table"],
                    "region": p["region"],
                    "key": orjson.loads(p["key"]),
                    "check": detail["check"],
                }
            )
    manifest = orjson.loads((home / "truth" / "manifest.json").read_bytes())
    end_ms = max(w["end_ms"] for w in manifest["window"].values())
    return BadWorld(home, config, report, contracts, tables, bad, end_ms)
