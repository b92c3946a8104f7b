"""Simulator throughput: change events generated per second, against the floor cost of serialising them.

    python bench/bench_simulator.py [--events 1000000] [--envelope schema] [--sqlite] [--json out.json]

The simulator plays three regions (vn, sg, th) at 1,000 orders per day and region, for as many
days as it takes to reach about ``--events`` change events, into a log that discards every record
(so the figure is the simulator's own cost), once in one process and once generating in a child
process while the caller writes (what ``run_simulation`` does for large runs). The baseline,
measured in the same run, is a loop that only ``orjson.dumps`` one fixed Debezium envelope (an
order update, before and after images and source block) as many times as the simulator produced
events: no simulation, no bookkeeping, just the serialisation every event needs at least.
``--sqlite`` also runs the same world into the embedded SQLite event log (two processes).

Target: 1,000,000 change events in under 60 s.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.model import Headers, OutgoingRecord, Record, TopicInfo
from shopops.events.port import Consumer, EventLog, OffsetReset
from shopops.simulator.service import SimulationConfig, SimulationReport, run_simulation

TARGET_EVENTS = 1_000_000
TARGET_SECONDS = 60.0
REGIONS = ["vn", "sg", "th"]
ORDERS_PER_DAY = 1_000
#: Change events per order of the default world (measured; the bench reports the real count).
EVENTS_PER_ORDER = 31.0

console = Console()


class DiscardingLog(EventLog):
    """An event log that counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    def create_topic(self, name: str, partitions: int = 1) -> None:
        return None

    def list_topics(self) -> list[TopicInfo]:
        return []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        self.records += 1

    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        n = 0
        size = 0
        for record in records:
            n += 1
            size += len(record.value or b"")
        self.records += n
        self.bytes += size
        return n

    def flush(self, timeout_s: float = 30.0) -> None:
        return None

    def consumer(
        self, group_id: str, topics: Iterable[str], auto_offset_reset: OffsetReset = "earliest"
    ) -> Consumer:
        raise NotImplementedError("a discarding log has nothing to consume")

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        return []

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {}

    def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        return {}

    def list_groups(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


@dataclass
class Figure:
    run: str
    events: int
    seconds: float
    orders: int = 0
    megabytes: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    @property
    def seconds_per_million(self) -> float:
        return self.seconds * TARGET_EVENTS / self.events if self.events else float("inf")


def config_for(events: int, envelope: str) -> SimulationConfig:
    days = max(1, round(events / (len(REGIONS) * ORDERS_PER_DAY * EVENTS_PER_ORDER)))
    return SimulationConfig(
        regions=REGIONS,
        days=days,
        orders_per_day=ORDERS_PER_DAY,
        envelope=envelope,
    )


def simulate(
    config: SimulationConfig, log: EventLog, name: str, parallel: bool
) -> tuple[Figure, SimulationReport]:
    with tempfile.TemporaryDirectory(prefix="bench-sim-truth-") as truth:
        started = time.perf_counter()
        report = run_simulation(config, log, Path(truth), parallel=parallel)
        seconds = time.perf_counter() - started
    return Figure(name, report.events, seconds, report.orders), report


def baseline(count: int) -> Figure:
    """``orjson.dumps`` of one fixed Debezium envelope, ``count`` times."""
    row = {
        "order_id": "vn-o-000012345",
        "customer_id": "vn-c-0001234",
        "status": "paid",
        "currency": "VND",
        "subtotal": "1250000",
        "shipping_fee": "30000",
        "tax": "125000",
        "total": "1405000",
        "item_count": 2,
        "warehouse_id": "vn-wh-01",
        "device_id": "dev-0a1b2c3d4e5f",
        "card_fingerprint": "fp-0123456789abcdef",
        "ip": "14.1.2.3",
        "shipping_address_hash": "89abcdef01234567",
        "created_at": 1_767_200_000_000_000,
        "updated_at": 1_767_200_030_000_000,
    }
    source = {
        "version": "2.7.3.Final",
        "connector": "postgresql",
        "name": "vn",
        "ts_ms": 1_767_200_030_000,
        "snapshot": "false",
        "db": "shop",
        "schema": "public",
        "table": "orders",
        "txId": 5_000,
        "lsn": 24_000_000,
    }
    envelope = {"before": {**row, "status": "placed"}, "after": row, "source": source, "op": "u", "ts_ms": 1}
    dumps = orjson.dumps
    size = 0
    started = time.perf_counter()
    for _ in range(count):
        size += len(dumps(envelope))
    return Figure("baseline: orjson.dumps only", count, time.perf_counter() - started, 0, size / 1e6)


def report(figures: list[Figure], base: Figure) -> list[dict[str, Any]]:
    table = Table(
        title=f"simulator throughput (target: {TARGET_EVENTS:,} change events in < {TARGET_SECONDS:.0f} s)"
    )
    for column in ("run", "events", "seconds", "events/s", "s per 1M", "x baseline cost", "target"):
        table.add_column(column, justify="left" if column in ("run", "target") else "right")
    rows: list[dict[str, Any]] = []
    for fig in [*figures, base]:
        per_million = fig.seconds_per_million
        is_base = fig is base
        passed = None if is_base else per_million < TARGET_SECONDS
        verdict = (
            "" if passed is None else f"{'[green]met' if passed else '[red]missed'} ({per_million:.1f} s)"
        )
        cost = fig.seconds_per_million / base.seconds_per_million
        table.add_row(
            fig.run,
            f"{fig.events:,}",
            f"{fig.seconds:.2f}",
            f"{fig.events_per_s:,.0f}",
            f"{per_million:.1f}",
            f"{cost:.1f}x",
            verdict,
        )
        rows.append(
            {
                **asdict(fig),
                "events_per_s": fig.events_per_s,
                "seconds_per_million": per_million,
                "cost_vs_baseline": cost,
                "target_met": passed,
            }
        )
    console.print(table)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=TARGET_EVENTS, help="about this many change events")
    parser.add_argument("--envelope", choices=("schema", "plain", "mixed"), default="schema")
    parser.add_argument("--sqlite", action="store_true", help="also simulate into the embedded SQLite log")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    config = config_for(args.events, args.envelope)
    console.print(
        f"simulating {len(REGIONS)} regions x {config.days} days x {ORDERS_PER_DAY:,} orders/day "
        f"({args.envelope} envelope) into a discarding log…"
    )
    figures: list[Figure] = []
    for parallel in (False, True):
        discard = DiscardingLog()
        name = f"simulator, discarding log, {'2 processes' if parallel else '1 process'}"
        fig, sim = simulate(config, discard, name, parallel)
        fig.megabytes = discard.bytes / 1e6
        figures.append(fig)
    if args.sqlite:
        console.print("…and into the SQLite event log…")
        with (
            tempfile.TemporaryDirectory(prefix="bench-sim-sqlite-") as home,
            open_event_log(BackendSelection(type="sqlite"), home=Path(home)) as log,
        ):
            figures.append(simulate(config, log, "simulator, sqlite log, 2 processes", True)[0])
    console.print(f"baseline: {fig.events:,} x orjson.dumps…")
    base = baseline(fig.events)
    rows = report(figures, base)
    events_per_order = sim.events / sim.orders if sim.orders else math.nan
    console.print(
        f"{sim.orders:,} orders, {events_per_order:.1f} change events per order, "
        f"{fig.megabytes / max(fig.events, 1) * 1e6:,.0f} bytes per event on average"
    )
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "config": config.model_dump(mode="json"),
                    "events_per_order": events_per_order,
                    "figures": rows,
                    "target": {"events": TARGET_EVENTS, "seconds": TARGET_SECONDS},
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0 if all(r["target_met"] in (True, None) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
