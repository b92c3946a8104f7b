"""The inventory reservation model: stock, holds, reservations, their rules and events.

Pure domain code: no I/O, no clock. Every time is an integer of epoch milliseconds passed in by the
caller, so expiry is exact and testable.

Stock is kept per :class:`StockKey` (a SKU in one warehouse). For each key:

- ``on_hand``: units physically there (set or adjusted from the warehouse system's CDC stream);
- ``committed``: units of confirmed reservations (sold, not yet shipped);
- ``held``: units of *active* holds, i.e. reservations in status HELD whose TTL has not passed;
- ``available = on_hand - committed - held``.

The invariant every backend keeps at every instant is ``committed + held <= on_hand``, with one
exception that is reported, never hidden: the warehouse can lower ``on_hand`` below what is
already promised (a stock count finds damaged units). Then the key is *oversubscribed*,
``available`` is 0 and no new hold is granted until stock comes back.

A hold stops counting the instant its TTL passes (``now_ms >= expires_at_ms``), whether or not a
sweeper has marked it EXPIRED yet: a late sweeper can delay an event, never a sale.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar

from shopops.core.errors import ConflictError, InvalidInputError

# SKUs and warehouse codes are identifiers, never free text: the charset keeps them safe as parts
# of Redis keys and log lines ('|' separates the two in encoded keys, so it is excluded).
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# Idempotency keys come from clients (a cart id, a checkout attempt id): printable ASCII, no spaces.
_IDEMPOTENCY_RE = re.compile(r"^[!-~]+$")
_RESERVATION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Units per key; far above any real warehouse, low enough that sums never leave int64.
MAX_ON_HAND = 1_000_000_000

SECOND_MS = 1_000
HOUR_MS = 3_600 * SECOND_MS
DAY_MS = 24 * HOUR_MS


#: Codes (SKUs, warehouses) already found valid. The same few thousand are checked again and again
#: (about 21 times per reserve + confirm, as keys are rebuilt); a set lookup is far cheaper than
#: the regular expression. Bounded so that a stream of junk codes cannot grow it without limit.
_VALID_CODES: set[str] = set()
_VALID_CODES_MAX = 100_000


def _check_code(what: str, value: object) -> str:
    if isinstance(value, str) and value in _VALID_CODES:
        return value
    if not isinstance(value, str) or not _CODE_RE.match(value):
        raise InvalidInputError(
            f"invalid {what} {value!r}",
            hint=f"a {what} is 1-128 letters, digits and . _ : / - (starting with a letter or digit)",
        )
    if len(_VALID_CODES) < _VALID_CODES_MAX:
        _VALID_CODES.add(value)
    return value


def _check_int(what: str, value: object) -> int:
    # bool is an int in Python; a quantity of True is a client bug, not 1 unit.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an integer (got {value!r})")
    return value


_MISSING = object()


def validate_sku(sku: object) -> str:
    """Check a SKU alone (for lookups by SKU); raises :class:`InvalidInputError`."""
    return _check_code("sku", sku)


# --- stock -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class StockKey:
    """One inventory item: a SKU in one warehouse. Keys sort by (sku, warehouse), the lock order."""

    sku: str
    warehouse: str

    def __post_init__(self) -> None:
        _check_code("sku", self.sku)
        _check_code("warehouse", self.warehouse)

    @property
    def encoded(self) -> str:
        """``sku|warehouse``: the key's name inside a backend (Redis keys, outbox records)."""
        return f"{self.sku}|{self.warehouse}"

    @classmethod
    def decode(cls, encoded: str) -> StockKey:
        sku, sep, warehouse = encoded.partition("|")
        if not sep:
            raise InvalidInputError(f"invalid encoded stock key {encoded!r}", hint="expected 'sku|warehouse'")
        return cls(sku, warehouse)

    def __str__(self) -> str:
        return f"{self.sku}@{self.warehouse}"


@dataclass(frozen=True, slots=True)
class StockLevel:
    """The stock of one key at one instant, as a backend read it in one consistent snapshot."""

    key: StockKey
    on_hand: int
    committed: int
    #: Units of active (unexpired) holds only.
    held: int
    #: Reserve attempts refused on this key because it lacked stock (oversell attempts blocked).
    blocked: int = 0

    @property
    def available(self) -> int:
        """Units a new hold may take; never negative, even when the key is oversubscribed."""
        return max(0, self.on_hand - self.committed - self.held)

    @property
    def oversubscribed(self) -> int:
        """Units promised beyond ``on_hand`` (only after ``on_hand`` was lowered under them)."""
        return max(0, self.committed + self.held - self.on_hand)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.key.sku,
            "warehouse": self.key.warehouse,
            "on_hand": self.on_hand,
            "committed": self.committed,
            "held": self.held,
            "available": self.available,
            "oversubscribed": self.oversubscribed,
            "blocked": self.blocked,
        }


