"""The CDC monitor: a stream worker that decodes every change event and exports what it sees.

It consumes every CDC topic (``<region>.<database>.<table>``) in its own consumer group, decodes
each record with the Debezium codec, counts events per topic and operation and malformed records
per topic in Prometheus, and commits after each batch, so its lag shows how far behind the
platform is. Malformed records are counted and logged with their position, never fatal.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter

from shopops.core.logging import get_logger
from shopops.events.debezium import decode_batch
from shopops.events.model import is_cdc_topic
from shopops.events.port import EventLog

CDC_EVENTS = Counter("shopops_cdc_events_total", "Decoded CDC change events", ["topic", "op"])
CDC_DECODE_FAILURES = Counter(
    "shopops_cdc_decode_failures_total", "CDC records that are not valid Debezium events", ["topic"]
)

log = get_logger(__name__)


class CdcMonitor:
    """Background worker; :meth:`start` it, :meth:`stop` it (it commits what it processed)."""

    group_id = "shopops-cdc-monitor"

    def __init__(self, event_log: EventLog, batch: int = 2000) -> None:
        self._log = event_log
        self._batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cdc-monitor", daemon=True)
        self.processed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        topics = [t.name for t in self._log.list_topics() if is_cdc_topic(t.name)]
        if not topics:
            log.info("cdc monitor idle: no CDC topics")
            return
        log.info("cdc monitor started", topics=len(topics), group=self.group_id)
        try:
            with self._log.consumer(self.group_id, topics) as consumer:
                while not self._stop.is_set():
                    records = consumer.poll(self._batch, timeout_s=0.5)
                    if not records:
                        continue
                    batch = decode_batch(records)
                    for event in batch.events:
                        CDC_EVENTS.labels(event.topic, event.op.value if event.op else "tombstone").inc()
                    for failure in batch.failures:
                        CDC_DECODE_FAILURES.labels(failure.record.topic).inc()
                        log.warning("malformed change event skipped", error=failure.message)
                    consumer.commit()
                    self.processed += len(records)
        except Exception:
            log.exception("cdc monitor stopped on an error")
