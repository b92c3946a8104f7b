"""The registry on its own: ``shopops schemas serve --port 8081`` (the Confluent API at the root)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shopops import __version__
from shopops.core.settings import Settings, load_settings
from shopops.governance.api import GovernanceMiddleware
from shopops.governance.service import GovernanceService
from shopops.schemas.api import router
from shopops.schemas.service import SchemaRegistry


def open_registry(settings: Settings) -> SchemaRegistry:
    """The built-in registry on the configured store."""
    from shopops.schemas.backends import open_schema_store
    from shopops.schemas.model import CompatibilityLevel

    settings.home.mkdir(parents=True, exist_ok=True)
    section = settings.schemas
    return SchemaRegistry(
        open_schema_store(section.store, settings.home),
        CompatibilityLevel.parse(section.default_compatibility),
        id_cache_ttl_s=section.id_cache_ttl_s,
        max_request_bytes=section.max_request_bytes,
    )


def create_registry_app(
    settings: Settings | None = None,
    registry: SchemaRegistry | None = None,
    governance: GovernanceService | None = None,
) -> FastAPI:
    """An app serving only the schema registry. ``registry`` and ``governance`` let a caller share
    open ones. Every route but /healthz and /metrics needs an API key (HTTP Basic works, with the
    key as password: Confluent clients' ``basic.auth.user.info``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from shopops.bootstrap import build_governance

        owned = registry is None
        owned_governance = governance is None
        resolved = settings or load_settings()
        app.state.schema_registry = registry or open_registry(resolved)
        try:
            app.state.governance = governance or build_governance(resolved)
        except BaseException:
            if owned:
                app.state.schema_registry.close()
            raise
        try:
            yield
        finally:
            if owned:
                app.state.schema_registry.close()
            if owned_governance:
                app.state.governance.close()

    app = FastAPI(
        title="shopops schema registry",
        version=__version__,
        description="The Confluent Schema Registry REST API. See docs/schemas.md.",
        lifespan=lifespan,
    )

    # Served at the root, every path is the registry's: one area, Confluent-format refusals.
    app.add_middleware(
        GovernanceMiddleware,
        area_for_path=lambda _: "schema-registry",
        login_path=None,
        confluent_paths=lambda _: True,
    )

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", tags=["health"], summary="Prometheus exposition")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # Last: the router ends with a catch-all that answers unknown paths in the Confluent format.
    app.include_router(router)
    return app
