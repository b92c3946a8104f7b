"""The PostgreSQL reservation store: row locks, in key order, at READ COMMITTED.

Medusa #16569 is what goes wrong without them: two transactions read ``available = 1`` at READ
COMMITTED, both insert a reservation, both commit. Here each write transaction first takes the
``stock`` rows it needs with ``SELECT ... FOR UPDATE ORDER BY sku, warehouse``; a second
checkout of the same item waits on the lock and then reads the row as the first one committed
it, so the availability check and the hold are one step. Locking always in the same
(bytewise, ``COLLATE "C"``) key order means no two transactions can wait on each other in a
cycle, however many items a cart spans. No serialisation retries are needed.

Connections come from a psycopg 3 pool; the schema is created idempotently at start-up under an
advisory lock (several processes may start at once).

The common paths (a reserve that fits, a confirm, release or cancel that applies) run as one call
of a PL/pgSQL function, sent straight through libpq as a statement prepared once per connection:
one round trip and one transaction (the server commits it on its own, durably, as any other), with
the same locks in the same order, the same item clock, the same rows and the same event as the
shared transaction in ``_sql`` (``test_fast_paths`` compares them; the outbox text keeps the lines
in their stored compact form, which reads back to the same event). Whenever the outcome is anything
else (a shortage, an idempotent repeat, an unknown id, a no-op or an error of the transition table)
the function puts back the counters it changed (an item clock may keep the time it was moved to; a
clock never moves back) and returns no result, and the shared code runs the operation as before; it
decides from scratch, so taking that path costs time, never correctness.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import psycopg.errors
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGconn, PGresult
from psycopg_pool import PoolTimeout

from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.core.postgres import PostgresStoreConfig, describe_dsn, open_pool
from shopops.inventory.backends._sql import Cursor, SqlReservationStore
from shopops.inventory.model import (
    Action,
    Outcome,
    Reservation,
    ReservationStatus,
    ValidatedReserveStock,
    lines_from_json,
    lines_to_json,
)

SCHEMA_VERSION = 1

# An arbitrary constant: the advisory lock that serialises schema creation between processes.
_SCHEMA_LOCK_ID = 0x5F0F_1A7E

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS stock (
    sku           text NOT NULL,
    warehouse     text NOT NULL,
    on_hand       bigint NOT NULL CHECK (on_hand >= 0),
    committed     bigint NOT NULL CHECK (committed >= 0),
    held_total    bigint NOT NULL CHECK (held_total >= 0),
    blocked       bigint NOT NULL,
    -- The item's clock: the latest time any writer used on it (never decreases).
    clock_ms      bigint NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE TABLE IF NOT EXISTS reservations (
    id              text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    lines           text NOT NULL,
    status          text NOT NULL,
    created_at_ms   bigint NOT NULL,
    expires_at_ms   bigint NOT NULL,
    updated_at_ms   bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_due ON reservations (expires_at_ms) WHERE status = 'held';
CREATE TABLE IF NOT EXISTS holds (
    reservation_id text NOT NULL,
    sku            text NOT NULL,
    warehouse      text NOT NULL,
    quantity       bigint NOT NULL CHECK (quantity > 0),
    expires_at_ms  bigint NOT NULL,
    PRIMARY KEY (reservation_id, sku, warehouse)
);
CREATE INDEX IF NOT EXISTS holds_by_item ON holds (sku, warehouse, expires_at_ms);
CREATE TABLE IF NOT EXISTS outbox (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    data          text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_lease (
    name     text PRIMARY KEY,
    owner    text NOT NULL,
    until_ms bigint NOT NULL
);
INSERT INTO relay_lease (name, owner, until_ms) VALUES ('outbox', '', 0) ON CONFLICT (name) DO NOTHING
"""

