"""A whole simulation as a sequence of encoded region-day batches, in this process or in a child.

:class:`Simulation` wires the regions' generators and encoders and yields one batch of records per
region-day. :func:`run_in_child` runs it in a separate interpreter and streams the batches back
over a pipe, so that generating (pure Python, one core) overlaps with writing them into the event
log (the log client and its database or broker, the other core). Both paths produce the same
bytes. Shipping a batch costs a few microseconds per record on each side, so the child pays off
only when the log is slower than that (SQLite with JSON-with-schema records: about 10% faster).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import pickle
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from shopops.domain.regions import REGIONS
from shopops.simulator.encoding import Batch, RegionEncoder
from shopops.simulator.generator import RegionSimulator, schema_change_us
from shopops.simulator.model import REGION_PROFILES, SCHEMA_CHANGES, SimulationConfig
from shopops.simulator.truth import Truth
from shopops.simulator.world import FxMarket, Timeline


@dataclass
class Outcome:
    """What a finished simulation knows besides its records: the ground truth and the counts."""

    truth: Truth
    per_topic: dict[str, int]
    windows: dict[str, dict[str, int]] = field(default_factory=dict)


class Simulation:
    """Every region of one config, generated and encoded region-day by region-day."""

    def __init__(self, config: SimulationConfig, base_offsets: dict[str, dict[int, int]]) -> None:
        self.config = config
        codes = config.regions
        self.truth = Truth()
        self.fx = FxMarket(config, {REGIONS[c].currency: REGION_PROFILES[c].usd_rate for c in codes})
        self.timelines = {c: Timeline(config.start, config.days, REGIONS[c].tz) for c in codes}
        self.change_us: dict[str, dict[str, int | None]] = {
            code: {
                change.table: schema_change_us(self.timelines[code], change.fraction, config.days)
                if config.schema_changes
                else None
                for change in SCHEMA_CHANGES
            }
            for code in codes
        }
        self.sims = {
            c: RegionSimulator(config, REGIONS[c], self.fx, self.timelines, self.change_us, self.truth)
            for c in codes
        }
        self.encoders = {
            c: RegionEncoder(config, c, self.change_us[c], base_offsets, self.truth) for c in codes
        }
        for code in codes:
            self.sims[code].snapshot()
            self.encoders[code].snapshot_total = len(self.timelines[code].buckets[0])

    @property
    def units(self) -> int:
        """Region-days, the unit of progress."""
        return len(self.config.regions) * self.config.days

    def batches(self) -> Iterator[Batch]:
        """The encoded records of each region-day; a region's records are in event-time order."""
        codes = self.config.regions
        with _fewer_collections():
            for day in range(self.config.days):
                # Generate every region first: a region's day may schedule events into another
                # region (cross-region payments), always at least a day later.
                for code in codes:
                    self.sims[code].generate_day(day)
                for code in codes:
                    yield self.encoders[code].encode(self.timelines[code].take(day), day)

    def finish(self) -> Outcome:
        """Record what is known only at the end (schema-change positions, FX) and the counts."""
        self._record_schema_changes()
        self._record_fx()
        per_topic: dict[str, int] = {}
        for encoder in self.encoders.values():
            per_topic.update(encoder.per_topic())
        windows = {
            code: {"start_ms": tl.start_us // 1000, "end_ms": tl.end_us // 1000}
            for code, tl in self.timelines.items()
        }
        return Outcome(self.truth, per_topic, windows)

    def _record_schema_changes(self) -> None:
        for code in self.config.regions:
            for st in self.encoders[code].states:
                change = st.change
                at = self.change_us[code][change.table] if change is not None else None
                if change is None or at is None:
                    continue
                self.truth.add(
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
                self.truth.pain(
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

    def _record_fx(self) -> None:
        for currency in self.fx.currencies:
            for day in range(self.config.days):
                rate = self.fx.rate(currency, day)
                self.truth.add(
                    "fx_rates",
                    {
                        "rate_date": self.config.start + timedelta(days=day),
                        "base": "USD",
                        "quote": currency,
                        "rate": str(rate),
                        "rate_float": float(rate),
                    },
                )


def run_in_child(
    config: SimulationConfig, base_offsets: dict[str, dict[int, int]], on_batch: Callable[[Batch], None]
) -> Outcome:
    """Run the simulation in a child process, calling ``on_batch`` here for each region-day batch.

    The child is a fresh interpreter (not a fork, and not multiprocessing's spawn, which would
    re-run the caller's main module); it reads the request on stdin and writes length-prefixed
    pickled frames on stdout. It blocks while the pipe is full, so little waits in memory. An
    error in the child is raised here; an error here (in ``on_batch``) stops the child.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from shopops.simulator.pipeline import child_main; child_main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        request = {"config": config.model_dump(mode="json"), "base_offsets": base_offsets}
        process.stdin.write(orjson.dumps(request, option=orjson.OPT_NON_STR_KEYS))
        process.stdin.close()
        # Unpickled batches are many small tuples: the same collector pressure as generating them.
        with _fewer_collections():
            while True:
                kind, payload = _read_frame(process)
                if kind == "batch":
                    on_batch(payload)
                elif kind == "done":
                    outcome: Outcome = payload
                    return outcome
                else:
                    raise payload
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        process.wait()


def child_main() -> None:
    """The child side of :func:`run_in_child`: simulate the request on stdin into frames on stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the frames
    try:
        request = orjson.loads(sys.stdin.buffer.read())
        offsets = {t: {int(p): o for p, o in parts.items()} for t, parts in request["base_offsets"].items()}
        simulation = Simulation(SimulationConfig.model_validate(request["config"]), offsets)
        for batch in simulation.batches():
            _write_frame(out, ("batch", batch))
        _write_frame(out, ("done", simulation.finish()))
    except BrokenPipeError:
        pass  # the parent stopped reading: it has its own error to report
    except BaseException as exc:
        with contextlib.suppress(OSError):
            _write_frame(out, ("error", _portable(exc)))
    finally:
        with contextlib.suppress(OSError):
            out.close()


_LENGTH = struct.Struct("<Q")


def _write_frame(out: BinaryIO, message: tuple[str, Any]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def _read_frame(process: subprocess.Popen[bytes]) -> tuple[str, Any]:
    assert process.stdout is not None
    header = process.stdout.read(_LENGTH.size)
    data = process.stdout.read(_LENGTH.unpack(header)[0]) if len(header) == _LENGTH.size else b""
    if not data:
        raise RuntimeError(f"the simulator process ended without a result (exit code {process.wait()})")
    # Frames come from our own child process over a private pipe, never from outside.
    message: tuple[str, Any] = pickle.loads(data)  # noqa: S301
    return message


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError carrying its traceback."""
    try:
        pickle.dumps(exc)
        copy.copy(exc)  # rebuilds it the way unpickling would
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"the simulator process failed:\n{text}")
    return exc


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while generating.

    A run allocates millions of short-lived dicts (rows, envelopes) and keeps days of scheduled
    events alive, so the default thresholds trigger collections that scan a large, cycle-free
    heap over and over: about a fifth of the run time. Reference counting frees everything the
    simulator drops; the collector still runs, a hundred times less often, and the previous
    thresholds come back afterwards.
    """
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], 1) * 100, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
