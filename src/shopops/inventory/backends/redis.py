"""The Redis reservation store: every change is one server-side Lua script.

Redis runs a script to its end before serving any other command, so a script that first checks
every line of a reservation and only then writes all of them is all-or-nothing with no lock and no
retry: the check and the hold cannot interleave with another checkout. Scripts are loaded once
and called by SHA (``EVALSHA``; redis-py reloads them if the server restarted).

Keys, all under one hash tag ``{prefix}`` so that a store lives in one cluster slot:

=========================== =================================================================
``{p}:s:<sku>|<wh>``         hash: on_hand, committed, held (HELD holds, lapsed or not), blocked, clock
``{p}:h:<sku>|<wh>``         sorted set: reservation id by expiry, the holds on this item
``{p}:hq:<sku>|<wh>``        hash: reservation id -> units held on this item
``{p}:r:<id>``               hash: the reservation (ikey, lines JSON, status, created, expires, updated)
``{p}:i:<idempotency key>``  string: the reservation id made with that key
``{p}:exp``                  sorted set: HELD reservation ids by expiry (what the sweeper takes)
``{p}:ids`` / ``{p}:items``  sorted sets (lexicographic): every reservation id / item, for listing
``{p}:out``                  stream: the outbox, written by the same script as the change
``{p}:relay``                string with a TTL: the outbox publisher's lease
=========================== =================================================================

Expiry is exact without a sweeper: the active ``held`` of an item is ``held`` minus the units of
its holds whose expiry is ``<= now`` (a range of ``{p}:h:<item>``, kept short by the sweeper).
As in the SQL stores, each item keeps a clock (the latest time a writer used on it) and every
script uses ``max(now, clock)``, so a caller with a stale time cannot revive a lapsed hold.

The reserve and transition scripts, the hot path, read each item once and write it once, and a
granted reserve returns only its time (the caller knows the rest). The store sends them with
``EVALSHA`` on connections it keeps between calls, with the client's retry policy but without its
per-command bookkeeping (pool accounting and metric hooks cost more client CPU than the call).

The server should persist (AOF ``appendfsync everysec`` or ``always``) if holds and confirmations
must survive a Redis restart; without persistence a restart empties the store.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.exceptions
from pydantic import Field, field_validator
from redis.commands.core import Script

from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shopops.core.registry import BackendConfig
from shopops.inventory.model import (
    KIND_OUT_OF_STOCK,
    KIND_STOCK,
    Action,
    InsufficientStockError,
    OutboxEntry,
    Outcome,
    Reservation,
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
)
from shopops.inventory.port import ReservationStore

# Shared by every script: ARGV[1] is the key prefix (with its hash tag).
_LUA_COMMON = r"""
local P = ARGV[1]

-- Units of the holds on an item whose TTL passed by `at` (still HELD, not yet swept).
local function lapsed(item, at)
  local ids = redis.call('ZRANGEBYSCORE', P .. ':h:' .. item, '-inf', at)
  local sum = 0
  local hq = P .. ':hq:' .. item
  for i = 1, #ids, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
    local qs = redis.call('HMGET', hq, unpack(chunk))
    for j = 1, #qs do sum = sum + tonumber(qs[j]) end
  end
  return sum
end

