"""HTTP entry points of governance: the authentication/authorization middleware every route goes
through, the portal login, and the ``/v1/auth``, ``/v1/policy`` and ``/v1/audit`` routes.

Every request except ``/healthz``, ``/readyz``, ``/metrics`` and the login page must carry an API
key — ``Authorization: Bearer <key>``, ``X-API-Key: <key>``, HTTP Basic with the key as password
(Confluent clients' ``basic.auth.user.info``), or the portal's session cookie — and is then asked
of the policy engine. The middleware sits in front of the router, so a router added later is
protected without opting in: its area (``/v1/<area>/...``) is denied to all but admins until a
policy permits it. A route may declare its Cedar action and resource with :func:`governed`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import anyio.to_thread
import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from shopops.core.errors import InvalidInputError
from shopops.governance.errors import AuthenticationError, PermissionDeniedError
from shopops.governance.model import (
    AuditEntry,
    AuditKind,
    ChainHead,
    EntityRef,
    Principal,
    make_principal,
)
from shopops.governance.service import GovernanceService, denied

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/login", "/logout"})
SESSION_COOKIE = "shopops_session"
CONFLUENT_TYPE = "application/vnd.schemaregistry.v1+json"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RouteRule:
    """What a route asks the policy engine; ``{param}`` in the resource id takes a path parameter."""

    action: str | None = None
    resource: EntityRef | None = None
    #: Decisions on this route are recorded in the audit trail (it returns sensitive data).
    sensitive: bool = False


def governed(
    action: str | None = None, resource: str | None = None, *, sensitive: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route's Cedar action and resource (put it under the ``@router.get`` line)::

        @router.post("/v1/models/{name}/promote")
        @governed(action="promote", resource='Model::"{name}"', sensitive=True)
        def promote(...): ...

    Without it a route asks ``read`` (GET/HEAD) or ``write`` on ``Api::"<area>"``.
    """
    rule = RouteRule(action, EntityRef.parse(resource) if resource else None, sensitive)

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.__governance__ = rule  # type: ignore[attr-defined]
        return endpoint

    return mark


def area_of(path: str) -> str:
    """The API area a path belongs to: ``/v1/<area>/...``, the schema registry, the docs, the portal."""
    if path.startswith("/v1/"):
        return path[4:].split("/", 1)[0] or "v1"
    if path.startswith("/schema-registry"):
        return "schema-registry"
    if path in ("/docs", "/redoc", "/openapi.json") or path.startswith("/docs/"):
        return "docs"
    return "portal"


def current_principal(request: Request) -> Principal:
    """The authenticated principal of a request (set by the middleware)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("no authenticated principal", hint="send an API key")
    return principal


def mask_change_records(request: Request, topic: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decoded CDC records of ``topic`` (``region.db.table``) as the requester may see them.

    The dataset is ``db.table`` and resides in ``region``; the ``before``/``after`` rows of each
    change event go through the data-access service (tagged columns masked or removed). A record
    that could not be decoded is withheld whole when the dataset has tagged columns not cleared.
    """
    region, _, dataset = topic.partition(".")
    governance = governance_of(request)
    if not dataset or governance.data.tags_of(dataset) is None:
        return records
    principal = current_principal(request)
    rows: list[dict[str, Any]] = []
    slots: list[tuple[dict[str, Any], str]] = []
    for record in records:
        value = record.get("value")
        if isinstance(value, dict) and not record.get("error"):
            for side in ("before", "after"):
                if isinstance(value.get(side), dict):
                    rows.append(value[side])
                    slots.append((value, side))
    cleared_all = all(d.allowed for d in governance.data.clearance(principal, dataset, region).values())
    masked = governance.data.filter_rows(principal, dataset, region, rows)
    for (value, side), row in zip(slots, masked, strict=True):
        value[side] = row
    if not cleared_all:
        for record in records:
            if record.get("error") or not isinstance(record.get("value"), dict):
                record["value"] = "***"
    return records


