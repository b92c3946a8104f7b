"""The registry client for any registry that speaks the Confluent REST API, over HTTP (httpx).

Tested against the built-in registry served by uvicorn; the same calls are what Confluent's own
clients make, so Confluent Schema Registry, Karapace and Apicurio (``.../apis/ccompat/v7``) answer
them. Error bodies ``{"error_code", "message"}`` become the registry errors of
:mod:`shopops.schemas.errors` with the same code; a registry that cannot be reached or answers
something else raises :class:`~shopops.schemas.errors.RegistryUnavailableError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr

from shopops.core.registry import BackendConfig
from shopops.schemas import errors
from shopops.schemas.client import RegistryClient, SchemaSpec, Verdict
from shopops.schemas.model import (
    CompatibilityLevel,
    Registration,
    SchemaReference,
    SchemaType,
    StoredSchema,
    SubjectVersion,
)

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

#: Confluent error codes and the registry errors that carry them.
_BY_CODE: dict[int, type[errors.RegistryError]] = {
    40401: errors.SubjectNotFoundError,
    40402: errors.VersionNotFoundError,
    40403: errors.SchemaNotFoundError,
    40404: errors.SubjectSoftDeletedError,
    40405: errors.SubjectNotSoftDeletedError,
    40406: errors.VersionSoftDeletedError,
    40407: errors.VersionNotSoftDeletedError,
    40408: errors.SubjectCompatibilityNotConfiguredError,
    40409: errors.SubjectModeNotConfiguredError,
    42201: errors.InvalidSchemaError,
    42202: errors.InvalidVersionError,
    42203: errors.InvalidCompatibilityLevelError,
    42204: errors.InvalidModeError,
    42205: errors.OperationNotPermittedError,
    42206: errors.ReferenceExistsError,
    42208: errors.InvalidSubjectError,
    42209: errors.SchemaTooLargeError,
}


def _remote_error(status: int, body: Any) -> errors.RegistryError:
    code = body.get("error_code") if isinstance(body, dict) else None
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    if not isinstance(code, int):
        code = status
    message = message or f"the registry answered HTTP {status}"
    if code == 409:
        incompatible = errors.IncompatibleSchemaError.from_message(message)
        incompatible.messages = [message]
        return incompatible
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls.from_message(message)
    if code // 100 == 404 or status == 404:
        return errors.RegistryNotFoundError.from_message(message, code)
    if 400 <= status < 500:
        return errors.RegistryInvalidInputError.from_message(message, code)
    return errors.RegistryUnavailableError.from_message(f"the schema registry failed: {message}", code)


def _stored(body: dict[str, Any], schema_id: int) -> StoredSchema:
    return StoredSchema(
        schema_id,
        SchemaType.parse(body.get("schemaType")),
        str(body["schema"]),
        tuple(
            SchemaReference(r["name"], r["subject"], int(r["version"])) for r in body.get("references") or []
        ),
    )


def _subject_version(body: dict[str, Any]) -> SubjectVersion:
    return SubjectVersion(str(body["subject"]), int(body["version"]), _stored(body, int(body["id"])))


class HttpRegistryClient(RegistryClient):
    """A Confluent-API registry at ``url``."""

    class Config(BackendConfig):
        """Options of the ``http`` registry client."""

        #: Base URL, e.g. ``http://registry:8081`` or ``http://apicurio:8080/apis/ccompat/v7``.
        url: str
        #: HTTP basic auth (Confluent Cloud: API key and secret).
        username: str | None = None
        password: SecretStr | None = None
        #: Extra headers on every request (e.g. ``{"X-Registry-ArtifactType": ...}``).
        headers: dict[str, str] = Field(default_factory=dict)
        timeout_s: float = Field(default=10.0, gt=0)
        #: Verify TLS certificates (a CA bundle path may be given instead).
        verify: bool | str = True

    def __init__(self, config: Config, home: Path | None = None, **_: Any) -> None:
        self.config = config
        self.location = config.url.rstrip("/")
        auth = None
        if config.username is not None:
            auth = httpx.BasicAuth(
                config.username, config.password.get_secret_value() if config.password else ""
            )
        self._http = httpx.Client(
            base_url=self.location,
            auth=auth,
            headers={"Accept": _CONTENT_TYPE, **config.headers},
            timeout=config.timeout_s,
            verify=config.verify,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                json=body,
                params=params,
                headers={"Content-Type": _CONTENT_TYPE} if body is not None else None,
            )
        except httpx.HTTPError as exc:
            raise errors.RegistryUnavailableError(
                f"the schema registry at {self.location} cannot be reached: {exc}",
                hint="check schemas.registry.url and that the registry is up",
            ) from exc
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        if response.is_success:
            return payload
        raise _remote_error(response.status_code, payload)

    @staticmethod
    def _s(subject: str) -> str:
        return quote(subject, safe="")

    @staticmethod
    def _body(spec: SchemaSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"schema": spec.text, "schemaType": spec.schema_type.value}
        if spec.references:
            body["references"] = [r.to_dict() for r in spec.references]
        return body

    def subjects(self, prefix: str = "") -> list[str]:
        names = self._call("GET", "/subjects", params={"subjectPrefix": prefix} if prefix else None)
        return [str(s) for s in names if str(s).startswith(prefix)]

    def versions(self, subject: str) -> list[int]:
        return [int(v) for v in self._call("GET", f"/subjects/{self._s(subject)}/versions")]

    def version(self, subject: str, version: int | None = None) -> SubjectVersion:
        which = "latest" if version is None else str(version)
        return _subject_version(self._call("GET", f"/subjects/{self._s(subject)}/versions/{which}"))

    def schema(self, schema_id: int) -> StoredSchema:
        return _stored(self._call("GET", f"/schemas/ids/{schema_id}"), schema_id)

    def lookup(self, subject: str, spec: SchemaSpec) -> SubjectVersion | None:
        try:
            body = self._call("POST", f"/subjects/{self._s(subject)}", body=self._body(spec))
        except errors.RegistryNotFoundError:
            return None
        return _subject_version(body)

    def register(self, subject: str, spec: SchemaSpec) -> Registration:
        """Register ``spec``. The Confluent API does not say whether the version is new, so
        ``created`` is always true here; look the schema up first to know."""
        body = self._call("POST", f"/subjects/{self._s(subject)}/versions", body=self._body(spec))
        schema_id = int(body["id"])
        version = body.get("version")
        if version is None:
            # Older registries answer only the id: the version is the one now holding the schema.
            found = self.lookup(subject, spec)
            version = found.version if found is not None else 0
        return Registration(schema_id, int(version), created=True)

    def check(self, subject: str, spec: SchemaSpec, version: int | None = None) -> Verdict:
        path = f"/compatibility/subjects/{self._s(subject)}/versions"
        if version is not None:
            path += f"/{version}"
        body = self._call("POST", path, body=self._body(spec), params={"verbose": "true"})
        return Verdict(bool(body.get("is_compatible")), [str(m) for m in body.get("messages") or []])

    def compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        if subject is not None:
            try:
                body = self._call("GET", f"/config/{self._s(subject)}", params={"defaultToGlobal": "true"})
            except errors.RegistryNotFoundError:
                body = self._call("GET", "/config")
        else:
            body = self._call("GET", "/config")
        return CompatibilityLevel.parse(body.get("compatibilityLevel") or body.get("compatibility"))

    def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> None:
        path = "/config" if subject is None else f"/config/{self._s(subject)}"
        self._call("PUT", path, body={"compatibility": level.value})

    def close(self) -> None:
        self._http.close()