-- The time to use on these items: `now`, or later if a writer already used a later time on one
-- of them (an item's clock never goes backwards; see the module doc of the SQL stores).
local function clock(items, now)
  local at = now
  for _, item in ipairs(items) do
    local c = redis.call('HGET', P .. ':s:' .. item, 'clock')
    if c and tonumber(c) > at then at = tonumber(c) end
  end
  return at
end

-- {on_hand, committed, active held at `at`, blocked} of an item, or nil when never stocked.
local function level(item, at)
  local v = redis.call('HMGET', P .. ':s:' .. item, 'on_hand', 'committed', 'held', 'blocked')
  if not v[1] then return nil end
  return {tonumber(v[1]), tonumber(v[2]), tonumber(v[3]) - lapsed(item, at), tonumber(v[4])}
end

local function touch(items, at)
  for _, item in ipairs(items) do
    if redis.call('EXISTS', P .. ':s:' .. item) == 1 then
      redis.call('HSET', P .. ':s:' .. item, 'clock', at)
    end
  end
end

local function items_of(lines)
  local items = {}
  for _, l in ipairs(lines) do items[#items + 1] = l[1] .. '|' .. l[2] end
  return items
end

local function snapshot(id)
  local v = redis.call('HMGET', P .. ':r:' .. id, 'ikey', 'lines', 'status', 'created', 'expires', 'updated')
  if not v[1] then return nil end
  return {id, v[1], v[2], v[3], v[4], v[5], v[6]}
end

local function emit_reservation(kind, id)
  local s = snapshot(id)
  redis.call('XADD', P .. ':out', '*', 'kind', kind, 'id', s[1], 'ikey', s[2], 'lines', s[3],
    'status', s[4], 'created', s[5], 'expires', s[6], 'updated', s[7])
end

-- Take a HELD reservation's units off its items' holds (confirm, release, expire).
local function drop_holds(id, lines)
  for _, l in ipairs(lines) do
    local item = l[1] .. '|' .. l[2]
    redis.call('HINCRBY', P .. ':s:' .. item, 'held', -l[3])
    redis.call('ZREM', P .. ':h:' .. item, id)
    redis.call('HDEL', P .. ':hq:' .. item, id)
  end
  redis.call('ZREM', P .. ':exp', id)
end
"""

# ARGV: prefix, now, id, idempotency key, lines JSON, ttl, refusal event id, n, then n x (item, qty).
# The lines come merged (one per item); the script adds up repeats all the same. It reads each item
# once (counters and clock together) and writes it once; a granted hold returns only its time, the
# caller knows the rest of the reservation.
_LUA_RESERVE = (
    _LUA_COMMON
    + r"""
local id, ikey, lines, ttl, eid = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local n = tonumber(ARGV[8])
local existing = redis.call('GET', P .. ':i:' .. ikey)
if existing then return {'dup', snapshot(existing)} end
local at = tonumber(ARGV[2])
local items, rows, wanted = {}, {}, {}
for i = 0, n - 1 do
  local item, q = ARGV[9 + 2 * i], tonumber(ARGV[10 + 2 * i])
  if wanted[item] then
    wanted[item] = wanted[item] + q
  else
    items[#items + 1] = item
    wanted[item] = q
    local v = redis.call('HMGET', P .. ':s:' .. item, 'on_hand', 'committed', 'held', 'blocked', 'clock')
    rows[item] = v
    if v[5] and tonumber(v[5]) > at then at = tonumber(v[5]) end
  end
end
-- Check every item first; write only if all of them fit. Lapsed holds count as free at `at`.
local short = {}
for _, item in ipairs(items) do
  local v, q = rows[item], wanted[item]
  if not v[1] then
    short[#short + 1] = {item, q, 0, 0}
  else
    local held = tonumber(v[3])
    if held > 0 then held = held - lapsed(item, at) end
    local available = math.max(0, tonumber(v[1]) - tonumber(v[2]) - held)
    if available < q then short[#short + 1] = {item, q, available, 1} end
  end
end
if #short > 0 then
  local encoded = {}
  for _, s in ipairs(short) do
    if s[4] == 1 then redis.call('HINCRBY', P .. ':s:' .. s[1], 'blocked', 1) end
    encoded[#encoded + 1] = s[1] .. '|' .. s[2] .. '|' .. s[3] .. '|' .. s[4]
  end
  touch(items, at)
  redis.call('XADD', P .. ':out', '*', 'kind', 'out_of_stock', 'eid', eid, 'at', at, 'ikey', ikey,
    'lines', lines, 'short', table.concat(encoded, ';'))
  return {'short', short}
end
local expires = at + ttl
for _, item in ipairs(items) do
  local q = wanted[item]
  redis.call('HSET', P .. ':s:' .. item, 'held', tonumber(rows[item][3]) + q, 'clock', at)
  redis.call('ZADD', P .. ':h:' .. item, expires, id)
  redis.call('HSET', P .. ':hq:' .. item, id, q)
end
redis.call('HSET', P .. ':r:' .. id, 'ikey', ikey, 'lines', lines, 'status', 'held', 'created', at,
  'expires', expires, 'updated', at)
redis.call('SET', P .. ':i:' .. ikey, id)
redis.call('ZADD', P .. ':exp', expires, id)
redis.call('ZADD', P .. ':ids', 0, id)
redis.call('XADD', P .. ':out', '*', 'kind', 'reserved', 'id', id, 'ikey', ikey, 'lines', lines,
  'status', 'held', 'created', at, 'expires', expires, 'updated', at)
return {'ok', at}
"""
)

# ARGV: prefix, now, action, id, new expiry (extend only). The applicability test is model.decide's
# "apply" column; anything else is returned, with the time used, for the caller to turn into a
# no-op or an error. Confirm and release read each item once and write it once.
_LUA_TRANSITION = (
    _LUA_COMMON
    + r"""
local action, id, newexp = ARGV[3], ARGV[4], ARGV[5]
local rk = P .. ':r:' .. id
local v = redis.call('HMGET', rk, 'ikey', 'lines', 'status', 'created', 'expires', 'updated')
if not v[1] then return {'missing'} end
local status, expires = v[3], tonumber(v[5])
local lines = cjson.decode(v[2])
-- The items (a repeated one once, its units added up), their counters and the time to use.
local items, rows, units = {}, {}, {}
local at = tonumber(ARGV[2])
for _, l in ipairs(lines) do
  local item = l[1] .. '|' .. l[2]
  if units[item] then
    units[item] = units[item] + l[3]
  else
    items[#items + 1] = item
    units[item] = l[3]
    local c = redis.call('HMGET', P .. ':s:' .. item, 'held', 'committed', 'clock')
    rows[item] = c
    if c[3] and tonumber(c[3]) > at then at = tonumber(c[3]) end
  end
end
local apply
if action == 'confirm' or action == 'release' then
  apply = status == 'held' and at < expires
elseif action == 'extend' then
  apply = status == 'held' and at < expires and tonumber(newexp) > expires
else
  apply = status == 'confirmed'
end
if not apply then return {'noop', {id, v[1], v[2], v[3], v[4], v[5], v[6]}, at} end
if action == 'extend' then
  for _, item in ipairs(items) do redis.call('ZADD', P .. ':h:' .. item, newexp, id) end
  redis.call('ZADD', P .. ':exp', newexp, id)
  redis.call('HSET', rk, 'expires', newexp, 'updated', at)
  touch(items, at)
  emit_reservation('extended', id)
  return {'ok', snapshot(id)}
end
local target
if action == 'cancel' then
  target = 'cancelled'
  for _, item in ipairs(items) do
    local c = rows[item]
    if c[2] then
      redis.call('HSET', P .. ':s:' .. item, 'committed', tonumber(c[2]) - units[item], 'clock', at)
    end
  end
else
  target = action == 'confirm' and 'confirmed' or 'released'
  for _, item in ipairs(items) do
    local c, q = rows[item], units[item]
    if c[1] then
      if target == 'confirmed' then
        redis.call('HSET', P .. ':s:' .. item, 'held', tonumber(c[1]) - q, 'committed', tonumber(c[2]) + q,
          'clock', at)
      else
        redis.call('HSET', P .. ':s:' .. item, 'held', tonumber(c[1]) - q, 'clock', at)
      end
    end
    redis.call('ZREM', P .. ':h:' .. item, id)
    redis.call('HDEL', P .. ':hq:' .. item, id)
  end
  redis.call('ZREM', P .. ':exp', id)
end
redis.call('HSET', rk, 'status', target, 'updated', at)
redis.call('XADD', P .. ':out', '*', 'kind', target, 'id', id, 'ikey', v[1], 'lines', v[2],
  'status', target, 'created', v[4], 'expires', v[5], 'updated', at)
return {'ok', {id, v[1], v[2], target, v[4], v[5], at}}
"""
)

# ARGV: prefix, now, limit
_LUA_EXPIRE = (
    _LUA_COMMON
    + r"""
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', P .. ':exp', '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local rk = P .. ':r:' .. id
  local v = redis.call('HMGET', rk, 'status', 'lines')
  if v[1] == 'held' then
    local lines = cjson.decode(v[2])
    local items = items_of(lines)
    local at = clock(items, now)
    drop_holds(id, lines)
    touch(items, at)
    redis.call('HSET', rk, 'status', 'expired', 'updated', at)
    emit_reservation('expired', id)
    out[#out + 1] = snapshot(id)
  else
    redis.call('ZREM', P .. ':exp', id)
  end
end
return out
"""
)

# ARGV: prefix, now, item, sku, warehouse, mode ('set' | 'add'), value, reason, event id
_LUA_STOCK = (
    _LUA_COMMON
    + r"""
local item, sku, wh, mode, value, reason, eid =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
local sk = P .. ':s:' .. item
local at = clock({item}, tonumber(ARGV[2]))
local lv = level(item, at)
local target
if not lv then
  target = value
  if target < 0 then return {'unknown'} end
  redis.call('HSET', sk, 'on_hand', target, 'committed', 0, 'held', 0, 'blocked', 0, 'clock', at)
  redis.call('ZADD', P .. ':items', 0, item)
  redis.call('XADD', P .. ':out', '*', 'kind', 'stock', 'eid', eid, 'at', at, 'sku', sku, 'wh', wh,
    'before', 0, 'on_hand', target, 'committed', 0, 'held', 0, 'reason', reason)
  return {'new', target, 0, 0, 0, 0}
end
if mode == 'set' then target = value else target = lv[1] + value end
if target < 0 then return {'negative', lv[1]} end
redis.call('HSET', sk, 'on_hand', target, 'clock', at)
redis.call('XADD', P .. ':out', '*', 'kind', 'stock', 'eid', eid, 'at', at, 'sku', sku, 'wh', wh,
  'before', lv[1], 'on_hand', target, 'committed', lv[2], 'held', lv[3], 'reason', reason)
return {'old', target, lv[1], lv[2], lv[3], lv[4]}
"""
)

# ARGV: prefix, now, mode ('all' | 'sku' | 'keys'), then the sku or the items. One script, so the
# levels of every item are read at one instant; each item at its own clock.
_LUA_LEVELS = (
    _LUA_COMMON
    + r"""
local now, mode = tonumber(ARGV[2]), ARGV[3]
local items
if mode == 'all' then
  items = redis.call('ZRANGE', P .. ':items', 0, -1)
elseif mode == 'sku' then
  items = redis.call('ZRANGEBYLEX', P .. ':items', '[' .. ARGV[4] .. '|', '(' .. ARGV[4] .. '}')
else
  items = {}
  for i = 4, #ARGV do items[#items + 1] = ARGV[i] end
end
local out = {}
for _, item in ipairs(items) do
  local lv = level(item, clock({item}, now))
  if lv then out[#out + 1] = {item, lv[1], lv[2], lv[3], lv[4]} end
end
return out
"""
)

# ARGV: prefix, owner, lease ms, limit
_LUA_CLAIM = r"""
local P, owner = ARGV[1], ARGV[2]
local current = redis.call('GET', P .. ':relay')
if current and current ~= owner then return {} end
redis.call('SET', P .. ':relay', owner, 'PX', ARGV[3])
return redis.call('XRANGE', P .. ':out', '-', '+', 'COUNT', ARGV[4])
"""

_PREFIX_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_RESERVATION_FIELDS = ("ikey", "lines", "status", "created", "expires", "updated")


def _reservation(snapshot: Sequence[Any]) -> Reservation:
    """A reservation from a script's ``{id, ikey, lines, status, created, expires, updated}``."""
    rid, ikey, lines, status, created, expires, updated = snapshot
    return Reservation(
        id=rid,
        idempotency_key=ikey,
        lines=lines_from_json(orjson.loads(lines)),
        status=ReservationStatus(status),
        created_at_ms=int(created),
        expires_at_ms=int(expires),
        updated_at_ms=int(updated),
    )


def _evalsha(conn: Any, script: Script, args: list[Any]) -> Any:
    """Run ``script`` on ``conn`` by SHA, loading it first if the server does not know it."""
    conn.send_command("EVALSHA", script.sha, 0, *args)
    try:
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        # A restarted or flushed server: load the script (the SHA stays the same) and run it.
        conn.send_command("SCRIPT", "LOAD", script.script)
        conn.read_response()
        conn.send_command("EVALSHA", script.sha, 0, *args)
        return conn.read_response()


def _stream_entry(entry_id: str, fields: dict[str, str]) -> OutboxEntry:
    kind = fields["kind"]
    if kind == KIND_OUT_OF_STOCK:
        shortages = []
        for part in fields["short"].split(";"):
            sku, warehouse, requested, available, known = part.split("|")
            shortages.append([sku, warehouse, int(requested), int(available), int(known)])
        data: dict[str, Any] = {
            "event_id": fields["eid"],
            "at_ms": int(fields["at"]),
            "idempotency_key": fields["ikey"],
            "lines": orjson.loads(fields["lines"]),
            "shortages": shortages,
        }
    elif kind == KIND_STOCK:
        data = {
            "event_id": fields["eid"],
            "at_ms": int(fields["at"]),
            "sku": fields["sku"],
            "warehouse": fields["wh"],
            "on_hand_before": int(fields["before"]),
            "on_hand": int(fields["on_hand"]),
            "committed": int(fields["committed"]),
            "held": int(fields["held"]),
            "reason": fields["reason"],
        }
    else:
        data = _reservation([fields["id"], *(fields[name] for name in _RESERVATION_FIELDS)]).to_dict()
    return OutboxEntry(entry_id, kind, data)


class RedisReservationStore(ReservationStore):
    """The :class:`~shopops.inventory.port.ReservationStore` port on Redis (6.2 or later)."""

    class Config(BackendConfig):
        """Options of the ``redis`` reservation store."""

        #: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS).
        url: str = "redis://127.0.0.1:6379/0"
        #: Every key of the store starts with ``{key_prefix}``: several stores can share a server.
        key_prefix: str = "shopops:inventory"
        socket_timeout_s: float = Field(default=5.0, gt=0)
        max_connections: int = Field(default=64, ge=1)

        @field_validator("key_prefix")
        @classmethod
        def _safe_prefix(cls, value: str) -> str:
            if not _PREFIX_RE.match(value):
                raise ValueError("use 1-64 letters, digits, '.', '_', ':' or '-'")
            return value

    def __init__(self, config: Config, home: Path | None = None) -> None:
        self.config = config
        self.prefix = "{" + config.key_prefix + "}"
        self._closed = False
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": config.socket_timeout_s,
            "socket_connect_timeout": config.socket_timeout_s,
            "max_connections": config.max_connections,
            "health_check_interval": 30,
        }
        pool = redis.ConnectionPool.from_url(config.url, **options)
        self._redis: redis.Redis = redis.Redis(connection_pool=pool)
        # Reserve and transition scripts run on connections of their own pool, kept by the store
        # between calls (see _run); up to ``max_connections`` of them, beside the general pool.
        self._script_pool = redis.ConnectionPool.from_url(config.url, **options)
        self._idle: list[Any] = []
        with self._errors():
            self._redis.ping()
        self._reserve = self._redis.register_script(_LUA_RESERVE)
        self._transition_script = self._redis.register_script(_LUA_TRANSITION)
        self._expire = self._redis.register_script(_LUA_EXPIRE)
        self._stock_script = self._redis.register_script(_LUA_STOCK)
        self._levels = self._redis.register_script(_LUA_LEVELS)
        self._claim = self._redis.register_script(_LUA_CLAIM)

    def _where(self) -> str:
        kwargs = self._redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        if self._closed:
            raise BackendUnavailableError("the reservation store is closed", hint="open a new one")
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailableError(
                f"cannot reach Redis for the reservation store at {self._where()}: {exc}",
                hint="start Redis (e.g. `redis-server --daemonize yes`) and check inventory.url",
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise BackendUnavailableError(
                f"Redis failed a reservation-store command at {self._where()}: {exc}",
                hint="check the server's log; the store needs Redis 6.2 or later with Lua scripting",
            ) from exc

    def _run(self, script: Script, args: list[Any]) -> Any:
        """``EVALSHA`` of ``script`` with ``args``: its reply.

        The hot path of reserve and confirm/release/cancel. It does what calling the script
        object does (the same retry policy, the script loaded again if the server lost it) on a
        connection the store keeps between calls, without the client's per-command bookkeeping
        (pool accounting, metrics hooks), which costs more CPU than the call itself.
        """
        if self._closed:
            raise BackendUnavailableError("the reservation store is closed", hint="open a new one")
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._script_pool.get_connection()
        try:
            return conn.retry.call_with_retry(
                lambda: _evalsha(conn, script, args), lambda _error: conn.disconnect()
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailableError(
                f"cannot reach Redis for the reservation store at {self._where()}: {exc}",
                hint="start Redis (e.g. `redis-server --daemonize yes`) and check inventory.url",
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise BackendUnavailableError(
                f"Redis failed a reservation-store command at {self._where()}: {exc}",
                hint="check the server's log; the store needs Redis 6.2 or later with Lua scripting",
            ) from exc
        finally:
            # A connection that failed was disconnected; it reconnects on its next command.
            if self._closed:
                self._script_pool.release(conn)
            else:
                self._idle.append(conn)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    # -- reservations ----------------------------------------------------------------------------

    def reserve(
        self, command: ValidatedReserveStock, reservation_id: str, now_ms: int, refusal_event_id: str
    ) -> Outcome:
        lines = command.lines
        args: list[Any] = [
            self.prefix,
            now_ms,
            reservation_id,
            command.idempotency_key,
            orjson.dumps(lines_to_json(lines)).decode(),
            command.ttl_ms,
            refusal_event_id,
            len(lines),
        ]
        for line in lines:
            # StockKey.encoded, without building the key.
            args += [f"{line.sku}|{line.warehouse}", line.quantity]
        reply = self._run(self._reserve, args)
        tag = reply[0]
        if tag == "ok":
            at_ms = int(reply[1])
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
        if tag == "dup":
            return check_idempotent_repeat(_reservation(reply[1]), command)
        if tag == "short":
            shortages = []
            for item, requested, available, known in reply[1]:
                key = StockKey.decode(item)
                shortages.append(
                    Shortage(key.sku, key.warehouse, int(requested), int(available), bool(known))
                )
            raise InsufficientStockError(shortages, command.idempotency_key)
        raise BackendUnavailableError(
            f"the reserve script answered {tag!r}", hint="the Lua scripts and this module disagree"
        )

    def _transition(
        self, reservation_id: str, action: Action, now_ms: int, new_expires_at_ms: int = 0
    ) -> Outcome:
        reply = self._run(
            self._transition_script, [self.prefix, now_ms, action.value, reservation_id, new_expires_at_ms]
        )
        if reply[0] == "missing":
            raise NotFoundError(
                f"reservation {reservation_id} does not exist", hint="use the id returned by reserve"
            )
        current = _reservation(reply[1])
        if reply[0] == "ok":
            return Outcome(current, changed=True)
        # The script found nothing to apply: the model says whether that is a no-op or an error,
        # at the time the script used (the items' clock, maybe later than ``now_ms``).
        at_ms = int(reply[2])
        if decide(current, action, at_ms, new_expires_at_ms):
            raise BackendUnavailableError(
                f"the reservation script and the model disagree on {action.value} of {reservation_id}",
                hint="the Lua scripts and shopops.inventory.model must implement the same table",
            )
        return Outcome(current.as_of(at_ms), changed=False)

    def confirm(self, reservation_id: str, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.CONFIRM, now_ms)

    def release(self, reservation_id: str, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.RELEASE, now_ms)

    def extend(self, reservation_id: str, expires_at_ms: int, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.EXTEND, now_ms, expires_at_ms)

    def cancel(self, reservation_id: str, now_ms: int) -> Outcome:
        return self._transition(reservation_id, Action.CANCEL, now_ms)

    def expire_due(self, now_ms: int, limit: int = 500) -> list[Reservation]:
        with self._errors():
            reply = self._expire(args=[self.prefix, now_ms, limit])
        return [_reservation(snapshot) for snapshot in reply]

    def _fetch(self, ids: Sequence[str]) -> list[Reservation]:
        if not ids:
            return []
        with self._errors():
            pipe = self._redis.pipeline(transaction=False)
            for rid in ids:
                pipe.hmget(self._key("r", rid), list(_RESERVATION_FIELDS))
            rows = pipe.execute()
        return [_reservation([rid, *row]) for rid, row in zip(ids, rows, strict=True) if row[0] is not None]

    def get(self, reservation_id: str) -> Reservation:
        found = self._fetch([reservation_id])
        if not found:
            raise NotFoundError(
                f"reservation {reservation_id} does not exist", hint="use the id returned by reserve"
            )
        return found[0]

    def find_by_idempotency_key(self, idempotency_key: str) -> Reservation | None:
        with self._errors():
            rid = self._redis.get(self._key("i", idempotency_key))
        if rid is None:
            return None
        found = self._fetch([str(rid)])
        return found[0] if found else None

    def reservations(
        self, status: ReservationStatus | None = None, after_id: str = "", limit: int = 1000
    ) -> list[Reservation]:
        out: list[Reservation] = []
        cursor = after_id
        while len(out) < limit:
            with self._errors():
                raw = self._redis.zrangebylex(
                    f"{self.prefix}:ids", f"({cursor}" if cursor else "-", "+", start=0, num=limit
                )
            if not raw:
                break
            ids = [str(i) for i in raw]
            out += [r for r in self._fetch(ids) if status is None or r.status is status]
            cursor = ids[-1]
        return out[:limit]

    def overdue_holds(self, expired_before_ms: int, limit: int = 1000) -> list[Reservation]:
        with self._errors():
            ids = self._redis.zrangebyscore(
                f"{self.prefix}:exp", "-inf", expired_before_ms, start=0, num=limit
            )
        return [r for r in self._fetch([str(i) for i in ids]) if r.status is ReservationStatus.HELD]

    # -- stock ---------------------------------------------------------------------------------

    def _change_stock(
        self, key: StockKey, mode: str, value: int, now_ms: int, reason: str, event_id: str
    ) -> StockChange:
        with self._errors():
            reply = self._stock_script(
                args=[self.prefix, now_ms, key.encoded, key.sku, key.warehouse, mode, value, reason, event_id]
            )
        tag = reply[0]
        if tag == "unknown":
            raise InvalidInputError(
                f"cannot remove {-value} units of {key}: the item has no stock", hint="set its stock first"
            )
        if tag == "negative":
            raise InvalidInputError(
                f"cannot remove {-value} units of {key}: only {int(reply[1])} are on hand",
                hint="set the counted stock with set_stock instead",
            )
        target, on_hand, committed, held, blocked = (int(v) for v in reply[1:])
        before = None if tag == "new" else StockLevel(key, on_hand, committed, held, blocked)
        return StockChange(before, StockLevel(key, target, committed, held, blocked), reason)

    def set_stock(self, key: StockKey, on_hand: int, now_ms: int, reason: str, event_id: str) -> StockChange:
        return self._change_stock(key, "set", on_hand, now_ms, reason, event_id)

    def adjust_stock(self, key: StockKey, delta: int, now_ms: int, reason: str, event_id: str) -> StockChange:
        return self._change_stock(key, "add", delta, now_ms, reason, event_id)

    def _read_levels(self, now_ms: int, mode: str, values: Sequence[str]) -> list[StockLevel]:
        with self._errors():
            reply = self._levels(args=[self.prefix, now_ms, mode, *values])
        levels = [
            StockLevel(StockKey.decode(item), int(on_hand), int(committed), int(held), int(blocked))
            for item, on_hand, committed, held, blocked in reply
        ]
        return sorted(levels, key=lambda level: level.key)

    def stock_levels(self, keys: Iterable[StockKey], now_ms: int) -> list[StockLevel]:
        wanted = sorted(set(keys))
        if not wanted:
            return []
        return self._read_levels(now_ms, "keys", [k.encoded for k in wanted])

    def stock(self, sku: str, now_ms: int) -> list[StockLevel]:
        return self._read_levels(now_ms, "sku", [sku])

    def all_stock(self, now_ms: int) -> list[StockLevel]:
        return self._read_levels(now_ms, "all", [])

    # -- outbox --------------------------------------------------------------------------------

    def claim_outbox(self, owner: str, lease_ms: int, now_ms: int, limit: int = 500) -> list[OutboxEntry]:
        # The lease runs on the Redis server's clock (PX); ``now_ms`` is not needed here.
        with self._errors():
            reply = self._claim(args=[self.prefix, owner, lease_ms, limit])
        entries = []
        for entry_id, flat in reply:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            entries.append(_stream_entry(str(entry_id), fields))
        return entries

    def ack_outbox(self, owner: str, entry_ids: Sequence[str]) -> int:
        if not entry_ids:
            return 0
        with self._errors():
            return int(self._redis.xdel(f"{self.prefix}:out", *entry_ids))

    def pending_outbox(self) -> int:
        with self._errors():
            return int(self._redis.xlen(f"{self.prefix}:out"))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._redis.close()
            self._redis.connection_pool.disconnect()
            while self._idle:
                self._script_pool.release(self._idle.pop())
            self._script_pool.disconnect()
