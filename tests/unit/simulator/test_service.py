"""run_simulation as a caller meets it: pacing, errors, and the world it describes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.unit.simulator.helpers import TINY, FailingLog, MemoryLog, World

from shopops.core.errors import BackendUnavailableError, InvalidInputError
from shopops.simulator.model import SimulationConfigError
from shopops.simulator.pipeline import _portable
from shopops.simulator.service import (
    PARALLEL_FROM_EVENTS,
    SimulationConfig,
    expected_events,
    run_simulation,
)


def test_realtime_rate_paces_production(tmp_path: Path) -> None:
    fast = MemoryLog()
    report = run_simulation(TINY, fast, tmp_path / "a")
    rate = report.events / 0.6  # about 0.6 s of real time
    started = time.monotonic()
    paced = MemoryLog()
    run_simulation(TINY, paced, tmp_path / "b", realtime_rate=rate)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.45
    assert [r.value for r in paced.sequence] == [r.value for r in fast.sequence]


@pytest.mark.parametrize("rate", [0.0, -5.0])
def test_realtime_rate_must_be_positive(tmp_path: Path, rate: float) -> None:
    with pytest.raises(InvalidInputError, match="realtime rate must be positive"):
        run_simulation(TINY, MemoryLog(), tmp_path, realtime_rate=rate)


def test_a_failing_log_fails_the_run_and_writes_no_truth(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="the broker went away"):
        run_simulation(TINY.model_copy(update={"days": 3}), FailingLog(), tmp_path / "truth")
    assert not (tmp_path / "truth" / "manifest.json").exists()


def test_a_failing_progress_callback_stops_the_run(tmp_path: Path) -> None:
    def progress(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    log = MemoryLog()
    with pytest.raises(KeyboardInterrupt):
        run_simulation(TINY.model_copy(update={"days": 3}), log, tmp_path, progress=progress)


def test_report_describes_the_run(world: World) -> None:
    report = world.report
    assert report.seconds > 0
    assert report.events_per_second > 0
    assert report.orders == world.truth("fraud_truth").num_rows
    assert 15 < report.events / report.orders < 60, "a few dozen change events per order"


def test_without_schema_changes_every_topic_stays_at_version_one(tmp_path: Path) -> None:
    from tests.unit.simulator.helpers import simulate

    world = simulate(TINY.model_copy(update={"schema_changes": False, "envelope": "schema"}), tmp_path)
    assert world.truth("schema_changes").num_rows == 0
    assert "schema_change" not in world.report.pains
    versions = {e.value_schema["version"] for e in world.decoded.values() if e.value_schema is not None}
    assert versions == {1}


def test_errors_cross_the_process_boundary() -> None:
    assert isinstance(_portable(ValueError("x")), ValueError)
    # an error that cannot be rebuilt from its arguments arrives as a RuntimeError with its traceback
    assert "SimulationConfigError" in str(_portable(SimulationConfigError([("days", "too few")])))


def test_large_runs_go_parallel_by_default() -> None:
    assert expected_events(SimulationConfig(days=11)) >= PARALLEL_FROM_EVENTS
    assert expected_events(SimulationConfig(days=1, orders_per_day=200)) < PARALLEL_FROM_EVENTS
