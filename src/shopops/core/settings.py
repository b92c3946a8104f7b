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

    #: Run the drift watch beside the CDC monitor in ``shopops up``; silver tables then follow the
    #: registry's verdicts on schema changes (``shopops up`` and ``shopops lake ingest``).
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


class ReservationSettings(_Section):
    """Retention of the reservation store (the store itself is ``inventory``)."""

    #: Released, expired and cancelled reservations older than this many days are deleted, with
    #: their idempotency keys, by the sweeper of ``shopops up`` (and ``shopops inventory prune``);
    #: 0: kept forever. Keep it longer than clients retry a reserve with the same key.
    retention_days: float = Field(default=30.0, ge=0)
    #: Seconds between the starts of two retention passes (each spread over many sweeps).
    prune_interval_s: float = Field(default=3600.0, gt=0)

    @property
    def retention_ms(self) -> int | None:
        """The retention in milliseconds, ``None`` when reservations are kept forever."""
        return round(self.retention_days * 86_400_000) if self.retention_days else None


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
    #: Seconds between warehouse cleanings by the worker of ``shopops up`` (``shopops lake clean``
    #: between two rounds: old snapshots expired, unreferenced files deleted); 0: never.
    clean_interval_s: float = Field(default=3600.0, ge=0)
    #: Snapshots each table keeps when cleaned.
    clean_keep_snapshots: int = Field(default=10, ge=1)
    #: Unreferenced files younger than this (seconds) are kept: a commit may be about to use them.
    clean_older_than_s: float = Field(default=3600.0, ge=0)
    #: Topics ingested: a regular expression over topic names (CDC topics by default).
    topics: TopicPattern = CDC_TOPICS
    #: Build silver tables (current state per key) beside bronze.
    silver: bool = True
    #: Check each silver batch against the data contracts (``contracts/``); failing rows go to the
    #: dataset's quarantine table with the reason, the rest is applied.
    checks: bool = True
    #: S3 warehouse: endpoint URL of an S3-compatible store (MinIO, moto…; unset: AWS).
    s3_endpoint: str | None = None
    #: S3 region (unset: the AWS default chain, e.g. ``AWS_REGION``).
    s3_region: str | None = None
    #: S3 credentials (unset: the AWS default chain, e.g. ``AWS_ACCESS_KEY_ID``). Set them as
    #: ``SHOPOPS_LAKE__S3_ACCESS_KEY_ID`` / ``SHOPOPS_LAKE__S3_SECRET_ACCESS_KEY``, not in files.
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None


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


class AgentTracingSettings(_Section):
    """OpenTelemetry traces of agent runs: one span per run, per model call and per tool call."""

    #: ``file`` (JSON lines under the data directory, default), ``memory`` (this process only),
    #: ``otlp`` (OTLP/HTTP protobuf to ``otlp_endpoint``, e.g. an OpenTelemetry collector) or ``none``.
    exporter: Literal["file", "memory", "otlp", "none"] = "file"
    #: The ``file`` exporter's path (relative to the data directory).
    file: Path = Path("agents/traces.jsonl")
    #: ``http://collector:4318/v1/traces`` for the ``otlp`` exporter.
    otlp_endpoint: str | None = None


class AgentEvalSettings(_Section):
    """``shopops agent eval``: the golden set, the committed baseline, the regression margin."""

    #: A quality metric (hit@5, MRR, groundedness, tool-call accuracy, refusal correctness, fact
    #: recall) more than this below the baseline fails the evaluation.
    margin: float = Field(default=0.05, ge=0, le=1)
    #: p95 latency more than this fraction above the baseline's fails it too; unset: not gated
    #: (latency depends on the machine, the quality metrics do not).
    latency_margin: float | None = Field(default=None, ge=0)
    #: The golden set (default: tests/golden/agents.yaml of the checkout).
    golden: Path | None = None
    #: The baseline metrics (default: the baseline committed with shopops).
    baseline: Path | None = None
    #: MLflow tracking URI for eval runs (default: SQLite under $SHOPOPS_HOME/ml/).
    tracking_uri: str | None = None
    experiment: str = "shopops-agents-eval"


