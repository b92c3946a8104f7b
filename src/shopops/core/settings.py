"""The one settings object of shopops.

Sources, highest priority first: keyword arguments, environment variables (prefix ``SHOPOPS_``,
nesting with ``__``, e.g. ``SHOPOPS_EVENTS__TYPE=kafka``), a ``.env`` file, then a TOML file
(``$SHOPOPS_CONFIG``, else ``./shopops.toml``, else ``$SHOPOPS_HOME/shopops.toml``), then defaults.
Defaults are the embedded profile: everything runs on one machine with nothing to install.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shopops.core.errors import ConfigError
from shopops.core.registry import BackendSelection

#: Topic names of CDC streams: ``<region>.<database>.<table>``.
CDC_TOPICS = r"^[a-z]{2}\.[a-z0-9_]+\.[a-z0-9_]+$"


def _regex(value: str) -> str:
    """A setting that must be a regular expression: refused with the reason if it is not one."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


#: A regular expression over topic names, checked when the settings load.
TopicPattern = Annotated[str, AfterValidator(_regex)]


class _Section(BaseModel):
    """A settings section: a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``console`` for people, ``json`` for Loki/ELK.
    format: Literal["console", "json"] = "console"


class SimulatorSettings(_Section):
    """Defaults of the demo world seeded by ``shopops up`` on an empty data directory."""

    regions: list[str] = ["vn", "sg", "th"]
    days: int = Field(default=7, ge=1)
    orders_per_day: int = Field(default=200, ge=1)
    seed: int = 42
    partitions: int = Field(default=3, ge=1)


class SchemaDriftSettings(_Section):
    """The drift watch: every CDC stream's schemas checked against the registry."""

    #: Run the drift watch beside the CDC monitor in ``shopops up``.
    enabled: bool = True
    #: Format the watch registers CDC schemas in: ``json`` (JSON Schema) or ``avro``.
    format: Literal["json", "avro"] = "json"
    #: Subject of a topic's row schema (Confluent's TopicNameStrategy by default).
    subject_template: str = "{topic}-value"
    #: Where incompatible change events go, with the reason in their headers.
    quarantine_topic: str = "shopops.schemas.quarantine"
    #: Where schema changes (new versions, quarantined changes) are recorded for the catalog.
    changes_topic: str = "shopops.schemas.changes"
    group_id: str = "shopops-schema-drift"
    #: Topics watched: a regular expression over topic names (CDC topics: region.database.table).
    topics: TopicPattern = CDC_TOPICS

    @field_validator("subject_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(topic="vn.shop.orders")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"use {{topic}} as the only placeholder ({exc!r})") from None
        return value


class SchemaSettings(_Section):
    """The schema registry: its store, the client the platform uses, and the drift watch."""

    #: Store of the built-in registry: ``{type = "sqlite"}`` (default) or ``{type = "postgres", dsn = ...}``.
    store: BackendSelection = BackendSelection(type="sqlite")
    #: Registry the drift watch and CLI talk to: ``{type = "builtin"}`` (default) or
    #: ``{type = "http", url = "http://registry:8081"}`` for a Confluent, Karapace or Apicurio registry.
    registry: BackendSelection = BackendSelection(type="builtin")
    #: Global compatibility level until one is set through the API.
    default_compatibility: Literal[
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] = "BACKWARD"
    #: Larger request bodies are refused with error 42209.
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    #: How long a schema served by id is cached (another process's permanent delete shows after it).
    id_cache_ttl_s: float = Field(default=30.0, ge=0)
    drift: SchemaDriftSettings = SchemaDriftSettings()

    @field_validator("store", mode="before")
    @classmethod
    def _embedded_store_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "sqlite", **value}
        return value

    @field_validator("registry", mode="before")
    @classmethod
    def _registry_type_by_default(cls, value: Any) -> Any:
        # A URL without a type means an external registry; nothing at all, the built-in one.
        if isinstance(value, dict) and "type" not in value:
            return {"type": "http" if "url" in value else "builtin", **value}
        return value


