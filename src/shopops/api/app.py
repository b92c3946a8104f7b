"""FastAPI app factory: health, readiness, Prometheus metrics, OpenAPI docs and the v1 routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shopops import __version__
from shopops.bootstrap import Platform, build_platform
from shopops.core.errors import ShopopsError
from shopops.core.heap import settle_heap
from shopops.core.logging import get_logger
from shopops.core.settings import Settings, load_settings


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """Build the platform's HTTP app. ``platform`` lets a caller share already-open backends."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = platform is None
        app.state.platform = platform or build_platform(settings or load_settings())
        # Keys, policies and secrets open now: a malformed policy or a missing secret stops start-up.
        app.state.governance = app.state.platform.governance
        settle_heap("app start")
        banner = getattr(app.state, "banner", None)
        if banner:
            get_logger("shopops").info(banner)
        try:
            yield
        finally:
            if owned:
                app.state.platform.close()

    app = FastAPI(
        title="shopops",
        version=__version__,
        description="AI/ML/Data/Agent-Ops platform of an ecommerce company. See docs/api.md.",
        lifespan=lifespan,
    )

    @app.exception_handler(ShopopsError)
    async def _shopops_error(_: Request, exc: ShopopsError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_dict())

    from shopops.api.middleware import MetricsMiddleware
    from shopops.governance.api import GovernanceMiddleware

    # Authentication and the policy decision of every request (before routing, so routers added
    # later are covered); added before the metrics middleware so 401s and 403s are counted too.
    # Both are pure ASGI: Starlette's BaseHTTPMiddleware costs more than a scoring request.
    app.add_middleware(GovernanceMiddleware)
    app.add_middleware(MetricsMiddleware)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], summary="Readiness: the backends answer")
    def readyz(request: Request) -> JSONResponse:
        checks: dict[str, Any] = {}
        ok = True
        platform = request.app.state.platform
        probes: dict[str, Callable[[], dict[str, Any]]] = {
            "event_log": lambda: {"topics": len(platform.event_log.list_topics())},
            "inventory": lambda: {"outbox_pending": platform.inventory.store.pending_outbox()},
        }
        for name, probe in probes.items():
            try:
                checks[name] = {"status": "ok", **probe()}
            except Exception as exc:  # readiness reports any backend failure instead of raising
                ok = False
                checks[name] = {"status": "error", "error": str(exc)}
        return JSONResponse(
            status_code=200 if ok else 503,
            content={"status": "ok" if ok else "unavailable", "checks": checks},
        )

    @app.get("/metrics", tags=["health"], summary="Prometheus exposition")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    from shopops.agents.api import router as agents_router
    from shopops.catalog.api import router as catalog_router
    from shopops.events.api import router as events_router
    from shopops.governance.api import login_router
    from shopops.governance.api import router as governance_router
    from shopops.inventory.api import inventory as inventory_router
    from shopops.inventory.api import reservations as reservations_router
    from shopops.llm.api import router as llm_router
    from shopops.ml.features.api import router as features_router
    from shopops.ml.serving.api import router as serving_router
    from shopops.portal.routes import router as portal_router
    from shopops.quality.api import router as quality_router
    from shopops.rag.api import router as rag_router
    from shopops.reconciliation.api import router as reconciliation_router
    from shopops.schemas.api import PLATFORM_PREFIX
    from shopops.schemas.api import router as schema_registry_router

    # FastAPI tries routers in the order they are included, every route of each: the online
    # scoring routes (the highest request rate, fixed paths no other router uses) come first.
    app.include_router(serving_router)
    app.include_router(events_router)
    app.include_router(reservations_router)
    app.include_router(inventory_router)
    app.include_router(reconciliation_router)
    app.include_router(quality_router)
    app.include_router(catalog_router)
    app.include_router(features_router)
    app.include_router(llm_router)
    app.include_router(agents_router)
    app.include_router(rag_router)
    # The Confluent Schema Registry API: clients use http://host:port/schema-registry as their URL.
    app.include_router(schema_registry_router, prefix=PLATFORM_PREFIX)
    app.include_router(governance_router)
    app.include_router(login_router)
    app.include_router(portal_router)
    return app