class AgentsSettings(_Section):
    """The support agent, the ops copilot and the triage bot (docs/agents.md)."""

    #: Model name asked of the chat endpoint (the gateway's built-in offline model by default).
    model: str = "shopops-offline"
    #: Any OpenAI-compatible endpoint (``http://host:8000/v1``); unset: the platform's own gateway,
    #: in-process.
    base_url: str | None = None
    #: Key for ``base_url`` (unset: secret ``agents_api_key`` from the secret provider, if any).
    api_key: SecretStr | None = None
    temperature: float = Field(default=0.0, ge=0, le=2)
    #: Model calls per run at most (each may ask for tools); then the agent answers with what it has.
    max_steps: int = Field(default=4, ge=1, le=16)
    #: Seconds a model call may take.
    timeout_s: float = Field(default=60.0, gt=0)
    #: Passages retrieved from the knowledge base for each question.
    passages: int = Field(default=5, ge=1, le=20)
    #: The shipment ETA prediction route (``http://host:8000/v1/predict/eta``); unset: the
    #: platform's own ML serving when it runs in this process, else the tool says it is not configured.
    eta_url: str | None = None
    #: Days after delivery a return for a refund may be opened, per region (docs/knowledge policies).
    refund_window_days: dict[str, int] = {"vn": 7, "sg": 14, "th": 7, "my": 14, "id": 7, "ph": 7}
    #: Where the triage bot writes its reports (JSON, keyed by the alert's fingerprint).
    triage_topic: str = "shopops.agents.triage"
    tracing: AgentTracingSettings = AgentTracingSettings()
    eval: AgentEvalSettings = AgentEvalSettings()


class FeatureSettings(_Section):
    """The feature store (Feast): its repository, online store and the stream push worker (docs/mlops.md)."""

    #: Feast project name (letters, digits and underscores); two projects can share one online store.
    project: str = Field(default="shopops", pattern=r"^[A-Za-z0-9_]+$")
    #: Registry, offline Parquet files and the SQLite online store (default: ``$SHOPOPS_HOME/ml/feast``).
    repo_dir: Path | None = None
    #: ``sqlite`` (default, in the repository folder) or ``{type = "redis", connection_string =
    #: "host:6379,db=0"}``; in TOML a bare type name works too (``online_store = "redis"``).
    online_store: BackendSelection = BackendSelection(type="sqlite")
    #: How online features are read: ``direct`` (the rows Feast wrote, one round trip, decoded with
    #: Feast's own helpers: ~0.1 ms for fraud) or ``feast`` (``get_online_features``: ~1 ms).
    online_reads: Literal["direct", "feast"] = "direct"
    #: Run the push worker (real-time features from the event log) in ``shopops up``.
    push_enabled: bool = True
    #: Seconds the push worker waits for new events before it pushes what it folded.
    push_interval_s: float = Field(default=1.0, gt=0)
    #: Regions whose CDC topics the push worker follows (default: every region with topics).
    regions: list[str] | None = None

    @field_validator("online_store", mode="before")
    @classmethod
    def _store_by_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"type": value}
        if isinstance(value, dict) and "type" not in value:
            return {"type": "redis" if "connection_string" in value else "sqlite", **value}
        return value


class TrackingSettings(_Section):
    """MLflow tracking and model registry (docs/mlops.md#tracking-and-training)."""

    #: Runs and the registry: SQLite at ``$SHOPOPS_HOME/ml/mlflow.db`` by default;
    #: ``postgresql+psycopg://user@host/db``, or an MLflow server ``http://mlflow:5000``.
    uri: str | None = None
    #: Root of the run artifacts (models, cards, SHAP summaries): ``$SHOPOPS_HOME/ml/artifacts`` by
    #: default; ``s3://bucket/prefix`` with credentials in the usual ``AWS_*`` environment variables.
    artifact_location: str | None = None
    #: An S3-compatible endpoint for ``s3://`` artifacts (MinIO, Ceph, moto): ``http://host:9000``.
    s3_endpoint_url: str | None = None
    #: Experiments are named ``<prefix>-<use case>``.
    experiment_prefix: str = Field(default="shopops", pattern=r"^[A-Za-z0-9_.-]+$")


class TrainingSettings(_Section):
    """``shopops train``: the seed, the holdout, the search, and the demo's first models."""

    seed: int = Field(default=42, ge=0)
    #: The newest fraction of the rows (by event time) is held out for scoring and promotion.
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    #: Hyperparameter configurations tried by ``--tune`` (on Ray when ``ray.address`` is set).
    tune_trials: int = Field(default=8, ge=1, le=1000)
    #: LightGBM threads per fit (a fixed number keeps results identical from run to run).
    num_threads: int = Field(default=2, ge=1)
    #: Where training frames come from: ``features`` (the feature store's point-in-time frames)
    #: or ``events`` (built straight from the event log's CDC topics).
    source: Literal["features", "events"] = "features"
    #: Named as the owner in model cards.
    owner: str = "ml-platform"
    #: ``shopops up`` trains both models on the demo world and promotes them (in the background).
    demo: bool = True


