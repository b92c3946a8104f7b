"""The governance use cases: keys, authentication, decisions, promotion and tool gates, audit."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shopops.core.errors import NotFoundError
from shopops.core.logging import get_logger
from shopops.governance.data import DATA_FILE, DataAccess, load_tags
from shopops.governance.errors import AuthenticationError, PermissionDeniedError, PolicyLoadError
from shopops.governance.model import (
    ApiKeyRecord,
    AuditEntry,
    AuditKind,
    ChainHead,
    Decision,
    EntityRef,
    IssuedKey,
    Principal,
    VerifyReport,
    make_principal,
    new_key,
    parse_key,
    secret_matches,
    verify_chain,
)
from shopops.governance.policy import LoadedPolicies, PolicyEngine
from shopops.governance.port import AuditStore, KeyStore, SecretProvider

log = get_logger(__name__)
audit_log = get_logger("shopops.audit")

#: Where the demo writes its first admin key.
ADMIN_KEY_FILE = "admin.key"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def local_actor() -> str:
    """Who runs a CLI command: local operators act on the stores directly."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f'Cli::"{user}"'


class GovernanceService:
    """Authentication, authorization and the audit trail of one platform process."""

    def __init__(
        self,
        *,
        keys: KeyStore,
        audit: AuditStore,
        engine: PolicyEngine,
        secrets: SecretProvider,
        session_secret: SecretStr,
        session_ttl_s: int = 8 * 3600,
        key_cache_ttl_s: float = 5.0,
        audit_log_lines: bool = True,
        clock: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.audit = audit
        self.engine = engine
        self.secrets = secrets
        self._session_key = hashlib.sha256(
            b"shopops-session\0" + session_secret.get_secret_value().encode()
        ).digest()
        self.session_ttl_s = session_ttl_s
        self.key_cache_ttl_s = key_cache_ttl_s
        self.audit_log_lines = audit_log_lines
        self.clock = clock
        self.monotonic = monotonic
        #: ``key id -> (looked up at, record)``: the key store is asked at most once per
        #: ``key_cache_ttl_s`` per key; the secret is still checked against the record every time.
        self._key_cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self._cache_lock = threading.Lock()
        self.data = DataAccess(engine, load_tags(engine.directory / DATA_FILE), self.record)

    # --- audit ---------------------------------------------------------------------------------

    def record(self, entries: Sequence[AuditEntry]) -> None:
        """Append to the hash-chained trail and, as JSON log lines, to the log."""
        records = self.audit.append(list(entries), self.clock())
        if self.audit_log_lines:
            for rec in records:
                audit_log.info("audit", **rec.to_dict())

    def verify_audit(self, anchor: ChainHead | None = None) -> VerifyReport:
        return verify_chain(self.audit.records(), self.audit.head(), anchor)

    # --- keys ----------------------------------------------------------------------------------

    def create_key(
        self,
        *,
        kind: str,
        name: str,
        roles: Iterable[str],
        home_region: str,
        description: str = "",
        actor: str | None = None,
    ) -> IssuedKey:
        principal = make_principal(kind, name, roles, home_region)
        token, key_id, secret_hash = new_key()
        record = ApiKeyRecord(
            key_id=key_id,
            secret_hash=secret_hash,
            principal=Principal(
                principal.kind, principal.name, principal.roles, principal.home_region, key_id
            ),
            description=description,
            created_at_ms=self.clock(),
            created_by=actor or local_actor(),
        )
        self.keys.add(record)
        self.record(
            [
                AuditEntry(
                    AuditKind.KEY,
                    record.created_by,
                    "create_key",
                    f'Key::"{key_id}"',
                    "done",
                    details={
                        "for": principal.label,
                        "roles": list(principal.roles),
                        "home_region": home_region,
                    },
                )
            ]
        )
        return IssuedKey(token, record)

    def revoke_key(self, key_id: str, actor: str | None = None) -> ApiKeyRecord:
        record = self.keys.get(key_id)
        if record is None:
            raise NotFoundError(f"no API key {key_id!r}", hint="`shopops auth list` shows the key ids")
        if not self.keys.revoke(key_id, self.clock()):
            raise NotFoundError(f"API key {key_id!r} is already revoked", hint="nothing to do")
        with self._cache_lock:
            self._key_cache.pop(key_id, None)
        self.record(
            [
                AuditEntry(
                    AuditKind.KEY,
                    actor or local_actor(),
                    "revoke_key",
                    f'Key::"{key_id}"',
                    "done",
                    details={"for": record.principal.label},
                )
            ]
        )
        revoked = self.keys.get(key_id)
        assert revoked is not None
        return revoked

    def list_keys(self, include_revoked: bool = False) -> list[ApiKeyRecord]:
        return self.keys.list(include_revoked)

    def has_active_admin(self) -> bool:
        return any("admin" in k.principal.roles for k in self.keys.list())

    def ensure_first_admin(self, home: Path, home_region: str) -> Path | None:
        """Demo start-up: create the first admin key when none is active; write it to a 0600 file."""
        if self.has_active_admin():
            return None
        issued = self.create_key(
            kind="user",
            name="admin",
            roles=["admin"],
            home_region=home_region,
            description="first admin key of the demo",
            actor='Platform::"demo-start"',
        )
        path = home / ADMIN_KEY_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(issued.token + "\n")
        return path

    # --- authentication ------------------------------------------------------------------------

    def _key(self, key_id: str) -> ApiKeyRecord | None:
        now = self.monotonic()
        cached = self._key_cache.get(key_id)
        if cached is not None and now - cached[0] < self.key_cache_ttl_s:
            return cached[1]
        record = self.keys.get(key_id)
        with self._cache_lock:
            if len(self._key_cache) > 10_000:
                self._key_cache.clear()
            self._key_cache[key_id] = (now, record)
        return record

    def authenticate(self, token: str) -> Principal:
        """The principal of an active API key; :class:`AuthenticationError` otherwise."""
        parsed = parse_key(token)
        if parsed is None:
            raise AuthenticationError(
                "malformed API key",
                hint="keys look like sk_<12 hex>_<secret>; `shopops auth create-key` makes one",
            )
        key_id, secret = parsed
        record = self._key(key_id)
        if record is None or not secret_matches(secret, record.secret_hash):
            raise AuthenticationError("unknown API key", hint="check the key, or ask an admin for a new one")
        if not record.active:
            raise AuthenticationError(f"API key {key_id} was revoked", hint="ask an admin for a new key")
        return record.principal

    def issue_session(self, principal: Principal) -> str:
        """A signed session cookie value for the key behind ``principal``."""
        expires = int(time.time()) + self.session_ttl_s
        body = f"{principal.key_id}.{expires}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return hmac.new(self._session_key, body.encode(), hashlib.sha256).hexdigest()

    def session_principal(self, cookie: str) -> Principal | None:
        """The principal of a valid, unexpired session whose key is still active."""
        key_id, _, rest = cookie.partition(".")
        expires, _, signature = rest.partition(".")
        if not (key_id and expires.isdigit() and signature):
            return None
        if (
            not hmac.compare_digest(self._sign(f"{key_id}.{expires}"), signature)
            or int(expires) < time.time()
        ):
            return None
        record = self._key(key_id)
        return record.principal if record is not None and record.active else None

    # --- authorization -------------------------------------------------------------------------

    def _check_policies(self) -> None:
        changed = self.engine.maybe_reload()
        if changed is not None:
            loaded, error = changed
            self._record_policy_change(loaded, error, 'Platform::"file-watch"')

    def _record_policy_change(self, loaded: LoadedPolicies, error: str | None, actor: str) -> None:
        if error is None:
            self.data.tags = load_tags(self.engine.directory / DATA_FILE)
        self.record(
            [
                AuditEntry(
                    AuditKind.POLICY,
                    actor,
                    "reload_policies",
                    'Governance::"policies"',
                    "failed" if error else "done",
                    details={
                        "version": loaded.version,
                        "policies": len(loaded.sources),
                        "error": error or "",
                    },
                )
            ]
        )

    def reload_policies(self, actor: str | None = None) -> LoadedPolicies:
        """Reload now; a malformed set raises :class:`PolicyLoadError` and the current one stays."""
        try:
            loaded = self.engine.reload()
        except PolicyLoadError as exc:
            self._record_policy_change(self.engine.policies, str(exc), actor or local_actor())
            raise
        self._record_policy_change(loaded, None, actor or local_actor())
        return loaded

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: EntityRef,
        context: Mapping[str, Any] | None = None,
        *,
        audit: bool = False,
    ) -> Decision:
        self._check_policies()
        decision = self.engine.decide(principal, action, resource, context)
        if audit:
            self.record(
                [
                    AuditEntry(
                        AuditKind.ACCESS,
                        decision.principal,
                        action,
                        decision.resource,
                        "allow" if decision.allowed else "deny",
                        decision.reasons,
                        details=dict(context or {}),
                    )
                ]
            )
        return decision

    def authorize(
        self,
        principal: Principal,
        action: str,
        resource: EntityRef,
        context: Mapping[str, Any] | None = None,
        *,
        audit: bool = False,
    ) -> Decision:
        """:meth:`decide`, raising :class:`PermissionDeniedError` (403) with the reasons on a deny."""
        decision = self.decide(principal, action, resource, context, audit=audit)
        if not decision.allowed:
            raise denied(decision, principal)
        return decision

    def authorize_promotion(
        self,
        principal: Principal,
        model: str,
        *,
        alias: str,
        version: int,
        evaluation: Mapping[str, Any],
        approvers: Iterable[str] = (),
    ) -> Decision:
        """May ``principal`` point ``model``'s ``alias`` at ``version``? Always audited.

        ``evaluation``: ``passed`` (bool), ``metric`` (name), ``value`` and ``baseline`` (floats,
        higher is better: the candidate's and the current champion's).
        """
        context = {
            "alias": alias,
            "version": int(version),
            "evaluation": {
                "passed": bool(evaluation["passed"]),
                "metric": str(evaluation.get("metric", "")),
                "value": float(evaluation["value"]),
                "baseline": float(evaluation.get("baseline", 0.0)),
            },
            "approvers": sorted(set(approvers)),
        }
        decision = self.engine.decide(principal, "promote", EntityRef("Model", model), context)
        self.record(
            [
                AuditEntry(
                    AuditKind.PROMOTION,
                    decision.principal,
                    "promote",
                    decision.resource,
                    "allow" if decision.allowed else "deny",
                    decision.reasons,
                    details=context,
                )
            ]
        )
        if not decision.allowed:
            raise denied(decision, principal)
        return decision

    def authorize_tool_call(
        self,
        principal: Principal,
        tool: str,
        *,
        read_only: bool,
        region: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> Decision:
        """May ``principal`` call an agent tool? Always audited (with the arguments' names only)."""
        context = {"read_only": read_only, "region": region}
        decision = self.engine.decide(principal, "call_tool", EntityRef("Tool", tool), context)
        self.record(
            [
                AuditEntry(
                    AuditKind.TOOL,
                    decision.principal,
                    "call_tool",
                    decision.resource,
                    "allow" if decision.allowed else "deny",
                    decision.reasons,
                    details={**context, "arguments": sorted(arguments or {})},
                )
            ]
        )
        if not decision.allowed:
            raise denied(decision, principal)
        return decision

    def close(self) -> None:
        self.keys.close()
        self.audit.close()
        self.secrets.close()


def denied(decision: Decision, principal: Principal) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{decision.principal} (roles: {', '.join(principal.roles)}) may not {decision.action} "
        f"{decision.resource}: {decision.explain()}",
        hint="ask an admin for a key with a role that a policy in policies/ permits, "
        "or see `shopops policy explain`",
        reasons=list(decision.reasons),
    )