# The fast paths (see the module docstring). Versioned names: a change of behaviour gets a new name,
# so processes of two shopops versions never run each other's function (a schema made by an older
# version keeps its older functions beside these; nothing calls them).
#
# Each takes the stock rows in bytewise key order, as ``_sql`` does, but with the UPDATE that
# changes the row (its row lock excludes every other writer of the item as FOR UPDATE does) rather
# than with a SELECT ... FOR UPDATE first. An UPDATE waiting on a lock re-reads the row as its
# holder committed it (READ COMMITTED), so its conditions are checked against the latest committed
# counters, and each later statement reads the latest committed holds, as the shared transaction
# does. The reserve's condition counts every hold of the item, lapsed or not: when it holds, the
# line fits at any time; when it fails, the lapsed holds may make room and the shared code, which
# counts them, decides. Every statement reaches its rows through an index with one row's key:
# PL/pgSQL plans a function's statements once per session for any arguments, and a set-based
# statement over the lines (a join with ``unnest(...)``) got a plan that read the whole ``stock``
# table on every call.
#
# The item clock: an item's UPDATE moves its clock to max(clock, now), which gives the time used
# once every item is taken (the latest clock); an item left behind that time is moved to it too
# (rare: another writer used a later time on one of the items meanwhile).
#
# When a function finds it cannot finish (a line short, an idempotency key already taken, a hold
# that lapsed at the items' time), it takes back what it changed (the counters; clocks never move
# back, as in the shared code) and returns no result: the shared code then runs the operation from
# scratch. Lines come merged and sorted by key (``ValidatedReserveStock``, and the stored lines,
# which are written from it); lines in any other order take the shared path, so the lock order
# never depends on the caller.
_RESERVE_FUNCTION = "shopops_reserve_v2"
_TRANSITION_FUNCTION = "shopops_transition_v2"
_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION @reserve@(
    p_id text, p_key text, p_lines text, p_skus text[], p_warehouses text[], p_quantities bigint[],
    p_ttl_ms bigint, p_now_ms bigint
) RETURNS bigint LANGUAGE plpgsql AS $fn$
-- The hold's time (the item clock rule), or NULL when it changed nothing (see above).
DECLARE
    v_n constant integer := cardinality(p_skus);
    v_at bigint := p_now_ms;
    v_clocks bigint[];
    v_clock bigint;
    v_taken integer := 0;
    v_inserted integer := 0;
BEGIN
    FOR i IN 2 .. v_n LOOP
        IF NOT (p_skus[i - 1] COLLATE "C" < p_skus[i] COLLATE "C" OR (p_skus[i - 1] = p_skus[i]
                AND p_warehouses[i - 1] COLLATE "C" < p_warehouses[i] COLLATE "C")) THEN
            RETURN NULL;
        END IF;
    END LOOP;
    FOR i IN 1 .. v_n LOOP
        UPDATE stock s
            SET held_total = s.held_total + p_quantities[i], clock_ms = greatest(s.clock_ms, p_now_ms)
            WHERE s.sku = p_skus[i] AND s.warehouse = p_warehouses[i]
                AND s.on_hand - s.committed - s.held_total >= p_quantities[i]
            RETURNING s.clock_ms INTO v_clock;
        EXIT WHEN NOT FOUND;
        v_taken := i;
        v_clocks[i] := v_clock;
        v_at := greatest(v_at, v_clock);
    END LOOP;
    IF v_taken = v_n THEN
        -- The reservation, its holds and its event (Reservation.to_dict(), the lines in the stored
        -- compact form), all or nothing: nothing when the idempotency key exists.
        WITH r AS (
            INSERT INTO reservations
                (id, idempotency_key, lines, status, created_at_ms, expires_at_ms, updated_at_ms)
                VALUES (p_id, p_key, p_lines, 'held', v_at, v_at + p_ttl_ms, v_at)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id
        ), h AS (
            INSERT INTO holds (reservation_id, sku, warehouse, quantity, expires_at_ms)
            SELECT r.id, l.sku, l.warehouse, l.quantity, v_at + p_ttl_ms
            FROM r, unnest(p_skus, p_warehouses, p_quantities) AS l(sku, warehouse, quantity)
        ), o AS (
            INSERT INTO outbox (kind, data, created_at_ms)
            SELECT 'reserved', '{"id":' || to_json(p_id)::text || ',"idempotency_key":'
                || to_json(p_key)::text || ',"lines":' || p_lines || ',"status":"held","created_at_ms":'
                || v_at || ',"expires_at_ms":' || (v_at + p_ttl_ms) || ',"updated_at_ms":' || v_at || '}',
                v_at
            FROM r
        )
        SELECT count(*) INTO v_inserted FROM r;
    END IF;
    IF v_inserted = 0 THEN
        -- A line did not fit as counted here, or the key exists: give back what was taken.
        FOR i IN 1 .. v_taken LOOP
            UPDATE stock s SET held_total = s.held_total - p_quantities[i]
                WHERE s.sku = p_skus[i] AND s.warehouse = p_warehouses[i];
        END LOOP;
        RETURN NULL;
    END IF;
    FOR i IN 1 .. v_n LOOP
        IF v_clocks[i] < v_at THEN
            UPDATE stock s SET clock_ms = v_at WHERE s.sku = p_skus[i] AND s.warehouse = p_warehouses[i];
        END IF;
    END LOOP;
    RETURN v_at;