@dataclass(frozen=True, slots=True)
class StockChange:
    """What a restock or adjustment did to one key."""

    before: StockLevel | None
    after: StockLevel
    reason: str

    @property
    def drift(self) -> int:
        """Units now promised beyond ``on_hand``: non-zero means the count fell under the promises."""
        return self.after.oversubscribed

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict() if self.before is not None else None,
            "after": self.after.to_dict(),
            "reason": self.reason,
            "drift": self.drift,
        }


def validate_on_hand(on_hand: object) -> int:
    value = _check_int("on_hand", on_hand)
    if value < 0 or value > MAX_ON_HAND:
        raise InvalidInputError(f"on_hand must be between 0 and {MAX_ON_HAND} (got {value})")
    return value


def validate_delta(delta: object) -> int:
    value = _check_int("delta", delta)
    if value == 0 or abs(value) > MAX_ON_HAND:
        raise InvalidInputError(
            f"a stock adjustment must be a non-zero number of units up to ±{MAX_ON_HAND} (got {value})"
        )
    return value


def validate_reason(reason: object) -> str:
    if not isinstance(reason, str) or not 1 <= len(reason) <= 200 or not reason.isprintable():
        raise InvalidInputError(
            f"invalid adjustment reason {reason!r}", hint="give 1-200 printable characters, e.g. 'cdc'"
        )
    return reason


# --- reservations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReservationLine:
    """``quantity`` units of one SKU from one warehouse."""

    sku: str
    warehouse: str
    quantity: int

    def __post_init__(self) -> None:
        _check_code("sku", self.sku)
        _check_code("warehouse", self.warehouse)
        quantity = _check_int("quantity", self.quantity)
        if quantity <= 0:
            raise InvalidInputError(
                f"quantity of {self.sku}@{self.warehouse} must be positive (got {quantity})",
                hint="send only lines with at least 1 unit; drop the others",
            )

    @property
    def key(self) -> StockKey:
        return StockKey(self.sku, self.warehouse)

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "warehouse": self.warehouse, "quantity": self.quantity}

    @classmethod
    def from_any(cls, value: object) -> ReservationLine:
        """A line from a line, a ``(sku, warehouse, quantity)`` sequence or a mapping."""
        if isinstance(value, ReservationLine):
            return value
        # The common shapes first: the abstract-class checks below cost more than the line itself.
        if type(value) is tuple and len(value) == 3:
            sku, warehouse, quantity = value
            # _line's cache lookup inline: a call less per line of every reserve.
            if type(sku) is str and type(warehouse) is str and type(quantity) is int:
                line = _LINES.get(value)
                if line is not None:
                    return line
            return _line(sku, warehouse, quantity)
        if type(value) is dict and len(value) == 3 and "sku" in value and "warehouse" in value:
            quantity = value.get("quantity", _MISSING)
            if quantity is not _MISSING:
                return _line(value["sku"], value["warehouse"], quantity)
        if isinstance(value, Mapping):
            missing = {"sku", "warehouse", "quantity"} - set(value)
            if missing:
                raise InvalidInputError(f"a reservation line lacks {', '.join(sorted(missing))}: {value!r}")
            return cls(value["sku"], value["warehouse"], value["quantity"])
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
            return cls(value[0], value[1], value[2])
        raise InvalidInputError(
            f"invalid reservation line {value!r}", hint="give {sku, warehouse, quantity} per line"
        )


#: Lines already built and checked, by ``(sku, warehouse, quantity)``. Carts name the same items
#: again and again, and building a checked line (a frozen dataclass and three checks) costs more
#: than the rest of a reserve's client-side work; a line is immutable, so one object serves every
#: cart. Bounded, like ``_VALID_CODES``, so that a stream of distinct lines cannot grow it forever.
_LINES: dict[tuple[str, str, int], ReservationLine] = {}
_LINES_MAX = 100_000


def _line(sku: Any, warehouse: Any, quantity: Any) -> ReservationLine:
    """``ReservationLine(sku, warehouse, quantity)``, the cached one when there is one."""
    # Exact types only: True and 1.0 equal 1 as keys, and an unhashable value has no key at all.
    if type(sku) is str and type(warehouse) is str and type(quantity) is int:
        key = (sku, warehouse, quantity)
        line = _LINES.get(key)
        if line is None:
            line = ReservationLine(sku, warehouse, quantity)
            if len(_LINES) < _LINES_MAX:
                _LINES[key] = line
        return line
    return ReservationLine(sku, warehouse, quantity)


def merge_lines(lines: Iterable[ReservationLine]) -> tuple[ReservationLine, ...]:
    """Sum the lines that take the same inventory item, sorted by key.

    A cart may hold the same item twice (two variants mapped to one SKU, a bundle and a single).
    Checking each line alone against ``available`` lets their sum oversell (Medusa #16502), so
    every backend checks and holds the merged lines only. The sort gives the lock order too.
    """
    given = tuple(lines)
    # (sku, warehouse) tuples sort as StockKey does. Most carts are already distinct and sorted.
    previous = None
    for line in given:
        key = (line.sku, line.warehouse)
        if previous is not None and not previous < key:
            break
        previous = key
    else:
        return given
    totals: dict[tuple[str, str], int] = {}
    for line in given:
        key = (line.sku, line.warehouse)
        totals[key] = totals.get(key, 0) + line.quantity
    return tuple(_line(sku, warehouse, q) for (sku, warehouse), q in sorted(totals.items()))


