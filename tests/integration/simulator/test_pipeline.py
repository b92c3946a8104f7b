"""Generation in a child process: the same bytes and truth as in-process, and clean failure."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.unit.simulator.helpers import TINY, FailingLog, MemoryLog

from shopops.core.errors import BackendUnavailableError
from shopops.simulator.service import SimulationConfig, run_simulation


def test_a_child_process_produces_the_same_bytes(tmp_path: Path) -> None:
    config = SimulationConfig(regions=["vn", "sg"], days=2, orders_per_day=25, seed=9, rate_multiplier=10)
    here, there = MemoryLog(), MemoryLog()
    progress: list[tuple[int, int]] = []
    a = run_simulation(config, here, tmp_path / "a", parallel=False)
    b = run_simulation(
        config, there, tmp_path / "b", parallel=True, progress=lambda d, t: progress.append((d, t))
    )
    assert [(r.topic, r.key, r.value, r.timestamp_ms) for r in here.sequence] == [
        (r.topic, r.key, r.value, r.timestamp_ms) for r in there.sequence
    ]
    assert (a.events, a.per_topic, a.pains, a.exposures) == (b.events, b.per_topic, b.pains, b.exposures)
    for name in ("pains", "fraud_truth", "delivery_truth", "schema_changes", "checkout_bursts", "fx_rates"):
        assert pq.read_table(a.truth_files[name]).equals(pq.read_table(b.truth_files[name]))
    assert progress[-1] == (4, 4)


def test_a_failing_log_stops_the_child_process(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="the broker went away"):
        run_simulation(TINY.model_copy(update={"days": 3}), FailingLog(), tmp_path, parallel=True)
