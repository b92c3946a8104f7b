"""One handle on MLflow's tracking store and model registry, configured from settings.

Everything goes through :class:`mlflow.tracking.MlflowClient` bound to the configured URIs (never
the process-global fluent API), so several stores can be open in one process (tests, a server
serving while a trainer registers). Defaults are the embedded profile: SQLite at
``$SHOPOPS_HOME/ml/mlflow.db`` and artifacts under ``$SHOPOPS_HOME/ml/artifacts``; a PostgreSQL
URI (``postgresql+psycopg://...``), an MLflow server (``http://...``) and ``s3://`` artifacts are
configuration only.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shopops.core.errors import BackendUnavailableError, ConfigError, NotFoundError
from shopops.core.logging import get_logger

log = get_logger(__name__)

#: The alias the serving layer loads and promotion moves.
CHAMPION = "champion"
#: Registered-model tag holding the champion versions in order (the last one is current).
HISTORY_TAG = "shopops.champion_history"

# MLflow phones home unless told not to; nothing here may reach the internet.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Local SQLite/PostgreSQL stores: MLflow would otherwise log every schema migration at INFO.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# Downloads are a few small files: no tqdm bars in CLI output and server logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version as the platform sees it."""

    name: str
    version: int
    run_id: str
    source: str
    created_ms: int
    aliases: tuple[str, ...]
    tags: dict[str, str]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "created_ms": self.created_ms,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
            "description": self.description,
        }


def default_uris(home: Path, uri: str | None, artifact_location: str | None) -> tuple[str, str]:
    """The tracking URI and artifact root the settings mean (embedded defaults under ``home``)."""
    ml = home / "ml"
    if uri is None or artifact_location is None:
        ml.mkdir(parents=True, exist_ok=True)
    tracking = uri or f"sqlite:///{(ml / 'mlflow.db').resolve()}"
    artifacts = artifact_location or (ml / "artifacts").resolve().as_uri()
    return tracking, artifacts.rstrip("/")


