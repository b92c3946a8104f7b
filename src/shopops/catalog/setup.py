"""Wiring the catalog into the platform: namespaces from the settings, the governance plane's
personal-data tags, and the sync of the platform's own sources (also run at ``shopops up``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shopops.catalog.sync import Namespaces, Progress, SyncSources
from shopops.core.logging import get_logger
from shopops.core.settings import Settings

if TYPE_CHECKING:
    from shopops.bootstrap import Platform
    from shopops.catalog.service import SyncReport

log = get_logger("shopops.catalog")


def namespaces_for(settings: Settings) -> Namespaces:
    """Where the platform's data lives, as OpenLineage namespaces."""
    events = settings.events
    if events.type == "kafka":
        first = str(events.options().get("bootstrap_servers", "")).split(",")[0].strip()
        events_ns = f"kafka://{first}"
    else:
        raw = events.options().get("path")
        path = Path(raw) if raw else Path("events.db")
        events_ns = f"sqlite://{path if path.is_absolute() else (settings.home / path).absolute()}"
    lake = settings.lake
    warehouse = lake.warehouse or f"file://{(settings.home / 'lake' / 'warehouse').absolute()}"
    return Namespaces(
        events=events_ns,
        lake=warehouse.rstrip("/"),
        files=f"file://{settings.home.absolute()}",
        default=settings.catalog.namespace,
    )


def governance_tags(settings: Settings) -> Mapping[str, Mapping[str, str]]:
    """The personal-data column tags the governance plane masks by (``policies/data.toml``), read
    afresh so that a change shows at the next sync; a file that does not load gives none (the
    governance plane itself refuses it at start-up)."""
    from shopops.core.errors import ShopopsError
    from shopops.governance.data import DATA_FILE, load_tags
    from shopops.governance.policy import default_policy_dir

    directory = settings.governance.policy_dir or default_policy_dir()
    try:
        tags = load_tags(directory / DATA_FILE)
    except ShopopsError as exc:
        log.warning("personal-data tags not read", file=str(directory / DATA_FILE), error=exc.message)
        return {}
    return {name: {col: tag.value for col, tag in t.columns.items()} for name, t in tags.items()}


def platform_sources(platform: Platform) -> SyncSources:
    """The platform's event log, schema registry and lake catalog as sync sources."""
    from shopops.lake.catalog import open_lake_catalog

    settings = platform.settings
    return SyncSources(
        event_log=platform.event_log,
        registry=platform.schema_client,
        lake=open_lake_catalog(settings),
        subject_template=settings.schemas.drift.subject_template,
    )


def sync_platform(platform: Platform, progress: Progress | None = None) -> SyncReport:
    """Register the platform's topics, row schemas, lake tables and contracts in its catalog."""
    return platform.catalog.sync(platform_sources(platform), progress)


def start_background_sync(platform: Platform) -> threading.Thread:
    """Sync the catalog in a background thread (``shopops up`` serves meanwhile); a failure is logged."""

    def work() -> None:
        try:
            report = sync_platform(platform)
            platform.catalog.flush()
        except Exception as exc:  # the platform serves without a fresh catalog; the log says why
            log.error("catalog sync at start failed", error=str(exc))
            return
        log.info("catalog synced at start", datasets=report.counts.get("datasets", 0))

    thread = threading.Thread(target=work, name="catalog-sync", daemon=True)
    thread.start()
    return thread
