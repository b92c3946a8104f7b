"""The one settings object of shopops.

Sources, highest priority first: keyword arguments, environment variables (prefix ``SHOPOPS_``,
nesting with ``__``, e.g. ``SHOPOPS_EVENTS__TYPE=kafka``), a ``.env`` file, then a TOML file
(``$SHOPOPS_CONFIG``, else ``./shopops.toml``, else ``$SHOPOPS_HOME/shopops.toml``), then defaults.
Defaults are the embedded profile: everything runs on one machine with nothing to install.
"""

from __future__ import annotations

import os
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