class ReservationStatus(StrEnum):
    """Where a reservation is in its life. Only HELD can still change into anything but CANCELLED."""

    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on stock over one or more lines, all granted together or not at all."""

    id: str
    idempotency_key: str
    #: Merged and sorted (see :func:`merge_lines`).
    lines: tuple[ReservationLine, ...]
    status: ReservationStatus
    created_at_ms: int
    expires_at_ms: int
    updated_at_ms: int

    def is_active_hold(self, now_ms: int) -> bool:
        """Whether this reservation takes stock as a hold at ``now_ms``."""
        return self.status is ReservationStatus.HELD and now_ms < self.expires_at_ms

    def is_lapsed(self, now_ms: int) -> bool:
        """HELD in storage but past its TTL: it no longer counts; a sweeper will mark it EXPIRED."""
        return self.status is ReservationStatus.HELD and now_ms >= self.expires_at_ms

    def as_of(self, now_ms: int) -> Reservation:
        """This reservation as a client should see it at ``now_ms``: a lapsed hold shows EXPIRED."""
        if self.is_lapsed(now_ms):
            return replace(self, status=ReservationStatus.EXPIRED)
        return self

    @property
    def quantity(self) -> int:
        return sum(line.quantity for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "lines": [line.to_dict() for line in self.lines],
            "status": self.status.value,
            "created_at_ms": self.created_at_ms,
            "expires_at_ms": self.expires_at_ms,
            "updated_at_ms": self.updated_at_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reservation:
        return cls(
            id=str(data["id"]),
            idempotency_key=str(data["idempotency_key"]),
            lines=lines_from_json(data["lines"]),
            status=ReservationStatus(data["status"]),
            created_at_ms=int(data["created_at_ms"]),
            expires_at_ms=int(data["expires_at_ms"]),
            updated_at_ms=int(data["updated_at_ms"]),
        )


# Every reserve and confirm builds a Reservation. The __init__ a frozen dataclass gets sets each
# field with object.__setattr__, a generic attribute lookup per field; setting the slots through
# their descriptors, as below, does the same in half the instructions (the class stays frozen:
# assignment after construction still raises).
(
    _SET_ID,
    _SET_IDEMPOTENCY_KEY,
    _SET_LINES,
    _SET_STATUS,
    _SET_CREATED,
    _SET_EXPIRES,
    _SET_UPDATED,
) = (getattr(Reservation, f.name).__set__ for f in fields(Reservation))


def _reservation_init(
    self: Reservation,
    id: str,
    idempotency_key: str,
    lines: tuple[ReservationLine, ...],
    status: ReservationStatus,
    created_at_ms: int,
    expires_at_ms: int,
    updated_at_ms: int,
) -> None:
    _SET_ID(self, id)
    _SET_IDEMPOTENCY_KEY(self, idempotency_key)
    _SET_LINES(self, lines)
    _SET_STATUS(self, status)
    _SET_CREATED(self, created_at_ms)
    _SET_EXPIRES(self, expires_at_ms)
    _SET_UPDATED(self, updated_at_ms)


setattr(Reservation, "__init__", _reservation_init)  # noqa: B010 - mypy forbids assigning a method


def lines_to_json(lines: Iterable[ReservationLine]) -> list[list[Any]]:
    """The compact form backends store: ``[[sku, warehouse, quantity], ...]``."""
    return [[line.sku, line.warehouse, line.quantity] for line in lines]


def lines_from_json(raw: Iterable[Any]) -> tuple[ReservationLine, ...]:
    """Lines from :func:`lines_to_json` output, or from a list of line dicts."""
    out: list[ReservationLine] = []
    for item in raw:
        if type(item) is list and len(item) == 3:
            # What lines_to_json stored (read back by orjson): the common case, checked first,
            # with _line's cache lookup inline (a call less per line).
            sku, warehouse, quantity = item
            if type(sku) is str and type(warehouse) is str and type(quantity) is int:
                line = _LINES.get((sku, warehouse, quantity))
                out.append(line if line is not None else _line(sku, warehouse, quantity))
                continue
        if isinstance(item, Mapping):
            out.append(_line(str(item["sku"]), str(item["warehouse"]), int(item["quantity"])))
        else:
            sku, warehouse, quantity = item
            out.append(_line(str(sku), str(warehouse), int(quantity)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a store call did: the reservation after it, and whether anything changed.

    ``changed`` is False for an idempotent repeat (the same reserve again, confirming a confirmed
    reservation, releasing an expired one): the caller emits no event and counts no transition.
    """

    reservation: Reservation
    changed: bool


