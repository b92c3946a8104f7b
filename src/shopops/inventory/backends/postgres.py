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

The common paths (a reserve that fits, a confirm, release or cancel that applies) run as one
PL/pgSQL function call in autocommit mode: one statement, so one round trip and one transaction,
doing exactly what the shared transaction in ``_sql`` does (the same locks in the same order, the
same item clock, the same rows and the same outbox entry, byte for byte). Whenever the outcome is
anything else (a shortage, an idempotent repeat, an unknown id, a no-op or an error of the
transition table) the function writes nothing and returns no result, and the shared code runs the
operation as before; it decides from scratch, so taking that path costs time, never correctness.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import psycopg.errors
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
# so processes of two shopops versions never run each other's function. Both take the stock rows
# with FOR UPDATE in bytewise key order, then use the items' clock, as ``_sql`` does; a function
# runs in one snapshot per statement at READ COMMITTED, so each statement after the locks reads
# the latest committed holds, as the shared transaction does.
_RESERVE_FUNCTION = "shopops_reserve_v1"
_TRANSITION_FUNCTION = "shopops_transition_v1"
_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION {_RESERVE_FUNCTION}(
    p_id text, p_key text, p_lines text, p_skus text[], p_warehouses text[], p_quantities bigint[],
    p_ttl_ms bigint, p_now_ms bigint, p_event_head text
) RETURNS bigint LANGUAGE plpgsql AS $fn$
-- The hold's time (the item clock rule), or NULL when it wrote nothing: an unknown item, a
-- shortage or an existing idempotency key, which the shared code then handles.
DECLARE
    v_at bigint := p_now_ms;
    v_rows integer := 0;
    v_clock bigint;
