"""The one place where settings become wired objects (backends, services)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.events.port import EventLog
from shopops.events.service import EventsService
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.service import InventoryService

if TYPE_CHECKING:
    from shopops.governance.service import GovernanceService
    from shopops.reconciliation.service import ReconciliationService
    from shopops.schemas.client import RegistryClient
    from shopops.schemas.service import SchemaRegistry


@dataclass
class Platform:
    """Everything a process of shopops needs, built from :class:`Settings`."""

    settings: Settings
    event_log: EventLog
    inventory: InventoryService
    events: EventsService = field(init=False)
    _schema_registry: SchemaRegistry | None = field(default=None, init=False, repr=False)
    _schema_client: RegistryClient | None = field(default=None, init=False, repr=False)
    _schemas_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _governance: GovernanceService | None = field(default=None, init=False, repr=False)
    _reconciliation: ReconciliationService | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.events = EventsService(self.event_log)

    @property
    def schema_registry(self) -> SchemaRegistry:
        """The built-in schema registry (opened on first use: most commands never need it)."""
        with self._schemas_lock:
            if self._schema_registry is None:
                from shopops.schemas.server import open_registry

                self._schema_registry = open_registry(self.settings)
            return self._schema_registry

    @property
    def schema_client(self) -> RegistryClient:
        """The registry the platform works with (``schemas.registry``: built-in or external)."""
        if self._schema_client is None:
            from shopops.schemas.backends import open_registry_client

            client = open_registry_client(
                self.settings.schemas.registry, self.settings.home, lambda: self.schema_registry
            )
            with self._schemas_lock:
                if self._schema_client is None:
                    self._schema_client = client
                else:
                    client.close()
        return self._schema_client

    @property
    def governance(self) -> GovernanceService:
        """Keys, policies, audit trail and secrets (opened on first use; servers open it at start)."""
        with self._schemas_lock:
            if self._governance is None:
                self._governance = build_governance(self.settings)
            return self._governance

    @property
    def truth_dir(self) -> Path:
        return self.settings.home / "truth"

    @property
    def reconciliation(self) -> ReconciliationService:
        """The reconciliation service (opened on first use: it imports Ibis and DuckDB)."""
        with self._schemas_lock:
            if self._reconciliation is None:
                from shopops.reconciliation.service import ReconciliationService

                cfg = self.settings.reconciliation
                self._reconciliation = ReconciliationService(
                    home=self.settings.home,
                    engine=cfg.engine,
                    source=cfg.source,
                    rules_dir=cfg.rules_dir,
                    results_dir=cfg.results_dir,
                    event_log=self.event_log,
                )
            return self._reconciliation

    def close(self) -> None:
        if self._reconciliation is not None:
            self._reconciliation.close()
        if self._governance is not None:
            self._governance.close()
        if self._schema_client is not None:
            self._schema_client.close()
        if self._schema_registry is not None:
            self._schema_registry.close()
        self.inventory.close()
        self.event_log.close()


def build_platform(settings: Settings) -> Platform:
    """Open every configured backend; unknown backend types fail here with the known ones listed."""
    settings.home.mkdir(parents=True, exist_ok=True)
    _check_schema_settings(settings)
    _check_governance_settings(settings)
    event_log = open_event_log(settings.events, settings.home)
    try:
        inventory = InventoryService(open_reservation_store(settings.inventory, settings.home), event_log)
    except BaseException:
        event_log.close()
        raise
    return Platform(settings=settings, event_log=event_log, inventory=inventory)


def _check_schema_settings(settings: Settings) -> None:
    # The schema registry opens on first use; a misconfigured one must still fail at start-up.
    from shopops.schemas.backends import REGISTRY_CLIENTS, SCHEMA_STORES

    SCHEMA_STORES.config_for(settings.schemas.store)
    REGISTRY_CLIENTS.config_for(settings.schemas.registry)


def _check_governance_settings(settings: Settings) -> None:
    from shopops.core.errors import ConfigError
    from shopops.governance.backends import AUDIT_STORES, KEY_STORES, SECRET_PROVIDERS
    from shopops.governance.secrets import weak_secret_settings

    section = settings.governance
    KEY_STORES.config_for(section.keys)
    AUDIT_STORES.config_for(section.audit)
    SECRET_PROVIDERS.config_for(section.secrets)
    weak = weak_secret_settings(settings)
    if weak and settings.profile != "demo":
        names = ", ".join(f"SHOPOPS_{path.upper().replace('.', '__')}" for path in weak)
        raise ConfigError(
            f"empty or default secret settings: {', '.join(weak)}",
            hint=f"the production profile needs real secrets: set {names} or unset it to read the "
            "secret from governance.secrets (environment, files or Vault; docs/governance.md#secrets)",
        )


def build_governance(settings: Settings) -> GovernanceService:
    """Open the key and audit stores, load the policies and resolve the session secret."""
    from shopops.governance.backends import open_audit_store, open_key_store, open_secret_provider
    from shopops.governance.policy import PolicyEngine, default_policy_dir
    from shopops.governance.secrets import resolve_secret
    from shopops.governance.service import GovernanceService

    section = settings.governance
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = PolicyEngine(section.policy_dir or default_policy_dir(), section.reload_interval_s)
    secrets = open_secret_provider(section.secrets)
    opened: list[Any] = [secrets]
    try:
        session_secret = resolve_secret(
            "session_secret",
            "governance.session_secret",
            section.session_secret,
            secrets,
            demo=settings.profile == "demo",
            home=settings.home,
        )
        keys = open_key_store(section.keys, settings.home)
        opened.append(keys)
        audit = open_audit_store(section.audit, settings.home)
    except BaseException:
        for resource in opened:
            resource.close()
        raise
    return GovernanceService(
        keys=keys,
        audit=audit,
        engine=engine,
        secrets=secrets,
        session_secret=session_secret,
        session_ttl_s=section.session_ttl_s,
        key_cache_ttl_s=section.key_cache_ttl_s,
        audit_log_lines=section.audit_log_lines,
    )
