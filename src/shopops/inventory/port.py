"""The reservation-store port. Every backend (sqlite, redis, postgres) implements it and passes one
contract suite (``tests/integration/inventory/test_store_contract.py``).

What every backend guarantees:

- **No oversell.** A reserve checks every line against ``available`` and applies all of them in one
  atomic step, or none: ``committed + active holds <= on_hand`` holds at every instant, whatever
  the number of processes and threads racing (until ``on_hand`` itself is lowered under the
  promises, which is reported as drift).
- **Exact expiry.** A hold counts until ``now_ms`` reaches its ``expires_at_ms`` and not a
  millisecond longer, at read and at write time, swept or not.
- **Idempotency.** A reserve repeated with the same idempotency key and the same lines returns the
  stored reservation and holds nothing more; with other lines it is a conflict.
- **Transactional outbox.** Each change writes its event in the same atomic step (so a process
  killed right after a commit loses no event); :meth:`claim_outbox` / :meth:`ack_outbox` hand
  them to one publisher at a time, in order, at least once.

Times are epoch milliseconds given by the caller (the service's clock), never read by the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from shopops.inventory.model import (
    OutboxEntry,
    Outcome,
    Reservation,
    ReservationStatus,
    StockChange,
    StockKey,
    StockLevel,
    ValidatedReserveStock,
)


class ReservationStore(ABC):
    """Stock levels, holds and reservations of one inventory, with atomic multi-line reserve."""

    # -- reservations -------------------------------------------------------------------------

    @abstractmethod
    def reserve(
        self,
        command: ValidatedReserveStock,
        reservation_id: str,
        now_ms: int,
        refusal_event_id: str,
    ) -> Outcome:
        """Hold every line of ``command`` until ``now_ms + ttl_ms``, or nothing.

        Raises :class:`~shopops.inventory.model.InsufficientStockError` with a shortage per short
        line (and records an ``out_of_stock`` outbox entry with id ``refusal_event_id``), or
        :class:`~shopops.inventory.model.IdempotencyConflictError` when the key was used for
        other lines. A repeat with the same lines returns ``Outcome(existing, changed=False)``.
        """

    @abstractmethod
    def confirm(self, reservation_id: str, now_ms: int) -> Outcome:
        """HELD → CONFIRMED: the held units become committed (see ``model.decide``)."""

    @abstractmethod
    def release(self, reservation_id: str, now_ms: int) -> Outcome:
        """HELD → RELEASED: the held units become available again."""

    @abstractmethod
    def extend(self, reservation_id: str, expires_at_ms: int, now_ms: int) -> Outcome:
        """Move an active hold's expiry to ``expires_at_ms`` (a no-op if that is not later)."""

    @abstractmethod
    def cancel(self, reservation_id: str, now_ms: int) -> Outcome:
        """CONFIRMED → CANCELLED: the committed units become available again."""

    @abstractmethod
    def expire_due(self, now_ms: int, limit: int = 500) -> list[Reservation]:
        """Mark up to ``limit`` holds whose TTL passed by ``now_ms`` EXPIRED (oldest first) and return
        them. Safe to run from several sweepers at once: each hold expires exactly once."""

    @abstractmethod
    def get(self, reservation_id: str) -> Reservation:
        """The reservation as stored (a lapsed hold may still read HELD until swept: see
        ``Reservation.as_of``). Raises :class:`~shopops.core.errors.NotFoundError`."""

    @abstractmethod
    def find_by_idempotency_key(self, idempotency_key: str) -> Reservation | None:
        """The reservation made with ``idempotency_key``, if any."""

    @abstractmethod
    def reservations(
        self, status: ReservationStatus | None = None, after_id: str = "", limit: int = 1000
    ) -> list[Reservation]:
        """Reservations with ids greater than ``after_id``, by id, optionally of one status (paging)."""

    @abstractmethod
    def overdue_holds(self, expired_before_ms: int, limit: int = 1000) -> list[Reservation]:
        """Reservations still HELD whose expiry is at or before ``expired_before_ms`` (for audits)."""

    @abstractmethod
    def prune_settled(self, settled_before_ms: int, after_id: str = "", limit: int = 500) -> tuple[int, str]:
        """Delete the RELEASED, EXPIRED and CANCELLED reservations last changed before
        ``settled_before_ms``, with their idempotency keys, among the ``limit`` reservations that
        follow ``after_id`` by id (retention: nothing can change them any more, and a store that
        kept them would grow forever). HELD and CONFIRMED reservations are never deleted.

        Returns how many were deleted and the last id looked at, where the next call goes on;
        ``""`` once the ids are exhausted. Stock levels do not change.
        """

    # -- stock --------------------------------------------------------------------------------

    @abstractmethod
    def set_stock(self, key: StockKey, on_hand: int, now_ms: int, reason: str, event_id: str) -> StockChange:
        """Set ``on_hand`` of ``key`` (creating the item). Lowering it under committed + held is
        allowed (the warehouse's count is the truth) and shows as ``StockChange.drift``."""

    @abstractmethod
    def adjust_stock(self, key: StockKey, delta: int, now_ms: int, reason: str, event_id: str) -> StockChange:
        """Add ``delta`` to ``on_hand`` of ``key`` (creating the item when ``delta > 0``).

        Raises :class:`~shopops.core.errors.InvalidInputError` if ``on_hand`` would go negative.
        """

    @abstractmethod
    def stock_levels(self, keys: Iterable[StockKey], now_ms: int) -> list[StockLevel]:
        """Levels of the known ``keys`` (sorted), read in one consistent snapshot."""

    @abstractmethod
    def stock(self, sku: str, now_ms: int) -> list[StockLevel]:
        """Levels of ``sku`` in every warehouse that has it, sorted by warehouse."""

    @abstractmethod
    def all_stock(self, now_ms: int) -> list[StockLevel]:
        """Levels of every known key, sorted, in one consistent snapshot."""

    # -- outbox -------------------------------------------------------------------------------

    @abstractmethod
    def claim_outbox(self, owner: str, lease_ms: int, now_ms: int, limit: int = 500) -> list[OutboxEntry]:
        """Take (or renew) the publisher lease for ``owner`` and return the oldest pending entries.

        Returns ``[]`` while another owner's lease runs. An owner that dies loses its lease after
        ``lease_ms``; the next one publishes the unacknowledged entries again (at least once).
        """

    @abstractmethod
    def ack_outbox(self, owner: str, entry_ids: Sequence[str]) -> int:
        """Delete published entries; returns how many were deleted."""

    @abstractmethod
    def pending_outbox(self) -> int:
        """How many entries wait to be published."""

    # -- lifecycle -----------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""

    def __enter__(self) -> ReservationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
