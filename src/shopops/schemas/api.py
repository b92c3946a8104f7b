"""The Confluent Schema Registry REST API.

Served at ``/schema-registry`` on the platform server and at the root by ``shopops schemas serve``,
so a Confluent client is pointed at ``http://host:8000/schema-registry`` or ``http://host:8081``.
Responses have the content type ``application/vnd.schemaregistry.v1+json``; errors answer
``{"error_code": 40401, "message": "Subject 'x' not found."}`` with the code's HTTP status, as the
Confluent registry does, so its clients raise their usual errors. Bad input never answers 500:
every handler turns the registry's errors, and anything unexpected, into a Confluent error body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from shopops.core.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ShopopsError,
)
from shopops.core.logging import get_logger
from shopops.schemas.errors import (
    InvalidCompatibilityLevelError,
    InvalidModeError,
    InvalidSchemaError,
    MalformedRequestError,
    OperationNotPermittedError,
    RegistryError,
    SchemaNotFoundError,
    SchemaTooLargeError,
)
from shopops.schemas.model import (
    MAX_INT32,
    CompatibilityLevel,
    Mode,
    SchemaReference,
    SchemaType,
    StoredSchema,
    parse_version,
)
from shopops.schemas.service import SchemaRegistry

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: Where the platform server mounts the API.
PLATFORM_PREFIX = "/schema-registry"

log = get_logger(__name__)


def _error_body(exc: ShopopsError) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, RegistryError):
        return exc.http_status, exc.to_confluent()
    # Errors of the rest of the platform (a backend down, bad input found deeper) in Confluent form.
    for kind, status, code in (
        (NotFoundError, 404, 40400),
        (ConflictError, 409, 409),
        (InvalidInputError, 422, 42200),
        (BackendUnavailableError, 500, 50001),
    ):
        if isinstance(exc, kind):
            return status, {"error_code": code, "message": exc.message}
    return 500, {"error_code": 50001, "message": exc.message}


def confluent_error(exc: ShopopsError) -> Response:
    status, body = _error_body(exc)
    return Response(orjson.dumps(body), status_code=status, media_type=CONTENT_TYPE)


class ConfluentRoute(APIRoute):
    """A route whose every failure answers in the Confluent error format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ShopopsError as exc:
                return confluent_error(exc)
            except RequestValidationError as exc:
                problems = "; ".join(str(e.get("msg", e)) for e in exc.errors())
                return confluent_error(MalformedRequestError(f"Invalid request: {problems}"))
            except HTTPException as exc:
                return Response(
                    orjson.dumps({"error_code": exc.status_code, "message": str(exc.detail)}),
                    status_code=exc.status_code,
                    media_type=CONTENT_TYPE,
                )
            except Exception:
                log.exception("schema registry request failed", path=request.url.path)
                return Response(
                    orjson.dumps({"error_code": 50001, "message": "Internal error of the schema registry"}),
                    status_code=500,
                    media_type=CONTENT_TYPE,
                )

        return route


router = APIRouter(tags=["schema registry (Confluent API)"], route_class=ConfluentRoute)


def _ok(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=CONTENT_TYPE)


def registry_of(request: Request) -> SchemaRegistry:
    """The registry of the app: its own (``schemas serve``) or the platform's."""
    registry: SchemaRegistry | None = getattr(request.app.state, "schema_registry", None)
    if registry is None:
        registry = request.app.state.platform.schema_registry
    assert registry is not None
    return registry


def _flag(request: Request, *names: str) -> bool:
    # Clients send true/false, True/False (Python's str(bool)) or 1/0.
    for name in names:
        value = request.query_params.get(name)
        if value is not None:
            return value.strip().lower() in ("true", "1", "yes")
    return False


