"""Inventory use cases: reserve, confirm, release, extend, cancel, stock changes, the sweeper, audits.

The service validates commands, stamps them with its clock, calls the store and publishes the
events the store wrote to its outbox in the same transaction as each change. Publishing goes to
the event-log topic ``shopops.inventory.events`` (JSON values, keyed by reservation id or SKU) and
is at least once: consumers drop repeats by ``event_id``.

Every serving process runs a :class:`Sweeper`: every ~200 ms it marks lapsed holds EXPIRED and
publishes pending events, so ``ReservationExpired`` is out well within a second of the TTL. The
sweeper only makes the expiry visible: a lapsed hold stopped counting at its TTL already.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from shopops.core.errors import InvalidInputError, ShopopsError
from shopops.core.logging import get_logger
from shopops.events.model import OutgoingRecord
from shopops.events.port import EventLog
from shopops.inventory.model import (
    DEFAULT_LIMITS,
    IdempotencyConflictError,
    InsufficientStockError,
    Outcome,
    Reservation,
    ReservationLimits,
    ReservationStatus,
    StockChange,
    StockKey,
    StockLevel,
    check_reserve,
    extended_expiry,
    validate_delta,
    validate_on_hand,
    validate_reason,
    validate_reservation_id,
    validate_sku,
    validate_ttl,
)
from shopops.inventory.port import ReservationStore

TOPIC = "shopops.inventory.events"

#: Epoch milliseconds. Injected so tests can move time; production uses :func:`wall_clock_ms`.
Clock = Callable[[], int]

log = get_logger(__name__)

OVERSELL_BLOCKED = Counter(
    "shopops_inventory_oversell_blocked_total", "Reserve attempts refused because a line lacked stock"
)
HOLDS_EXPIRED = Counter("shopops_inventory_holds_expired_total", "Holds marked expired by the sweeper")
SWEEPER_LAG = Gauge(
    "shopops_inventory_sweeper_lag_seconds",
    "How long past its TTL the most overdue hold of the last sweep was (0 when none was due)",
)
EXPIRY_DELAY = Histogram(
    "shopops_inventory_expiry_delay_seconds",
    "Time from a hold's TTL to the sweeper marking it expired",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
STOCK_DRIFT = Counter(
    "shopops_inventory_stock_drift_total", "Stock changes that left an item with more promised than on hand"
)
EVENTS_PUBLISHED = Counter("shopops_inventory_events_published_total", "Inventory events published")
PRUNED = Counter(
    "shopops_inventory_reservations_pruned_total",
    "Settled reservations (released, expired, cancelled) deleted after the retention period",
)
#: Settled reservations older than this are deleted (see :meth:`InventoryService.prune_settled`).
DEFAULT_RETENTION_MS = 30 * 86_400_000
OUTBOX_PENDING = Gauge("shopops_inventory_outbox_pending", "Inventory events waiting to be published")


class _EventCounts:
    """A labelled Prometheus counter that the reserve and confirm paths bump cheaply.

    ``prometheus_client.Counter.inc`` takes a lock in four Python calls, 3k instructions: the
    three increments of a reserve + confirm were 9k of the ~180k instructions the whole call
    costs its client. Here an increment is ``next()`` on an :func:`itertools.count`, one C call
    and atomic under the GIL; the counts are read when Prometheus collects them.
    """

    def __init__(self, name: str, documentation: str, label: str, values: Iterable[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self._counts = {value: itertools.count() for value in values}
        self._created = time.time()
        REGISTRY.register(self)

    def bump(self, value: str) -> Callable[[], int]:
        """The increment by one of ``value``'s count, bound once for a hot path."""
        return self._counts[value].__next__

    def add(self, value: str, amount: int) -> None:
        count = self._counts[value]
        for _ in range(amount):
            next(count)

    def value(self, value: str) -> int:
        # An itertools.count shows its next value in its repr, "count(n)", without moving on.
        return int(repr(self._counts[value])[6:-1])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value in self._counts:
            family.add_metric([value], self.value(value), created=self._created)
        yield family


