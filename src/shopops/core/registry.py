"""Backend registry: a config ``type`` string names the backend class of a port.

Modelled on Feast's registry: each port keeps a small table ``type -> "module:Class"`` so that
choosing a backend is configuration only, and a backend's heavy imports (a Kafka client, a
database driver) happen only when that backend is chosen. Each backend class declares its own
pydantic ``Config`` model; the options given beside ``type`` are validated against it.
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shopops.core.errors import ConfigError


class BackendConfig(BaseModel):
    """Base of every backend's own options model; unknown options are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendSelection(BaseModel):
    """What the settings say about one port: the backend ``type`` and its options."""

    model_config = ConfigDict(extra="allow")

    type: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


T = TypeVar("T")


class BackendRegistry(Generic[T]):
    """Maps backend type names of one port to their implementing classes."""

    def __init__(self, port: str, entries: dict[str, str]) -> None:
        self.port = port
        self._entries = dict(entries)

    @property
    def known(self) -> list[str]:
        return sorted(self._entries)

    def register(self, type_name: str, target: str) -> None:
        """Add a backend, given as ``"package.module:ClassName"``."""
        self._entries[type_name] = target

    def resolve(self, type_name: str) -> type[T]:
        target = self._entries.get(type_name)
        if target is None:
            raise ConfigError(
                f"unknown {self.port} backend type {type_name!r}",
                hint=f"known types: {', '.join(self.known)}",
            )
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a backend whose client library is not installed
            raise ConfigError(
                f"{self.port} backend {type_name!r} cannot be loaded: {exc}",
                hint="install the package it needs (see docs/configuration.md)",
            ) from exc
        cls: type[T] = getattr(module, class_name)
        return cls

    def config_for(self, selection: BackendSelection) -> BackendConfig:
        """Validate the options of ``selection`` against its backend's config model."""
        cls: Any = self.resolve(selection.type)
        config_model: type[BackendConfig] = cls.Config
        try:
            return config_model.model_validate(selection.options())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(
                f"invalid options for {self.port} backend {selection.type!r}: {problems}",
                hint=f"valid options: {', '.join(config_model.model_fields)}",
            ) from exc

    def create(self, selection: BackendSelection, **context: Any) -> T:
        """Instantiate the backend named by ``selection``, passing its validated config."""
        cls: Any = self.resolve(selection.type)
        config = self.config_for(selection)
        backend: T = cls(config, **context)
        return backend
