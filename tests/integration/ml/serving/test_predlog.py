"""The prediction log: appends are queued, written in batches by a thread, and a clean shutdown
writes everything still queued."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from shopops.ml.serving.predlog import Prediction, PredictionLog, count


def _prediction(i: int) -> Prediction:
    return Prediction(
        ts_ms=1_767_607_200_000 + i,
        request_id=f"req-{i:06d}",
        use_case="fraud",
        model="fraud",
        version=1,
        entity={"customer_id": f"vn-c-{i}"},
        features={"customer_history__orders_7d": float(i)},
        defaults=[],
        output={"score": 0.5},
        latency_us=300,
    )


def test_appends_from_many_threads_while_flushing_lose_nothing_on_close(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    log = PredictionLog(path, flush_interval_s=0.01, batch=50)
    per_thread, threads = 2_000, 4

    def append(offset: int) -> None:
        for i in range(per_thread):
            log.append(_prediction(offset + i))

    workers = [threading.Thread(target=append, args=(t * per_thread,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()
    assert count(path, "fraud") == per_thread * threads
    conn = sqlite3.connect(path)
    ids = {r[0] for r in conn.execute("SELECT request_id FROM predictions")}
    conn.close()
    assert len(ids) == per_thread * threads  # each once


def test_a_clean_shutdown_writes_what_the_thread_has_not_flushed_yet(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    # The thread would not flush for an hour: only close() can write these.
    log = PredictionLog(path, flush_interval_s=3600, batch=10_000)
    for i in range(1_234):
        log.append(_prediction(i))
    assert log.pending == 1_234
    assert count(path) == 0
    log.close()
    assert count(path, "fraud") == 1_234
