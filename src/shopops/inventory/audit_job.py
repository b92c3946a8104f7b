"""The periodic inventory audit of a running platform, exported as Prometheus gauges.

Every ``interval_s`` it folds what the CDC stock stream added since last time, audits the store
against it and sets the gauges below, so an alert can fire on holds the sweeper failed to expire,
on stock that drifted from the source system, and on oversubscribed items. It logs a warning when
the audit turns from clean to needing attention (not at every run).
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge

from shopops.core.errors import ShopopsError
from shopops.core.logging import get_logger
from shopops.events.port import EventLog
from shopops.inventory.cdc import CdcStockTracker
from shopops.inventory.service import AuditReport, InventoryService

OVERDUE_HOLDS = Gauge(
    "shopops_inventory_overdue_holds", "Holds still HELD past their TTL and the grace period"
)
DRIFTED_ITEMS = Gauge(
    "shopops_inventory_drifted_items", "Items whose on-hand units differ from the CDC source"
)
OVERSUBSCRIBED_ITEMS = Gauge(
    "shopops_inventory_oversubscribed_items", "Items with more units promised than on hand"
)
SOURCE_NEGATIVE_ITEMS = Gauge(
    "shopops_inventory_source_negative_items", "Items the CDC source reports below zero (it oversold)"
)
BLOCKED_ATTEMPTS = Gauge(
    "shopops_inventory_blocked_attempts", "Oversell attempts blocked since the store began"
)
AUDITS = Counter(
    "shopops_inventory_audits_total", "Periodic audits by result (ok, attention, error)", ["result"]
)

log = get_logger(__name__)


class AuditJob:
    """Background audit thread; :meth:`start` it, :meth:`stop` it. ``last`` is the latest report."""

    def __init__(
        self, service: InventoryService, event_log: EventLog, interval_s: float = 30.0, grace_ms: int = 2_000
    ) -> None:
        self.service = service
        self.tracker = CdcStockTracker(event_log)
        self.interval_s = interval_s
        self.grace_ms = grace_ms
        self.last: AuditReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inventory-audit", daemon=True)

    def run_once(self) -> AuditReport:
        snapshot = self.tracker.refresh()
        # Only items the store knows are compared: an item never synced from CDC is not drift of
        # this store, it is an item this shop does not reserve (yet).
        known = {level.key for level in self.service.store.all_stock(self.service.clock())}
        source = {key: units for key, units in snapshot.on_hand.items() if key in known}
        report = self.service.audit(source_on_hand=source, grace_ms=self.grace_ms)
        OVERDUE_HOLDS.set(len(report.overdue_holds))
        DRIFTED_ITEMS.set(len(report.drift))
        OVERSUBSCRIBED_ITEMS.set(len(report.oversubscribed))
        SOURCE_NEGATIVE_ITEMS.set(len(snapshot.negative))
        BLOCKED_ATTEMPTS.set(report.blocked_total)
        AUDITS.labels("ok" if report.ok else "attention").inc()
        if not report.ok and (self.last is None or self.last.ok):
            log.warning(
                "inventory audit needs attention",
                overdue_holds=len(report.overdue_holds),
                drifted_items=len(report.drift),
                oversubscribed_items=len(report.oversubscribed),
            )
        self.last = report
        return report

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except ShopopsError as exc:
                AUDITS.labels("error").inc()
                log.warning("inventory audit failed", error=str(exc))
            except Exception:
                AUDITS.labels("error").inc()
                log.exception("inventory audit failed unexpectedly")
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> AuditJob:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
