"""Backends of the governance ports, chosen by a ``type`` string in the settings."""

from __future__ import annotations

from pathlib import Path

from shopops.core.registry import BackendRegistry, BackendSelection
from shopops.governance.port import AuditStore, KeyStore, SecretProvider

KEY_STORES: BackendRegistry[KeyStore] = BackendRegistry(
    "API key store",
    {
        "sqlite": "shopops.governance.backends.sqlite:SqliteKeyStore",
        "postgres": "shopops.governance.backends.postgres:PostgresKeyStore",
    },
)
AUDIT_STORES: BackendRegistry[AuditStore] = BackendRegistry(
    "audit store",
    {
        "sqlite": "shopops.governance.backends.sqlite:SqliteAuditStore",
        "postgres": "shopops.governance.backends.postgres:PostgresAuditStore",
    },
)
SECRET_PROVIDERS: BackendRegistry[SecretProvider] = BackendRegistry(
    "secret provider",
    {
        "env": "shopops.governance.backends.secrets:EnvSecrets",
        "file": "shopops.governance.backends.secrets:FileSecrets",
        "vault": "shopops.governance.backends.vault:VaultSecrets",
    },
)


def open_key_store(selection: BackendSelection, home: Path) -> KeyStore:
    return KEY_STORES.create(selection, home=home)


def open_audit_store(selection: BackendSelection, home: Path) -> AuditStore:
    return AUDIT_STORES.create(selection, home=home)


def open_secret_provider(selection: BackendSelection) -> SecretProvider:
    return SECRET_PROVIDERS.create(selection)