END
$fn$;
CREATE OR REPLACE FUNCTION @transition@(p_id text, p_action text, p_now_ms bigint)
RETURNS TABLE (o_key text, o_lines text, o_created_at_ms bigint, o_expires_at_ms bigint, o_at_ms bigint)
LANGUAGE plpgsql AS $fn$
-- Confirm, release or cancel when the transition table says "apply"; no row when it changed
-- nothing (see above).
DECLARE
    v_res reservations%ROWTYPE;
    v_status text;
    v_json json;
    v_skus text[];
    v_warehouses text[];
    v_quantities bigint[];
    v_clocks bigint[];
    v_clock bigint;
    v_n integer;
    v_at bigint := p_now_ms;
    v_held integer := 0;
    v_committed integer := 0;
BEGIN
    -- The reservation row first: its lock comes before any stock lock, as in the shared code.
    SELECT * INTO v_res FROM reservations r WHERE r.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Which actions can apply does not depend on time: in any other status (a no-op or an error
    -- of the transition table) the shared code decides.
    IF p_action IN ('confirm', 'release') AND v_res.status = 'held' THEN
        v_status := CASE p_action WHEN 'confirm' THEN 'confirmed' ELSE 'released' END;
        v_held := 1;
        v_committed := CASE p_action WHEN 'confirm' THEN 1 ELSE 0 END;
    ELSIF p_action = 'cancel' AND v_res.status = 'confirmed' THEN
        v_status := 'cancelled';
        v_committed := -1;
    ELSE
        RETURN;
    END IF;
    v_json := v_res.lines::json;
    v_n := json_array_length(v_json);
    FOR i IN 1 .. v_n LOOP
        v_skus[i] := v_json -> (i - 1) ->> 0;
        v_warehouses[i] := v_json -> (i - 1) ->> 1;
        v_quantities[i] := (v_json -> (i - 1) ->> 2)::bigint;
        IF i > 1 AND NOT (v_skus[i - 1] COLLATE "C" < v_skus[i] COLLATE "C" OR (v_skus[i - 1] = v_skus[i]
                AND v_warehouses[i - 1] COLLATE "C" < v_warehouses[i] COLLATE "C")) THEN
            RETURN;
        END IF;
    END LOOP;
    FOR i IN 1 .. v_n LOOP
        UPDATE stock s SET held_total = s.held_total - v_held * v_quantities[i],
            committed = s.committed + v_committed * v_quantities[i],
            clock_ms = greatest(s.clock_ms, p_now_ms)
            WHERE s.sku = v_skus[i] AND s.warehouse = v_warehouses[i]
            RETURNING s.clock_ms INTO v_clock;
        v_clocks[i] := v_clock;
        v_at := greatest(v_at, v_clock);
    END LOOP;
    IF v_held = 1 AND v_at >= v_res.expires_at_ms THEN
        -- The hold lapsed at the items' time: give the counters back, and let the shared code
        -- say whether that is a no-op or an error.
        FOR i IN 1 .. v_n LOOP
            UPDATE stock s SET held_total = s.held_total + v_quantities[i],
                committed = s.committed - v_committed * v_quantities[i]
                WHERE s.sku = v_skus[i] AND s.warehouse = v_warehouses[i];
        END LOOP;
        RETURN;
    END IF;
    FOR i IN 1 .. v_n LOOP
        IF v_clocks[i] < v_at THEN
            UPDATE stock s SET clock_ms = v_at WHERE s.sku = v_skus[i] AND s.warehouse = v_warehouses[i];
        END IF;
    END LOOP;
    -- The new status, the holds gone, and the event (Reservation.to_dict() after the change, the
    -- lines in the stored compact form), in one statement.
    WITH u AS (
        UPDATE reservations r SET status = v_status, updated_at_ms = v_at WHERE r.id = p_id
    ), d AS (
        DELETE FROM holds h WHERE h.reservation_id = p_id AND v_held = 1
    )
    INSERT INTO outbox (kind, data, created_at_ms)
    VALUES (v_status, '{"id":' || to_json(p_id)::text || ',"idempotency_key":'
        || to_json(v_res.idempotency_key)::text || ',"lines":' || v_res.lines || ',"status":"' || v_status
        || '","created_at_ms":' || v_res.created_at_ms || ',"expires_at_ms":' || v_res.expires_at_ms
        || ',"updated_at_ms":' || v_at || '}', v_at);
    o_key := v_res.idempotency_key;
    o_lines := v_res.lines;
    o_created_at_ms := v_res.created_at_ms;
    o_expires_at_ms := v_res.expires_at_ms;
    o_at_ms := v_at;
    RETURN NEXT;
