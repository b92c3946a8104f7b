"""Keeping the garbage collector off the long-lived start-up heap of a serving process.

Importing Feast (and through it torch), MLflow and LightGBM leaves ~600k objects that live as long as
the process. CPython's full collections scan all of them (~0.3-0.5 s each on 2 cores), and a server
answering a few thousand requests a second triggers one every few seconds (request objects that
survive a second, e.g. queued prediction-log rows, count towards it). Moving what start-up left to
the permanent generation (``gc.freeze``) makes those collections scan only what came after.
"""

from __future__ import annotations

import gc
import time

from shopops.core.logging import get_logger

log = get_logger(__name__)


def settle_heap(reason: str) -> int:
    """Collect once, then freeze every object still alive; returns how many are frozen.

    Call it after a burst of imports and long-lived set-up (app start, the first build of the
    scoring service). Frozen objects are never collected: only call it on objects meant to stay.
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("heap settled", reason=reason, frozen=frozen, seconds=round(time.perf_counter() - started, 3))
    return frozen
