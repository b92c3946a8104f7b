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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shopops.core.errors import ConfigError
from shopops.core.registry import BackendSelection


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
    topics: str = r"^[a-z]{2}\.[a-z0-9_]+\.[a-z0-9_]+$"

    @field_validator("subject_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(topic="vn.shop.orders")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"use {{topic}} as the only placeholder ({exc!r})") from None
        return value

    @field_validator("topics")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
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
