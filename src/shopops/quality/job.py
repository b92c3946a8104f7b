"""The scheduled whole-table checks of ``shopops up``: every contract's dataset, every interval."""

from __future__ import annotations

import threading
from collections.abc import Callable

from shopops.core.logging import get_logger
from shopops.quality.service import QualityService
from shopops.quality.sources import TableSource

log = get_logger("shopops.quality.job")


class TableCheckJob:
    """Checks every dataset with a contract, read from ``source()``, after ``first_delay_s`` and
    then every ``interval_s`` seconds until :meth:`stop`. A round that fails is logged; the next
    one tries again. Datasets not there yet (no silver table before the lake caught up) are skipped."""

    def __init__(
        self,
        service: QualityService,
        source: Callable[[], TableSource],
        *,
        interval_s: float,
        first_delay_s: float = 30.0,
    ) -> None:
        self.service = service
        self.source = source
        self.interval_s = interval_s
        self.first_delay_s = first_delay_s
        self.rounds = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TableCheckJob:
        self._thread = threading.Thread(target=self._loop, name="quality-checks", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        delay = self.first_delay_s
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.interval_s

    def run_once(self) -> int:
        """One round; returns the datasets checked."""
        skipped: list[str] = []

        def note(name: str, _run: object, error: Exception | None) -> None:
            if error is not None:
                skipped.append(name)

        try:
            runs = self.service.check(self.source(), progress=note)
        except Exception as exc:  # keep the job alive; the next round tries again
            self.last_error = repr(exc)
            log.exception("scheduled quality checks failed")
            return 0
        self.rounds += 1
        self.last_error = None
        failed = sorted({r.dataset for r in runs if r.outcome == "failed"})
        log.info(
            "scheduled quality checks", datasets=len(runs), failed=failed or None, skipped=skipped or None
        )
        return len(runs)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