# As for Reservation, above: every store call of the hot paths returns one.
_SET_RESERVATION, _SET_CHANGED = (getattr(Outcome, f.name).__set__ for f in fields(Outcome))


def _outcome_init(self: Outcome, reservation: Reservation, changed: bool) -> None:
    _SET_RESERVATION(self, reservation)
    _SET_CHANGED(self, changed)


setattr(Outcome, "__init__", _outcome_init)  # noqa: B010 - mypy forbids assigning a method


# --- limits and commands ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReservationLimits:
    """Bounds on reservation commands. Defaults suit checkout; tests shorten the TTL floor."""

    min_ttl_ms: int = SECOND_MS
    max_ttl_ms: int = DAY_MS
    #: A hold extended again and again would block sales forever: cap its whole life.
    max_hold_lifetime_ms: int = DAY_MS
    max_lines: int = 200
    max_quantity: int = 1_000_000
    max_idempotency_key_length: int = 128

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl_ms <= self.max_ttl_ms <= self.max_hold_lifetime_ms:
            raise InvalidInputError(
                "reservation limits need 0 < min_ttl_ms <= max_ttl_ms <= max_hold_lifetime_ms",
                min_ttl_ms=self.min_ttl_ms,
                max_ttl_ms=self.max_ttl_ms,
                max_hold_lifetime_ms=self.max_hold_lifetime_ms,
            )


DEFAULT_LIMITS = ReservationLimits()


@dataclass(frozen=True, slots=True)
class ReserveStock:
    """Command: hold ``lines`` for ``ttl_ms``. Repeating it with the same key returns the same hold.

    Lines as they arrive: :class:`ReservationLine`, ``(sku, warehouse, quantity)`` or mappings
    with those keys; :func:`validate_reserve` turns them into checked, merged lines.
    """

    lines: Sequence[Any]
    ttl_ms: int
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ValidatedReserveStock:
    """A :class:`ReserveStock` that passed :func:`validate_reserve`: lines merged and in bounds."""

    lines: tuple[ReservationLine, ...]
    ttl_ms: int
    idempotency_key: str


# As for Reservation: the service builds one per reserve.
_SET_COMMAND_LINES, _SET_TTL, _SET_KEY = (
    getattr(ValidatedReserveStock, f.name).__set__ for f in fields(ValidatedReserveStock)
)


def _command_init(
    self: ValidatedReserveStock, lines: tuple[ReservationLine, ...], ttl_ms: int, idempotency_key: str
) -> None:
    _SET_COMMAND_LINES(self, lines)
    _SET_TTL(self, ttl_ms)
    _SET_KEY(self, idempotency_key)


setattr(ValidatedReserveStock, "__init__", _command_init)  # noqa: B010 - mypy forbids assigning a method


def validate_ttl(ttl_ms: object, limits: ReservationLimits = DEFAULT_LIMITS) -> int:
    value = ttl_ms if type(ttl_ms) is int else _check_int("ttl_ms", ttl_ms)
    if not limits.min_ttl_ms <= value <= limits.max_ttl_ms:
        raise InvalidInputError(
            f"a hold's TTL must be between {limits.min_ttl_ms} and {limits.max_ttl_ms} ms (got {value} ms)",
            hint="checkout holds usually last 5-15 minutes",
        )
    return value


def validate_idempotency_key(key: object, limits: ReservationLimits = DEFAULT_LIMITS) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(
            "an idempotency key is required",
            hint="send a key unique to this checkout attempt (e.g. the cart id and attempt number)",
        )
    if len(key) > limits.max_idempotency_key_length:
        raise InvalidInputError(
            f"the idempotency key is {len(key)} characters long; "
            f"at most {limits.max_idempotency_key_length} are allowed"
        )
    if not _IDEMPOTENCY_RE.match(key):
        raise InvalidInputError(
            f"invalid idempotency key {key!r}", hint="use printable ASCII characters without spaces"
        )
    return key


def validate_reservation_id(reservation_id: object) -> str:
    if not isinstance(reservation_id, str) or not _RESERVATION_ID_RE.match(reservation_id):
        raise InvalidInputError(
            f"invalid reservation id {reservation_id!r}",
            hint="use the id returned by reserve (1-64 letters, digits, '_' or '-')",
        )
    return reservation_id


def validate_reserve(
    command: ReserveStock, limits: ReservationLimits = DEFAULT_LIMITS
) -> ValidatedReserveStock:
    """Check a reserve command and merge its lines; raises :class:`InvalidInputError`."""
    return check_reserve(command.lines, command.ttl_ms, command.idempotency_key, limits)


