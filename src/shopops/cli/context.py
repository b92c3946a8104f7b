"""How CLI commands get the platform: settings loaded once, backends opened per command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shopops.bootstrap import Platform, build_platform
from shopops.core.logging import configure_logging
from shopops.core.settings import Settings, load_settings


def cli_settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


@contextmanager
def open_platform(settings: Settings | None = None) -> Iterator[Platform]:
    platform = build_platform(settings or cli_settings())
    try:
        yield platform
    finally:
        platform.close()