class GovernanceSettings(_Section):
    """Authentication, Cedar policies, the audit trail and the secret provider (docs/governance.md)."""

    #: Folder of the Cedar policies, their schema, tests and data tags (default: ./policies, else
    #: the source checkout's policies/).
    policy_dir: Path | None = None
    #: How often changed policy files are noticed and reloaded (no restart needed).
    reload_interval_s: float = Field(default=2.0, ge=0)
    #: API-key store: ``{type = "sqlite"}`` (default, $SHOPOPS_HOME/governance.db) or ``postgres`` (``dsn``).
    keys: BackendSelection = BackendSelection(type="sqlite")
    #: Audit store: ``{type = "sqlite"}`` (default, $SHOPOPS_HOME/audit.db) or ``postgres`` (``dsn``).
    audit: BackendSelection = BackendSelection(type="sqlite")
    #: Also write every audit record as a JSON log line (for Loki).
    audit_log_lines: bool = True
    #: Secret provider: ``env`` (default), ``file`` (``dir``, default /run/secrets) or ``vault`` (``url``...).
    secrets: BackendSelection = BackendSelection(type="env")
    #: Signs portal session cookies. Unset: read as secret ``session_secret`` from the provider;
    #: the demo profile generates one into the data directory, production refuses to start.
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    #: A revoked key stops working in other processes within this time (at once in this one).
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    #: Home region of the demo's first admin key (default: the first simulator region).
    admin_region: str | None = None

    @field_validator("keys", "audit", mode="before")
    @classmethod
    def _embedded_store_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "postgres" if "dsn" in value else "sqlite", **value}
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_provider_by_options(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            kind = "vault" if "url" in value else "file" if "dir" in value else "env"
            return {"type": kind, **value}
        return value


class LakeSettings(_Section):
    """The lakehouse: the Iceberg catalog and the CDC ingestion worker."""

    #: Run the ingestion worker in ``shopops up``.
    enabled: bool = True
    #: SQLAlchemy URL of the SQL catalog (default: SQLite at ``$SHOPOPS_HOME/lake/catalog.db``;
    #: ``postgresql+psycopg://user@host/db`` to share it between workers and readers).
    catalog_uri: str | None = None
    #: Warehouse location (default: ``$SHOPOPS_HOME/lake/warehouse``; ``s3://bucket/path`` works too).
    warehouse: str | None = None
    #: Records per micro-batch (one Iceberg commit each).
    batch_records: int = Field(default=50_000, ge=1)
    #: Seconds between catch-up rounds of the worker.
    interval_s: float = Field(default=2.0, gt=0)
    #: Topics ingested: a regular expression over topic names (CDC topics by default).
    topics: TopicPattern = CDC_TOPICS


class ReconciliationSettings(_Section):
    """Reconciliation: the compute engine, where the input tables come from, rules and results."""

    #: ``{type = "duckdb"}`` (default, in-process), ``{type = "pyspark", master = "local[2]"}`` or
    #: ``{type = "trino", host = ..., catalog = ..., schema_name = ...}``.
    engine: BackendSelection = BackendSelection(type="duckdb")
    #: ``{type = "parquet", path = "reconciliation/input"}`` (default; built from the CDC topics by
    #: ``shopops reconcile export``) or ``{type = "catalog", table_template = "{table}"}``.
    source: BackendSelection = BackendSelection(type="parquet")
    #: Directory of the ``<region>.yaml`` rules files (default: the rules shipped with shopops).
    rules_dir: Path | None = None
    #: Where results are stored (relative to the data directory).
    results_dir: Path = Path("reconciliation/results")
    #: ``shopops up`` reconciles the demo world once it is seeded.
    run_on_start: bool = True

    @field_validator("engine", mode="before")
    @classmethod
    def _duckdb_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "duckdb", **value}
        return value

    @field_validator("source", mode="before")
    @classmethod
    def _parquet_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "parquet", **value}
        return value


def _default_home() -> Path:
    return Path(os.environ.get("SHOPOPS_HOME", ".shopops"))


def _toml_file() -> Path | None:
    explicit = os.environ.get("SHOPOPS_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (Path("shopops.toml"), _default_home() / "shopops.toml"):
        if candidate.is_file():
            return candidate
    return None


class Settings(BaseSettings):
    """Everything configurable in shopops. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPOPS_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )

    #: Data directory: SQLite files, ground truth, local warehouse.
    home: Path = Field(default_factory=_default_home)
    #: ``demo`` allows the built-in defaults; ``production`` refuses unsafe ones.
    profile: Literal["demo", "production"] = "demo"
    api: ApiSettings = ApiSettings()
    logging: LoggingSettings = LoggingSettings()
    #: Event-log backend: ``{type = "sqlite"}`` (default) or ``{type = "kafka", bootstrap_servers = ...}``.
    events: BackendSelection = BackendSelection(type="sqlite")
    #: Reservation store: ``sqlite`` (default), ``redis`` (``url``) or ``postgres`` (``dsn``).
    inventory: BackendSelection = BackendSelection(type="sqlite")
    simulator: SimulatorSettings = SimulatorSettings()
    schemas: SchemaSettings = SchemaSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()
    lake: LakeSettings = LakeSettings()
    governance: GovernanceSettings = GovernanceSettings()

    @field_validator("events", "inventory", mode="before")
    @classmethod
    def _embedded_backend_by_default(cls, value: Any) -> Any:
        # Options given without a type (SHOPOPS_EVENTS__PATH=...) apply to the embedded backend.
        if isinstance(value, dict) and "type" not in value:
            return {"type": "sqlite", **value}
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        toml_file = _toml_file()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        sources.append(file_secret_settings)
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation problems into one readable :class:`ConfigError`."""
    toml_file = _toml_file()
    if toml_file is not None and not toml_file.is_file():
        raise ConfigError(f"config file {toml_file} does not exist", hint="fix or unset SHOPOPS_CONFIG")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(
            f"invalid settings: {problems}",
            hint="check SHOPOPS_* environment variables and shopops.toml (docs/configuration.md)",
        ) from exc
    except ValueError as exc:  # e.g. a malformed TOML file
        raise ConfigError(f"invalid settings: {exc}", hint="check shopops.toml syntax") from exc