def check_reserve(
    lines: Iterable[Any], ttl_ms: object, idempotency_key: object, limits: ReservationLimits = DEFAULT_LIMITS
) -> ValidatedReserveStock:
    """:func:`validate_reserve` of a command given by its parts (the service's hot path)."""
    raw = list(lines)
    if not raw:
        raise InvalidInputError(
            "a reservation needs at least one line", hint="send {sku, warehouse, quantity}"
        )
    if len(raw) > limits.max_lines:
        raise InvalidInputError(f"a reservation has at most {limits.max_lines} lines (got {len(raw)})")
    from_any = ReservationLine.from_any
    merged = merge_lines([from_any(line) for line in raw])
    for line in merged:
        if line.quantity > limits.max_quantity:
            raise InvalidInputError(
                f"{line.quantity} units of {line.sku}@{line.warehouse} exceed the limit of "
                f"{limits.max_quantity} per item",
                hint="lines of the same item are added up before this check",
            )
    return ValidatedReserveStock(
        merged, validate_ttl(ttl_ms, limits), validate_idempotency_key(idempotency_key, limits)
    )


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shortage:
    """One line a reserve could not get: what was asked and what was available at that instant."""

    sku: str
    warehouse: str
    requested: int
    available: int
    #: False when the store has never heard of this item (no stock was ever set for it).
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "warehouse": self.warehouse,
            "requested": self.requested,
            "available": self.available,
            "known": self.known,
        }


class InsufficientStockError(ConflictError):
    """A reserve was refused: at least one line lacked stock, so nothing was held."""

    code = "insufficient_stock"

    def __init__(self, shortages: Sequence[Shortage], idempotency_key: str = "") -> None:
        self.shortages = tuple(shortages)
        listed = ", ".join(
            f"{s.sku}@{s.warehouse} ({s.requested} asked, {s.available} available)" for s in self.shortages
        )
        super().__init__(
            f"not enough stock: {listed}; nothing was reserved",
            hint="reserve at most the available quantity per line, or drop those lines",
            shortages=[s.to_dict() for s in self.shortages],
            idempotency_key=idempotency_key,
        )


class HoldExpiredError(ConflictError):
    """The hold's TTL passed before it was confirmed or extended: its units went back on sale."""

    code = "hold_expired"

    def __init__(self, reservation: Reservation, action: str) -> None:
        super().__init__(
            f"cannot {action} reservation {reservation.id}: its hold expired at "
            f"{reservation.expires_at_ms} (epoch ms) and its units were released",
            hint="reserve again; confirm or extend before the TTL passes",
            reservation_id=reservation.id,
            expires_at_ms=reservation.expires_at_ms,
        )


class ReservationStateError(ConflictError):
    """The reservation's status does not allow this action (e.g. releasing a confirmed one)."""

    code = "invalid_reservation_state"

    def __init__(self, reservation: Reservation, action: str, hint: str) -> None:
        super().__init__(
            f"cannot {action} reservation {reservation.id}: it is {reservation.status.value}",
            hint=hint,
            reservation_id=reservation.id,
            status=reservation.status.value,
        )


class IdempotencyConflictError(ConflictError):
    """The idempotency key was used before for different lines."""

    code = "idempotency_conflict"

    def __init__(self, existing: Reservation) -> None:
        super().__init__(
            f"idempotency key {existing.idempotency_key!r} was already used by reservation "
            f"{existing.id} for other lines",
            hint="use a new idempotency key for a different cart",
            reservation_id=existing.id,
        )


def check_idempotent_repeat(existing: Reservation, command: ValidatedReserveStock) -> Outcome:
    """A reserve whose key exists: the same lines give the stored reservation back, unchanged."""
    if existing.lines != command.lines:
        raise IdempotencyConflictError(existing)
    return Outcome(existing, changed=False)


# --- transitions -------------------------------------------------------------------------------


class Action(StrEnum):
    CONFIRM = "confirm"
    RELEASE = "release"
    EXTEND = "extend"
    CANCEL = "cancel"


def decide(reservation: Reservation, action: Action, now_ms: int, new_expires_at_ms: int = 0) -> bool:
    """Whether ``action`` changes ``reservation`` at ``now_ms`` (True) or is an idempotent no-op
    (False); raises when it is not allowed. Every backend applies exactly this table:

    ========== ================ ================= ============ ================ ==========
    action     HELD (active)    HELD (lapsed)     CONFIRMED    RELEASED/EXPIRED CANCELLED
    ========== ================ ================= ============ ================ ==========
    confirm    apply            expired error     no-op        error            error
    release    apply            no-op             error        no-op            error
    extend     apply (if later) expired error     error        error            error
    cancel     error            error             apply        error            no-op
    ========== ================ ================= ============ ================ ==========
    """
    status = reservation.status
    lapsed = reservation.is_lapsed(now_ms)
    if action is Action.CONFIRM:
        if status is ReservationStatus.HELD:
            if lapsed:
                raise HoldExpiredError(reservation, "confirm")
            return True
        if status is ReservationStatus.CONFIRMED:
            return False
        if status is ReservationStatus.EXPIRED:
            raise HoldExpiredError(reservation, "confirm")
        raise ReservationStateError(reservation, "confirm", "reserve again")
    if action is Action.RELEASE:
        if status is ReservationStatus.HELD:
            return not lapsed
        if status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
            return False
        if status is ReservationStatus.CONFIRMED:
            raise ReservationStateError(reservation, "release", "cancel a confirmed reservation instead")
        raise ReservationStateError(reservation, "release", "nothing is held any more")
    if action is Action.EXTEND:
        if status is ReservationStatus.HELD:
            if lapsed:
                raise HoldExpiredError(reservation, "extend")
            return new_expires_at_ms > reservation.expires_at_ms
        if status is ReservationStatus.EXPIRED:
            raise HoldExpiredError(reservation, "extend")
        raise ReservationStateError(reservation, "extend", "only a held reservation can be extended")
    if status is ReservationStatus.CONFIRMED:
        return True
    if status is ReservationStatus.CANCELLED:
        return False
    raise ReservationStateError(
        reservation, "cancel", "only confirmed reservations are cancelled; release a held one"
    )


