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
    from collections.abc import Callable, Iterator

    from shopops.agents.service import AgentsService
    from shopops.catalog.service import CatalogService
    from shopops.governance.service import GovernanceService
    from shopops.lake.ingest import LakeIngestor
    from shopops.lake.registry import RegistrySchemaDecisions
    from shopops.llm.service import LlmGateway
    from shopops.ml.features.push import FeaturePusher
    from shopops.ml.features.service import FeatureService
    from shopops.ml.promotion.service import PromotionService
    from shopops.ml.serving.service import ServingService
    from shopops.ml.tracking.service import Tracking
    from shopops.ml.training.service import TrainingService
    from shopops.quality.service import QualityService
    from shopops.rag.job import RagIngestJob
    from shopops.rag.service import RagService
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
    _catalog: CatalogService | None = field(default=None, init=False, repr=False)
    _rag: RagService | None = field(default=None, init=False, repr=False)
    _llm: LlmGateway | None = field(default=None, init=False, repr=False)

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
    def catalog(self) -> CatalogService:
        """The data catalog and lineage recorder (opened on first use)."""
        with self._schemas_lock:
            if self._catalog is None:
                self._catalog = build_catalog(self.settings)
            return self._catalog

    @property
    def reconciliation(self) -> ReconciliationService:
        """The reconciliation service (opened on first use: it imports Ibis and DuckDB)."""
        lineage = self.catalog  # before the lock: it takes the same lock
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
                    lineage=lineage,
                )
            return self._reconciliation

    @property
    def rag(self) -> RagService:
        """The knowledge base (its store opens on first search or ingestion, the model on first use)."""
        with self._schemas_lock:
            if self._rag is None:
                self._rag = build_rag(self.settings)
            return self._rag

    @property
    def llm(self) -> LlmGateway:
        """The LLM gateway (built on first use; the offline model retrieves through ``rag`` lazily)."""
        governance = self.governance  # before the lock: it takes the same lock
        with self._schemas_lock:
            if self._llm is None:
                self._llm = build_llm(self.settings, rag=lambda: self.rag, governance=governance)
            return self._llm

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
        if self._rag is not None:
            self._rag.close()
        if self._reconciliation is not None:
            self._reconciliation.close()
        if self._catalog is not None:
            self._catalog.close()
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
    _check_llm_settings(settings)
    _check_feature_settings(settings)
    _check_catalog_settings(settings)
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


def _check_catalog_settings(settings: Settings) -> None:
    # The catalog opens on first use; a misconfigured one must still fail at start-up.
    from shopops.catalog.backends import CATALOG_STORES, LINEAGE_TRANSPORTS

    CATALOG_STORES.config_for(settings.catalog.store)
    LINEAGE_TRANSPORTS.config_for(settings.catalog.openlineage)


