"""`shopops up`: seed the demo world on first start, start the stream workers, serve HTTP."""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import TYPE_CHECKING

import orjson
import uvicorn

from shopops.bootstrap import Platform, build_platform
from shopops.core.errors import ConflictError, ShopopsError
from shopops.core.logging import get_logger
from shopops.core.settings import Settings
from shopops.events.monitor import CdcMonitor
from shopops.inventory.audit_job import AuditJob
from shopops.inventory.service import Sweeper
from shopops.schemas.drift import DriftWatch

if TYPE_CHECKING:
    from shopops.lake.ingest import LakeIngestor
    from shopops.ml.features.push import FeaturePusher
    from shopops.ml.training.demo import MlRuntime
    from shopops.quality.job import TableCheckJob
    from shopops.rag.job import RagIngestJob

log = get_logger(__name__)

SEED_MARKER = "demo-seed.json"
#: How often the running platform audits the reservation store against the CDC stock stream.
AUDIT_INTERVAL_S = 30.0


#: Longest wait at shutdown for the knowledge-base round in progress (loading the model takes seconds).
RAG_STOP_TIMEOUT_S = 60.0


def seed_if_empty(platform: Platform) -> bool:
    """Seed the demo world once; returns whether it seeded now.

    The marker is written only after the whole world is flushed, so an interrupted seed is
    detected on the next start instead of being silently completed twice.
    """
    from shopops.simulator.cli import print_report, simulate_with_progress
    from shopops.simulator.service import SimulationConfig

    marker = platform.settings.home / SEED_MARKER
    if marker.exists():
        return False
    if any(t.messages for t in platform.event_log.list_topics()):
        raise ConflictError(
            f"the event log of {platform.settings.home} holds records but no completed demo seed",
            hint="a previous seed was interrupted or the log is shared: start with --no-seed-demo, "
            "or remove the data directory (make clean) to seed afresh",
        )
    sim = platform.settings.simulator
    config = SimulationConfig(
        regions=sim.regions,
        days=sim.days,
        orders_per_day=sim.orders_per_day,
        seed=sim.seed,
        partitions=sim.partitions,
    )
    log.info("seeding the demo world", home=str(platform.settings.home), regions=sim.regions, days=sim.days)
    report = simulate_with_progress(config, platform.event_log, platform.truth_dir)
    print_report(report)
    replay_demo_bursts(platform)
    marker.write_bytes(
        orjson.dumps(
            {"config": config.model_dump(mode="json"), "events": report.events}, option=orjson.OPT_INDENT_2
        )
    )
    return True


def replay_demo_bursts(platform: Platform) -> None:
    """Race the simulated checkout bursts against the reservation engine; keep the outcomes."""
    from shopops.inventory.bursts import OUTCOMES_FILE, replay_checkout_bursts
    from shopops.inventory.cli import print_burst_outcomes

    outcomes = replay_checkout_bursts(platform.inventory, platform.truth_dir / "checkout_bursts.parquet")
    print_burst_outcomes(outcomes)
    (platform.settings.home / OUTCOMES_FILE).write_bytes(
        orjson.dumps([o.to_dict() for o in outcomes], option=orjson.OPT_INDENT_2)
    )


def reconcile_demo(platform: Platform) -> None:
    """Build the reconciliation inputs from the demo's CDC topics and reconcile its whole window."""
    from datetime import timedelta

    from shopops.simulator.service import SimulationConfig

    sim = platform.settings.simulator
    start = SimulationConfig().start
    end = start + timedelta(days=sim.days - 1)
    service = platform.reconciliation
    try:
        service.export_inputs(list(sim.regions))
        report = service.run(start, end, list(sim.regions))
    except ShopopsError as exc:
        # The platform still serves everything else; the reason is in the log and in the run log.
        log.error("demo reconciliation failed", error=exc.message, hint=exc.hint)
        return
    log.info(
        "demo reconciliation",
        window=f"{start}..{end}",
        exceptions=report.exceptions,
        seconds=round(report.seconds, 2),
        by_class=report.by_class,
    )