def extended_expiry(
    reservation: Reservation, ttl_ms: int, now_ms: int, limits: ReservationLimits = DEFAULT_LIMITS
) -> int:
    """The new expiry of an extend by ``ttl_ms`` from ``now_ms``, within the hold's life cap."""
    new_expiry = now_ms + ttl_ms
    cap = reservation.created_at_ms + limits.max_hold_lifetime_ms
    if new_expiry > cap:
        raise InvalidInputError(
            f"extending reservation {reservation.id} to {new_expiry} would hold its stock past "
            f"{cap}, {limits.max_hold_lifetime_ms} ms after it was made",
            hint="confirm or release the hold; a new reservation starts a new lifetime",
        )
    return new_expiry


# --- events --------------------------------------------------------------------------------------


def _lines_payload(lines: Iterable[ReservationLine]) -> list[dict[str, Any]]:
    return [line.to_dict() for line in lines]


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryEvent(ABC):
    """Base of the events published on ``shopops.inventory.events`` (JSON, one per record)."""

    #: Stable per fact, so a consumer drops the duplicates at-least-once delivery can bring.
    event_id: str
    at_ms: int

    type_name: ClassVar[str] = "InventoryEvent"

    @property
    @abstractmethod
    def key(self) -> str:
        """The record key: per-key order is kept, so one reservation's events arrive in order."""

    @abstractmethod
    def payload(self) -> dict[str, Any]:
        """The event's own fields."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, "event_id": self.event_id, "at_ms": self.at_ms, **self.payload()}


@dataclass(frozen=True, slots=True, kw_only=True)
class _ReservationEvent(InventoryEvent):
    reservation_id: str
    lines: tuple[ReservationLine, ...]

    @property
    def key(self) -> str:
        return self.reservation_id

    def payload(self) -> dict[str, Any]:
        return {"reservation_id": self.reservation_id, "lines": _lines_payload(self.lines)}


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReserved(_ReservationEvent):
    """Stock was held for a reservation, every line at once."""

    idempotency_key: str
    expires_at_ms: int
    type_name: ClassVar[str] = "StockReserved"

    def payload(self) -> dict[str, Any]:
        return {
            **_ReservationEvent.payload(self),
            "idempotency_key": self.idempotency_key,
            "expires_at_ms": self.expires_at_ms,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationConfirmed(_ReservationEvent):
    """The held units became committed (the order was placed)."""

    type_name: ClassVar[str] = "ReservationConfirmed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationExtended(_ReservationEvent):
    """The hold got a later expiry."""

    expires_at_ms: int
    type_name: ClassVar[str] = "ReservationExtended"

    def payload(self) -> dict[str, Any]:
        return {**_ReservationEvent.payload(self), "expires_at_ms": self.expires_at_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationReleased(_ReservationEvent):
    """The client gave the held units back before the TTL passed."""

    type_name: ClassVar[str] = "ReservationReleased"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationExpired(_ReservationEvent):
    """The hold's TTL passed; ``at_ms`` is when the sweeper marked it, ``expires_at_ms`` the TTL end."""

    expires_at_ms: int
    type_name: ClassVar[str] = "ReservationExpired"

    def payload(self) -> dict[str, Any]:
        return {**_ReservationEvent.payload(self), "expires_at_ms": self.expires_at_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationCancelled(_ReservationEvent):
    """A confirmed reservation was cancelled: its committed units are available again."""

    type_name: ClassVar[str] = "ReservationCancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutOfStock(InventoryEvent):
    """A reserve was refused for lack of stock (an oversell attempt blocked); nothing changed."""

    idempotency_key: str
    lines: tuple[ReservationLine, ...]
    shortages: tuple[Shortage, ...]
    type_name: ClassVar[str] = "OutOfStock"

    @property
    def key(self) -> str:
        return self.shortages[0].sku if self.shortages else self.idempotency_key

    def payload(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "lines": _lines_payload(self.lines),
            "shortages": [s.to_dict() for s in self.shortages],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StockAdjusted(InventoryEvent):
    """``on_hand`` of one key was set or changed (restock, count, CDC from the warehouse system)."""

    sku: str
    warehouse: str
    on_hand_before: int
    on_hand: int
    committed: int
    held: int
    reason: str
    type_name: ClassVar[str] = "StockAdjusted"

    @property
    def key(self) -> str:
        return self.sku

    @property
    def oversubscribed(self) -> int:
        return max(0, self.committed + self.held - self.on_hand)

    def payload(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "warehouse": self.warehouse,
            "on_hand_before": self.on_hand_before,
            "on_hand": self.on_hand,
            "committed": self.committed,
            "held": self.held,
            "oversubscribed": self.oversubscribed,
            "reason": self.reason,
        }


EVENT_TYPES: dict[str, type[InventoryEvent]] = {
    cls.type_name: cls
    for cls in (
        StockReserved,
        ReservationConfirmed,
        ReservationExtended,
        ReservationReleased,
        ReservationExpired,
        ReservationCancelled,
        OutOfStock,
        StockAdjusted,
    )
}


def event_from_dict(data: Mapping[str, Any]) -> InventoryEvent:
    """Parse an event published on the inventory topic (the inverse of ``to_dict``)."""
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise InvalidInputError(
            f"unknown inventory event type {kind!r}", hint=f"known: {', '.join(EVENT_TYPES)}"
        )
    base: dict[str, Any] = {"event_id": str(data["event_id"]), "at_ms": int(data["at_ms"])}
    if kind == "OutOfStock":
        return OutOfStock(
            **base,
            idempotency_key=str(data["idempotency_key"]),
            lines=lines_from_json(data["lines"]),
            shortages=tuple(Shortage(**s) for s in data["shortages"]),
        )
    if kind == "StockAdjusted":
        return StockAdjusted(
            **base,
            sku=str(data["sku"]),
            warehouse=str(data["warehouse"]),
            on_hand_before=int(data["on_hand_before"]),
            on_hand=int(data["on_hand"]),
            committed=int(data["committed"]),
            held=int(data["held"]),
            reason=str(data["reason"]),
        )
    common: dict[str, Any] = {
        **base,
        "reservation_id": str(data["reservation_id"]),
        "lines": lines_from_json(data["lines"]),
    }
    if kind == "StockReserved":
        return StockReserved(
            **common, idempotency_key=str(data["idempotency_key"]), expires_at_ms=int(data["expires_at_ms"])
        )
    if kind == "ReservationExtended":
        return ReservationExtended(**common, expires_at_ms=int(data["expires_at_ms"]))
    if kind == "ReservationExpired":
        return ReservationExpired(**common, expires_at_ms=int(data["expires_at_ms"]))
    if kind == "ReservationConfirmed":
        return ReservationConfirmed(**common)
    if kind == "ReservationReleased":
        return ReservationReleased(**common)
    return ReservationCancelled(**common)


# --- the outbox: events written in the same transaction as the change ----------------------------

#: Outbox kinds of reservation transitions, by the status the transition leads to.
KIND_RESERVED = "reserved"
KIND_EXTENDED = "extended"
KIND_OUT_OF_STOCK = "out_of_stock"
KIND_STOCK = "stock"
_KIND_BY_STATUS = {
    ReservationStatus.CONFIRMED: "confirmed",
    ReservationStatus.RELEASED: "released",
    ReservationStatus.EXPIRED: "expired",
    ReservationStatus.CANCELLED: "cancelled",
}


def transition_kind(reservation: Reservation) -> str:
    """The outbox kind of a transition that left ``reservation`` in its current status."""
    return _KIND_BY_STATUS[reservation.status]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An event a store wrote atomically with the change it describes, waiting to be published.

    ``data`` is a reservation snapshot (``Reservation.to_dict()``) for reservation kinds, and the
    event's own fields for ``out_of_stock`` and ``stock``. Building the event from it is pure
    (:meth:`event`), so every backend publishes the same JSON.
    """

    entry_id: str
    kind: str
    data: Mapping[str, Any]

    def event(self) -> InventoryEvent:
        data = self.data
        if self.kind == KIND_OUT_OF_STOCK:
            return OutOfStock(
                event_id=str(data["event_id"]),
                at_ms=int(data["at_ms"]),
                idempotency_key=str(data["idempotency_key"]),
                lines=lines_from_json(data["lines"]),
                shortages=tuple(
                    Shortage(str(s[0]), str(s[1]), int(s[2]), int(s[3]), bool(int(s[4])))
                    for s in data["shortages"]
                ),
            )
        if self.kind == KIND_STOCK:
            return StockAdjusted(
                event_id=str(data["event_id"]),
                at_ms=int(data["at_ms"]),
                sku=str(data["sku"]),
                warehouse=str(data["warehouse"]),
                on_hand_before=int(data["on_hand_before"]),
                on_hand=int(data["on_hand"]),
                committed=int(data["committed"]),
                held=int(data["held"]),
                reason=str(data["reason"]),
            )
        res = Reservation.from_dict(data)
        at = res.updated_at_ms
        common: dict[str, Any] = {"at_ms": at, "reservation_id": res.id, "lines": res.lines}
        if self.kind == KIND_RESERVED:
            return StockReserved(
                event_id=f"{res.id}:reserved",
                idempotency_key=res.idempotency_key,
                expires_at_ms=res.expires_at_ms,
                **common,
            )
        if self.kind == KIND_EXTENDED:
            return ReservationExtended(
                event_id=f"{res.id}:extended:{res.expires_at_ms}", expires_at_ms=res.expires_at_ms, **common
            )
        if self.kind == "expired":
            return ReservationExpired(event_id=f"{res.id}:expired", expires_at_ms=res.expires_at_ms, **common)
        if self.kind == "confirmed":
            return ReservationConfirmed(event_id=f"{res.id}:confirmed", **common)
        if self.kind == "released":
            return ReservationReleased(event_id=f"{res.id}:released", **common)
        if self.kind == "cancelled":
            return ReservationCancelled(event_id=f"{res.id}:cancelled", **common)
        raise InvalidInputError(f"unknown outbox entry kind {self.kind!r}")


def out_of_stock_data(
    event_id: str, command: ValidatedReserveStock, shortages: Sequence[Shortage], now_ms: int
) -> dict[str, Any]:
    """Outbox data of a refused reserve (shortages in the compact form backends share)."""
    return {
        "event_id": event_id,
        "at_ms": now_ms,
        "idempotency_key": command.idempotency_key,
        "lines": lines_to_json(command.lines),
        "shortages": [[s.sku, s.warehouse, s.requested, s.available, int(s.known)] for s in shortages],
    }


def stock_data(event_id: str, change: StockChange, now_ms: int) -> dict[str, Any]:
    """Outbox data of a stock change."""
    before = change.before.on_hand if change.before is not None else 0
    return {
        "event_id": event_id,
        "at_ms": now_ms,
        "sku": change.after.key.sku,
        "warehouse": change.after.key.warehouse,
        "on_hand_before": before,
        "on_hand": change.after.on_hand,
        "committed": change.after.committed,
        "held": change.after.held,
        "reason": change.reason,
    }


# --- replay --------------------------------------------------------------------------------------


@dataclass
class Replay:
    """Stock and reservation states rebuilt from the event stream alone.

    Used to check a store against its events (they must agree once every hold settled) and to
    rebuild a read model downstream. Duplicate events (same ``event_id``) are applied once.
    """

    on_hand: dict[StockKey, int] = field(default_factory=dict)
    committed: dict[StockKey, int] = field(default_factory=dict)
    held: dict[StockKey, int] = field(default_factory=dict)
    status: dict[str, ReservationStatus] = field(default_factory=dict)
    lines: dict[str, tuple[ReservationLine, ...]] = field(default_factory=dict)
    refused: int = 0
    applied: int = 0
    duplicates: int = 0
    _seen: set[str] = field(default_factory=set, repr=False)

    def _add(self, table: dict[StockKey, int], lines: Iterable[ReservationLine], sign: int) -> None:
        for line in lines:
            table[line.key] = table.get(line.key, 0) + sign * line.quantity

    def apply(self, event: InventoryEvent) -> None:
        if event.event_id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(event.event_id)
        self.applied += 1
        if isinstance(event, StockAdjusted):
            self.on_hand[StockKey(event.sku, event.warehouse)] = event.on_hand
        elif isinstance(event, OutOfStock):
            self.refused += 1
        elif isinstance(event, StockReserved):
            self.status[event.reservation_id] = ReservationStatus.HELD
            self.lines[event.reservation_id] = event.lines
            self._add(self.held, event.lines, +1)
        elif isinstance(event, ReservationConfirmed):
            self.status[event.reservation_id] = ReservationStatus.CONFIRMED
            self._add(self.held, event.lines, -1)
            self._add(self.committed, event.lines, +1)
        elif isinstance(event, ReservationReleased | ReservationExpired):
            self.status[event.reservation_id] = (
                ReservationStatus.RELEASED
                if isinstance(event, ReservationReleased)
                else ReservationStatus.EXPIRED
            )
            self._add(self.held, event.lines, -1)
        elif isinstance(event, ReservationCancelled):
            self.status[event.reservation_id] = ReservationStatus.CANCELLED
            self._add(self.committed, event.lines, -1)

    def apply_all(self, events: Iterable[InventoryEvent]) -> Replay:
        for event in events:
            self.apply(event)
        return self

    def level(self, key: StockKey) -> tuple[int, int, int]:
        """``(on_hand, committed, held)`` of ``key`` as the events tell it."""
        return self.on_hand.get(key, 0), self.committed.get(key, 0), self.held.get(key, 0)