class PromotionSettings(_Section):
    """The gates a candidate passes before the policy decides (docs/mlops.md#promotion)."""

    #: The candidate's primary metric must beat the champion's by at least this (0: a tie passes).
    min_gain: float = Field(default=0.0, ge=0)
    #: No region may lose more than this many PR-AUC points against the champion (fraud)...
    region_margin_pr_auc: float = Field(default=0.05, ge=0)
    #: ... nor have its MAE grow by more than this fraction of the champion's (ETA).
    region_margin_mae: float = Field(default=0.10, ge=0)
    #: Regions with fewer holdout rows than this are not judged on their own.
    region_min_rows: int = Field(default=30, ge=1)
    #: Input drift: a feature whose population stability index exceeds this refuses the candidate.
    max_psi: float = Field(default=0.25, gt=0)
    #: Live inputs compared with the training data (the newest predictions logged), at most.
    drift_window: int = Field(default=5000, ge=100)
    #: Approver named when the demo profile promotes the demo's first models.
    demo_approver: str = "ml-lead"


class ServingSettings(_Section):
    """Online scoring (docs/mlops.md#serving)."""

    #: Serve ``/v1/score/fraud`` and ``/v1/predict/eta`` in ``shopops up``.
    enabled: bool = True
    #: How often the registry is asked whether the ``champion`` alias moved.
    reload_interval_s: float = Field(default=5.0, gt=0)
    #: Log every prediction to ``$SHOPOPS_HOME/ml/predictions.db`` (batched, off the request path).
    log_predictions: bool = True
    log_flush_interval_s: float = Field(default=1.0, gt=0)
    #: Reasons returned with a fraud score (top SHAP contributions).
    reasons: int = Field(default=3, ge=0, le=20)
    #: Also deploy the champions on Ray Serve (needs ``ray.address``) on this HTTP port.
    ray_serve: bool = False
    ray_serve_port: int = Field(default=8001, ge=1, le=65535)


class MlSettings(_Section):
    """MLOps: the feature store, and the tracking, training, promotion and serving sections."""

    features: FeatureSettings = FeatureSettings()
    tracking: TrackingSettings = TrackingSettings()
    training: TrainingSettings = TrainingSettings()
    promotion: PromotionSettings = PromotionSettings()
    serving: ServingSettings = ServingSettings()


class RaySettings(_Section):
    """Ray: training, tuning and batch scoring on a cluster instead of in-process."""

    #: Unset: everything runs in-process. ``local`` starts a Ray instance on this machine;
    #: ``auto`` or ``ray://head:10001`` joins a running cluster.
    address: str | None = None
    #: CPUs a ``local`` instance may use.
    num_cpus: int = Field(default=2, ge=1)


class RagSettings(_Section):
    """The knowledge base: Qdrant store, chunking, hybrid-search weights, scheduled ingestion
    (docs/rag.md)."""

    #: Unset: Qdrant local mode in ``$SHOPOPS_HOME/rag/qdrant`` (one process per folder); set: a Qdrant
    #: server shared by every process, e.g. ``http://qdrant:6333``.
    qdrant_url: str | None = None
    #: API key of the Qdrant server, if it needs one.
    qdrant_api_key: SecretStr | None = None
    collection: str = Field(default="shopops_knowledge", pattern=r"^[A-Za-z0-9_-]{1,255}$")
    #: Seconds a call to a Qdrant server may take.
    timeout_s: float = Field(default=30.0, gt=0)
    #: Local mode only: who scores the BM25 side. ``index``: an in-memory inverted index with the
    #: same arithmetic (milliseconds); ``qdrant``: local mode's own sparse search (pure Python,
    #: about 0.5-2 s a query at 10k chunks).
    local_lexical: Literal["index", "qdrant"] = "index"
    #: Characters per chunk at most (sections are cut at paragraphs, then sentences) and the overlap.
    chunk_size: int = Field(default=1000, ge=200, le=20_000)
    chunk_overlap: int = Field(default=150, ge=0)
    #: Texts per embedding batch, and torch threads of the embedding model (one thread keeps a
    #: question's embedding fast when other work keeps the cores busy).
    embed_batch: int = Field(default=64, ge=1, le=1024)
    embed_threads: int = Field(default=1, ge=1, le=64)
    #: Weights of the dense (MiniLM) and sparse (BM25) lists in reciprocal rank fusion; questions in
    #: Vietnamese use ``vi_dense_weight`` for the dense list (MiniLM reads English only).
    dense_weight: float = Field(default=1.0, ge=0)
    sparse_weight: float = Field(default=1.0, ge=0)
    vi_dense_weight: float = Field(default=0.25, ge=0)
    #: Vectors already computed, by text (default: ``$SHOPOPS_HOME/rag/embeddings.db``): a rebuild
    #: or a metadata edit re-embeds nothing. May be shared between data directories.
    embedding_cache: Path | None = None
    #: Folder ingested by ``shopops up`` (default: ./docs/knowledge, else the source checkout's).
    knowledge_dir: Path | None = None
    #: ``shopops up`` ingests the knowledge folder at start (in the background) ...
    ingest_on_start: bool = True
    #: ... and again every this many seconds (0: only at start); only changed files are embedded.
    interval_s: float = Field(default=600.0, ge=0)