RESERVATIONS = _EventCounts(
    "shopops_inventory_reservations_total",
    "Reserve requests by outcome (reserved, repeated, refused, conflict, invalid)",
    "outcome",
    ("reserved", "repeated", "refused", "conflict", "invalid"),
)
TRANSITIONS = _EventCounts(
    "shopops_inventory_transitions_total",
    "Reservation status changes by new status",
    "status",
    [status.value for status in ReservationStatus],
)
_RESERVED = RESERVATIONS.bump("reserved")
_REPEATED = RESERVATIONS.bump("repeated")
_REFUSED = RESERVATIONS.bump("refused")
_CONFLICT = RESERVATIONS.bump("conflict")
_INVALID = RESERVATIONS.bump("invalid")
_TRANSITED = {status: TRANSITIONS.bump(status.value) for status in ReservationStatus}


def wall_clock_ms() -> int:
    """Epoch milliseconds from the system clock (hosts must keep it NTP-synchronised)."""
    return time.time_ns() // 1_000_000


def _ids_from(at_ms: int) -> str:
    """The least id :func:`new_reservation_ids` makes at ``at_ms`` or later."""
    return f"r{at_ms:012x}"


def new_reservation_ids(now_ms: int) -> tuple[str, str]:
    """A new reservation id (``r`` + 12 hex digits of time + 16 random: unique, and sorted by
    creation time) and the event id of its refusal (32 random hex digits), from one read of the
    system's random source."""
    token = os.urandom(24).hex()
    return f"r{now_ms:012x}{token[:16]}", token[16:]


