"""Secrets from HashiCorp Vault's KV version 2 engine (hvac).

The platform's secrets are the keys of one KV entry, e.g. ``vault kv put secret/shopops
session_secret=...``. The token comes from ``token_file`` or the ``VAULT_TOKEN`` variable — never
from the settings file, so it is never printed by ``shopops config show``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig
from shopops.governance.backends.secrets import check_name
from shopops.governance.errors import SecretError
from shopops.governance.port import SecretProvider


class VaultSecrets(SecretProvider):
    class Config(BackendConfig):
        url: str = "http://127.0.0.1:8200"
        #: Mount point of the KV v2 engine.
        mount: str = "secret"
        #: Path of the entry holding the platform's secrets as keys.
        path: str = "shopops"
        #: A file holding the token (e.g. /run/secrets/vault_token); else ``VAULT_TOKEN``.
        token_file: Path | None = None
        namespace: str | None = None
        verify: bool = True
        timeout_s: float = Field(default=5.0, gt=0)
        #: How long an entry read is reused before Vault is asked again.
        cache_ttl_s: float = Field(default=60.0, ge=0)

    def __init__(self, config: Config) -> None:
        import hvac

        self.config = config
        self._client = hvac.Client(
            url=config.url,
            token=self._token().get_secret_value(),
            namespace=config.namespace,
            verify=config.verify,
            timeout=config.timeout_s,
        )
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _token(self) -> SecretStr:
        if self.config.token_file is not None:
            try:
                return SecretStr(self.config.token_file.read_text().strip())
            except OSError as exc:
                raise SecretError(
                    f"cannot read the Vault token file {self.config.token_file}: {exc}",
                    hint="fix governance.secrets.token_file",
                ) from exc
        token = os.environ.get("VAULT_TOKEN", "")
        if not token:
            raise SecretError(
                "no Vault token: VAULT_TOKEN is not set and governance.secrets.token_file is not given",
                hint="export VAULT_TOKEN or set SHOPOPS_GOVERNANCE__SECRETS__TOKEN_FILE",
            )
        return SecretStr(token)

    def _entry(self) -> dict[str, Any]:
        import hvac.exceptions
        import requests

        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.config.cache_ttl_s:
                return self._cached[1]
            where = f"{self.config.url} {self.config.mount}/{self.config.path}"
            try:
                response = self._client.secrets.kv.v2.read_secret_version(
                    path=self.config.path, mount_point=self.config.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                data: dict[str, Any] = {}
            except hvac.exceptions.Forbidden as exc:
                raise SecretError(
                    f"Vault refused to read {where}: permission denied",
                    hint="give the token a policy with read on the entry's data path",
                ) from exc
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                raise BackendUnavailableError(
                    f"cannot read secrets from Vault at {where}: {exc}",
                    hint="check governance.secrets.url and that Vault is unsealed",
                ) from exc
            else:
                data = dict(response["data"]["data"] or {})
            self._cached = (now, data)
            return data

    def get(self, name: str) -> SecretStr | None:
        value = self._entry().get(check_name(name))
        return None if value is None else SecretStr(str(value))

    def describe(self, name: str) -> str:
        return (
            f"key {name!r} of Vault KV v2 entry {self.config.mount}/{self.config.path} at {self.config.url}"
        )

    def close(self) -> None:
        adapter = getattr(self._client, "adapter", None)
        if adapter is not None:
            adapter.close()