class LlmSettings(_Section):
    """The LLM gateway: its chain of backends, timeouts, retries and circuit breakers (docs/llm.md)."""

    #: Backends tried in order for a model, each ``{name, type, ...}``: ``type = "offline"`` (the
    #: built-in model) or ``"openai"`` (any OpenAI-compatible endpoint: ``base_url``, ``models``,
    #: ``api_key_secret``...). An entry with a ``base_url`` and no type is ``openai``.
    backends: list[BackendSelection] = [BackendSelection(type="offline", name="offline")]
    #: The model in-process callers (agents, ``shopops llm chat``) ask for unless told otherwise.
    default_model: str = "shopops-offline"
    #: Read timeout of one upstream attempt, and connect timeout (a backend's own options override).
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    #: Retries of an upstream after a connection failure or a 5xx, with exponential back-off.
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.2, ge=0)
    #: Failures in a row that open a backend's circuit, and how long it stays open.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, ge=0)

    @field_validator("backends", mode="before")
    @classmethod
    def _type_by_options(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                {"type": "openai" if "base_url" in v else "offline", **v}
                if isinstance(v, dict) and "type" not in v
                else v
                for v in value
            ]
        return value


class CatalogSettings(_Section):
    """The data catalog and lineage (docs/dataops.md#catalog-and-lineage)."""

    #: ``{type = "sqlite"}`` (default, ``$SHOPOPS_HOME/catalog/catalog.db``) or
    #: ``{type = "postgres", dsn = ...}`` to share one catalog between processes.
    store: BackendSelection = BackendSelection(type="sqlite")
    #: Where OpenLineage events go: ``{type = "file"}`` (default, ``$SHOPOPS_HOME/catalog/openlineage``),
    #: ``{type = "http", url = "http://marquez:5000"}`` (Marquez; DataHub: set ``endpoint``) or
    #: ``{type = "none"}``.
    openlineage: BackendSelection = BackendSelection(type="file")
    #: OpenLineage namespace of the platform's jobs (and of datasets with no store of their own).
    namespace: str = Field(default="shopops", min_length=1)
    #: Folder of the data contracts (default: ``quality.contracts_dir``, else ./contracts, else the
    #: source checkout's contracts/).
    contracts_dir: Path | None = None
    #: Owner of datasets no contract or registration names.
    default_owner: str = Field(default="data-platform", min_length=1)
    #: ``shopops up`` registers the platform's topics, schemas, tables and contracts at start.
    sync_on_start: bool = True
    #: After a failed send, queued OpenLineage events are retried after this long.
    retry_interval_s: float = Field(default=30.0, ge=0)

    @field_validator("store", mode="before")
    @classmethod
    def _catalog_store_by_options(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "postgres" if "dsn" in value else "sqlite", **value}
        return value

    @field_validator("openlineage", mode="before")
    @classmethod
    def _transport_by_options(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "http" if "url" in value else "file", **value}
        return value


class QualitySettings(_Section):
    """Data contracts (ODCS files) and their checks: micro-batches in the lake, whole tables on a schedule."""

    #: Folder of the ``*.odcs.yaml`` contracts (default: ./contracts, else the source checkout's contracts/).
    contracts_dir: Path | None = None
    #: Results store: ``{type = "sqlite"}`` (default, $SHOPOPS_HOME/quality/results.db) or
    #: ``postgres`` (``dsn``).
    store: BackendSelection = BackendSelection(type="sqlite")
    #: Failing rows kept per check and run (keys and reasons).
    sample_failures: int = Field(default=100, ge=0, le=100_000)
    #: Where scheduled whole-table checks read datasets: ``silver`` (the lake), ``parquet`` or ``events``.
    source: Literal["silver", "parquet", "events"] = "silver"
    #: Folder of ``<dataset>.parquet`` files for ``source = "parquet"``.
    parquet_dir: Path | None = None
    #: Seconds between scheduled whole-table runs (``shopops up``).
    check_interval_s: float = Field(default=3600.0, gt=0)
    #: Also store micro-batch runs in which every row passed (their metrics are exported either way).
    record_passing_batches: bool = True

    @field_validator("store", mode="before")
    @classmethod
    def _embedded_store_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "postgres" if "dsn" in value else "sqlite", **value}
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
    reservations: ReservationSettings = ReservationSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    schemas: SchemaSettings = SchemaSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()
    lake: LakeSettings = LakeSettings()
    governance: GovernanceSettings = GovernanceSettings()
    quality: QualitySettings = QualitySettings()
    catalog: CatalogSettings = CatalogSettings()
    ml: MlSettings = MlSettings()
    ray: RaySettings = RaySettings()
    agents: AgentsSettings = AgentsSettings()
    rag: RagSettings = RagSettings()
    llm: LlmSettings = LlmSettings()

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
