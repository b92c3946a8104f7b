"""The Redis reservation store: every change is one server-side Lua script.

Redis runs a script to its end before serving any other command, so a script that first checks
every line of a reservation and only then writes all of them is all-or-nothing with no lock and no
retry: the check and the hold cannot interleave with another checkout. Scripts are loaded once
and called by SHA (``EVALSHA``; reloaded if the server restarted).

Keys, all under one hash tag ``{prefix}`` so that a store lives in one cluster slot:

=========================== =================================================================
``{p}:s:<sku>|<wh>``         hash: on_hand, committed, held (HELD holds, lapsed or not), blocked, clock
``{p}:h:<sku>|<wh>``         sorted set: ``<reservation id>:<units>`` by expiry, the holds on this item
``{p}:r:<id>``               hash: the reservation (ikey, lines JSON, status, created, expires, updated)
``{p}:i:<idempotency key>``  string: the reservation id made with that key
``{p}:exp``                  sorted set: HELD reservation ids by expiry (what the sweeper takes)
``{p}:ids`` / ``{p}:items``  sorted sets (lexicographic): every reservation id / item, for listing
``{p}:out``                  stream: the outbox, written by the same script as the change
``{p}:relay``                string with a TTL: the outbox publisher's lease
``{p}:layout``               string: the version of this key layout (``LAYOUT``)
=========================== =================================================================

Expiry is exact without a sweeper: the active ``held`` of an item is ``held`` minus the units of
its holds whose expiry is ``<= now`` (a range of ``{p}:h:<item>``, kept short by the sweeper).
A reserve reads that range only for an item where the line does not fit with every hold counted.
As in the SQL stores, each item keeps a clock (the latest time a writer used on it) and every
script uses ``max(now, clock)``, so a caller with a stale time cannot revive a lapsed hold.

An outbox entry of a reservation event is one field ``r``: kind, status, id, created, expires,
updated, lines and idempotency key, tab-separated (one field costs Redis less than eight; the
key goes last, as the one value that could hold a tab). Refusals and stock changes keep named
fields.

The reserve and transition scripts are the hot path. Each reads an item once and writes it once;
the reserve takes the idempotency key with ``SET NX`` (one command when the key is new) and gives
it back if it refuses; a granted reserve returns only its time and a transition only what the
caller does not know. Times and counts stay the decimal strings Redis returns, or are formatted
as integers: a Lua number given to ``redis.call`` is printed with ``%.17g`` (an HSET of two
numbers costs twice one of two strings), and ``tonumber`` of a 13-digit time costs half a simple
command; times are compared as strings (of two, the longer is later, or else the greater). Both
scripts read the lines, JSON, with a pattern rather than cjson, in half the instructions. The
store sends these scripts with :func:`evalsha` on connections it keeps between calls, with the
client's retry policy but without its per-command bookkeeping (pool accounting and metric hooks
cost more client CPU than the call).

Layout 1 (before ``{p}:layout`` existed) kept the units of each hold in a hash
``{p}:hq:<item>`` beside a set of bare reservation ids, and wrote every outbox entry in named
fields. Opening a store on such keys rewrites the holds of the HELD reservations into layout 2 in
one atomic script (its time grows with the number of HELD reservations), then marks the layout;
reservations, keys and outbox entries of layout 1 are read as they are. A process of the earlier
version must not write to the store afterwards.

The server should persist (AOF ``appendfsync everysec`` or ``always``) if holds and confirmations
must survive a Redis restart; without persistence a restart empties the store.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hiredis
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
)
from shopops.inventory.port import ReservationStore

#: The key layout this module reads and writes (see the module doc).
LAYOUT = "2"

# Units of the holds on an item whose TTL passed by `at` (still HELD, not yet swept). A hold's
# member is "<reservation id>:<units>" (ids never contain ':').
_LUA_LAPSED = r"""
local function lapsed(P, item, at)
  local sum = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. ':h:' .. item, '-inf', at)) do
    sum = sum + tonumber(string.match(m, ':(%d+)$'))
  end
  return sum
end
"""

# Whether time `a` is later than time `b`: both are decimal strings of epoch milliseconds (see the
# module doc), so the longer is later, or else the greater.
_LUA_LATER = r"""
local function later(a, b)
  return #a > #b or (#a == #b and a > b)
