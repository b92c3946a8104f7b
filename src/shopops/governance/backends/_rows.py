"""Row <-> record conversions shared by the SQL stores."""

from __future__ import annotations

from typing import Any

import orjson

from shopops.governance.model import ApiKeyRecord, AuditRecord, Principal, PrincipalKind

KEY_COLUMNS = (
    "key_id, secret_hash, kind, name, roles, home_region, description, "  # one line each is too long
    "created_at_ms, created_by, revoked_at_ms"
)
AUDIT_COLUMNS = "seq, ts_ms, kind, principal, action, resource, decision, reasons, details, prev_hash, hash"


def key_params(record: ApiKeyRecord) -> tuple[Any, ...]:
    p = record.principal
    return (
        record.key_id,
        record.secret_hash,
        p.kind.value,
        p.name,
        orjson.dumps(list(p.roles)).decode(),
        p.home_region,
        record.description,
        record.created_at_ms,
        record.created_by,
        record.revoked_at_ms,
    )


def key_from_row(row: tuple[Any, ...]) -> ApiKeyRecord:
    key_id, secret_hash, kind, name, roles, region, description, created, created_by, revoked = row
    principal = Principal(PrincipalKind(kind), name, tuple(orjson.loads(roles)), region, key_id)
    return ApiKeyRecord(key_id, secret_hash, principal, description, created, created_by, revoked)


def audit_params(record: AuditRecord) -> tuple[Any, ...]:
    return (
        record.seq,
        record.ts_ms,
        record.kind,
        record.principal,
        record.action,
        record.resource,
        record.decision,
        orjson.dumps(list(record.reasons)).decode(),
        orjson.dumps(record.details, option=orjson.OPT_SORT_KEYS).decode(),
        record.prev_hash,
        record.hash,
    )


def audit_from_row(row: tuple[Any, ...]) -> AuditRecord:
    seq, ts_ms, kind, principal, action, resource, decision, reasons, details, prev_hash, hash_ = row
    return AuditRecord(
        seq=int(seq),
        ts_ms=int(ts_ms),
        kind=kind,
        principal=principal,
        action=action,
        resource=resource,
        decision=decision,
        reasons=tuple(orjson.loads(reasons)),
        details=orjson.loads(details),
        prev_hash=prev_hash,
        hash=hash_,
    )