class Tracking:
    """Runs, artifacts, registered models and aliases on one MLflow store."""

    def __init__(
        self,
        uri: str,
        artifact_root: str,
        *,
        experiment_prefix: str = "shopops",
        s3_endpoint_url: str | None = None,
    ) -> None:
        if s3_endpoint_url:
            # boto3 (MLflow's S3 artifact repository) reads the endpoint from the environment only.
            os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint_url
        if artifact_root.startswith("s3://") and not (
            s3_endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ACCESS_KEY_ID")
        ):
            log.warning("s3 artifacts without an endpoint or AWS credentials in the environment")
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.artifact_root = artifact_root
        self.experiment_prefix = experiment_prefix
        self._lock = threading.Lock()
        self._experiments: dict[str, str] = {}
        try:
            self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        except Exception as exc:  # MLflow raises its own errors for a store it cannot open
            raise BackendUnavailableError(
                f"cannot open the MLflow store at {_redact(uri)}: {exc}",
                hint="check ml.tracking.uri (docs/configuration.md); PostgreSQL must be reachable",
            ) from exc

    @classmethod
    def from_settings(cls, settings: Any) -> Tracking:
        """The store named by ``settings.ml.tracking`` (defaults under ``settings.home``)."""
        cfg = settings.ml.tracking
        uri, artifacts = default_uris(settings.home, cfg.uri, cfg.artifact_location)
        return cls(
            uri, artifacts, experiment_prefix=cfg.experiment_prefix, s3_endpoint_url=cfg.s3_endpoint_url
        )

    # --- experiments and runs ---------------------------------------------------------------------

    def experiment_id(self, use_case: str) -> str:
        """The experiment of a use case, created on first use with its artifact location."""
        name = f"{self.experiment_prefix}-{use_case}"
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            found = self._call(self.client.get_experiment_by_name, name)
            if found is not None:
                experiment_id = str(found.experiment_id)
            else:
                try:
                    experiment_id = str(
                        self.client.create_experiment(name, artifact_location=f"{self.artifact_root}/{name}")
                    )
                except Exception:
                    # Another process created it between our lookup and our create.
                    again = self._call(self.client.get_experiment_by_name, name)
                    if again is None:
                        raise
                    experiment_id = str(again.experiment_id)
            self._experiments[name] = experiment_id
            return experiment_id

    @contextmanager
    def run(self, use_case: str, run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[str]:
        """A run that ends ``FINISHED`` when the block completes and ``FAILED`` when it raises."""
        run = self._call(
            self.client.create_run, self.experiment_id(use_case), run_name=run_name, tags=dict(tags or {})
        )
        run_id: str = run.info.run_id
        try:
            yield run_id
        except BaseException:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        self.client.set_terminated(run_id, status="FINISHED")

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Parameters, metrics and tags in one batch (MLflow caps a batch; split to be safe)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        p = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
        m = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        t = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
        for i in range(0, max(len(p), len(m), len(t)), 100):
            self._call(
                self.client.log_batch,
                run_id,
                metrics=m[i : i + 100],
                params=p[i : i + 100],
                tags=t[i : i + 100],
            )

    def log_files(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self._call(self.client.log_artifacts, run_id, str(local_dir), artifact_path)

    def run_info(self, run_id: str) -> Any:
        return self._call(self.client.get_run, run_id)

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        """Copy a run artifact (file or folder) to ``dst``; missing ones raise :class:`NotFoundError`."""
        dst.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.client.download_artifacts(run_id, path, str(dst)))
        except Exception as exc:
            raise NotFoundError(
                f"run {run_id} has no artifact {path!r} ({exc})",
                hint="the run may predate this artifact or its store is unreachable; retrain the model",
            ) from exc

    def read_json(self, run_id: str, path: str) -> Any:
        with tempfile.TemporaryDirectory(prefix="shopops-ml-") as tmp:
            local = self.download(run_id, path, Path(tmp))
            return orjson.loads(local.read_bytes())

    # --- registry -------------------------------------------------------------------------------

    def register(
        self, name: str, run_id: str, artifact_path: str, *, tags: Mapping[str, str], description: str
    ) -> ModelVersionInfo:
        """A new version of ``name`` from the run's ``artifact_path`` (the registered model is made once)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name, description=f"shopops {name} model")
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise BackendUnavailableError(f"cannot register model {name}: {exc}") from exc
        run = self.run_info(run_id)
        mv = self._call(
            self.client.create_model_version,
            name,
            source=f"{run.info.artifact_uri}/{artifact_path}",
            run_id=run_id,
            tags=dict(tags),
            description=description,
        )
        return self.version(name, int(mv.version))

    def model_names(self) -> list[str]:
        return sorted(m.name for m in self._call(self.client.search_registered_models, max_results=1000))

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of ``name``, newest first ([] for an unknown model)."""
        found = self._call(self.client.search_model_versions, f"name = '{_quote(name)}'", max_results=10000)
        infos = [self._info(mv) for mv in found]
        return sorted(infos, key=lambda v: v.version, reverse=True)

    def version(self, name: str, version: int) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            known = [v.version for v in self.versions(name)]
            raise NotFoundError(
                f"model {name!r} has no version {version}",
                hint=f"known versions: {', '.join(map(str, known))}" if known else "`shopops models list`",
            ) from exc
        return self._info(mv)

    def alias_version(self, name: str, alias: str = CHAMPION) -> int | None:
        """The version ``alias`` points at, or ``None`` when it points nowhere (or the model is unknown)."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            text = str(exc)
            if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower() or "does not exist" in text:
                return None
            raise BackendUnavailableError(f"cannot read alias {alias} of {name}: {exc}") from exc
        return int(mv.version)

    def set_alias(self, name: str, version: int, alias: str = CHAMPION) -> None:
        self._call(self.client.set_registered_model_alias, name, alias, str(version))

    def champion_history(self, name: str) -> list[int]:
        model = self._call(self.client.get_registered_model, name)
        raw = (model.tags or {}).get(HISTORY_TAG)
        return [int(v) for v in orjson.loads(raw)] if raw else []

    def set_champion_history(self, name: str, history: list[int]) -> None:
        # The tag is bounded: the last 100 champions are plenty to roll back through.
        self._call(
            self.client.set_registered_model_tag, name, HISTORY_TAG, orjson.dumps(history[-100:]).decode()
        )

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(self.client.set_model_version_tag, name, str(version), key, value)

    def _info(self, mv: Any) -> ModelVersionInfo:
        return ModelVersionInfo(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or "",
            source=mv.source or "",
            created_ms=int(mv.creation_timestamp or 0),
            aliases=tuple(getattr(mv, "aliases", None) or ()),
            tags=dict(mv.tags or {}),
            description=mv.description or "",
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, NotFoundError):
            raise
        except Exception as exc:
            from mlflow.exceptions import MlflowException

            if isinstance(exc, MlflowException):
                raise
            raise BackendUnavailableError(
                f"the MLflow store at {_redact(self.uri)} failed: {exc}",
                hint="check that the tracking store and artifact store are reachable (ml.tracking.*)",
            ) from exc


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _redact(uri: str) -> str:
    """A URI without its password, for messages and logs."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else uri
    return uri
