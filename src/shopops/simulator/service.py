"""The simulator's entry point, used by ``shopops simulate`` and by ``shopops up`` to seed a demo world.

:func:`run_simulation` plays every region's databases day by day into an :class:`EventLog` and
writes the ground truth. It depends only on the event-log port, so the same run goes to the
embedded SQLite log or to Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson

from shopops.core.errors import InvalidInputError
from shopops.domain.regions import REGIONS
from shopops.events.model import OutgoingRecord
from shopops.events.port import EventLog
from shopops.simulator.encoding import RegionEncoder
from shopops.simulator.generator import RegionSimulator, schema_change_us
from shopops.simulator.model import (
    PAIN_KINDS,
    REGION_PROFILES,
    SCHEMA_CHANGES,
    TABLES,
    PainRates,
    SimulationConfig,
    SimulationConfigError,
)
from shopops.simulator.truth import Truth
from shopops.simulator.world import FxMarket, Timeline

__all__ = [
    "PainRates",
    "SimulationConfig",
    "SimulationConfigError",
    "SimulationReport",
    "run_simulation",
    "topics_for",
]

#: Records handed to ``EventLog.produce_many`` at a time.
CHUNK = 5_000


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


class _Producer:
    """Feeds records to the log in chunks, optionally paced to a real-time rate (events per second).

    Production stays in the calling thread: a writer thread was measured slower, as the log
    clients' own Python code then competes with generation for the interpreter lock.
    """

    def __init__(self, log: EventLog, realtime_rate: float | None) -> None:
        self.log = log
        self.rate = realtime_rate
        self.chunk = CHUNK if realtime_rate is None else max(1, min(CHUNK, int(realtime_rate / 10)))
        self.sent = 0
        self.started = time.monotonic()

    def send(self, records: list[OutgoingRecord]) -> None:
        for i in range(0, len(records), self.chunk):
            part = records[i : i + self.chunk]
            if self.rate is not None:
                wait = self.started + self.sent / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self.log.produce_many(part)
            self.sent += len(part)


def run_simulation(
    config: SimulationConfig,
    log: EventLog,
    truth_dir: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    realtime_rate: float | None = None,
) -> SimulationReport:
    """Simulate ``config`` into ``log`` and write the ground truth under ``truth_dir``.

    Topics ``<region>.<database>.<table>`` are created with ``config.partitions`` partitions.
    Events of a region are produced in event-time order, region-day by region-day;
    ``progress(done, total)`` is called after each region-day. With ``realtime_rate`` (events per
    second) production is paced in real time instead of running as fast as possible. The same
    config always produces the same records and the same ground truth.
    """
    if realtime_rate is not None and not realtime_rate > 0:
        raise InvalidInputError(f"realtime rate must be positive (got {realtime_rate})")
    started = time.perf_counter()
    codes = config.regions
    for topic in topics_for(config):
        log.create_topic(topic, config.partitions)
    # Schema-change offsets are exact for this run: count from where each changed topic ends now.
    changed = {c.table for c in SCHEMA_CHANGES} if config.schema_changes else set()
    base_offsets = {
        t.topic(code): log.end_offsets(t.topic(code)) for code in codes for t in TABLES if t.name in changed
    }

    truth = Truth()
    fx = FxMarket(config, {REGIONS[c].currency: REGION_PROFILES[c].usd_rate for c in codes})
    timelines = {c: Timeline(config.start, config.days, REGIONS[c].tz) for c in codes}
    sims = {c: RegionSimulator(config, REGIONS[c], fx, timelines, truth) for c in codes}
    change_us = {
        code: {
            c.table: schema_change_us(timelines[code], c.fraction, config.days)
            if config.schema_changes
            else None
            for c in SCHEMA_CHANGES
        }
        for code in codes
    }
    encoders = {c: RegionEncoder(config, c, change_us[c], base_offsets, truth) for c in codes}
    for code in codes:
        sims[code].snapshot()
        encoders[code].snapshot_total = len(timelines[code].buckets[0])

    producer = _Producer(log, realtime_rate)
    total = len(codes) * config.days
    done = 0
    if progress is not None:
        progress(0, total)
    for day in range(config.days):
        # Generate every region first: a region's day may schedule events into another region
        # (cross-region payments), always at least a day later.
        for code in codes:
            sims[code].generate_day(day)
        for code in codes:
            producer.send(encoders[code].encode(timelines[code].take(day), day))
            done += 1
            if progress is not None:
                progress(done, total)
    log.flush()

    _record_schema_changes(truth, config, encoders, change_us)
    _record_fx(truth, fx, config)
    per_topic: dict[str, int] = {}
    for code in codes:
        per_topic.update(encoders[code].per_topic())
    events = sum(per_topic.values())
    pains = {kind: truth.pain_counts[kind] for kind in PAIN_KINDS if truth.pain_counts[kind]}
    exposures = {kind: truth.exposures[kind] for kind in PAIN_KINDS if truth.exposures[kind]}
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
        "window": {
            code: {"start_ms": timelines[code].start_us // 1000, "end_ms": timelines[code].end_us // 1000}
            for code in codes
        },
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


def _record_schema_changes(
    truth: Truth,
    config: SimulationConfig,
    encoders: dict[str, RegionEncoder],
    change_us: dict[str, dict[str, int | None]],
) -> None:
    if not config.schema_changes:
        return
    for code in config.regions:
        for st in encoders[code].states:
            change = st.change
            if change is None:
                continue
            at = change_us[code][change.table]
            assert at is not None
            truth.add(
                "schema_changes",
                {
                    "region": code,
                    "topic": st.topic,
                    "database": st.db,
                    "table": st.table,
                    "kind": change.kind,
                    "column": change.column,
                    "new_column": change.new_column,
                    "old_type": change.old_type,
                    "new_type": change.after_type,
                    "version_before": 1,
                    "version_after": 2,
                    "change_ts_ms": at // 1000,
                    "first_ts_ms": st.first_v2_ts_ms,
                    "first_key": _json(st.first_v2_key) if st.first_v2_key is not None else None,
                    "first_offsets": _json({str(p): o for p, o in sorted(st.first_v2_offsets.items())}),
                    "records_after": st.records_v2,
                },
            )
            truth.pain(
                "schema_change",
                code,
                st.topic,
                {"table": change.table},
                at,
                True,
                change=change.kind,
                column=change.column,
                new_column=change.new_column,
                new_type=change.new_type,
                first_ts_ms=st.first_v2_ts_ms,
            )


def _record_fx(truth: Truth, fx: FxMarket, config: SimulationConfig) -> None:
    for currency in fx.currencies:
        for day in range(config.days):
            rate = fx.rate(currency, day)
            truth.add(
                "fx_rates",
                {
                    "rate_date": config.start + timedelta(days=day),
                    "base": "USD",
                    "quote": currency,
                    "rate": str(rate),
                    "rate_float": float(rate),
                },
            )


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