def build_catalog(settings: Settings) -> CatalogService:
    """Open the catalog store and the OpenLineage transport; contracts and the governance plane's
    personal-data tags annotate the datasets."""
    from shopops.catalog.backends import open_catalog_store, open_lineage_transport
    from shopops.catalog.contracts import default_contracts_dir
    from shopops.catalog.service import CatalogService
    from shopops.catalog.setup import governance_tags, namespaces_for

    section = settings.catalog
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_catalog_store(section.store, settings.home)
    try:
        transport = open_lineage_transport(section.openlineage, settings.home)
    except BaseException:
        store.close()
        raise
    # One folder of contracts for the platform: the catalog reads the ones the checks use.
    quality = getattr(settings, "quality", None)
    contracts_dir = (
        section.contracts_dir or getattr(quality, "contracts_dir", None) or default_contracts_dir()
    )
    return CatalogService(
        store,
        transport,
        namespaces_for(settings),
        contracts_dir=contracts_dir,
        tags=lambda: governance_tags(settings),
        default_owner=section.default_owner,
        retry_interval_s=section.retry_interval_s,
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


def build_agents(platform: Platform) -> AgentsService:
    """The support agent, the ops copilot and the triage bot over the platform's services, its
    knowledge base and its LLM gateway (or ``agents.base_url``)."""
    from shopops.agents.wiring import open_agents

    return open_agents(platform)


def build_rag(settings: Settings) -> RagService:
    """The knowledge base service: Qdrant local mode under ``$SHOPOPS_HOME/rag`` or ``rag.qdrant_url``."""
    from shopops.rag.service import build_rag_service

    return build_rag_service(settings)


def build_rag_job(platform: Platform) -> RagIngestJob | None:
    """The scheduled ingestion of ``rag.knowledge_dir`` for ``shopops up`` (None when disabled)."""
    from shopops.core.errors import ConfigError
    from shopops.core.logging import get_logger
    from shopops.rag.job import RagIngestJob
    from shopops.rag.service import default_knowledge_dir

    cfg = platform.settings.rag
    if not cfg.ingest_on_start and cfg.interval_s <= 0:
        return None
    try:
        folder = cfg.knowledge_dir or default_knowledge_dir()
    except ConfigError as exc:  # an installed package without its docs: serve without a knowledge base
        get_logger("shopops.rag").warning("no knowledge base to ingest", error=exc.message, hint=exc.hint)
        return None
    return RagIngestJob(platform.rag, folder, interval_s=cfg.interval_s, on_start=cfg.ingest_on_start)


def _check_llm_settings(settings: Settings) -> None:
    # The gateway is built on first use; a misconfigured backend chain must still fail at start-up.
    from shopops.llm.service import check_llm_settings

    check_llm_settings(settings.llm)


def build_llm(settings: Settings, rag: Any = None, governance: GovernanceService | None = None) -> LlmGateway:
    """The LLM gateway of ``llm.backends``: ``rag`` (the retrieval service, or a function returning
    it) feeds the offline model; ``governance`` gives the secret provider and the personal-data policy."""
    from shopops.governance.backends import open_secret_provider
    from shopops.llm.service import open_gateway

    secrets = (
        governance.secrets if governance is not None else open_secret_provider(settings.governance.secrets)
    )
    return open_gateway(settings.llm, rag=rag, governance=governance, secrets=secrets)


def _check_feature_settings(settings: Settings) -> None:
    # The feature store opens on first use; an unknown online store must still fail at start-up.
    from shopops.ml.features.backends import ONLINE_STORES

    ONLINE_STORES.config_for(settings.ml.features.online_store)


def build_features(settings: Settings) -> FeatureService:
    """The feature store (Feast): repository under ``ml.features.repo_dir``, online store by setting."""
    from contextlib import contextmanager

    from shopops.lake.catalog import open_catalog
    from shopops.ml.features.backends import open_online_store
    from shopops.ml.features.service import FeatureService

    section = settings.ml.features
    repo_dir = section.repo_dir or settings.home / "ml" / "feast"
    if not repo_dir.is_absolute():
        repo_dir = settings.home / repo_dir

    @contextmanager
    def event_log() -> Iterator[EventLog]:
        log = open_event_log(settings.events, settings.home)
        try:
            yield log
        finally:
            log.close()

    return FeatureService(
        project=section.project,
        repo_dir=repo_dir,
        online_store=open_online_store(section.online_store, repo_dir),
        catalog=lambda: open_catalog(settings.lake.catalog_uri, settings.lake.warehouse, settings.home),
        event_log=event_log,
        truth_dir=settings.home / "truth",
        direct_reads=section.online_reads == "direct",
    )


def build_feature_pusher(settings: Settings, event_log: EventLog, features: FeatureService) -> FeaturePusher:
    """The stream push worker of ``shopops up``: real-time features from ``event_log``."""
    from shopops.ml.features.push import FeaturePusher

    section = settings.ml.features
    return FeaturePusher(features, event_log, regions=section.regions, interval_s=section.push_interval_s)


def build_tracking(settings: Settings) -> Tracking:
    """MLflow tracking and registry: ``ml.tracking`` (SQLite and local artifacts by default)."""
    from shopops.ml.tracking.service import Tracking

    return Tracking.from_settings(settings)


def build_training(
    settings: Settings, event_log: EventLog | None = None, features: FeatureService | None = None
) -> TrainingService:
    """Training on the feature store's frames (``ml.training.source = features``; ``features``
    shares an open one) or, with ``events``, on frames built straight from ``event_log``'s CDC topics."""
    from shopops.ml.training.frames import EventLogFrames, FrameSource
    from shopops.ml.training.service import TrainingService

    cfg = settings.ml.training
    frames: FrameSource
    if cfg.source == "events":
        if event_log is None:
            raise ValueError("the events training source needs the event log")
        frames = EventLogFrames(event_log, settings.home / "truth")
    else:
        frames = features or build_features(settings)
    return TrainingService(
        build_tracking(settings),
        frames,
        home=settings.home,
        holdout_fraction=cfg.holdout_fraction,
        num_threads=cfg.num_threads,
        tune_trials=cfg.tune_trials,
        owner=cfg.owner,
        ray_address=settings.ray.address,
        ray_cpus=settings.ray.num_cpus,
        source_name=cfg.source,
    )


def build_promotion(
    settings: Settings, governance: GovernanceService, catalog: CatalogService | None = None
) -> PromotionService:
    """Gates, policy and alias moves; the champion's card is linked in ``catalog`` when given."""
    from shopops.ml.promotion.service import PromotionService

    link = None
    if catalog is not None:

        def link(model: str, version: int, card_uri: str) -> None:
            catalog.register_dataset(
                f"models.{model}",
                kind="model",
                registered_by="promotion",
                owner=settings.ml.training.owner,
                description=f"the {model} model; champion v{version}",
                links={"model_card": card_uri, "champion": f"models:/{model}/{version}"},
            )

    return PromotionService(
        build_tracking(settings),
        governance,
        home=settings.home,
        settings=settings.ml.promotion,
        catalog_link=link,
    )


def build_serving(settings: Settings, features: FeatureService) -> ServingService:
    """Online scoring with the champions (not started: call ``start()``)."""
    from shopops.ml.serving.predlog import PredictionLog
    from shopops.ml.serving.service import ServingService

    cfg = settings.ml.serving
    predictions = (
        PredictionLog(settings.home / "ml" / "predictions.db", flush_interval_s=cfg.log_flush_interval_s)
        if cfg.log_predictions
        else None
    )
    return ServingService(
        build_tracking(settings),
        features,
        cache_dir=settings.home / "ml" / "cache",
        prediction_log=predictions,
        reload_interval_s=cfg.reload_interval_s,
        reasons=cfg.reasons,
    )


def build_quality(settings: Settings, registry: Callable[[], RegistryClient] | None = None) -> QualityService:
    """Data contracts and their results store. ``registry`` gives the schema registry that
    ``lint --registry`` compares contracts with (default: the one of ``schemas.registry``)."""
    from shopops.quality.backends import open_results_store
    from shopops.quality.service import QualityService, default_contracts_dir

    cfg = settings.quality
    settings.home.mkdir(parents=True, exist_ok=True)

    def default_registry() -> RegistryClient:
        from shopops.schemas.backends import open_registry_client
        from shopops.schemas.server import open_registry

        return open_registry_client(settings.schemas.registry, settings.home, lambda: open_registry(settings))

    return QualityService(
        contracts_dir=cfg.contracts_dir or default_contracts_dir(),
        store=open_results_store(cfg.store, settings.home),
        sample_limit=cfg.sample_failures,
        record_passing_batches=cfg.record_passing_batches,
        registry=registry or default_registry,
        subject_template=settings.schemas.drift.subject_template,
    )


def build_lake_ingestor(
    settings: Settings,
    event_log: EventLog,
    *,
    checks: bool = False,
    registry: RegistryClient | None = None,
    **overrides: Any,
) -> LakeIngestor:
    """The lake worker: bronze and (``lake.silver``) silver tables from the CDC topics on the
    catalog and warehouse of ``lake.*``. With ``checks``, silver batches are checked against the
    data contracts and failing rows go to quarantine. Foreign keys are not checked per batch: the
    streams of two tables are not in step (a stock movement may arrive before its warehouse), so
    a batch check would quarantine good rows; the scheduled whole-table run checks them.

    With the drift watch on (``schemas.drift.enabled``), silver follows the schema registry: a new
    schema the registry refuses is quarantined instead of applied. ``registry`` is the client the
    drift watch uses (``Platform.schema_client``; default: the one of ``schemas.registry``).
    ``overrides`` replace ``LakeIngestor`` options (``topics``, ``batch_records``, ``silver``…)."""
    from shopops.lake.catalog import open_lake_catalog
    from shopops.lake.ingest import LakeIngestor

    cfg = settings.lake
    catalog = open_lake_catalog(settings)
    checker = build_quality(settings).checker() if checks else None
    options: dict[str, Any] = {
        "topics": cfg.topics,
        "batch_records": cfg.batch_records,
        "interval_s": cfg.interval_s,
        "silver": cfg.silver,
        "clean_interval_s": cfg.clean_interval_s,
        "clean_keep_snapshots": cfg.clean_keep_snapshots,
        "clean_older_than_s": cfg.clean_older_than_s,
        **overrides,
    }
    schemas = build_schema_decisions(settings, registry)
    return LakeIngestor(event_log, catalog, checker=checker, schemas=schemas, **options)


def build_schema_decisions(
    settings: Settings, registry: RegistryClient | None = None
) -> RegistrySchemaDecisions | None:
    """The registry's verdicts on new schemas for silver (``None`` with ``schemas.drift.enabled``
    off: silver then follows Iceberg's rules alone). ``registry``: the client the drift watch
    uses (default: the one of ``schemas.registry``)."""
    if not settings.schemas.drift.enabled:
        return None
    from shopops.schemas.drift import SchemaGate

    if registry is None:
        from shopops.schemas.backends import open_registry_client
        from shopops.schemas.server import open_registry

        registry = open_registry_client(
            settings.schemas.registry, settings.home, lambda: open_registry(settings)
        )
    from shopops.lake.registry import RegistrySchemaDecisions

    return RegistrySchemaDecisions(SchemaGate(registry, settings.schemas.drift))