end
"""

# The items of a reservation's lines and their units (a repeated item once, its units added up),
# the units as the strings the lines hold. The lines are JSON as the store writes them (orjson:
# compact; SKUs and warehouse codes never need an escape), read with a pattern (half the
# instructions of cjson); the length check makes sure every element was read, or the script stops
# before it writes anything.
_LUA_LINES = r"""
local function lines_of(lines, id)
  local items, units = {}, {}
  local seen -- item -> index, from a second line on (most reservations have one)
  local length = 1
  for sku, wh, q in string.gmatch(lines, '%["([^"]*)","([^"]*)",(%d+)%]') do
    length = length + #sku + #wh + #q + 9
    local item = sku .. '|' .. wh
    local k
    if #items > 0 then
      seen = seen or {[items[1]] = 1}
      k = seen[item]
    end
    if k then
      units[k] = units[k] + q
    else
      k = #items + 1
      items[k], units[k] = item, q
      if seen then seen[item] = k end
    end
  end
  if length ~= #lines then error('unreadable lines of reservation ' .. id .. ': ' .. lines) end
  return items, units
end
"""

# The items of a reservation's stored lines and their units, their stock fields {held, committed,
# clock}, and the time to use: `now`, or the latest item clock if a writer already used a later
# time on one of them (an item's clock never goes backwards).
_LUA_ITEMS = (
    _LUA_LINES
    + _LUA_LATER
    + r"""
local function items_of(P, id, lines, now)
  local items, units = lines_of(lines, id)
  local rows, at = {}, now
  for k, item in ipairs(items) do
    local c = redis.call('HMGET', P .. ':s:' .. item, 'held', 'committed', 'clock')
    rows[k] = c
    if c[3] and later(c[3], at) then at = c[3] end
  end
  return items, units, rows, at
end
"""
)

# ARGV: prefix, now, id, idempotency key, lines JSON, now + ttl, refusal event id. Every item is read
# once (counters and clock together) and, if every line fits, written once; a granted hold
# returns only its time.
_LUA_RESERVE = (
    _LUA_LAPSED
    + _LUA_LINES
    + _LUA_LATER
    + r"""
local P, id, ikey, lines = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local items, units = lines_of(lines, id)
-- The key is taken first (one command when it is new) and given back if the reserve is refused.
local ik = P .. ':i:' .. ikey
if not redis.call('SET', ik, id, 'NX') then
  local existing = redis.call('GET', ik)
  return {'dup', existing,
    redis.call('HMGET', P .. ':r:' .. existing, 'ikey', 'lines', 'status', 'created', 'expires', 'updated')}
end
local at = ARGV[2]
local rows = {}
for k, item in ipairs(items) do
  local v = redis.call('HMGET', P .. ':s:' .. item, 'on_hand', 'committed', 'held', 'clock')
  rows[k] = v
  if v[4] and later(v[4], at) then at = v[4] end