END
$fn$
""".replace("@reserve@", _RESERVE_FUNCTION).replace("@transition@", _TRANSITION_FUNCTION)
_FAST_ACTIONS = {
    Action.CONFIRM: ReservationStatus.CONFIRMED,
    Action.RELEASE: ReservationStatus.RELEASED,
    Action.CANCEL: ReservationStatus.CANCELLED,
}
# The calls, prepared once on each pooled connection under these names.
_RESERVE_STATEMENT = b"shopops_inventory_reserve_v2"
_TRANSITION_STATEMENT = b"shopops_inventory_transition_v2"
_PREPARED = {
    _RESERVE_STATEMENT: (
        f"SELECT {_RESERVE_FUNCTION}($1, $2, $3, $4::text[], $5::text[], $6::bigint[], "
        "$7::bigint, $8::bigint)"
    ).encode(),
    _TRANSITION_STATEMENT: f"SELECT * FROM {_TRANSITION_FUNCTION}($1, $2, $3::bigint)".encode(),  # noqa: S608
}


def _check(pgconn: PGconn, result: PGresult) -> PGresult:
    """``result`` if the statement succeeded, else the psycopg error it stands for."""
    if result.status in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK):
        return result
    message = result.get_error_message() or pgconn.get_error_message() or "PostgreSQL call failed"
    sqlstate = result.error_field(DiagnosticField.SQLSTATE)
    error: type[psycopg.Error] = psycopg.OperationalError
    if sqlstate:
        try:
            error = psycopg.errors.lookup(sqlstate.decode())
        except KeyError:
            error = psycopg.DatabaseError
    raise error(message, info=result)


class PostgresReservationStore(SqlReservationStore):
    """The :class:`~shopops.inventory.port.ReservationStore` port on PostgreSQL (12 or later)."""

    lock_rows = " FOR UPDATE"
    lock_rows_skip_locked = " FOR UPDATE SKIP LOCKED"
    key_collation = ' COLLATE "C"'
    greatest = "GREATEST"

    class Config(PostgresStoreConfig):
        """Options of the ``postgres`` reservation store."""

        schema_name: str = "inventory"

    def __init__(self, config: Config, home: Path | None = None) -> None:
        self.config = config
        self.schema = config.schema_name
        self._closed = False
        # Pooled connections on which the fast-path statements are prepared.
        self._prepared: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pool = open_pool(
            config,
            name="shopops-inventory",
            what="the reservation store",
            setting="inventory.dsn",
            error=BackendUnavailableError,
        )
        try:
            self._init_schema()
        except BaseException:
            self._pool.close()
            raise

    def _schema_version(self, cur: Cursor) -> int | None:
        cur.execute("SELECT to_regclass(%s)", (f'"{self.schema}".meta',))
        if cur.fetchone()[0] is None:
            return None
        cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        return int(row[0]) if row is not None else None

    def _check_version(self, version: int) -> None:
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"the reservation schema {self.schema!r} has version {version}, "
                f"this shopops reads {SCHEMA_VERSION}",
                hint="use the shopops version that wrote it, or set inventory.schema_name to a new one",
            )

    def _init_schema(self) -> None:
        # DDL only when the schema is missing: even CREATE INDEX IF NOT EXISTS locks its table
        # (SHARE), which would deadlock against reservations running in other processes.
        with self._write() as cur:
            version = self._schema_version(cur)
            functions = self._has_functions(cur)
        if version is not None:
            self._check_version(version)
            if functions:
                return
        with self._write() as cur:
            # Processes starting together on an empty database create it one at a time.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            version = self._schema_version(cur)
            if version is not None:
                self._check_version(version)
            else:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        cur.execute(statement)
                cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s)", (SCHEMA_VERSION,))
            # Also added to a schema created before the functions existed; creating a function
            # locks no table, so this cannot wait on running reservations.
            if not self._has_functions(cur):
                cur.execute(_FUNCTIONS)

    def _has_functions(self, cur: Cursor) -> bool:
        cur.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname IN (%s, %s)",
            (self.schema, _RESERVE_FUNCTION, _TRANSITION_FUNCTION),
        )
        return int(cur.fetchone()[0]) == 2

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.errors.LockNotAvailable as exc:
            raise BackendUnavailableError(
                f"a stock row stayed locked for more than {self.config.lock_timeout_ms} ms",
                hint="retry; if it persists, look for long transactions in pg_stat_activity",
            ) from exc
        except PoolTimeout as exc:
            raise BackendUnavailableError(
                f"no PostgreSQL connection free within {self.config.pool_timeout_s} s "
                f"({describe_dsn(self.config.dsn)})",
                hint="raise inventory.pool_max_size or check that PostgreSQL is up",
            ) from exc
        except psycopg.errors.TransactionRollback as exc:
            # Locks are always taken in one order, so this is not expected; the transaction was
            # rolled back whole and can be retried.
            raise BackendUnavailableError(
                f"PostgreSQL aborted a reservation-store transaction: {exc}",
                hint="retry the request; nothing of it was written",
            ) from exc
        except psycopg.OperationalError as exc:
            raise BackendUnavailableError(
                f"PostgreSQL failed for the reservation store ({describe_dsn(self.config.dsn)}): {exc}",
                hint="check that PostgreSQL is up (e.g. `pg_ctlcluster 15 main start`)",
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailableError("the reservation store is closed", hint="open a new one")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        self._check_open()
        with self._errors(), self._pool.connection() as conn, conn.cursor() as cur:
            # The pool's context commits when the block ends and rolls back on an exception.
            yield cur

    # -- fast paths (the module docstring says when they apply) ----------------------------------

    def _call(self, statement: bytes, params: list[bytes]) -> tuple[bytes | None, ...] | None:
        """Run one of the fast-path functions as its own transaction; its one row, or None.

        The call goes straight to libpq (``PQexecPrepared``, which lets other threads run while it
        waits) on a pooled connection, as a statement prepared once per connection: with no
        transaction open, the server commits the statement on its own, so the call is one round
        trip and one durable commit, without BEGIN/COMMIT, parameter adaptation or query parsing.
        """
        self._check_open()
        with self._errors():
            conn = self._pool.getconn()
            try:
                pgconn = conn.pgconn
                if pgconn.transaction_status != TransactionStatus.IDLE:  # pragma: no cover - the pool's
                    raise psycopg.InterfaceError("a pooled connection was left inside a transaction")
                if conn not in self._prepared:
                    self._prepare(pgconn)
                    self._prepared.add(conn)
                try:
                    result = _check(pgconn, pgconn.exec_prepared(statement, params))
                except psycopg.errors.InvalidSqlStatementName:
                    # psycopg sends DEALLOCATE ALL after a rollback on a connection where it had
                    # prepared statements of its own (the shared transaction's): ours went too.
                    # Nothing ran; prepare them again and call once more.
                    self._prepare(pgconn)
                    result = _check(pgconn, pgconn.exec_prepared(statement, params))
                if result.ntuples == 0:
                    return None
                return tuple(result.get_value(0, i) for i in range(result.nfields))
            finally:
                self._pool.putconn(conn)

    @staticmethod
    def _prepare(pgconn: PGconn) -> None:
        for name, sql in _PREPARED.items():
            _check(pgconn, pgconn.prepare(name, sql))

    def reserve(
        self, command: ValidatedReserveStock, reservation_id: str, now_ms: int, refusal_event_id: str
    ) -> Outcome:
        lines = command.lines
        row = self._call(
            _RESERVE_STATEMENT,
            [
                reservation_id.encode(),
                command.idempotency_key.encode(),
                orjson.dumps(lines_to_json(lines)),
                # Array literals: SKU and warehouse codes never need escaping inside quotes.
                ("{" + ",".join(f'"{line.sku}"' for line in lines) + "}").encode(),
                ("{" + ",".join(f'"{line.warehouse}"' for line in lines) + "}").encode(),
                ("{" + ",".join(str(line.quantity) for line in lines) + "}").encode(),
                b"%d" % command.ttl_ms,
                b"%d" % now_ms,
            ],
        )
        if row is None or row[0] is None:
            return super().reserve(command, reservation_id, now_ms, refusal_event_id)
        at_ms = int(row[0])
        reservation = Reservation(
            reservation_id,
            command.idempotency_key,
            lines,
            ReservationStatus.HELD,
            at_ms,
            at_ms + command.ttl_ms,
            at_ms,
        )
        return Outcome(reservation, changed=True)

    def _transition(
        self, reservation_id: str, action: Action, now_ms: int, new_expires_at_ms: int = 0
    ) -> Outcome:
        status = _FAST_ACTIONS.get(action)
        if status is not None:
            row = self._call(
                _TRANSITION_STATEMENT, [reservation_id.encode(), action.value.encode(), b"%d" % now_ms]
            )
            if row is not None:
                # Never NULL: they come from NOT NULL columns.
                key, lines, created_at_ms, expires_at_ms, at_ms = (value or b"" for value in row)
                after = Reservation(
                    reservation_id,
                    key.decode(),
                    lines_from_json(orjson.loads(lines)),
                    status,
                    int(created_at_ms),
                    int(expires_at_ms),
                    int(at_ms),
                )
                return Outcome(after, changed=True)
        return super()._transition(reservation_id, action, now_ms, new_expires_at_ms)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        self._check_open()
        with self._errors(), self._pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.close()