def governance_of(request: Request) -> GovernanceService:
    service: GovernanceService = request.app.state.governance
    return service


def credentials(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """``(api key, session cookie)`` found in the request headers."""
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip(), None
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", None
        return decoded.partition(":")[2], None
    api_key = headers.get(b"x-api-key")
    if api_key:
        return api_key.decode("latin-1").strip(), None
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return None, value
    return None, None


class GovernanceMiddleware:
    """Authenticates every request and asks the policy engine about it before routing."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        area_for_path: Callable[[str], str] = area_of,
        login_path: str | None = "/login",
        confluent_paths: Callable[[str], bool] = lambda path: path.startswith("/schema-registry"),
    ) -> None:
        self.app = app
        self.area_for_path = area_for_path
        self.login_path = login_path
        self.confluent_paths = confluent_paths
        self._declared: list[tuple[re.Pattern[str], frozenset[str], RouteRule]] | None = None
        #: ``(method, path) -> rule``: a pure function of the route table, which is fixed once serving.
        self._rules: dict[tuple[str, str], tuple[str, EntityRef, bool]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        governance: GovernanceService = scope["app"].state.governance
        headers = dict(scope["headers"])
        token, cookie = credentials(headers)
        principal: Principal | None = None
        problem = AuthenticationError(
            "no credentials: this route needs an API key",
            hint="send `Authorization: Bearer <key>` (or X-API-Key, or HTTP Basic with the key as "
            "password); `shopops auth create-key` makes one, the demo writes the first to "
            "$SHOPOPS_HOME/admin.key",
        )
        if token is not None:
            try:
                principal = governance.authenticate(token)
            except AuthenticationError as exc:
                problem = exc
        elif cookie is not None:
            principal = governance.session_principal(cookie)
            if principal is None:
                problem = AuthenticationError(
                    "the session expired or its key was revoked", hint="log in again"
                )
        if principal is None:
            await self._refuse(scope, send, problem, headers)
            return
        action, resource, sensitive = self._rule(scope)
        context = {"method": scope["method"], "path": scope["path"]}
        decision = governance.decide(principal, action, resource, context)
        if sensitive or not decision.allowed:
            entry = AuditEntry(
                AuditKind.ACCESS,
                decision.principal,
                action,
                decision.resource,
                "allow" if decision.allowed else "deny",
                decision.reasons,
                details=context,
            )
            await anyio.to_thread.run_sync(governance.record, [entry])
        if not decision.allowed:
            await self._refuse(scope, send, denied(decision, principal), headers)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _declared_rules(self, app: Any) -> list[tuple[re.Pattern[str], frozenset[str], RouteRule]]:
        if self._declared is None:
            declared = []
            for ctx in iter_route_contexts(app.routes):
                rule = getattr(ctx.endpoint, "__governance__", None)
                if isinstance(rule, RouteRule) and ctx.path:
                    regex, _, _ = compile_path(ctx.path)
                    declared.append((regex, frozenset(ctx.methods or ()), rule))
            self._declared = declared
        return self._declared

    def _rule(self, scope: Scope) -> tuple[str, EntityRef, bool]:
        key = (scope["method"], scope["path"])
        rule = self._rules.get(key)
        if rule is None:
            rule = self._match_rule(scope)
            if len(self._rules) >= 4096:  # paths with ids in them: bounded, start over when full
                self._rules.clear()
            self._rules[key] = rule
        return rule

    def _match_rule(self, scope: Scope) -> tuple[str, EntityRef, bool]:
        method, path = scope["method"], scope["path"]
        default_action = "read" if method in _READ_METHODS else "write"
        for regex, methods, rule in self._declared_rules(scope["app"]):
            if methods and method not in methods:
                continue
            match = regex.match(path)
            if match is None:
                continue
            resource = rule.resource or EntityRef("Api", self.area_for_path(path))
            if "{" in resource.id:
                resource = EntityRef(resource.type, resource.id.format(**match.groupdict()))
            return rule.action or default_action, resource, rule.sensitive
        return default_action, EntityRef("Api", self.area_for_path(path)), False

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        error: AuthenticationError | PermissionDeniedError,
        headers: dict[bytes, bytes],
    ) -> None:
        status = error.http_status
        path = scope["path"]
        extra: list[tuple[bytes, bytes]] = []
        if self.confluent_paths(path):
            body = orjson.dumps({"error_code": status * 100 + 1, "message": str(error)})
            media = CONFLUENT_TYPE
            if status == 401:
                extra.append((b"www-authenticate", b'Basic realm="shopops"'))
        elif (
            status == 401
            and self.login_path
            and scope["method"] == "GET"
            and b"text/html" in headers.get(b"accept", b"")
        ):
            target = path + (
                "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
            )
            location = f"{self.login_path}?next={quote(target, safe='')}"
            await send(
                {"type": "http.response.start", "status": 303, "headers": [(b"location", location.encode())]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        else:
            body = orjson.dumps(error.to_dict())
            media = "application/json"
            if status == 401:
                extra.append((b"www-authenticate", b'Bearer realm="shopops"'))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", media.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --- portal login ------------------------------------------------------------------------------

login_router = APIRouter(include_in_schema=False)

_LOGIN = """<!doctype html><html><head><meta charset=utf-8><title>log in · shopops</title>
<style>body{{font-family:system-ui,sans-serif;margin:4rem auto;max-width:32rem;color:#1b1f24}}
input{{width:100%;padding:.5rem;margin:.5rem 0;font-family:monospace}}.bad{{color:#cf222e}}</style></head>
<body><h1>shopops</h1><p>Log in with an API key. The demo wrote the first admin key to
<code>$SHOPOPS_HOME/admin.key</code>; <code>shopops auth create-key</code> makes others.</p>{error}
<form method=post action=/login><input type=hidden name=next value="{next}">
<input type=password name=key placeholder="sk_..." autofocus required><button>log in</button>
</form></body></html>"""


def _safe_next(target: str) -> str:
    # Only a path on this server: never an absolute URL or a scheme-relative one (open redirect).
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _escape(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


@login_router.get("/login", response_class=HTMLResponse)
def login_page(next: str = "/") -> HTMLResponse:
    return HTMLResponse(_LOGIN.format(error="", next=_escape(_safe_next(next))))


@login_router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0]
    target = _safe_next((form.get("next") or ["/"])[0])
    governance = governance_of(request)
    try:
        principal = governance.authenticate(key)
    except AuthenticationError as exc:
        page = _LOGIN.format(error=f"<p class=bad>{_escape(exc.message)}</p>", next=_escape(target))
        return HTMLResponse(page, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        governance.issue_session(principal),
        max_age=governance.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@login_router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- /v1/auth, /v1/policy, /v1/audit -----------------------------------------------------------

router = APIRouter(tags=["governance"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyIn(_Body):
    kind: str = "user"
    name: str
    roles: list[str]
    home_region: str
    description: str = ""


@router.get("/v1/auth/whoami", summary="The principal behind the credentials sent")
async def whoami(request: Request) -> dict[str, Any]:
    return current_principal(request).to_dict()


@router.get("/v1/auth/keys", summary="API keys (never their secrets)")
@governed(action="manage_keys", resource='Governance::"keys"', sensitive=True)
def list_keys(request: Request, include_revoked: bool = False) -> list[dict[str, Any]]:
    return [k.to_dict() for k in governance_of(request).list_keys(include_revoked)]


@router.post("/v1/auth/keys", status_code=201, summary="Create an API key (its value is shown once)")
@governed(action="manage_keys", resource='Governance::"keys"', sensitive=True)
def create_key(request: Request, body: KeyIn) -> dict[str, Any]:
    issued = governance_of(request).create_key(
        kind=body.kind,
        name=body.name,
        roles=body.roles,
        home_region=body.home_region,
        description=body.description,
        actor=current_principal(request).label,
    )
    return {"key": issued.token, **issued.record.to_dict()}


@router.delete("/v1/auth/keys/{key_id}", summary="Revoke an API key")
@governed(action="manage_keys", resource='Governance::"keys"', sensitive=True)
def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
    return governance_of(request).revoke_key(key_id, actor=current_principal(request).label).to_dict()


class PrincipalIn(_Body):
    kind: str = "user"
    name: str
    roles: list[str]
    home_region: str


class ExplainIn(_Body):
    #: Ask about this principal, or about the holder of ``key_id``.
    principal: PrincipalIn | None = None
    key_id: str | None = None
    action: str
    resource: str = Field(examples=['Api::"events"'])
    context: dict[str, Any] = {}


@router.get("/v1/policy", summary="The policy set in force: version and policies")
def policy_status(request: Request) -> dict[str, Any]:
    governance = governance_of(request)
    loaded = governance.engine.policies
    return {
        "version": loaded.version,
        "directory": str(governance.engine.directory),
        "last_reload_error": governance.engine.last_error,
        "policies": [{"id": s.policy_id, "where": s.where} for s in loaded.sources],
    }


@router.post("/v1/policy/explain", summary="Why a request would be allowed or denied")
@governed(action="read")
def explain(request: Request, body: ExplainIn) -> dict[str, Any]:
    governance = governance_of(request)
    principal = _principal_of(governance, body)
    decision = governance.decide(principal, body.action, EntityRef.parse(body.resource), body.context)
    loaded = governance.engine.policies
    by_id = {s.policy_id: s for s in loaded.sources}
    shown = decision.reasons or tuple(s.policy_id for s in governance.engine.candidates(body.action))
    return {
        **decision.to_dict(),
        "policies": [
            {"id": pid, "where": by_id[pid].where, "text": by_id[pid].text} for pid in shown if pid in by_id
        ],
    }


def _principal_of(governance: GovernanceService, body: ExplainIn) -> Principal:
    if body.key_id:
        record = governance.keys.get(body.key_id)
        if record is None:
            raise InvalidInputError(f"no API key {body.key_id!r}", hint="GET /v1/auth/keys lists them")
        return record.principal
    if body.principal is None:
        raise InvalidInputError("give a principal or a key_id", hint='e.g. {"key_id": "0123456789ab"}')
    p = body.principal
    return make_principal(p.kind, p.name, p.roles, p.home_region)


@router.post("/v1/policy/reload", summary="Reload the policies now (they also reload on change)")
@governed(action="manage_policies", resource='Governance::"policies"', sensitive=True)
def reload_policies(request: Request) -> dict[str, Any]:
    loaded = governance_of(request).reload_policies(actor=current_principal(request).label)
    return {"version": loaded.version, "policies": len(loaded.sources)}


@router.get("/v1/audit/verify", summary="Verify the audit trail's hash chain")
@governed(action="read_audit", resource='Governance::"audit"')
def verify_audit(request: Request, anchor: str | None = None) -> dict[str, Any]:
    return governance_of(request).verify_audit(parse_anchor(anchor)).to_dict()


@router.get("/v1/audit/records", summary="Audit records from a sequence number")
@governed(action="read_audit", resource='Governance::"audit"')
def audit_records(
    request: Request,
    from_seq: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    out = []
    for record in governance_of(request).audit.records(from_seq):
        out.append(record.to_dict())
        if len(out) >= limit:
            break
    return out


def parse_anchor(text: str | None) -> ChainHead | None:
    """``SEQ:HASH`` (from an audit log line) → :class:`ChainHead`."""
    if not text:
        return None
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise InvalidInputError(f"invalid anchor {text!r}", hint="write it as SEQ:HASH, e.g. 42:<64 hex>")
    return ChainHead(int(seq), digest)
