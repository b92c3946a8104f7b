"""The ingestion worker: every CDC topic of the event log into its bronze Iceberg table."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from pyiceberg.catalog import Catalog

from shopops.core.errors import InvalidInputError
from shopops.core.logging import get_logger
from shopops.core.settings import CDC_TOPICS
from shopops.events.port import EventLog
from shopops.lake.bronze import BatchResult, BronzeTable, ingest_topic

log = get_logger("shopops.lake")


class LakeIngestor:
    """Moves change events of the topics matching ``topics`` into bronze tables, in micro-batches.

    A batch is up to ``batch_records`` records of one topic; each is one Iceberg commit carrying
    the position it reached. ``run_once`` catches every topic up; ``start`` keeps doing so every
    ``interval_s`` in a thread until ``stop``.
    """

    def __init__(
        self,
        event_log: EventLog,
        catalog: Catalog,
        *,
        topics: str = CDC_TOPICS,
        batch_records: int = 50_000,
        interval_s: float = 2.0,
    ) -> None:
        self.event_log = event_log
        self.catalog = catalog
        try:
            self.pattern = re.compile(topics)
        except re.error as exc:
            raise InvalidInputError(
                f"topics {topics!r} is not a regular expression ({exc})", hint="e.g. '^vn\\.shop\\.'"
            ) from None
        self.batch_records = batch_records
        self.interval_s = interval_s
        self._tables: dict[str, BronzeTable] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def topics(self) -> list[str]:
        return [t.name for t in self.event_log.list_topics() if self.pattern.match(t.name)]

    def _table(self, topic: str) -> BronzeTable:
        if topic not in self._tables:
            self._tables[topic] = BronzeTable(self.catalog, topic)
        return self._tables[topic]

    def run_once(self, progress: Callable[[BatchResult], None] | None = None) -> int:
        """Ingest until every topic is caught up; returns the records appended."""
        total = 0
        for topic in self.topics():
            if self._stop.is_set():
                break
            table = self._table(topic)
            total += ingest_topic(self.event_log, table, self.batch_records, progress, self._stop.is_set)
        return total

    def start(self) -> LakeIngestor:
        self._thread = threading.Thread(target=self._loop, name="lake-ingest", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                appended = self.run_once()
                if appended:
                    log.info("lake ingest", records=appended)
            except Exception as exc:  # keep the worker alive; the next round retries from the commit
                log.error("lake ingest failed", error=str(exc))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
