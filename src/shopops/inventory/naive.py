"""A deliberately wrong reservation store: read availability, then write the hold, with no lock.

This is the check-then-act pattern behind Medusa #16569 (two direct reservations both take the
last unit at READ COMMITTED) and #16502 (lines checked one by one). Between the read and the
write another checkout can read the same availability, and both holds are written. It exists
only so the torture test can show that its checks catch an oversell: a harness that cannot fail
proves nothing. It is not registered as a backend and must never serve real traffic.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from shopops.inventory.backends.sqlite import SqliteReservationStore
from shopops.inventory.model import (
    Outcome,
    ReservationLine,
    ValidatedReserveStock,
    check_idempotent_repeat,
    merge_lines,
)


class NaiveReservationStore(SqliteReservationStore):
    """:class:`SqliteReservationStore` whose ``reserve`` reads and writes in separate transactions,
    checking each line on its own (the two bugs the real backends are tested against)."""

    class Config(SqliteReservationStore.Config):
        """Options of the naive store."""

        #: Time between the availability read and the write: the application's round trip.
        think_ms: float = Field(default=1.0, ge=0)

    def __init__(self, config: Config, home: Path) -> None:
        super().__init__(config, home)
        self._think_s = config.think_ms / 1000

    def reserve(
        self, command: ValidatedReserveStock, reservation_id: str, now_ms: int, refusal_event_id: str
    ) -> Outcome:
        existing = self.find_by_idempotency_key(command.idempotency_key)
        if existing is not None:
            return check_idempotent_repeat(existing, command)
        # Read: one line at a time, as a loop over cart lines would.
        for line in command.lines:
            levels = {level.key: level for level in self.stock_levels([line.key], now_ms)}
            shortages = self._shortages(
                ValidatedReserveStock((ReservationLine(line.sku, line.warehouse, line.quantity),), 0, ""),
                levels,
            )
            if shortages:
                with self._write() as cur:
                    error = self._refuse(cur, command, shortages, now_ms, refusal_event_id)
                raise error
            time.sleep(self._think_s)
        # Write, trusting what was read: the bug.
        merged = ValidatedReserveStock(merge_lines(command.lines), command.ttl_ms, command.idempotency_key)
        with self._write() as cur:
            return self._insert_hold(cur, merged, reservation_id, now_ms)
