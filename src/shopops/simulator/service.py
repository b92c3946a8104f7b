"""The simulator's entry point, used by ``shopops simulate`` and by ``shopops up`` to seed a demo world.

:func:`run_simulation` plays every region's databases day by day into an :class:`EventLog` and
writes the ground truth. It depends only on the event-log port, so the same run goes to the
embedded SQLite log or to Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shopops.core.errors import InvalidInputError
from shopops.events.model import OutgoingRecord
from shopops.events.port import EventLog
from shopops.simulator.encoding import Batch
from shopops.simulator.model import (
    BAD_ROW_KINDS,
    PAIN_KINDS,
    SCHEMA_CHANGES,
    TABLES,
    BadRowRates,
    PainRates,
    SimulationConfig,
    SimulationConfigError,
)
from shopops.simulator.pipeline import Outcome, Simulation, run_in_child

__all__ = [
    "BadRowRates",
    "PainRates",
    "SimulationConfig",
    "SimulationConfigError",
    "SimulationReport",
    "run_simulation",
    "topics_for",
]

#: Records handed to ``EventLog.produce_many`` at a time.
CHUNK = 5_000
#: From about this many change events on, generation runs in a child process by default.
PARALLEL_FROM_EVENTS = 300_000
#: Change events per order, roughly, for the estimate above.
EVENTS_PER_ORDER = 30


@dataclass
class SimulationReport:
    """What a run produced."""

    #: Records written (change events, their duplicates and tombstones).
    events: int
    per_topic: dict[str, int]
    #: Ground-truth file name (``pains``, ``fraud_truth``, ..., ``manifest``) -> path.
    truth_files: dict[str, Path]
    #: Injected pains per kind (including those whose effect falls after the window).
    pains: dict[str, int]
    seconds: float
    #: Orders created (all regions).
    orders: int = 0
    #: Per pain kind, its opportunities: the denominator of its configured rate.
    exposures: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def topics_for(config: SimulationConfig) -> list[str]:
    """Every topic a run of ``config`` writes, region by region."""
    return [t.topic(region) for region in config.regions for t in TABLES]


def expected_events(config: SimulationConfig) -> int:
    """A rough estimate of the change events ``config`` produces."""
    return len(config.regions) * config.days * config.orders_per_day * EVENTS_PER_ORDER


class _Producer:
    """Feeds records to the log in chunks, optionally paced to a real-time rate (events per second)."""

    def __init__(self, log: EventLog, realtime_rate: float | None) -> None:
        self.log = log
        self.rate = realtime_rate
        self.chunk = CHUNK if realtime_rate is None else max(1, min(CHUNK, int(realtime_rate / 10)))
        self.sent = 0
        self.started = time.monotonic()

    def send(self, records: Batch) -> None:
        for i in range(0, len(records), self.chunk):
            part = records[i : i + self.chunk]
            if self.rate is not None:
                wait = self.started + self.sent / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self.log.produce_many(OutgoingRecord(t, v, k, (), ts) for t, v, k, ts in part)
            self.sent += len(part)


def run_simulation(
    config: SimulationConfig,
    log: EventLog,
    truth_dir: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    realtime_rate: float | None = None,
    parallel: bool | None = None,
) -> SimulationReport:
    """Simulate ``config`` into ``log`` and write the ground truth under ``truth_dir``.

    Topics ``<region>.<database>.<table>`` are created with ``config.partitions`` partitions.
    Events of a region are produced in event-time order, region-day by region-day;
    ``progress(done, total)`` is called after each region-day. With ``realtime_rate`` (events per
    second) production is paced in real time instead of running as fast as possible. The same
    config always produces the same records and the same ground truth.

    With ``parallel`` the events are generated in a child process while this one writes them to
    the log, so a run uses two cores; by default that happens for large runs (from about
    :data:`PARALLEL_FROM_EVENTS` events) at full speed. Either way the output is identical.
    """
    if realtime_rate is not None and not realtime_rate > 0:
        raise InvalidInputError(f"realtime rate must be positive (got {realtime_rate})")
    if parallel is None:
        parallel = realtime_rate is None and expected_events(config) >= PARALLEL_FROM_EVENTS
    started = time.perf_counter()
    codes = config.regions
    for topic in topics_for(config):
        log.create_topic(topic, config.partitions)
    # Schema-change offsets are exact for this run: count from where each changed topic ends now.
    changed = {c.table for c in SCHEMA_CHANGES} if config.schema_changes else set()
    base_offsets = {
        t.topic(code): log.end_offsets(t.topic(code)) for code in codes for t in TABLES if t.name in changed
    }

    producer = _Producer(log, realtime_rate)
    total = len(codes) * config.days
    done = 0
    if progress is not None:
        progress(0, total)

    def on_batch(batch: Batch) -> None:
        nonlocal done
        producer.send(batch)
        done += 1
        if progress is not None:
            progress(done, total)

    if parallel:
        outcome = run_in_child(config, base_offsets, on_batch)
    else:
        simulation = Simulation(config, base_offsets)
        for batch in simulation.batches():
            on_batch(batch)
        outcome = simulation.finish()
    log.flush()
    return _report(config, outcome, truth_dir, started)


def _report(config: SimulationConfig, outcome: Outcome, truth_dir: Path, started: float) -> SimulationReport:
    """Write the ground truth and describe the run."""
    truth, per_topic = outcome.truth, outcome.per_topic
    events = sum(per_topic.values())
    kinds = (*PAIN_KINDS, *BAD_ROW_KINDS)
    pains = {kind: truth.pain_counts[kind] for kind in kinds if truth.pain_counts[kind]}
    exposures = {kind: truth.exposures[kind] for kind in kinds if truth.exposures[kind]}
    orders = truth.rows("fraud_truth")
    manifest = {
        "config": config.model_dump(mode="json"),
        "effective_rates": config.effective_rates(),
        "events": events,
        "orders": orders,
        "shipments": truth.rows("delivery_truth"),
        "per_topic": per_topic,
        "pains": pains,
        "exposures": exposures,
        "window": outcome.windows,
    }
    files = truth.write(truth_dir, manifest)
    return SimulationReport(
        events=events,
        per_topic=per_topic,
        truth_files=files,
        pains=pains,
        seconds=time.perf_counter() - started,
        orders=orders,
        exposures=exposures,
    )
