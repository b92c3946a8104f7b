"""The scheduled ingestion of ``shopops up``: the knowledge folder at start, then every interval.

It runs in a background thread, so start-up does not wait for the embedding model (several
seconds to load) or for the first ingestion. Each round embeds only what changed since the last.
"""

from __future__ import annotations

import threading
from pathlib import Path

from shopops.core.errors import ShopopsError
from shopops.core.logging import get_logger
from shopops.rag.model import IngestReport
from shopops.rag.service import RagService

log = get_logger("shopops.rag")


class RagIngestJob:
    """Ingests ``path`` into ``service`` now (if ``on_start``) and every ``interval_s`` seconds
    (``0``: never again) until :meth:`stop`."""

    def __init__(self, service: RagService, path: Path, *, interval_s: float, on_start: bool = True) -> None:
        self.service = service
        self.path = path
        self.interval_s = interval_s
        self.on_start = on_start
        self.runs = 0
        self.last_report: IngestReport | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RagIngestJob:
        self._thread = threading.Thread(target=self._loop, name="rag-ingest", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        if self.on_start and not self._stop.is_set():
            self.run_once()
        if not self._stop.is_set():
            # The first question would otherwise wait for the model (several seconds) when the
            # ingestion needed none (nothing changed, or every vector came from the cache).
            try:
                self.service.warm_up()
            except Exception as exc:  # the model will be loaded (and fail loudly) on first use
                log.warning("embedding model not preloaded", error=repr(exc))
        if self.interval_s <= 0:
            return
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def run_once(self) -> IngestReport | None:
        """One ingestion round; failures are logged, and the next round tries again."""
        try:
            report = self.service.ingest(self.path)
        except ShopopsError as exc:
            self.last_error = str(exc)
            log.error(
                "knowledge base ingestion failed", path=str(self.path), error=exc.message, hint=exc.hint
            )
            return None
        except Exception as exc:  # keep the job alive whatever happens; the next round retries
            self.last_error = repr(exc)
            log.exception("knowledge base ingestion failed", path=str(self.path))
            return None
        self.runs += 1
        self.last_report = report
        self.last_error = None
        if report.embedded or report.removed or report.errors:
            log.info(
                "knowledge base ingested",
                path=str(self.path),
                added=report.added,
                changed=report.changed,
                removed=report.removed,
                unchanged=report.unchanged,
                errors=report.errors or None,
                seconds=round(report.seconds, 2),
            )
        return report

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop scheduling; a round in progress ends at its next batch when the service closes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
