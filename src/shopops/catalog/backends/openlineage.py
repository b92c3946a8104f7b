"""Where OpenLineage events go (``catalog.openlineage.type``): a file, an HTTP endpoint, or nowhere.

The transports are the OpenLineage client's own (``openlineage-python``), configured through
:class:`openlineage.client.OpenLineageClient`; events reach them as the JSON the client's models
serialise to (stored first in the catalog's outbox, so a failed send is retried, not lost).

- ``file`` (default): one newline-delimited JSON file per UTC day under
  ``$SHOPOPS_HOME/catalog/openlineage/``, appended under a lock shared by every process, so lines
  of concurrent writers never interleave.
- ``http``: POST to ``url`` + ``endpoint`` — Marquez (``api/v1/lineage``, the default) or DataHub
  (``openapi/openlineage/api/v1/lineage``), with an optional API key sent as a bearer token.
- ``none``: events are kept in the catalog only.
"""

from __future__ import annotations

import fcntl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field, SecretStr, field_validator

from shopops.catalog.port import LineageTransport
from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig


def _client(transport: dict[str, Any]) -> Any:
    from openlineage.client import OpenLineageClient

    return OpenLineageClient(config={"transport": transport})


class FileLineageTransport(LineageTransport):
    """Appends events to ``<path>/lineage-YYYY-MM-DD.ndjson`` (UTC day of sending)."""

    kind = "file"

    class Config(BackendConfig):
        """Options of the ``file`` OpenLineage transport."""

        #: Folder of the event files; relative paths are relative to the data directory.
        path: Path = Path("catalog/openlineage")

    def __init__(self, config: Config, home: Path) -> None:
        self.directory = config.path if config.path.is_absolute() else home / config.path
        self.directory.mkdir(parents=True, exist_ok=True)
        self._clients: dict[str, Any] = {}

    def file_for(self, day: str) -> Path:
        return self.directory / f"lineage-{day}.ndjson"

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        client = self._clients.get(day)
        if client is None:
            client = _client({"type": "file", "log_file_path": str(self.file_for(day)), "append": True})
            self._clients = {day: client}
        # The client's file transport writes each event with one buffered write; processes take
        # this lock so that two writers' lines never interleave.
        try:
            with open(self.directory / ".lock", "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    for event in events:
                        client.transport.emit(cast(Any, dict(event)))
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except (OSError, RuntimeError) as exc:
            raise BackendUnavailableError(
                f"cannot write OpenLineage events under {self.directory}: {exc}",
                hint="check free disk space and permissions, or set catalog.openlineage.path",
            ) from exc

    def describe(self) -> str:
        return f"file {self.directory}/lineage-<day>.ndjson"


class HttpLineageTransport(LineageTransport):
    """POSTs every event to an OpenLineage HTTP endpoint (Marquez, DataHub, any collector)."""

    kind = "http"

    class Config(BackendConfig):
        """Options of the ``http`` OpenLineage transport."""

        #: Base URL of the lineage server, e.g. ``http://marquez:5000``.
        url: str = Field(min_length=1)
        #: Path of the lineage endpoint: Marquez ``api/v1/lineage``; DataHub
        #: ``openapi/openlineage/api/v1/lineage``.
        endpoint: str = "api/v1/lineage"
        timeout_s: float = Field(default=5.0, gt=0)
        #: Sent as ``Authorization: Bearer <key>``.
        api_key: SecretStr | None = None
        #: Extra request headers.
        headers: dict[str, str] = {}
        #: Check TLS certificates.
        verify: bool = True
        compression: Literal["gzip"] | None = None
        #: Retries of one request on connection errors and 5xx answers (the outbox retries later).
        retries: int = Field(default=2, ge=0, le=10)

        @field_validator("url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            if not value.startswith(("http://", "https://")):
                raise ValueError("give an http:// or https:// URL, e.g. http://marquez:5000")
            return value.rstrip("/")

    def __init__(self, config: Config, home: Path | None = None) -> None:
        self.config = config
        transport: dict[str, Any] = {
            "type": "http",
            "url": config.url,
            "endpoint": config.endpoint,
            "timeout": config.timeout_s,
            "verify": config.verify,
            "custom_headers": dict(config.headers),
            "retry": {"total": config.retries, "read": config.retries, "connect": config.retries},
        }
        if config.api_key is not None:
            transport["auth"] = {"type": "api_key", "apiKey": config.api_key.get_secret_value()}
        if config.compression:
            transport["compression"] = config.compression
        self._client = _client(transport)

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        import requests

        for event in events:
            try:
                self._client.transport.emit(cast(Any, dict(event)))
            except (requests.RequestException, OSError) as exc:
                raise BackendUnavailableError(
                    f"the OpenLineage endpoint {self.describe()} refused or did not answer: {exc}",
                    hint="check catalog.openlineage.url and that the server is up; events stay queued "
                    "and are sent again (`shopops catalog flush`)",
                ) from exc

    def describe(self) -> str:
        return f"{self.config.url}/{self.config.endpoint.lstrip('/')}"

    def close(self) -> None:
        self._client.close()


class NoLineageTransport(LineageTransport):
    """Keeps events in the catalog only."""

    kind = "none"

    class Config(BackendConfig):
        """The ``none`` transport has no options."""

    def __init__(self, config: Config, home: Path | None = None) -> None:
        self.config = config

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        return None

    def describe(self) -> str:
        return "nowhere (catalog.openlineage.type = none)"