BEGIN
    FOR v_clock IN
        SELECT s.clock_ms FROM stock s
        WHERE (s.sku, s.warehouse) IN (SELECT * FROM unnest(p_skus, p_warehouses))
        ORDER BY s.sku COLLATE "C", s.warehouse COLLATE "C" FOR UPDATE
    LOOP
        v_rows := v_rows + 1;
        v_at := greatest(v_at, v_clock);
    END LOOP;
    IF v_rows < cardinality(p_skus) THEN
        RETURN NULL;
    END IF;
    -- Lapsed holds stop counting at v_at; an item without holds needs no look at them.
    IF EXISTS (
        SELECT 1 FROM stock s
        JOIN unnest(p_skus, p_warehouses, p_quantities) AS l(sku, warehouse, quantity)
            ON s.sku = l.sku AND s.warehouse = l.warehouse
        WHERE s.on_hand - s.committed - s.held_total + CASE WHEN s.held_total = 0 THEN 0 ELSE COALESCE((
            SELECT sum(h.quantity) FROM holds h
            WHERE h.sku = s.sku AND h.warehouse = s.warehouse AND h.expires_at_ms <= v_at), 0) END
            < l.quantity
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO reservations (id, idempotency_key, lines, status, created_at_ms, expires_at_ms, updated_at_ms)
    VALUES (p_id, p_key, p_lines, 'held', v_at, v_at + p_ttl_ms, v_at)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO holds (reservation_id, sku, warehouse, quantity, expires_at_ms)
    SELECT p_id, l.sku, l.warehouse, l.quantity, v_at + p_ttl_ms
    FROM unnest(p_skus, p_warehouses, p_quantities) AS l(sku, warehouse, quantity);
    UPDATE stock s SET held_total = s.held_total + l.quantity, clock_ms = greatest(s.clock_ms, v_at)
    FROM unnest(p_skus, p_warehouses, p_quantities) AS l(sku, warehouse, quantity)
    WHERE s.sku = l.sku AND s.warehouse = l.warehouse;
    INSERT INTO outbox (kind, data, created_at_ms)
    VALUES ('reserved', p_event_head || v_at || ',"expires_at_ms":' || (v_at + p_ttl_ms)
        || ',"updated_at_ms":' || v_at || '}}', v_at);
    RETURN v_at;
END
$fn$;
CREATE OR REPLACE FUNCTION {_TRANSITION_FUNCTION}(p_id text, p_action text, p_now_ms bigint)
RETURNS TABLE (o_key text, o_lines text, o_created_at_ms bigint, o_expires_at_ms bigint, o_at_ms bigint)
LANGUAGE plpgsql AS $fn$
-- Confirm, release or cancel when the transition table says "apply"; no row when it wrote nothing.
DECLARE
    v_res reservations%ROWTYPE;
    v_at bigint := p_now_ms;
    v_clock bigint;
    v_status text;
    v_lines text;
BEGIN
    SELECT * INTO v_res FROM reservations r WHERE r.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR v_clock IN
        SELECT s.clock_ms FROM stock s
        WHERE (s.sku, s.warehouse) IN (SELECT e->>0, e->>1 FROM json_array_elements(v_res.lines::json) e)
        ORDER BY s.sku COLLATE "C", s.warehouse COLLATE "C" FOR UPDATE
    LOOP
        v_at := greatest(v_at, v_clock);
    END LOOP;
    IF p_action IN ('confirm', 'release') AND v_res.status = 'held' AND v_at < v_res.expires_at_ms THEN
        v_status := CASE p_action WHEN 'confirm' THEN 'confirmed' ELSE 'released' END;
    ELSIF p_action = 'cancel' AND v_res.status = 'confirmed' THEN
        v_status := 'cancelled';
    ELSE
        RETURN;
    END IF;
    IF p_action = 'cancel' THEN
        UPDATE stock s SET committed = s.committed - l.quantity, clock_ms = greatest(s.clock_ms, v_at)
        FROM (SELECT e->>0 AS sku, e->>1 AS warehouse, sum((e->>2)::bigint) AS quantity
              FROM json_array_elements(v_res.lines::json) e GROUP BY 1, 2) l
        WHERE s.sku = l.sku AND s.warehouse = l.warehouse;
    ELSE
        DELETE FROM holds h WHERE h.reservation_id = p_id;
        UPDATE stock s SET held_total = s.held_total - l.quantity,
            committed = s.committed + CASE WHEN p_action = 'confirm' THEN l.quantity ELSE 0 END,
            clock_ms = greatest(s.clock_ms, v_at)
        FROM (SELECT e->>0 AS sku, e->>1 AS warehouse, sum((e->>2)::bigint) AS quantity
              FROM json_array_elements(v_res.lines::json) e GROUP BY 1, 2) l
        WHERE s.sku = l.sku AND s.warehouse = l.warehouse;
    END IF;
    UPDATE reservations r SET status = v_status, updated_at_ms = v_at WHERE r.id = p_id;
    -- The event text as Reservation.to_dict() gives it through orjson (compact, in key order).
    SELECT string_agg('{{"sku":' || to_json(e->>0)::text || ',"warehouse":' || to_json(e->>1)::text
            || ',"quantity":' || (e->>2)::bigint || '}}', ',' ORDER BY n)
        INTO v_lines FROM json_array_elements(v_res.lines::json) WITH ORDINALITY AS t(e, n);
    INSERT INTO outbox (kind, data, created_at_ms)
    VALUES (v_status, '{{"id":' || to_json(p_id)::text || ',"idempotency_key":'
        || to_json(v_res.idempotency_key)::text || ',"lines":[' || v_lines || '],"status":"' || v_status
        || '","created_at_ms":' || v_res.created_at_ms || ',"expires_at_ms":' || v_res.expires_at_ms
        || ',"updated_at_ms":' || v_at || '}}', v_at);
    RETURN QUERY SELECT v_res.idempotency_key, v_res.lines, v_res.created_at_ms, v_res.expires_at_ms, v_at;
END
$fn$
"""  # noqa: S608 - only the function names are interpolated
_FAST_ACTIONS = {
    Action.CONFIRM: ReservationStatus.CONFIRMED,
    Action.RELEASE: ReservationStatus.RELEASED,
    Action.CANCEL: ReservationStatus.CANCELLED,
}
# The Reserved event's last three fields, which the reserve function appends once it knows the time.
_TIME_FIELDS = ("created_at_ms", "expires_at_ms", "updated_at_ms")


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

    @contextlib.contextmanager
    def _statement(self) -> Iterator[Cursor]:
        """A cursor whose every statement is its own transaction: one round trip, no BEGIN/COMMIT."""
        self._check_open()
        with self._errors(), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    yield cur
            finally:
                if not conn.closed:
                    conn.autocommit = False

    # -- fast paths (the module docstring says when they apply) ----------------------------------

    def reserve(
        self, command: ValidatedReserveStock, reservation_id: str, now_ms: int, refusal_event_id: str
    ) -> Outcome:
        lines = command.lines
        # The Reserved event as the shared code writes it, up to the times: only the function
        # knows them (the item clock), so it appends them to this text.
        head = Reservation(
            reservation_id, command.idempotency_key, lines, ReservationStatus.HELD, 0, 0, 0
        ).to_dict()
        for field in _TIME_FIELDS:
            del head[field]
        event_head = orjson.dumps(head).decode()[:-1] + ',"created_at_ms":'
        with self._statement() as cur:
            cur.execute(
                f"SELECT {_RESERVE_FUNCTION}(%s, %s, %s, %s::text[], %s::text[], %s::bigint[], %s, %s, %s)",
                (
                    reservation_id,
                    command.idempotency_key,
                    orjson.dumps(lines_to_json(lines)).decode(),
                    [line.sku for line in lines],
                    [line.warehouse for line in lines],
                    [line.quantity for line in lines],
                    command.ttl_ms,
                    now_ms,
                    event_head,
                ),
            )
            at_ms = cur.fetchone()[0]
        if at_ms is None:
            return super().reserve(command, reservation_id, now_ms, refusal_event_id)
        at_ms = int(at_ms)
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
            with self._statement() as cur:
                cur.execute(
                    f"SELECT * FROM {_TRANSITION_FUNCTION}(%s, %s, %s)",  # noqa: S608
                    (reservation_id, action.value, now_ms),
                )
                row = cur.fetchone()
            if row is not None:
                key, lines, created_at_ms, expires_at_ms, at_ms = row
                after = Reservation(
                    reservation_id,
                    key,
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
