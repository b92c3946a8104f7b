"""The reservation logic both SQL backends share (sqlite, postgres); each supplies its transactions.

Tables (the same on both engines):

- ``stock(sku, warehouse, on_hand, committed, held_total, blocked, clock_ms)``: one row per
  item. ``held_total`` counts every hold still in status HELD, lapsed or not; the active ``held``
  is ``held_total`` minus the lapsed holds' units, computed in the same statement or transaction,
  so a hold stops counting the instant its TTL passes, swept or not. ``clock_ms`` is the item's
  clock (see below).
- ``reservations(id, idempotency_key UNIQUE, lines, status, created/expires/updated_at_ms)``.
- ``holds(reservation_id, sku, warehouse, quantity, expires_at_ms)``: one row per line of a HELD
  reservation, deleted when it leaves HELD; indexed by item and expiry, so the lapsed units of an
  item are an index range (short, because the sweeper keeps removing them).
- ``outbox(seq, kind, data, created_at_ms)`` and ``relay_lease``: the transactional outbox.

Every write is one transaction that first locks the ``stock`` rows it touches, in (sku, warehouse)
order. On SQLite the whole transaction holds the database write lock (``BEGIN IMMEDIATE``); on
PostgreSQL the rows are locked with ``SELECT ... FOR UPDATE``, always in that order, so two
transactions never wait on each other in a cycle. At READ COMMITTED, a row read by
``FOR UPDATE`` is the latest committed version, and every later statement of the transaction
sees the latest committed holds: the availability check and the write happen under the lock
with nothing stale (the check-then-act race of Medusa #16569 cannot happen).

Reservation rows are locked before any stock row (transitions), and a transaction holding stock
locks never waits for a reservation row, so that order is cycle-free too.

The item clock. A caller reads its clock, then may wait for a lock; meanwhile another writer with a
later clock can treat a hold as lapsed and give its units to a new hold. If the first writer then
confirmed that hold with its older time, the units would be sold twice. So each item keeps the
latest time any writer used on it (``clock_ms``), and every writer and reader of the item uses
``max(now, clock_ms)``: time on an item never goes backwards, and once one transaction treated a
hold as lapsed, every later one does too.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import orjson

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.inventory.model import (
    KIND_EXTENDED,
    KIND_OUT_OF_STOCK,
    KIND_RESERVED,
    KIND_STOCK,
    Action,
    InsufficientStockError,
    OutboxEntry,
    Outcome,
    Reservation,
    ReservationLine,
    ReservationStatus,
    Shortage,
    StockChange,
    StockKey,
    StockLevel,
    ValidatedReserveStock,
    check_idempotent_repeat,
    decide,
    lines_from_json,
    lines_to_json,
    out_of_stock_data,
    stock_data,
    transition_kind,
)
from shopops.inventory.port import ReservationStore

_RESERVATION_COLUMNS = "id, idempotency_key, lines, status, created_at_ms, expires_at_ms, updated_at_ms"
_STOCK_COLUMNS = "sku, warehouse, on_hand, committed, held_total, blocked, clock_ms"
# Every query below interpolates only these constants, placeholder lists and the dialect's locking
# clause; values are always bound as parameters (hence the S608 exemptions).
_SELECT_RESERVATIONS = f"SELECT {_RESERVATION_COLUMNS} FROM reservations"  # noqa: S608
_INSERT_STOCK = (
    "INSERT INTO stock (sku, warehouse, on_hand, committed, held_total, blocked, clock_ms) "
    "VALUES (?, ?, ?, 0, 0, 0, ?)"
)
_INSERT_HOLD = (
    "INSERT INTO holds (reservation_id, sku, warehouse, quantity, expires_at_ms) VALUES (?, ?, ?, ?, ?)"
)


class _Row(NamedTuple):
    """A locked stock row."""

    on_hand: int
    committed: int
    held_total: int
    blocked: int
    clock_ms: int


_TARGET = {
    Action.CONFIRM: ReservationStatus.CONFIRMED,
    Action.RELEASE: ReservationStatus.RELEASED,
    Action.CANCEL: ReservationStatus.CANCELLED,
}


class Cursor(Protocol):
    """The DB-API subset used here; ``sqlite3.Cursor`` and ``psycopg.Cursor`` both provide it."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def _row_to_reservation(row: Sequence[Any]) -> Reservation:
    return Reservation(
        id=row[0],
        idempotency_key=row[1],
        lines=lines_from_json(orjson.loads(row[2])),
        status=ReservationStatus(row[3]),
        created_at_ms=int(row[4]),
        expires_at_ms=int(row[5]),
        updated_at_ms=int(row[6]),
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _key_values(keys: Sequence[StockKey]) -> tuple[str, list[str]]:
    """``(?, ?), (?, ?)`` placeholders and flat parameters for a row-value IN list."""
    placeholders = ", ".join("(?, ?)" for _ in keys)
    params: list[str] = []
    for key in keys:
        params += [key.sku, key.warehouse]
    return placeholders, params


def _summed(lines: Iterable[ReservationLine]) -> dict[StockKey, int]:
    totals: dict[StockKey, int] = {}
    for line in lines:
        totals[line.key] = totals.get(line.key, 0) + line.quantity
    return totals


class SqlReservationStore(ReservationStore):
    """:class:`ReservationStore` over SQL; subclasses provide transactions and dialect details."""

    #: Appended to a SELECT that must lock its rows until the transaction ends ("" on SQLite, where
    #: the transaction already holds the database write lock).
    lock_rows = ""
    #: Appended to the sweeper's SELECT so that two sweepers split the due holds without waiting.
    lock_rows_skip_locked = ""
    #: Collation of the key columns in ORDER BY: bytewise, the order Python sorts keys in.
    key_collation = ""
    #: The SQL function giving the larger of two values.
    greatest = "max"

    @abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[Cursor]:
        """A write transaction: commits when the block ends, rolls back on an exception."""

    @abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Cursor]:
        """A cursor for one consistent read."""

    def _key_order(self, alias: str = "") -> str:
        return f"{alias}sku{self.key_collation}, {alias}warehouse{self.key_collation}"

    def _q(self, sql: str) -> str:
        """The query in the driver's placeholder style (written with ``?``)."""
        return sql

    #: Up to this many keys are matched as ``(sku = ? AND warehouse = ?) OR ...`` instead of a
    #: row-value ``IN (VALUES ...)`` list. SQLite plans the latter as a scan of the whole table
    #: (and of the holds index), so every reserve grew slower with the number of items and holds;
    #: the OR form is one index search per key. 0 keeps ``IN (VALUES ...)`` (PostgreSQL plans it well).
    or_match_up_to = 0

    def _keys_match(self, keys: Sequence[StockKey], alias: str = "") -> tuple[str, list[str]]:
        """A predicate matching the rows of ``keys`` (columns prefixed by ``alias``), and its parameters."""
        if len(keys) <= self.or_match_up_to:
            params: list[str] = []
            for key in keys:
                params += [key.sku, key.warehouse]
            terms = " OR ".join(f"({alias}sku = ? AND {alias}warehouse = ?)" for _ in keys)
            return f"({terms})", params
        placeholders, params = _key_values(keys)
        return f"({alias}sku, {alias}warehouse) IN (VALUES {placeholders})", params

    # -- helpers inside a transaction ------------------------------------------------------------

    def _lock_stock(self, cur: Cursor, keys: Sequence[StockKey]) -> dict[StockKey, _Row]:
        """Lock the stock rows of ``keys`` in key order; the rows of the keys that exist."""
        if not keys:
            return {}
        match, params = self._keys_match(keys)
        cur.execute(
            self._q(
                f"SELECT {_STOCK_COLUMNS} FROM stock WHERE {match} "  # noqa: S608
                f"ORDER BY {self._key_order()}{self.lock_rows}"
            ),
            params,
        )
        return {StockKey(r[0], r[1]): _Row(*(int(v) for v in r[2:])) for r in cur.fetchall()}

    def _lapsed(self, cur: Cursor, keys: Sequence[StockKey], at_ms: int) -> dict[StockKey, int]:
        """Units of holds on ``keys`` that are still HELD but whose TTL passed by ``at_ms``."""
        if not keys:
            return {}
        match, params = self._keys_match(keys)
        cur.execute(
            self._q(
                "SELECT sku, warehouse, SUM(quantity) FROM holds "  # noqa: S608
                f"WHERE ({match}) AND expires_at_ms <= ? "
                "GROUP BY sku, warehouse"
            ),
            [*params, at_ms],
        )
        return {StockKey(r[0], r[1]): int(r[2]) for r in cur.fetchall()}

    def _locked_levels(
        self, cur: Cursor, keys: Sequence[StockKey], now_ms: int
    ) -> tuple[dict[StockKey, StockLevel], int]:
        """Lock ``keys`` and read their levels at the items' time: ``(levels, at_ms)``."""
        rows = self._lock_stock(cur, keys)
        at_ms = max([now_ms, *(row.clock_ms for row in rows.values())])
        lapsed = self._lapsed(cur, list(rows), at_ms)
        levels = {
            key: StockLevel(key, row.on_hand, row.committed, row.held_total - lapsed.get(key, 0), row.blocked)
            for key, row in rows.items()
        }
        return levels, at_ms

    def _outbox(self, cur: Cursor, kind: str, data: Any, at_ms: int) -> None:
        cur.execute(
            self._q("INSERT INTO outbox (kind, data, created_at_ms) VALUES (?, ?, ?)"),
            (kind, _dumps(data), at_ms),
        )

    def _select_reservation(self, cur: Cursor, reservation_id: str, lock: bool) -> Reservation:
        cur.execute(
            self._q(f"{_SELECT_RESERVATIONS} WHERE id = ?{self.lock_rows if lock else ''}"),
            (reservation_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(
                f"reservation {reservation_id} does not exist", hint="use the id returned by reserve"
            )
        return _row_to_reservation(row)

    def _by_idempotency_key(self, cur: Cursor, key: str) -> Reservation | None:
        cur.execute(self._q(f"{_SELECT_RESERVATIONS} WHERE idempotency_key = ?"), (key,))
        row = cur.fetchone()
        return _row_to_reservation(row) if row is not None else None

    def _add_stock(self, cur: Cursor, column: str, deltas: dict[StockKey, int], at_ms: int) -> None:
        """Add ``deltas`` to ``column`` of locked rows and move their clocks to ``at_ms``."""
        cur.executemany(
            self._q(
                f"UPDATE stock SET {column} = {column} + ?, clock_ms = {self.greatest}(clock_ms, ?) "  # noqa: S608
                "WHERE sku = ? AND warehouse = ?"
            ),
            [(delta, at_ms, key.sku, key.warehouse) for key, delta in sorted(deltas.items())],
        )

    def _touch(self, cur: Cursor, keys: Iterable[StockKey], at_ms: int) -> None:
        cur.executemany(
            self._q(
                f"UPDATE stock SET clock_ms = {self.greatest}(clock_ms, ?) WHERE sku = ? AND warehouse = ?"  # noqa: S608
            ),
            [(at_ms, key.sku, key.warehouse) for key in sorted(keys)],
        )

    # -- reservations ------------------------------------------------------------------------------

    def reserve(
        self, command: ValidatedReserveStock, reservation_id: str, now_ms: int, refusal_event_id: str
    ) -> Outcome:
        with self._write() as cur:
            result = self._reserve_locked(cur, command, reservation_id, now_ms, refusal_event_id)
        # A refusal is raised only once its transaction committed: the blocked-attempt counters
        # and the OutOfStock event are kept, nothing else was written.
        if isinstance(result, InsufficientStockError):
            raise result
        return result

    def _reserve_locked(
        self,
        cur: Cursor,
        command: ValidatedReserveStock,
        reservation_id: str,
        now_ms: int,
        refusal_event_id: str,
    ) -> Outcome | InsufficientStockError:
        # Locks first, then the idempotency check: a repeat racing its original waits on the same
        # rows and then sees the original committed, instead of being refused for lack of stock.
        levels, at_ms = self._locked_levels(cur, [line.key for line in command.lines], now_ms)
        existing = self._by_idempotency_key(cur, command.idempotency_key)
        if existing is not None:
            return check_idempotent_repeat(existing, command)
        shortages = self._shortages(command, levels)
        if shortages:
            return self._refuse(cur, command, shortages, at_ms, refusal_event_id)
        return self._insert_hold(cur, command, reservation_id, at_ms)

    def _insert_hold(
        self, cur: Cursor, command: ValidatedReserveStock, reservation_id: str, at_ms: int
    ) -> Outcome:
        """Write the reservation, its holds and its event (the caller checked availability)."""
        expires = at_ms + command.ttl_ms
        lines_json = _dumps(lines_to_json(command.lines))
        cur.execute(
            self._q(
                f"INSERT INTO reservations ({_RESERVATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (idempotency_key) DO NOTHING"
            ),
            (reservation_id, command.idempotency_key, lines_json, "held", at_ms, expires, at_ms),
        )
        if cur.rowcount != 1:
            # The same key, other lines, inserted by a transaction that committed meanwhile (a
            # repeat with the same lines would have waited on our stock locks and found it above).
            existing = self._by_idempotency_key(cur, command.idempotency_key)
            if existing is None:  # pragma: no cover - the unique index said it exists
                raise InvalidInputError(f"idempotency key {command.idempotency_key!r} vanished; retry")
            return check_idempotent_repeat(existing, command)
        cur.executemany(
            self._q(_INSERT_HOLD),
            [(reservation_id, line.sku, line.warehouse, line.quantity, expires) for line in command.lines],
        )
        self._add_stock(cur, "held_total", _summed(command.lines), at_ms)
        reservation = Reservation(
            reservation_id,
            command.idempotency_key,
            command.lines,
            ReservationStatus.HELD,
            at_ms,
            expires,
            at_ms,
        )
        self._outbox(cur, KIND_RESERVED, reservation.to_dict(), at_ms)
        return Outcome(reservation, changed=True)

    @staticmethod
    def _shortages(command: ValidatedReserveStock, levels: dict[StockKey, StockLevel]) -> list[Shortage]:
        shortages: list[Shortage] = []
        for line in command.lines:
            level = levels.get(line.key)
            if level is None:
                shortages.append(Shortage(line.sku, line.warehouse, line.quantity, 0, known=False))
            elif level.available < line.quantity:
                shortages.append(Shortage(line.sku, line.warehouse, line.quantity, level.available))
        return shortages

    def _refuse(
        self,
        cur: Cursor,
        command: ValidatedReserveStock,
        shortages: list[Shortage],
        at_ms: int,
        event_id: str,
    ) -> InsufficientStockError:
        """Count the blocked attempt and record its event; the caller commits, then raises."""
        known = {StockKey(s.sku, s.warehouse): 1 for s in shortages if s.known}
        if known:
            self._add_stock(cur, "blocked", known, at_ms)
        self._outbox(cur, KIND_OUT_OF_STOCK, out_of_stock_data(event_id, command, shortages, at_ms), at_ms)
        return InsufficientStockError(shortages, command.idempotency_key)

    def _transition(
        self, reservation_id: str, action: Action, now_ms: int, new_expires_at_ms: int = 0
    ) -> Outcome:
        with self._write() as cur:
            current = self._select_reservation(cur, reservation_id, lock=True)
            totals = _summed(current.lines)
            # The stock rows are locked before deciding, the extend too: the decision depends on
            # the items' clocks, and moving an expiry changes which units count as held.
            rows = self._lock_stock(cur, sorted(totals))
            at_ms = max([now_ms, *(row.clock_ms for row in rows.values())])
            if not decide(current, action, at_ms, new_expires_at_ms):
                return Outcome(current.as_of(at_ms), changed=False)
            if action is Action.EXTEND:
                cur.execute(
                    self._q("UPDATE holds SET expires_at_ms = ? WHERE reservation_id = ?"),
                    (new_expires_at_ms, reservation_id),
                )
                self._touch(cur, totals, at_ms)
                status, expires = ReservationStatus.HELD, new_expires_at_ms
            else:
                status = _TARGET[action]
                expires = current.expires_at_ms
                if action is Action.CANCEL:
                    self._add_stock(cur, "committed", {k: -q for k, q in totals.items()}, at_ms)
                else:
                    cur.execute(self._q("DELETE FROM holds WHERE reservation_id = ?"), (reservation_id,))
                    self._add_stock(cur, "held_total", {k: -q for k, q in totals.items()}, at_ms)
                    if action is Action.CONFIRM:
                        self._add_stock(cur, "committed", totals, at_ms)
            cur.execute(
                self._q(
                    "UPDATE reservations SET status = ?, expires_at_ms = ?, updated_at_ms = ? WHERE id = ?"
                ),
                (status.value, expires, at_ms, reservation_id),
            )
            after = Reservation(
                current.id,
                current.idempotency_key,
                current.lines,
                status,
                current.created_at_ms,
                expires,
                at_ms,
            )
            kind = KIND_EXTENDED if action is Action.EXTEND else transition_kind(after)
            self._outbox(cur, kind, after.to_dict(), at_ms)
            return Outcome(after, changed=True)

    def confirm(self, reservation_id: str, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.CONFIRM, now_ms)

    def release(self, reservation_id: str, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.RELEASE, now_ms)

    def extend(self, reservation_id: str, expires_at_ms: int, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.EXTEND, now_ms, expires_at_ms)

    def cancel(self, reservation_id: str, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.CANCEL, now_ms)

    def expire_due(self, now_ms: int, limit: int = 500) -> list[Reservation]:
        with self._write() as cur:
            cur.execute(
                self._q(
                    f"{_SELECT_RESERVATIONS} WHERE status = 'held' AND expires_at_ms <= ? "
                    f"ORDER BY expires_at_ms, id LIMIT ?{self.lock_rows_skip_locked}"
                ),
                (now_ms, limit),
            )
            due = [_row_to_reservation(row) for row in cur.fetchall()]
            if not due:
                return []
            totals: dict[StockKey, int] = {}
            for res in due:
                for key, quantity in _summed(res.lines).items():
                    totals[key] = totals.get(key, 0) - quantity
            rows = self._lock_stock(cur, sorted(totals))
            at_ms = max([now_ms, *(row.clock_ms for row in rows.values())])
            cur.executemany(self._q("DELETE FROM holds WHERE reservation_id = ?"), [(res.id,) for res in due])
            cur.executemany(
                self._q("UPDATE reservations SET status = 'expired', updated_at_ms = ? WHERE id = ?"),
                [(at_ms, res.id) for res in due],
            )
            self._add_stock(cur, "held_total", totals, at_ms)
            expired = [
                Reservation(
                    r.id,
                    r.idempotency_key,
                    r.lines,
                    ReservationStatus.EXPIRED,
                    r.created_at_ms,
                    r.expires_at_ms,
                    at_ms,
                )
                for r in due
            ]
            cur.executemany(
                self._q("INSERT INTO outbox (kind, data, created_at_ms) VALUES (?, ?, ?)"),
                [("expired", _dumps(r.to_dict()), at_ms) for r in expired],
            )
            return expired

    def get(self, reservation_id: str) -> Reservation:
        with self._read() as cur:
            return self._select_reservation(cur, reservation_id, lock=False)

    def find_by_idempotency_key(self, idempotency_key: str) -> Reservation | None:
        with self._read() as cur:
            return self._by_idempotency_key(cur, idempotency_key)

    def reservations(
        self, status: ReservationStatus | None = None, after_id: str = "", limit: int = 1000
    ) -> list[Reservation]:
        where, params = "id > ?", [after_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status.value)
        with self._read() as cur:
            cur.execute(
                self._q(f"{_SELECT_RESERVATIONS} WHERE {where} ORDER BY id LIMIT ?"), [*params, limit]
            )
            return [_row_to_reservation(row) for row in cur.fetchall()]

    def overdue_holds(self, expired_before_ms: int, limit: int = 1000) -> list[Reservation]:
        with self._read() as cur:
            cur.execute(
                self._q(
                    f"{_SELECT_RESERVATIONS} WHERE status = 'held' AND expires_at_ms <= ? "
                    "ORDER BY expires_at_ms, id LIMIT ?"
                ),
                (expired_before_ms, limit),
            )
            return [_row_to_reservation(row) for row in cur.fetchall()]

    def prune_settled(self, settled_before_ms: int, after_id: str = "", limit: int = 500) -> tuple[int, str]:
        with self._write() as cur:
            cur.execute(
                self._q("SELECT id FROM reservations WHERE id > ? ORDER BY id LIMIT ?"), (after_id, limit)
            )
            ids = [row[0] for row in cur.fetchall()]
            if not ids:
                return 0, ""
            # Settled states are final: no transition can race the delete.
            cur.execute(
                self._q(
                    "DELETE FROM reservations WHERE id > ? AND id <= ? "
                    "AND status IN ('released', 'expired', 'cancelled') AND updated_at_ms < ?"
                ),
                (after_id, ids[-1], settled_before_ms),
            )
            return max(cur.rowcount, 0), ids[-1]

    # -- stock ---------------------------------------------------------------------------------

    def _change_stock(
        self, key: StockKey, now_ms: int, reason: str, event_id: str, *, on_hand: int | None, delta: int
    ) -> StockChange:
        with self._write() as cur:
            levels, at_ms = self._locked_levels(cur, [key], now_ms)
            before = levels.get(key)
            if before is None:
                target = on_hand if on_hand is not None else delta
                if target < 0:
                    raise InvalidInputError(
                        f"cannot remove {-delta} units of {key}: the item has no stock",
                        hint="set its stock first",
                    )
                cur.execute(self._q(_INSERT_STOCK), (key.sku, key.warehouse, target, at_ms))
                after = StockLevel(key, target, 0, 0, 0)
            else:
                target = on_hand if on_hand is not None else before.on_hand + delta
                if target < 0:
                    raise InvalidInputError(
                        f"cannot remove {-delta} units of {key}: only {before.on_hand} are on hand",
                        hint="set the counted stock with set_stock instead",
                    )
                self._add_stock(cur, "on_hand", {key: target - before.on_hand}, at_ms)
                after = StockLevel(key, target, before.committed, before.held, before.blocked)
            change = StockChange(before, after, reason)
            self._outbox(cur, KIND_STOCK, stock_data(event_id, change, at_ms), at_ms)
            return change

    def set_stock(self, key: StockKey, on_hand: int, now_ms: int, reason: str, event_id: str) -> StockChange:
        return self._change_stock(key, now_ms, reason, event_id, on_hand=on_hand, delta=0)

    def adjust_stock(self, key: StockKey, delta: int, now_ms: int, reason: str, event_id: str) -> StockChange:
        return self._change_stock(key, now_ms, reason, event_id, on_hand=None, delta=delta)

    def _select_levels(self, where: str, params: list[Any], now_ms: int) -> list[StockLevel]:
        # One statement, so one snapshot. Each item is read at its own clock (never earlier than
        # the last write to it), so a reader with an older time cannot count a hold that a writer
        # already treated as lapsed and re-sold.
        with self._read() as cur:
            cur.execute(
                self._q(
                    "SELECT s.sku, s.warehouse, s.on_hand, s.committed, s.held_total - COALESCE(("  # noqa: S608
                    "SELECT SUM(h.quantity) FROM holds h WHERE h.sku = s.sku AND h.warehouse = s.warehouse "
                    f"AND h.expires_at_ms <= {self.greatest}(?, s.clock_ms)), 0), s.blocked FROM stock s "
                    f"WHERE {where} ORDER BY {self._key_order('s.')}"
                ),
                [now_ms, *params],
            )
            return [
                StockLevel(StockKey(r[0], r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in cur.fetchall()
            ]

    def stock_levels(self, keys: Iterable[StockKey], now_ms: int) -> list[StockLevel]:
        wanted = sorted(set(keys))
        if not wanted:
            return []
        match, params = self._keys_match(wanted, "s.")
        return self._select_levels(match, params, now_ms)

    def stock(self, sku: str, now_ms: int) -> list[StockLevel]:
        return self._select_levels("s.sku = ?", [sku], now_ms)

    def all_stock(self, now_ms: int) -> list[StockLevel]:
        return self._select_levels("1 = 1", [], now_ms)

    # -- outbox --------------------------------------------------------------------------------

    def claim_outbox(self, owner: str, lease_ms: int, now_ms: int, limit: int = 500) -> list[OutboxEntry]:
        with self._write() as cur:
            cur.execute(
                self._q(
                    "UPDATE relay_lease SET owner = ?, until_ms = ? "
                    "WHERE name = 'outbox' AND (owner = ? OR until_ms <= ?)"
                ),
                (owner, now_ms + lease_ms, owner, now_ms),
            )
            if cur.rowcount != 1:
                return []
            cur.execute(self._q("SELECT seq, kind, data FROM outbox ORDER BY seq LIMIT ?"), (limit,))
            return [OutboxEntry(str(seq), kind, orjson.loads(data)) for seq, kind, data in cur.fetchall()]

    def ack_outbox(self, owner: str, entry_ids: Sequence[str]) -> int:
        if not entry_ids:
            return 0
        with self._write() as cur:
            cur.executemany(self._q("DELETE FROM outbox WHERE seq = ?"), [(int(i),) for i in entry_ids])
            return len(entry_ids)

    def pending_outbox(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox")
            return int(cur.fetchone()[0])