def _page(request: Request, items: Sequence[Any]) -> list[Any]:
    def number(name: str, default: int) -> int:
        try:
            return int(request.query_params.get(name, default))
        except ValueError:
            raise MalformedRequestError(f"{name} must be an integer") from None

    offset, limit = max(0, number("offset", 0)), number("limit", -1)
    return list(items[offset:] if limit < 0 else items[offset : offset + limit])


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of the request, refused beyond the registry's size limit."""
    limit = registry_of(request).max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise SchemaTooLargeError(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise SchemaTooLargeError(size, limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise MalformedRequestError("The request body is empty: send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedRequestError("The request body must be a JSON object")
    return body


def _schema_request(body: dict[str, Any]) -> tuple[SchemaType, str, list[SchemaReference]]:
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise InvalidSchemaError(
            "Invalid schema: 'schema' must be a non-empty string holding the schema document"
        )
    if body.get("id") is not None or body.get("version") is not None:
        raise OperationNotPermittedError(
            "Registering with an explicit id or version needs IMPORT mode, "
            "which this registry does not support"
        )
    schema_type = SchemaType.parse(body.get("schemaType"))
    raw_refs = body.get("references") or []
    if not isinstance(raw_refs, list):
        raise InvalidSchemaError("Invalid schema: 'references' must be a list")
    refs: list[SchemaReference] = []
    for ref in raw_refs:
        if not isinstance(ref, dict):
            raise InvalidSchemaError("Invalid schema: each reference is an object {name, subject, version}")
        version = ref.get("version")
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not (version == -1 or 1 <= version <= MAX_INT32)
        ):
            raise InvalidSchemaError(
                f"Invalid schema: reference {ref.get('name')!r} needs a version (a positive integer or -1)"
            )
        name, subject = ref.get("name"), ref.get("subject")
        if not isinstance(name, str) or not isinstance(subject, str):
            raise InvalidSchemaError("Invalid schema: each reference needs a string name and subject")
        refs.append(SchemaReference(name, subject, version))
    return schema_type, schema, refs


def _schema_body(stored: StoredSchema) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": stored.text}
    if stored.schema_type is not SchemaType.AVRO:
        body["schemaType"] = stored.schema_type.value
    if stored.references:
        body["references"] = [r.to_dict() for r in stored.references]
    return body


def _schema_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SchemaNotFoundError(text) from None
    if not 1 <= value <= MAX_INT32:
        raise SchemaNotFoundError(text)
    return value


# --- root and schemas ------------------------------------------------------------------------------


@router.get("/", summary="Root (answers an empty object, as the Confluent registry does)")
async def root() -> Response:
    return _ok({})


@router.get("/schemas/types", summary="Supported schema types")
async def schema_types() -> Response:
    return _ok([t.value for t in SchemaType])


@router.get("/contexts", summary="Contexts (only the default one)")
async def contexts() -> Response:
    return _ok(["."])


#: Encoded answers of GET /schemas/ids/{id}, by the identity of the cached schema they encode: a
#: refreshed cache entry is a new object, so a stale body is never served.
_ENCODED: dict[int, tuple[StoredSchema, bytes]] = {}
_ENCODED_MAX = 10_000


@router.get("/schemas/ids/{schema_id}", summary="The schema with a global id")
async def schema_by_id(request: Request, schema_id: str) -> Response:
    registry = registry_of(request)
    number = _schema_id(schema_id)
    # The hot path of every consumer: answered from the registry's cache without a thread hop,
    # with the body encoded once per cached schema.
    cached = registry.cached_schema(number)
    stored = cached if cached is not None else await run_in_threadpool(registry.schema, number)
    encoded = _ENCODED.get(number)
    if encoded is None or encoded[0] is not stored:
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        encoded = _ENCODED[number] = (stored, orjson.dumps(_schema_body(stored)))
    return Response(encoded[1], media_type=CONTENT_TYPE)


@router.get("/schemas/ids/{schema_id}/schema", summary="The raw schema with a global id")
def raw_schema_by_id(request: Request, schema_id: str) -> Response:
    stored = registry_of(request).schema(_schema_id(schema_id))
    return Response(stored.text.encode(), media_type=CONTENT_TYPE)


@router.get("/schemas/ids/{schema_id}/subjects", summary="Subjects using a schema id")
def subjects_of_schema(request: Request, schema_id: str) -> Response:
    pairs = registry_of(request).schema_versions(
        _schema_id(schema_id), request.query_params.get("subject"), _flag(request, "deleted")
    )
    return _ok(_page(request, sorted({s for s, _ in pairs})))


@router.get("/schemas/ids/{schema_id}/versions", summary="Subject-version pairs using a schema id")
def versions_of_schema(request: Request, schema_id: str) -> Response:
    pairs = registry_of(request).schema_versions(
        _schema_id(schema_id), request.query_params.get("subject"), _flag(request, "deleted")
    )
    return _ok(_page(request, [{"subject": s, "version": v} for s, v in pairs]))


@router.get("/schemas", summary="Schemas of every subject (latestOnly, subjectPrefix, deleted)")
def list_schemas(request: Request) -> Response:
    found = registry_of(request).schemas(
        request.query_params.get("subjectPrefix", ""), _flag(request, "deleted"), _flag(request, "latestOnly")
    )
    return _ok(_page(request, [v.to_dict() for v in found]))


# --- subjects --------------------------------------------------------------------------------------


@router.get("/subjects", summary="Subjects")
def list_subjects(request: Request) -> Response:
    names = registry_of(request).subjects(
        request.query_params.get("subjectPrefix", ""),
        _flag(request, "deleted"),
        _flag(request, "deletedOnly", "deleted_only"),
    )
    return _ok(_page(request, names))


@router.get("/subjects/{subject}/versions", summary="Versions of a subject")
def list_versions(request: Request, subject: str) -> Response:
    versions = registry_of(request).versions(
        subject, _flag(request, "deleted"), _flag(request, "deletedOnly", "deleted_only")
    )
    return _ok(_page(request, versions))


@router.get("/subjects/{subject}/versions/{version}", summary="One version of a subject ('latest' too)")
def get_version(request: Request, subject: str, version: str) -> Response:
    found = registry_of(request).version(subject, parse_version(version), _flag(request, "deleted"))
    return _ok(found.to_dict())


@router.get("/subjects/{subject}/versions/{version}/schema", summary="The raw schema of a version")
def get_version_schema(request: Request, subject: str, version: str) -> Response:
    found = registry_of(request).version(subject, parse_version(version), _flag(request, "deleted"))
    return Response(found.schema.text.encode(), media_type=CONTENT_TYPE)


@router.get(
    "/subjects/{subject}/versions/{version}/referencedby", summary="Ids of schemas referencing a version"
)
def referenced_by(request: Request, subject: str, version: str) -> Response:
    return _ok(_page(request, registry_of(request).referenced_by(subject, parse_version(version))))


@router.post("/subjects/{subject}/versions", summary="Register a schema under a subject")
async def register(request: Request, subject: str) -> Response:
    schema_type, text, refs = _schema_request(await _body(request))
    registry = registry_of(request)
    registration = await run_in_threadpool(
        lambda: registry.register(subject, schema_type, text, refs, normalize=_flag(request, "normalize"))
    )
    return _ok({"id": registration.id, "version": registration.version})


@router.post("/subjects/{subject}", summary="Look a schema up under a subject")
async def lookup(request: Request, subject: str) -> Response:
    schema_type, text, refs = _schema_request(await _body(request))
    registry = registry_of(request)
    found = await run_in_threadpool(
        lambda: registry.lookup(subject, schema_type, text, refs, include_deleted=_flag(request, "deleted"))
    )
    return _ok(found.to_dict())


@router.delete(
    "/subjects/{subject}", summary="Delete a subject (soft, or permanent=true after a soft delete)"
)
def delete_subject(request: Request, subject: str) -> Response:
    return _ok(registry_of(request).delete_subject(subject, _flag(request, "permanent")))


@router.delete("/subjects/{subject}/versions/{version}", summary="Delete a version (soft, or permanent=true)")
def delete_version(request: Request, subject: str, version: str) -> Response:
    return _ok(
        registry_of(request).delete_version(subject, parse_version(version), _flag(request, "permanent"))
    )


# --- compatibility ----------------------------------------------------------------------------------


async def _compatibility(request: Request, subject: str, version: str | None) -> Response:
    schema_type, text, refs = _schema_request(await _body(request))
    registry = registry_of(request)
    target = parse_version(version) if version is not None else None
    report = await run_in_threadpool(
        lambda: registry.check_compatibility(
            subject, target, schema_type, text, refs, all_versions=version is None
        )
    )
    body: dict[str, Any] = {"is_compatible": report.is_compatible}
    if _flag(request, "verbose"):
        body["messages"] = report.messages
    return _ok(body)


@router.post(
    "/compatibility/subjects/{subject}/versions/{version}",
    summary="Test a schema against one version ('latest' too); verbose=true lists every incompatibility",
)
async def compatibility_version(request: Request, subject: str, version: str) -> Response:
    return await _compatibility(request, subject, version)


@router.post(
    "/compatibility/subjects/{subject}/versions",
    summary="Test a schema against the versions the subject's level checks",
)
async def compatibility_all(request: Request, subject: str) -> Response:
    return await _compatibility(request, subject, None)


# --- config and mode --------------------------------------------------------------------------------


@router.get("/config", summary="Global compatibility level")
def get_global_config(request: Request) -> Response:
    return _ok({"compatibilityLevel": registry_of(request).compatibility().value})


async def _level_of(request: Request) -> CompatibilityLevel:
    body = await _body(request)
    if "compatibility" not in body and "compatibilityLevel" not in body:
        raise InvalidCompatibilityLevelError(None)
    return CompatibilityLevel.parse(body.get("compatibility", body.get("compatibilityLevel")))


@router.put("/config", summary="Set the global compatibility level")
async def put_global_config(request: Request) -> Response:
    level = await _level_of(request)
    await run_in_threadpool(registry_of(request).set_compatibility, level)
    return _ok({"compatibility": level.value})


@router.delete("/config", summary="Reset the global compatibility level to the default")
def delete_global_config(request: Request) -> Response:
    return _ok({"compatibilityLevel": registry_of(request).delete_compatibility().value})


@router.get("/config/{subject}", summary="A subject's compatibility level (defaultToGlobal=true falls back)")
def get_subject_config(request: Request, subject: str) -> Response:
    level = registry_of(request).compatibility(subject, default_to_global=_flag(request, "defaultToGlobal"))
    return _ok({"compatibilityLevel": level.value})


@router.put("/config/{subject}", summary="Set a subject's compatibility level")
async def put_subject_config(request: Request, subject: str) -> Response:
    level = await _level_of(request)
    await run_in_threadpool(registry_of(request).set_compatibility, level, subject)
    return _ok({"compatibility": level.value})


@router.delete("/config/{subject}", summary="Remove a subject's own compatibility level")
def delete_subject_config(request: Request, subject: str) -> Response:
    return _ok({"compatibilityLevel": registry_of(request).delete_compatibility(subject).value})


async def _mode_of(request: Request) -> Mode:
    body = await _body(request)
    if "mode" not in body:
        raise InvalidModeError(None)
    return Mode.parse(body["mode"])


@router.get("/mode", summary="Global mode")
def get_global_mode(request: Request) -> Response:
    return _ok({"mode": registry_of(request).mode().value})


@router.put("/mode", summary="Set the global mode (READWRITE, READONLY, READONLY_OVERRIDE)")
async def put_global_mode(request: Request) -> Response:
    mode = await _mode_of(request)
    await run_in_threadpool(registry_of(request).set_mode, mode)
    return _ok({"mode": mode.value})


@router.delete("/mode", summary="Reset the global mode to READWRITE")
def delete_global_mode(request: Request) -> Response:
    return _ok({"mode": registry_of(request).delete_mode().value})


@router.get("/mode/{subject}", summary="A subject's mode (defaultToGlobal=true falls back)")
def get_subject_mode(request: Request, subject: str) -> Response:
    mode = registry_of(request).mode(subject, default_to_global=_flag(request, "defaultToGlobal"))
    return _ok({"mode": mode.value})


@router.put("/mode/{subject}", summary="Set a subject's mode")
async def put_subject_mode(request: Request, subject: str) -> Response:
    mode = await _mode_of(request)
    await run_in_threadpool(registry_of(request).set_mode, mode, subject)
    return _ok({"mode": mode.value})


@router.delete("/mode/{subject}", summary="Remove a subject's own mode")
def delete_subject_mode(request: Request, subject: str) -> Response:
    return _ok({"mode": registry_of(request).delete_mode(subject).value})


@router.api_route(
    "/{rest:path}",
    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
)
async def unknown(rest: str) -> Response:
    # Unknown registry paths answer like the Confluent registry, not with FastAPI's {"detail"}.
    return Response(
        orjson.dumps({"error_code": 404, "message": f"HTTP 404 Not Found: no registry endpoint /{rest}"}),
        status_code=404,
        media_type=CONTENT_TYPE,
    )