end
-- Check every item first; write only if all of them fit. A line that fits with every hold
-- counted fits at any time; otherwise the holds lapsed by `at` count as free.
local short, refused
for k, item in ipairs(items) do
  local v, q = rows[k], tonumber(units[k])
  if not v[1] then
    short = short or {}
    short[#short + 1] = {item, q, 0, 0}
  else
    local held = tonumber(v[3])
    local free = v[1] - v[2] - held
    if free < q and held > 0 then free = free + lapsed(P, item, at) end
    if free < q then
      if free < 0 then free = 0 end
      short = short or {}
      refused = refused or {}
      short[#short + 1] = {item, q, free, 1}
      refused[k] = true
    end
    v[3] = held + q -- what the item holds if every line fits
  end
end
if short then
  local encoded = {}
  for _, s in ipairs(short) do
    encoded[#encoded + 1] = s[1] .. '|' .. s[2] .. '|' .. s[3] .. '|' .. s[4]
  end
  -- A known item that lacked stock counts a blocked attempt; every known item takes the time.
  for k, item in ipairs(items) do
    if rows[k][1] then
      local sk = P .. ':s:' .. item
      if refused and refused[k] then redis.call('HINCRBY', sk, 'blocked', 1) end
      redis.call('HSET', sk, 'clock', at)
    end
  end
  redis.call('DEL', ik)
  redis.call('XADD', P .. ':out', '*', 'kind', 'out_of_stock', 'eid', ARGV[7], 'at', at, 'ikey', ikey,
    'lines', lines, 'short', table.concat(encoded, ';'))
  return {'short', short}
end
-- ARGV[6] is `now` + TTL: the expiry, unless an item's clock is ahead of `now`.
local expires = ARGV[6]
if at ~= ARGV[2] then expires = string.format('%d', at + (expires - ARGV[2])) end
for k, item in ipairs(items) do
  redis.call('HSET', P .. ':s:' .. item, 'held', string.format('%d', rows[k][3]), 'clock', at)
  redis.call('ZADD', P .. ':h:' .. item, expires, id .. ':' .. units[k])
end
redis.call('HSET', P .. ':r:' .. id, 'ikey', ikey, 'lines', lines, 'status', 'held', 'created', at,
  'expires', expires, 'updated', at)
redis.call('ZADD', P .. ':exp', expires, id)
redis.call('ZADD', P .. ':ids', '0', id)
redis.call('XADD', P .. ':out', '*', 'r',
  'reserved\theld\t' .. id .. '\t' .. at .. '\t' .. expires .. '\t' .. at .. '\t' .. lines .. '\t' .. ikey)
return {'ok', at}
"""
)

# ARGV: prefix, now, action, id, new expiry (extend only). Returns {'ok', time used, ikey, lines,
# created, expires} (the caller knows the rest), {'noop', time used, id, ikey, lines, status,
# created, expires, updated} or {'missing'}. The applicability test is model.decide's "apply"
# column; anything else is returned, with the time used, for the caller to turn into a no-op or
# an error. Each item is read once and written once.
_LUA_TRANSITION = (
    _LUA_ITEMS
    + r"""
local P, action, id = ARGV[1], ARGV[3], ARGV[4]
local rk = P .. ':r:' .. id
local v = redis.call('HMGET', rk, 'ikey', 'lines', 'status', 'created', 'expires')
if not v[1] then return {'missing'} end
local status, expires = v[3], v[5]
local items, units, rows, at = items_of(P, id, v[2], ARGV[2])
local apply
if action == 'confirm' or action == 'release' then
  apply = status == 'held' and later(expires, at)
elseif action == 'extend' then
  apply = status == 'held' and later(expires, at) and later(ARGV[5], expires)
else
  apply = status == 'confirmed'
end
if not apply then return {'noop', at, id, v[1], v[2], v[3], v[4], v[5], redis.call('HGET', rk, 'updated')} end
local target = 'held'
if action == 'extend' then
  expires = ARGV[5]
  for k, item in ipairs(items) do
    redis.call('ZADD', P .. ':h:' .. item, expires, id .. ':' .. units[k])
    if rows[k][1] then redis.call('HSET', P .. ':s:' .. item, 'clock', at) end
  end
  redis.call('ZADD', P .. ':exp', expires, id)
  redis.call('HSET', rk, 'expires', expires, 'updated', at)
elseif action == 'cancel' then
  target = 'cancelled'
  for k, item in ipairs(items) do
    local c = rows[k]
    if c[1] then
      redis.call('HSET', P .. ':s:' .. item, 'committed', string.format('%d', c[2] - units[k]), 'clock', at)
    end
  end
  redis.call('HSET', rk, 'status', target, 'updated', at)
else
  target = action == 'confirm' and 'confirmed' or 'released'
  for k, item in ipairs(items) do
    local c, q = rows[k], units[k]
    if c[1] then
      if target == 'confirmed' then
        redis.call('HSET', P .. ':s:' .. item, 'held', string.format('%d', c[1] - q),
          'committed', string.format('%d', c[2] + q), 'clock', at)
      else
        redis.call('HSET', P .. ':s:' .. item, 'held', string.format('%d', c[1] - q), 'clock', at)
      end
    end
    redis.call('ZREM', P .. ':h:' .. item, id .. ':' .. q)
  end
  redis.call('ZREM', P .. ':exp', id)
  redis.call('HSET', rk, 'status', target, 'updated', at)
end
local kind = action == 'extend' and 'extended' or target
redis.call('XADD', P .. ':out', '*', 'r', kind .. '\t' .. target .. '\t' .. id .. '\t' .. v[4] .. '\t'
  .. expires .. '\t' .. at .. '\t' .. v[2] .. '\t' .. v[1])
return {'ok', at, v[1], v[2], v[4], expires}
"""
)

# ARGV: prefix, now, limit. Each due reservation at its own items' time.
_LUA_EXPIRE = (
    _LUA_ITEMS
    + r"""
local P = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', P .. ':exp', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local rk = P .. ':r:' .. id
  local v = redis.call('HMGET', rk, 'ikey', 'lines', 'status', 'created', 'expires')
  if v[3] == 'held' then
    local items, units, rows, at = items_of(P, id, v[2], ARGV[2])
    for k, item in ipairs(items) do
      local c, q = rows[k], units[k]
      if c[1] then
        redis.call('HSET', P .. ':s:' .. item, 'held', string.format('%d', c[1] - q), 'clock', at)
      end
      redis.call('ZREM', P .. ':h:' .. item, id .. ':' .. q)
    end
    redis.call('ZREM', P .. ':exp', id)
    redis.call('HSET', rk, 'status', 'expired', 'updated', at)
    redis.call('XADD', P .. ':out', '*', 'r', 'expired\texpired\t' .. id .. '\t' .. v[4] .. '\t' .. v[5]
      .. '\t' .. at .. '\t' .. v[2] .. '\t' .. v[1])
    out[#out + 1] = {id, v[1], v[2], 'expired', v[4], v[5], at}
  else
    redis.call('ZREM', P .. ':exp', id)
  end
end
return out
"""
)

# {on_hand, committed, active held at the item's time, blocked} of an item, or nil when never
# stocked; the time used is `now`, or the item's clock if later.
_LUA_LEVEL = (
    _LUA_LAPSED
    + r"""
local function level(P, item, now)
  local v = redis.call('HMGET', P .. ':s:' .. item, 'on_hand', 'committed', 'held', 'blocked', 'clock')
  if not v[1] then return nil, now end
  local at = now
  if v[5] and tonumber(v[5]) > tonumber(now) then at = v[5] end
  local held = tonumber(v[3])
  if held > 0 then held = held - lapsed(P, item, at) end
  return {tonumber(v[1]), tonumber(v[2]), held, tonumber(v[4])}, at
end
"""
)

# ARGV: prefix, now, item, sku, warehouse, mode ('set' | 'add'), value, reason, event id
_LUA_STOCK = (
    _LUA_LEVEL
    + r"""
local P, item, sku, wh, mode, value, reason, eid =
  ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
local sk = P .. ':s:' .. item
local lv, at = level(P, item, ARGV[2])
local target
if not lv then
  target = value
  if target < 0 then return {'unknown'} end
  redis.call('HSET', sk, 'on_hand', ARGV[7], 'committed', '0', 'held', '0', 'blocked', '0', 'clock', at)
  redis.call('ZADD', P .. ':items', '0', item)
  redis.call('XADD', P .. ':out', '*', 'kind', 'stock', 'eid', eid, 'at', at, 'sku', sku, 'wh', wh,
    'before', '0', 'on_hand', ARGV[7], 'committed', '0', 'held', '0', 'reason', reason)
  return {'new', target, 0, 0, 0, 0}
end
if mode == 'set' then target = value else target = lv[1] + value end
if target < 0 then return {'negative', lv[1]} end
local target_s = string.format('%d', target)
redis.call('HSET', sk, 'on_hand', target_s, 'clock', at)
redis.call('XADD', P .. ':out', '*', 'kind', 'stock', 'eid', eid, 'at', at, 'sku', sku, 'wh', wh,
  'before', string.format('%d', lv[1]), 'on_hand', target_s, 'committed', string.format('%d', lv[2]),
  'held', string.format('%d', lv[3]), 'reason', reason)
return {'old', target, lv[1], lv[2], lv[3], lv[4]}
"""
)

# ARGV: prefix, now, mode ('all' | 'sku' | 'keys'), then the sku or the items. One script, so the
# levels of every item are read at one instant; each item at its own clock.
_LUA_LEVELS = (
    _LUA_LEVEL
    + r"""
local P, now, mode = ARGV[1], ARGV[2], ARGV[3]
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
  local lv = level(P, item, now)
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

# ARGV: prefix, layout. Returns the layout of the keys: marks an empty keyspace with `layout`,
# and moves one of layout 1 (hold members = bare reservation ids, units in {p}:hq:<item>) to it,
# atomically. Only HELD reservations have holds, and every one of them is in {p}:exp.
_LUA_LAYOUT = r"""
local P, layout = ARGV[1], ARGV[2]
local current = redis.call('GET', P .. ':layout')
if current then return current end
for _, id in ipairs(redis.call('ZRANGE', P .. ':exp', 0, -1)) do
  local lines = redis.call('HGET', P .. ':r:' .. id, 'lines')
  if lines then
    for _, l in ipairs(cjson.decode(lines)) do
      local item = l[1] .. '|' .. l[2]
      local units = redis.call('HGET', P .. ':hq:' .. item, id)
      if units then
        redis.call('HDEL', P .. ':hq:' .. item, id)
        local h = P .. ':h:' .. item
        local expires = redis.call('ZSCORE', h, id)
        if expires then
          redis.call('ZREM', h, id)
          redis.call('ZADD', h, expires, id .. ':' .. units)
        end
      end
    end
  end
end
redis.call('SET', P .. ':layout', layout)
return layout
"""

# Retention: of the `limit` reservation ids after `after` (lexicographic), delete those settled
# (released, expired, cancelled) and last changed before `before`, with their idempotency key if
# it still names them. Returns {deleted, last id looked at} ("" when there was none).
_LUA_PRUNE = (
    _LUA_LATER
    + r"""
local P, after, before = ARGV[1], ARGV[2], ARGV[3]
local from = '-'
if after ~= '' then from = '(' .. after end
local ids = redis.call('ZRANGEBYLEX', P .. ':ids', from, '+', 'LIMIT', 0, ARGV[4])
local deleted = 0
for _, id in ipairs(ids) do
  local rk = P .. ':r:' .. id
  local v = redis.call('HMGET', rk, 'status', 'updated', 'ikey')
  if (v[1] == 'released' or v[1] == 'expired' or v[1] == 'cancelled') and v[2] and later(before, v[2]) then
    if v[3] and redis.call('GET', P .. ':i:' .. v[3]) == id then
      redis.call('DEL', P .. ':i:' .. v[3])
    end
    redis.call('DEL', rk)
    redis.call('ZREM', P .. ':ids', id)
    deleted = deleted + 1
  end
end
return {deleted, ids[#ids] or ''}
"""
)

_PREFIX_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_RESERVATION_FIELDS = ("ikey", "lines", "status", "created", "expires", "updated")

_STATUS = {status.value: status for status in ReservationStatus}
# Action.value is an enum property: two Python calls on the hot path.
_ACTIONS = {action: action.value for action in Action}
_STATUS_AFTER = {
    Action.CONFIRM: ReservationStatus.CONFIRMED,
    Action.RELEASE: ReservationStatus.RELEASED,
    Action.EXTEND: ReservationStatus.HELD,
    Action.CANCEL: ReservationStatus.CANCELLED,
}


#: Lines read back, by their JSON: a confirm reads the lines of its reservation, and carts repeat
#: (a flash sale's are all alike). Emptied when full, so that it follows what is being sold.
_LINES_BY_JSON: dict[str, tuple[ReservationLine, ...]] = {}
_LINES_BY_JSON_MAX = 10_000


def _lines(text: str) -> tuple[ReservationLine, ...]:
    """``lines_from_json`` of the JSON ``text`` as the store wrote it."""
    lines = _LINES_BY_JSON.get(text)
    if lines is None:
        lines = lines_from_json(orjson.loads(text))
        if len(_LINES_BY_JSON) >= _LINES_BY_JSON_MAX:
            _LINES_BY_JSON.clear()
        _LINES_BY_JSON[text] = lines
    return lines


def _reservation(snapshot: Sequence[Any]) -> Reservation:
    """A reservation from a script's ``{id, ikey, lines, status, created, expires, updated}``."""
    rid, ikey, lines, status, created, expires, updated = snapshot
    return Reservation(
        rid,
        ikey,
        _lines(lines),
        _STATUS[status],
        int(created),
        int(expires),
        int(updated),
    )


def evalsha(conn: Any, script: Script, args: Sequence[Any]) -> Any:
    """Run ``script`` by SHA on ``conn`` (a redis-py connection) with ``args``: its reply.

    How the store sends its hot-path scripts (``bench/bench_inventory.py`` sends its raw baseline
    the same way). hiredis packs the command in one call: redis-py's packer first checks every
    argument in Python. A server that does not know the script (restarted, flushed) gets it loaded
    (the SHA stays the same) and the call made again.
    """
    command = [hiredis.pack_command(("EVALSHA", script.sha, 0, *args))]
    conn.send_packed_command(command)
    try:
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        conn.send_command("SCRIPT", "LOAD", script.script)
        conn.read_response()
        conn.send_packed_command(command)
        return conn.read_response()


def _stream_entry(entry_id: str, fields: dict[str, str]) -> OutboxEntry:
    packed = fields.get("r")
    if packed is not None:
        # A reservation event: "kind, status, id, created, expires, updated, lines, ikey" in one
        # tab-separated field (the key last: only it could hold a tab).
        kind, status, rid, created, expires, updated, lines, ikey = packed.split("\t", 7)
        snapshot = _reservation([rid, ikey, lines, status, created, expires, updated])
        return OutboxEntry(entry_id, kind, snapshot.to_dict())
    # Refusals and stock changes, and reservation events written by layout 1, in named fields.
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
            first = self._script_pool.get_connection()
        self._idle.append(first)
        # Retries the URL asks for (e.g. ``retry_on_timeout=true``); none by default, and then
        # the script is called without the retry wrapper.
        self._retries = first.retry.get_retries()
        self._reserve = self._redis.register_script(_LUA_RESERVE)
        self._transition_script = self._redis.register_script(_LUA_TRANSITION)
        self._expire = self._redis.register_script(_LUA_EXPIRE)
        self._stock_script = self._redis.register_script(_LUA_STOCK)
        self._levels = self._redis.register_script(_LUA_LEVELS)
        self._claim = self._redis.register_script(_LUA_CLAIM)
        self._prune = self._redis.register_script(_LUA_PRUNE)
        with self._errors():
            layout = self._redis.register_script(_LUA_LAYOUT)(args=[self.prefix, LAYOUT])
        if layout != LAYOUT:
            self.close()
            raise BackendUnavailableError(
                f"the reservation keys under {self.prefix} at {self._where()} have layout {layout!r}; "
                f"this version of shopops reads layout {LAYOUT}",
                hint="open the store with the shopops version that wrote it, or use another key_prefix",
            )

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

    def _run(self, script: Script, args: list[str | bytes]) -> Any:
        """:func:`evalsha` of ``script`` with ``args``: its reply.

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
            if self._retries:
                return conn.retry.call_with_retry(
                    lambda: evalsha(conn, script, args), lambda _error: conn.disconnect()
                )
            return evalsha(conn, script, args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # As the retry policy does after its last attempt: the next command reconnects.
            conn.disconnect()
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
        # The script reads the items from the lines' JSON. Numbers go as decimal strings: hiredis
        # packs a str in about half the time of an int.
        args: list[str | bytes] = [
            self.prefix,
            str(now_ms),
            reservation_id,
            command.idempotency_key,
            orjson.dumps(lines_to_json(lines)),
            str(now_ms + command.ttl_ms),
            refusal_event_id,
        ]
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
            return check_idempotent_repeat(_reservation([reply[1], *reply[2]]), command)
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
            self._transition_script,
            [self.prefix, str(now_ms), _ACTIONS[action], reservation_id, str(new_expires_at_ms)],
        )
        tag = reply[0]
        if tag == "missing":
            raise NotFoundError(
                f"reservation {reservation_id} does not exist", hint="use the id returned by reserve"
            )
        if tag == "ok":
            at_ms = int(reply[1])
            changed = Reservation(
                reservation_id,
                reply[2],
                _lines(reply[3]),
                _STATUS_AFTER[action],
                int(reply[4]),
                int(reply[5]),
                at_ms,
            )
            return Outcome(changed, changed=True)
        current = _reservation(reply[2:])
        # The script found nothing to apply: the model says whether that is a no-op or an error,
        # at the time the script used (the items' clock, maybe later than ``now_ms``).
        at_ms = int(reply[1])
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

    def prune_settled(self, settled_before_ms: int, after_id: str = "", limit: int = 500) -> tuple[int, str]:
        deleted, last = self._run(self._prune, [self.prefix, after_id, str(settled_before_ms), str(limit)])
        return int(deleted), last.decode() if isinstance(last, bytes) else str(last)

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
