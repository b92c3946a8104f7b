"""The pure model of governance: principals, API keys, decisions, audit records and their chain,
column tags and masking. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from shopops.core.errors import InvalidInputError


class PrincipalKind(StrEnum):
    """Who holds a key; each kind is a Cedar entity type."""

    USER = "user"
    SERVICE = "service"
    AGENT = "agent"

    @property
    def entity_type(self) -> str:
        return {"user": "User", "service": "ServiceAccount", "agent": "Agent"}[self.value]


#: Roles the shipped policies know. Others are accepted (a new policy may name them).
KNOWN_ROLES = (
    "admin",
    "operator",
    "support",
    "finance",
    "ml_engineer",
    "checkout",
    "schema_client",
    "agent",
    "auditor",
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_REGION = re.compile(r"^[a-z]{2,16}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, a service account or an agent, with roles and a home region."""

    kind: PrincipalKind
    name: str
    roles: tuple[str, ...]
    home_region: str
    key_id: str | None = None

    @property
    def uid(self) -> dict[str, str]:
        return {"type": self.kind.entity_type, "id": self.name}

    @property
    def label(self) -> str:
        """``User::"alice"`` — how the audit trail and messages name the principal."""
        return f'{self.kind.entity_type}::"{self.name}"'

    def entity(self) -> dict[str, Any]:
        """The Cedar entity of this principal: its attributes and its roles as parents."""
        return {
            "uid": self.uid,
            "attrs": {"name": self.name, "home_region": self.home_region},
            "parents": [{"type": "Role", "id": role} for role in self.roles],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "roles": list(self.roles),
            "home_region": self.home_region,
            "key_id": self.key_id,
        }


def make_principal(kind: str, name: str, roles: Iterable[str], home_region: str) -> Principal:
    """A validated :class:`Principal`; bad input says which part to fix."""
    try:
        kind_ = PrincipalKind(kind)
    except ValueError:
        raise InvalidInputError(
            f"unknown principal kind {kind!r}", hint=f"use one of {', '.join(k.value for k in PrincipalKind)}"
        ) from None
    if not _NAME.match(name):
        raise InvalidInputError(
            f"invalid principal name {name!r}",
            hint="use 1-128 letters, digits and . _ @ - (starting with a letter or digit)",
        )
    roles_ = tuple(dict.fromkeys(r.strip() for r in roles if r.strip()))
    if not roles_:
        raise InvalidInputError(
            "a key needs at least one role", hint=f"known roles: {', '.join(KNOWN_ROLES)}"
        )
    for role in roles_:
        if not _ROLE.match(role):
            raise InvalidInputError(f"invalid role {role!r}", hint="roles are lower-case identifiers")
    if not _REGION.match(home_region):
        raise InvalidInputError(
            f"invalid home region {home_region!r}", hint="use a lower-case region code such as vn, sg or th"
        )
    return Principal(kind_, name, roles_, home_region)


# --- API keys ---------------------------------------------------------------------------------