# --- audit -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockDrift:
    """An item whose ``on_hand`` differs from the source system's (``None``: unknown here)."""

    key: StockKey
    store_on_hand: int | None
    source_on_hand: int

    @property
    def delta(self) -> int:
        return (self.store_on_hand or 0) - self.source_on_hand

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.key.sku,
            "warehouse": self.key.warehouse,
            "store_on_hand": self.store_on_hand,
            "source_on_hand": self.source_on_hand,
            "delta": self.delta,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What an audit found; ``ok`` is True when nothing needs attention."""

    at_ms: int
    grace_ms: int
    #: Still HELD more than ``grace_ms`` after their TTL: the sweeper is not running or is failing.
    overdue_holds: tuple[Reservation, ...]
    #: Items whose ``on_hand`` differs from the source snapshot given to the audit.
    drift: tuple[StockDrift, ...]
    #: Items with more promised (committed + held) than on hand, after ``on_hand`` was lowered.
    oversubscribed: tuple[StockLevel, ...]
    #: Refused reserve attempts per item since the store began (oversell attempts blocked).
    blocked_attempts: Mapping[StockKey, int] = field(default_factory=dict)
    outbox_pending: int = 0

    @property
    def blocked_total(self) -> int:
        return sum(self.blocked_attempts.values())

    @property
    def ok(self) -> bool:
        return not (self.overdue_holds or self.drift or self.oversubscribed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at_ms": self.at_ms,
            "grace_ms": self.grace_ms,
            "overdue_holds": [
                {**r.to_dict(), "overdue_ms": self.at_ms - r.expires_at_ms} for r in self.overdue_holds
            ],
            "drift": [d.to_dict() for d in self.drift],
            "oversubscribed": [level.to_dict() for level in self.oversubscribed],
            "blocked_attempts": {str(k): n for k, n in sorted(self.blocked_attempts.items())},
            "blocked_total": self.blocked_total,
            "outbox_pending": self.outbox_pending,
        }


# --- the service -------------------------------------------------------------------------------


class InventoryService:
    """Reservation use cases over one :class:`ReservationStore`.

    With ``event_log=None`` this process publishes nothing: events wait in the store's outbox for
    a process that has an event log (one-off tools must not drop what others should publish).
    ``publish_inline`` publishes after every command; a process that runs a :class:`Sweeper` can
    turn it off and let the sweeper publish (one store transaction less per command).
    """

    def __init__(
        self,
        store: ReservationStore,
        event_log: EventLog | None = None,
        clock: Clock = wall_clock_ms,
        *,
        limits: ReservationLimits = DEFAULT_LIMITS,
        topic: str = TOPIC,
        publish_inline: bool = True,
        relay_lease_ms: int = 5_000,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.clock = clock
        self.limits = limits
        self.topic = topic
        self.publish_inline = publish_inline
        self._relay_id = f"relay-{uuid.uuid4().hex[:12]}"
        self._relay_lease_ms = relay_lease_ms
        # One publisher per service at a time: the lease orders publishers across processes,
        # this lock orders the threads of this one.
        self._publish_lock = threading.Lock()

    # -- reservations ------------------------------------------------------------------------------

    def reserve(self, lines: Iterable[Any], ttl_ms: int, idempotency_key: str | None = None) -> Reservation:
        """Hold every line for ``ttl_ms`` or nothing.

        Lines are :class:`~shopops.inventory.model.ReservationLine`, ``(sku, warehouse, qty)`` or
        ``{sku, warehouse, quantity}``; lines of the same item are added up. Raises
        :class:`~shopops.inventory.model.InsufficientStockError` (409, with what is available per
        short line), :class:`~shopops.inventory.model.IdempotencyConflictError` (409) or
        :class:`~shopops.core.errors.InvalidInputError` (422).
        """
        try:
            command = check_reserve(
                lines,
                ttl_ms,
                idempotency_key if idempotency_key is not None else uuid.uuid4().hex,
                self.limits,
            )
        except InvalidInputError:
            _INVALID()
            raise
        now = self.clock()
        # The refusal's event id is used only if the reserve is refused.
        reservation_id, refusal_event_id = new_reservation_ids(now)
        try:
            outcome = self.store.reserve(command, reservation_id, now, refusal_event_id)
        except InsufficientStockError:
            _REFUSED()
            OVERSELL_BLOCKED.inc()
            self._after_change()
            raise
        except IdempotencyConflictError:
            _CONFLICT()
            raise
        (_RESERVED if outcome.changed else _REPEATED)()
        return self._done(outcome)

    def confirm(self, reservation_id: str) -> Reservation:
        """Turn an active hold into committed stock. An expired hold raises ``HoldExpiredError``."""
        return self._done(self.store.confirm(validate_reservation_id(reservation_id), self.clock()))

    def release(self, reservation_id: str) -> Reservation:
        """Give a hold's units back. Releasing a released or expired hold changes nothing."""
        return self._done(self.store.release(validate_reservation_id(reservation_id), self.clock()))

    def extend(self, reservation_id: str, ttl_ms: int) -> Reservation:
        """Make an active hold last until ``now + ttl_ms`` (never shorter than it already lasts)."""
        rid = validate_reservation_id(reservation_id)
        ttl = validate_ttl(ttl_ms, self.limits)
        now = self.clock()
        current = self.store.get(rid)
        new_expiry = extended_expiry(current, ttl, now, self.limits)
        return self._done(self.store.extend(rid, new_expiry, now))

    def cancel(self, reservation_id: str) -> Reservation:
        """Cancel a confirmed reservation: its committed units become available again."""
        return self._done(self.store.cancel(validate_reservation_id(reservation_id), self.clock()))

    def get(self, reservation_id: str) -> Reservation:
        """The reservation as of now: a hold past its TTL reads EXPIRED even before the sweep."""
        return self.store.get(validate_reservation_id(reservation_id)).as_of(self.clock())

    def _done(self, outcome: Outcome) -> Reservation:
        reservation = outcome.reservation
        if outcome.changed:
            _TRANSITED[reservation.status]()
            if self.publish_inline and self.event_log is not None:
                self._after_change()
        return reservation

    def _after_change(self) -> None:
        if not self.publish_inline or self.event_log is None:
            return
        try:
            self.publish_events()
        except ShopopsError as exc:
            # The change is committed and its event is safe in the outbox: the sweeper (or the
            # next command) publishes it once the event log is back.
            log.warning("inventory events not published yet", error=str(exc))

    # -- stock -------------------------------------------------------------------------------------

    def stock(self, sku: str) -> list[StockLevel]:
        """Levels of ``sku`` in every warehouse that has it."""
        return self.store.stock(validate_sku(sku), self.clock())

    def stock_levels(self, keys: Iterable[StockKey]) -> list[StockLevel]:
        return self.store.stock_levels(list(keys), self.clock())

    def set_stock(self, sku: str, warehouse: str, on_hand: int, reason: str = "manual") -> StockChange:
        """Set the units on hand (a count, a CDC change from the warehouse system)."""
        key = StockKey(sku, warehouse)
        change = self.store.set_stock(
            key, validate_on_hand(on_hand), self.clock(), validate_reason(reason), uuid.uuid4().hex
        )
        return self._stock_changed(change)

    def adjust_stock(self, sku: str, warehouse: str, delta: int, reason: str = "manual") -> StockChange:
        """Add (restock) or remove (shrinkage) units on hand."""
        key = StockKey(sku, warehouse)
        change = self.store.adjust_stock(
            key, validate_delta(delta), self.clock(), validate_reason(reason), uuid.uuid4().hex
        )
        return self._stock_changed(change)

    def sync_stock(self, source_on_hand: Mapping[StockKey, int], reason: str = "cdc") -> list[StockChange]:
        """Set ``on_hand`` of every item whose value differs from the source system's snapshot."""
        current = {level.key: level.on_hand for level in self.stock_levels(source_on_hand)}
        return [
            self.set_stock(key.sku, key.warehouse, on_hand, reason)
            for key, on_hand in sorted(source_on_hand.items())
            if current.get(key) != on_hand
        ]

    def _stock_changed(self, change: StockChange) -> StockChange:
        if change.drift:
            STOCK_DRIFT.inc()
            log.warning(
                "stock lowered under what is promised",
                item=str(change.after.key),
                on_hand=change.after.on_hand,
                committed=change.after.committed,
                held=change.after.held,
                oversubscribed=change.drift,
            )
        self._after_change()
        return change

    # -- sweeping and publishing ----------------------------------------------------------------

    def expire_due(self, limit: int = 500) -> list[Reservation]:
        """Mark holds whose TTL passed EXPIRED (one batch); returns them."""
        now = self.clock()
        expired = self.store.expire_due(now, limit)
        worst = 0
        for res in expired:
            late_ms = max(0, now - res.expires_at_ms)
            worst = max(worst, late_ms)
            EXPIRY_DELAY.observe(late_ms / 1000)
        if expired:
            HOLDS_EXPIRED.inc(len(expired))
            TRANSITIONS.add(ReservationStatus.EXPIRED.value, len(expired))
        SWEEPER_LAG.set(worst / 1000)
        return expired

    def prune_settled(self, retention_ms: int = DEFAULT_RETENTION_MS, batch: int = 500) -> int:
        """Delete the reservations settled (released, expired, cancelled) more than
        ``retention_ms`` ago, with their idempotency keys, in one pass by id over those made
        before the cutoff (ids sort by creation time), a batch per store call. Returns how many
        were deleted.

        HELD and CONFIRMED reservations stay. After the deletion, the idempotency key of a pruned
        reservation is free again and its id is not found: keep ``retention_ms`` longer than
        clients retry a request.
        """
        if isinstance(retention_ms, bool) or not isinstance(retention_ms, int) or retention_ms < 0:
            raise InvalidInputError(
                f"the retention must be a non-negative number of ms (got {retention_ms!r})"
            )
        if batch < 1:
            raise InvalidInputError(f"the prune batch must be at least 1 (got {batch})")
        before = self.clock() - retention_ms
        deleted, after = 0, ""
        while True:
            count, after = self.prune_batch(before, after, batch)
            deleted += count
            if not after:
                break
        if deleted:
            log.info("settled reservations pruned", deleted=deleted, settled_before_ms=before)
        return deleted

    def prune_batch(self, settled_before_ms: int, after_id: str, batch: int = 500) -> tuple[int, str]:
        """One step of a retention pass: the ``batch`` reservations after ``after_id`` (see
        :meth:`ReservationStore.prune_settled`). Returns the deleted count and where to go on,
        ``""`` once the pass is over: the ids are exhausted, or it reached the reservations made
        after its cutoff (ids sort by creation time; none of those can have settled before it)."""
        deleted, last = self.store.prune_settled(settled_before_ms, after_id, batch)
        if deleted:
            PRUNED.inc(deleted)
        return deleted, "" if last >= _ids_from(settled_before_ms) else last

    def publish_events(self, batch: int = 500) -> int:
        """Publish what the store's outbox holds, oldest first; returns how many were published.

        Returns 0 at once while another publisher (another process) holds the outbox lease.
        """
        if self.event_log is None:
            return 0
        published = 0
        with self._publish_lock:
            while True:
                entries = self.store.claim_outbox(self._relay_id, self._relay_lease_ms, self.clock(), batch)
                if not entries:
                    break
                records = []
                for entry in entries:
                    event = entry.event()
                    records.append(
                        OutgoingRecord(
                            self.topic,
                            orjson.dumps(event.to_dict()),
                            event.key.encode(),
                            (("type", event.type_name.encode()),),
                            event.at_ms,
                        )
                    )
                self.event_log.produce_many(records)
                # Acknowledge only what is durably in the log: a crash before this point
                # publishes the batch again (at least once), never loses it.
                self.event_log.flush()
                self.store.ack_outbox(self._relay_id, [e.entry_id for e in entries])
                published += len(entries)
                if len(entries) < batch:
                    break
        if published:
            EVENTS_PUBLISHED.inc(published)
        return published

    def sweeper(
        self,
        interval_s: float = 0.2,
        batch: int = 500,
        retention_ms: int | None = DEFAULT_RETENTION_MS,
        prune_interval_s: float = 3600.0,
    ) -> Sweeper:
        """A :class:`Sweeper` over this service (not started)."""
        return Sweeper(self, interval_s, batch, retention_ms, prune_interval_s)

    # -- audit -------------------------------------------------------------------------------------

    def audit(
        self,
        source_on_hand: Mapping[StockKey, int] | None = None,
        grace_ms: int = 2_000,
        limit: int = 1_000,
    ) -> AuditReport:
        """Look for holds that outlived their TTL, stock that drifted from the source system's
        snapshot (``source_on_hand``: item -> units, e.g. from the CDC ``stock_levels`` table),
        oversubscribed items, and count the oversell attempts blocked so far."""
        if isinstance(grace_ms, bool) or not isinstance(grace_ms, int) or grace_ms < 0:
            raise InvalidInputError(f"grace_ms must be a non-negative integer (got {grace_ms!r})")
        now = self.clock()
        overdue = self.store.overdue_holds(now - grace_ms, limit)
        levels = self.store.all_stock(now)
        by_key = {level.key: level for level in levels}
        drift: list[StockDrift] = []
        for key, units in sorted((source_on_hand or {}).items()):
            level = by_key.get(key)
            if level is None or level.on_hand != units:
                drift.append(StockDrift(key, level.on_hand if level else None, units))
        pending = self.store.pending_outbox()
        OUTBOX_PENDING.set(pending)
        return AuditReport(
            at_ms=now,
            grace_ms=grace_ms,
            overdue_holds=tuple(overdue),
            drift=tuple(drift),
            oversubscribed=tuple(level for level in levels if level.oversubscribed),
            blocked_attempts={level.key: level.blocked for level in levels if level.blocked},
            outbox_pending=pending,
        )

    def close(self) -> None:
        """Publish what is pending (best effort) and close the store."""
        try:
            self.publish_events()
        except ShopopsError as exc:
            log.warning("inventory events left in the outbox at close", error=str(exc))
        self.store.close()