def run_platform(
    host: str | None = None, port: int | None = None, seed_demo: bool = True, settings: Settings | None = None
) -> None:
    from shopops.api.app import create_app
    from shopops.cli.context import cli_settings
    from shopops.ml.training.demo import start_ml

    settings = settings or cli_settings()
    host = host or settings.api.host
    port = port or settings.api.port
    platform = build_platform(settings)
    monitor: CdcMonitor | None = None
    drift_watch: DriftWatch | None = None
    sweeper: Sweeper | None = None
    audit_job: AuditJob | None = None
    ingestor: LakeIngestor | None = None
    quality_job: TableCheckJob | None = None
    rag_job: RagIngestJob | None = None
    feature_pusher: FeaturePusher | None = None
    ml: MlRuntime | None = None
    try:
        if seed_demo:
            seed_if_empty(platform)
            if settings.reconciliation.run_on_start:
                reconcile_demo(platform)
        if settings.catalog.sync_on_start:
            # Topics, row schemas, lake tables and contracts into the catalog, in the background.
            from shopops.catalog.setup import start_background_sync

            start_background_sync(platform)
        monitor = CdcMonitor(platform.event_log)
        monitor.start()
        if settings.schemas.drift.enabled:
            # Checks every CDC stream's schemas against the registry; quarantines incompatible ones.
            drift_watch = DriftWatch(
                platform.event_log, platform.schema_client, settings.schemas.drift
            ).start()
        # Expires holds within a second of their TTL and publishes the inventory events, so the
        # request path need not publish too (one outbox claim less per command).
        sweeper = platform.inventory.sweeper(
            interval_s=0.2,
            retention_ms=settings.reservations.retention_ms,
            prune_interval_s=settings.reservations.prune_interval_s,
        ).start()
        platform.inventory.publish_inline = False
        audit_job = AuditJob(platform.inventory, platform.event_log, interval_s=AUDIT_INTERVAL_S).start()
        if settings.lake.enabled:
            # Every CDC topic into its bronze and silver Iceberg tables, exactly once (positions in
            # the snapshots); silver batches checked against the contracts; lineage recorded.
            from shopops.bootstrap import build_lake_ingestor

            layers = ("bronze", "silver", "quarantine") if settings.lake.silver else ("bronze",)
            # Silver follows the registry's verdicts on new schemas (the drift watch's client).
            ingestor = build_lake_ingestor(
                settings, platform.event_log, checks=settings.lake.checks, registry=platform.schema_client
            )
            lake_catalog = ingestor.catalog

            def lake_lineage(topics: list[str], records: int) -> None:
                platform.catalog.record_lake_ingest(topics, layers, records=records, lake=lake_catalog)

            ingestor.on_round = lake_lineage
            ingestor.start()
            # Whole tables against their contracts, on a schedule (the lake has caught up by then).
            from shopops.bootstrap import build_quality
            from shopops.quality.job import TableCheckJob
            from shopops.quality.sources import open_source

            quality_job = TableCheckJob(
                build_quality(settings),
                lambda: open_source(
                    settings.quality.source,
                    event_log=platform.event_log,
                    catalog=lake_catalog,
                    path=settings.quality.parquet_dir,
                ),
                interval_s=settings.quality.check_interval_s,
            ).start()
        if settings.ml.features.push_enabled:
            # Real-time features (velocity, order and shipment facts, stock) into the online store.
            from shopops.bootstrap import build_feature_pusher, build_features

            features = build_features(settings)
            feature_pusher = build_feature_pusher(settings, platform.event_log, features).start()
        # The knowledge base: its folder ingested in the background now and every rag.interval_s.
        from shopops.bootstrap import build_rag_job

        rag_job = build_rag_job(platform)
        if rag_job is not None:
            rag_job.start()
        url = f"http://{host}:{port}"
        from shopops.governance.cli import announce_first_admin

        # Nothing is open by default: the demo writes the first admin key, production says how.
        announce_first_admin(
            platform.governance,
            settings.home,
            demo=settings.profile == "demo",
            region=settings.governance.admin_region or settings.simulator.regions[0],
            url=url,
        )
        app = create_app(settings, platform)
        if feature_pusher is not None:
            app.state.features = feature_pusher.service  # one feature store per process
        # Online scoring of the champions; on a demo seed, the first models (trained in the background).
        ml = start_ml(platform, app, demo=seed_demo)
        app.state.banner = (
            f"shopops is up at {url} — portal {url}/, API docs {url}/docs, health {url}/healthz, "
            f"metrics {url}/metrics (data in {settings.home}, event log: {settings.events.type}, "
            f"reservations: {settings.inventory.type})"
        )
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal: make that a
        # normal exit so the workers below are stopped and the backends closed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        if ml is not None:
            ml.stop()
        if feature_pusher is not None:
            feature_pusher.stop()
        if quality_job is not None:
            quality_job.stop()
        if ingestor is not None:
            ingestor.stop()
        if rag_job is not None:
            # Wait for a round in progress: leaving while the embedding model loads or encodes in
            # that thread aborts the process at exit (native threads torn down mid-call).
            rag_job.stop(timeout_s=RAG_STOP_TIMEOUT_S)
        if audit_job is not None:
            audit_job.stop()
        if sweeper is not None:
            sweeper.stop()
        if drift_watch is not None:
            drift_watch.stop()
        if monitor is not None:
            monitor.stop()
        platform.close()
