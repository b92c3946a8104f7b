"""The demo world's first models: `shopops up` trains both and promotes them, in the background.

Start-up is not held up: the HTTP server answers at once, the scoring routes say no champion is
served yet until the first promotion, and the champion watcher picks the models up when their
alias moves. On a restart with champions already in the registry nothing is retrained.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shopops.core.logging import get_logger

if TYPE_CHECKING:
    from shopops.bootstrap import Platform
    from shopops.ml.serving.service import ServingService

log = get_logger(__name__)

#: The service account the demo promotes as (an ML engineer), approved by ``ml.promotion.demo_approver``.
DEMO_PRINCIPAL = "shopops-demo"


class DemoModels:
    """Ingest the lake, materialize features, train fraud and ETA, promote both: one thread."""

    def __init__(self, platform: Platform, features: Any, serving: ServingService | None = None) -> None:
        self.platform = platform
        self.features = features
        self.serving = serving
        self.done = threading.Event()
        self.error: str | None = None
        self.versions: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ml-demo", daemon=True)

    def start(self) -> DemoModels:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        try:
            self.run()
        except Exception as exc:  # the platform keeps serving; the reason is in the log
            self.error = str(exc)
            log.error("demo models not trained", error=str(exc))
        finally:
            self.done.set()

    def run(self) -> None:
        from shopops.bootstrap import build_promotion, build_tracking, build_training
        from shopops.governance.model import make_principal
        from shopops.ml.tracking.service import CHAMPION

        settings = self.platform.settings
        tracking = build_tracking(settings)
        pending = [uc for uc in ("fraud", "eta") if tracking.alias_version(uc, CHAMPION) is None]
        if not pending:
            return
        if settings.ml.training.source == "features":
            self._prepare_features()
        if self._stop.is_set():
            return
        training = build_training(settings, self.platform.event_log, features=self.features)
        promotion = build_promotion(settings, self.platform.governance, self._catalog())
        region = settings.governance.admin_region or settings.simulator.regions[0]
        principal = make_principal("service", DEMO_PRINCIPAL, ["ml_engineer"], region)
        for use_case in pending:
            if self._stop.is_set():
                return
            report = training.train(use_case, seed=settings.ml.training.seed)
            log.info(
                "demo model trained",
                model=use_case,
                version=report.version,
                truth_metric=report.truth_metric,
                truth_ratio=round(report.truth_ratio, 4),
            )
            promotion.promote(use_case, report.version, principal, [settings.ml.promotion.demo_approver])
            self.versions[use_case] = report.version
        if self.serving is not None:
            self.serving.slots.refresh()  # serve now rather than at the next poll

    def _prepare_features(self) -> None:
        """Catch the lake up with the event log, then materialize the feature store from it."""
        from shopops.bootstrap import build_lake_ingestor

        settings = self.platform.settings
        # Exactly once even beside the running lake worker: a commit race is retried from the
        # position the winner stored.
        build_lake_ingestor(settings, self.platform.event_log, checks=settings.lake.checks).run_once()
        self.features.materialize()

    def _catalog(self) -> Any:
        try:
            return self.platform.catalog
        except Exception as exc:  # the catalog is optional for promotion
            log.warning("catalog unavailable: model cards not linked", error=str(exc))
            return None


class MlRuntime:
    """What `shopops up` runs for MLOps: the serving service and, on a demo seed, the demo models."""

    def __init__(
        self, serving: ServingService | None, demo: DemoModels | None, *, ray_serve: bool = False
    ) -> None:
        self.serving = serving
        self.demo = demo
        self.ray_serve = ray_serve

    def stop(self) -> None:
        if self.demo is not None:
            self.demo.stop()
        if self.ray_serve:
            try:
                from shopops.ml.serving.ray_serve import shutdown

                shutdown()
            except Exception as exc:  # Ray may already be gone at shutdown
                log.warning("Ray Serve deployment not removed", error=str(exc))
        if self.serving is not None:
            self.serving.close()


def start_ml(platform: Platform, app: Any, *, demo: bool) -> MlRuntime:
    """Serve the champions from ``app`` (loaded in the background) and train the demo's models."""
    from shopops.bootstrap import build_features, build_serving

    settings = platform.settings
    features = getattr(app.state, "features", None)
    if features is None:
        features = build_features(settings)
        app.state.features = features
    serving = None
    if settings.ml.serving.enabled:
        serving = build_serving(settings, features).start(wait=False)
        app.state.ml_serving = serving
    models = None
    if demo and settings.ml.training.demo:
        models = DemoModels(platform, features, serving).start()
    ray_serve = None
    if settings.ml.serving.ray_serve:
        # Deployed in the background: starting Ray and its replicas takes tens of seconds.
        ray_serve = threading.Thread(
            target=_deploy_ray_serve, args=(settings,), name="ray-serve", daemon=True
        )
        ray_serve.start()
    return MlRuntime(serving, models, ray_serve=ray_serve is not None)


def _deploy_ray_serve(settings: Any) -> None:
    from shopops.ml.serving.ray_serve import deploy

    try:
        deploy(settings)
    except Exception as exc:  # the in-process routes keep serving
        log.error("Ray Serve deployment failed", error=str(exc))