class Sweeper:
    """A background thread that expires lapsed holds and publishes pending events every
    ``interval_s``, and every ``prune_interval_s`` deletes the reservations settled more than
    ``retention_ms`` ago (``None``: kept forever). Several sweepers (one per process) may run at
    once: each hold expires once, one of them at a time holds the outbox lease, and a settled
    reservation is deleted once."""

    def __init__(
        self,
        service: InventoryService,
        interval_s: float = 0.2,
        batch: int = 500,
        retention_ms: int | None = DEFAULT_RETENTION_MS,
        prune_interval_s: float = 3600.0,
    ) -> None:
        if interval_s <= 0:
            raise InvalidInputError(f"the sweep interval must be positive (got {interval_s})")
        if prune_interval_s <= 0:
            raise InvalidInputError(f"the prune interval must be positive (got {prune_interval_s})")
        self.service = service
        self.interval_s = interval_s
        self.batch = batch
        self.retention_ms = retention_ms
        self.prune_interval_s = prune_interval_s
        self.expired = 0
        self.published = 0
        self.pruned = 0
        self.errors = 0
        #: When the next retention pass is due (monotonic seconds; the first one at start).
        self._prune_due = 0.0
        #: The pass in progress: its cutoff and the last id looked at (``None``: no pass).
        self._pass: tuple[int, str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> tuple[int, int]:
        """One sweep: expire every due hold (batch after batch), then publish. ``(expired, published)``."""
        expired = 0
        while True:
            got = self.service.expire_due(self.batch)
            expired += len(got)
            if len(got) < self.batch:
                break
        published = self.service.publish_events(self.batch)
        self.expired += expired
        self.published += published
        return expired, published

    def prune_step(self, now_s: float, budget_s: float = 0.05) -> int:
        """Go on with the retention pass for about ``budget_s``, starting one if
        ``prune_interval_s`` has passed since the last began (monotonic ``now_s``); returns how
        many reservations it deleted. A pass is spread over many sweeps, so that expiring holds
        and publishing events never wait for a large store's pass to end."""
        if self.retention_ms is None:
            return 0
        if self._pass is None:
            if now_s < self._prune_due:
                return 0
            self._prune_due = now_s + self.prune_interval_s
            self._pass = (self.service.clock() - self.retention_ms, "")
        before, after = self._pass
        pruned = 0
        deadline = time.monotonic() + budget_s
        while True:
            count, after = self.service.prune_batch(before, after, self.batch)
            pruned += count
            if not after:
                self._pass = None
                break
            self._pass = (before, after)
            if time.monotonic() >= deadline:
                break
        self.pruned += pruned
        return pruned

    def _run(self) -> None:
        delay = self.interval_s
        while not self._stop.wait(delay):
            try:
                self.run_once()
                self.prune_step(time.monotonic())
                delay = self.interval_s
            except ShopopsError as exc:
                # A backend outage must not kill the sweeper: back off (to 5 s at most), retry.
                self.errors += 1
                delay = min(5.0, delay * 2)
                log.warning("inventory sweep failed; retrying", error=str(exc), retry_in_s=delay)
            except Exception:
                self.errors += 1
                delay = min(5.0, delay * 2)
                log.exception("inventory sweep failed unexpectedly; retrying", retry_in_s=delay)

    def start(self) -> Sweeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inventory-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Sweeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