KEY_PREFIX = "sk"
_KEY = re.compile(r"^sk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key: only the hash of its secret part is kept."""

    key_id: str
    secret_hash: str
    principal: Principal
    description: str
    created_at_ms: int
    created_by: str
    revoked_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at_ms is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            **{k: v for k, v in self.principal.to_dict().items() if k != "key_id"},
            "description": self.description,
            "created_at_ms": self.created_at_ms,
            "created_by": self.created_by,
            "revoked_at_ms": self.revoked_at_ms,
            "active": self.active,
        }


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: the only moment its full value exists outside the caller."""

    token: str
    record: ApiKeyRecord


def hash_secret(secret: str) -> str:
    # Keys are 256-bit random values, not passwords: a plain SHA-256 cannot be brute-forced,
    # and a fast hash keeps authentication cheap on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key: ``(token, key_id, secret_hash)``; the token is ``sk_<id>_<secret>``."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{key_id}_{secret}", key_id, hash_secret(secret)


def parse_key(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, else ``None``."""
    match = _KEY.match(token.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


# --- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityRef:
    """A Cedar entity reference such as ``Api::"events"``."""

    type: str
    id: str

    @classmethod
    def parse(cls, text: str) -> EntityRef:
        """Accepts ``Type::"id"`` and ``Type::id``."""
        kind, sep, ident = text.partition("::")
        if not sep or not kind or not ident:
            raise InvalidInputError(
                f"invalid entity {text!r}", hint='write it as Type::"id", e.g. Api::"events"'
            )
        return cls(kind, ident.strip('"'))

    def to_cedar(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    def __str__(self) -> str:
        return f'{self.type}::"{self.id}"'


@dataclass(frozen=True)
class Decision:
    """The policy engine's answer, with the ids of the policies that determined it."""

    allowed: bool
    principal: str
    action: str
    resource: str
    #: ``@id`` of each determining policy: permits when allowed, forbids when denied by one.
    reasons: tuple[str, ...] = ()
    #: Policies that failed to evaluate (e.g. a missing attribute); they are skipped, as Cedar does.
    errors: tuple[str, ...] = ()
    policy_version: str = ""

    @property
    def default_deny(self) -> bool:
        return not self.allowed and not self.reasons

    def explain(self) -> str:
        if self.allowed:
            return f"allowed by {', '.join(self.reasons)}"
        if self.reasons:
            return f"denied by {', '.join(self.reasons)}"
        return "denied: no policy permits it (default deny)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "explanation": self.explain(),
            "policy_version": self.policy_version,
        }


def to_cedar_value(value: Any) -> Any:
    """Python → Cedar JSON: floats become ``decimal`` (4 places), lists and tuples become sets."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"__extn": {"fn": "decimal", "arg": f"{value:.4f}"}}
    if isinstance(value, Mapping):
        return {str(k): to_cedar_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_cedar_value(v) for v in value]
    raise InvalidInputError(f"cannot pass {type(value).__name__} {value!r} to a policy")


# --- audit chain ------------------------------------------------------------------------------

GENESIS_HASH = "0" * 64


class AuditKind(StrEnum):
    ACCESS = "access"  # a decision on an API route or on sensitive data
    DATA = "data"  # personal-data columns cleared or masked
    PROMOTION = "promotion"
    KEY = "key"
    POLICY = "policy"
    TOOL = "tool"


@dataclass(frozen=True)
class AuditEntry:
    """What is recorded; the store adds the sequence number, time and chain hashes."""

    kind: AuditKind
    principal: str
    action: str
    resource: str
    decision: str  # allow | deny | done | failed
    reasons: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts_ms: int
    kind: str
    principal: str
    action: str
    resource: str
    decision: str
    reasons: tuple[str, ...]
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """Every field the hash covers (all but the hash itself)."""
        return {
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "kind": self.kind,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}


def chain_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON (sorted keys), which includes the previous hash."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def seal(entry: AuditEntry, seq: int, ts_ms: int, prev_hash: str) -> AuditRecord:
    """The next record of the chain after a record whose hash is ``prev_hash``."""
    draft = AuditRecord(
        seq=seq,
        ts_ms=ts_ms,
        kind=entry.kind.value,
        principal=entry.principal,
        action=entry.action,
        resource=entry.resource,
        decision=entry.decision,
        reasons=tuple(entry.reasons),
        details=dict(entry.details),
        prev_hash=prev_hash,
        hash="",
    )
    # Round-trip through JSON so the hash covers exactly what a store reads back.
    body = orjson.loads(orjson.dumps(draft.body(), option=orjson.OPT_SORT_KEYS))
    return AuditRecord(**{**draft.__dict__, "details": body["details"], "hash": chain_hash(body)})


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    #: Sequence number of the first record found broken (missing, edited or out of order).
    first_broken: int | None = None
    problem: str = ""
    head: ChainHead | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken": self.first_broken,
            "problem": self.problem,
            "head": None if self.head is None else {"seq": self.head.seq, "hash": self.head.hash},
        }


def verify_chain(
    records: Iterable[AuditRecord], head: ChainHead | None, anchor: ChainHead | None = None
) -> VerifyReport:
    """Walk the chain in sequence order and name the first record that breaks it.

    ``head`` is the store's own note of its last record (catches a truncated tail); ``anchor`` is
    a (seq, hash) seen elsewhere, e.g. in the JSON log lines, which an intruder who also rewrote
    the head cannot change.
    """
    expected, prev, checked = 1, GENESIS_HASH, 0
    seen: dict[int, str] = {}
    for record in records:
        if record.seq != expected:
            if record.seq > expected:
                missing = (
                    f"record {expected}"
                    if record.seq == expected + 1
                    else f"records {expected}-{record.seq - 1}"
                )
                problem = f"{missing} missing (deleted): record {expected - 1} is followed by {record.seq}"
            else:
                problem = f"record {record.seq} appears again after record {expected - 1} (reordered)"
            return VerifyReport(False, checked, expected, problem, head)
        if record.prev_hash != prev:
            return VerifyReport(
                False,
                checked,
                record.seq,
                f"record {record.seq} does not chain to record {record.seq - 1} "
                "(a record was moved, replaced, or re-hashed after an edit)",
                head,
            )
        if chain_hash(record.body()) != record.hash:
            return VerifyReport(
                False,
                checked,
                record.seq,
                f"record {record.seq} was edited: its content no longer matches its hash",
                head,
            )
        seen[record.seq] = record.hash
        prev, expected, checked = record.hash, expected + 1, checked + 1
    last = expected - 1
    for reference, what in ((head, "the store's head"), (anchor, "the anchor")):
        if reference is None:
            continue
        if reference.seq > last:
            return VerifyReport(
                False,
                checked,
                last + 1,
                f"truncated: {what} says the trail ends at record {reference.seq}, "
                f"but records {last + 1}-{reference.seq} are missing",
                head,
            )
        if reference.seq >= 1 and seen.get(reference.seq) != reference.hash:
            return VerifyReport(
                False, checked, reference.seq, f"record {reference.seq} differs from {what}'s hash", head
            )
    if head is None and last > 0:
        return VerifyReport(False, checked, None, "the store's head record is missing (tampered)", head)
    return VerifyReport(True, checked, None, "", head)


# --- personal data ----------------------------------------------------------------------------

MASK = "***"


class ColumnTag(StrEnum):
    PII = "pii"  # masked unless permitted
    SECRET = "secret"  # noqa: S105 - a tag name; columns so tagged are removed unless permitted


@dataclass(frozen=True)
class DatasetTags:
    """The tagged columns of one dataset."""

    name: str
    columns: Mapping[str, ColumnTag]


def mask_row(
    row: Mapping[str, Any], cleared: Mapping[str, bool], tags: Mapping[str, ColumnTag]
) -> dict[str, Any]:
    """``row`` with every tagged column not ``cleared`` masked (pii) or removed (secret)."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        tag = tags.get(column)
        if tag is None or cleared.get(column, False):
            out[column] = value
        elif tag is ColumnTag.PII:
            out[column] = None if value is None else MASK
        # secret: dropped
    return out
