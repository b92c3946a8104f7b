"""The same scoring routes as a Ray Serve deployment (``ml.serving.ray_serve = true``).

Each replica builds what one platform process builds for serving — the feature store, the
champions (reloaded when the alias moves), the prediction log, and the governance middleware
(API keys and Cedar decisions) — from the settings it is given, and serves
``/v1/score/fraud``, ``/v1/predict/eta`` and ``/v1/score/status`` on Ray Serve's HTTP proxy.
Replicas scale with the cluster; the code path is the one ``shopops up`` serves in-process.
"""

from __future__ import annotations

from typing import Any

from shopops.core.logging import get_logger

log = get_logger(__name__)

APP_NAME = "shopops-ml"


def build_app(settings_data: dict[str, Any]) -> Any:
    """The FastAPI app a replica serves: governance in front of the scoring router."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from shopops.bootstrap import build_features, build_governance, build_serving
    from shopops.core.errors import ShopopsError
    from shopops.core.heap import settle_heap
    from shopops.core.settings import Settings
    from shopops.governance.api import GovernanceMiddleware
    from shopops.ml.serving.api import router

    settings = Settings(**settings_data)
    app = FastAPI(title="shopops ML serving")

    @app.exception_handler(ShopopsError)
    async def _error(_: Request, exc: ShopopsError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_dict())

    app.add_middleware(GovernanceMiddleware, login_path=None)
    app.include_router(router)
    features = build_features(settings)
    app.state.governance = build_governance(settings)
    app.state.features = features
    app.state.ml_serving = build_serving(settings, features).start()
    settle_heap("scoring replica built")
    return app


def deploy(settings: Any, *, replicas: int = 1, port: int | None = None) -> str:
    """Deploy the scoring app on the Ray cluster of ``ray.address``; returns its base URL."""
    import ray
    from ray import serve

    from shopops.core.errors import ConfigError

    if not settings.ray.address:
        raise ConfigError(
            "ml.serving.ray_serve needs a Ray cluster",
            hint="set ray.address (local, auto or ray://head:10001)",
        )
    if not ray.is_initialized():
        if settings.ray.address == "local":
            ray.init(num_cpus=settings.ray.num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=settings.ray.address, log_to_driver=False)
    http_port = port or settings.ml.serving.ray_serve_port
    serve.start(http_options={"host": settings.api.host, "port": http_port})
    # Python objects, not JSON: secrets stay secrets (JSON would write them out masked).
    settings_data = settings.model_dump()

    @serve.deployment(name="scoring", num_replicas=replicas, ray_actor_options={"num_cpus": 0.5})
    class Scoring:
        def __init__(self, settings_data: dict[str, Any]) -> None:
            self.app = build_app(settings_data)

        async def __call__(self, request: Any) -> Any:
            # Hand the request to the replica's own ASGI app (governance, router, handlers).
            from starlette.responses import Response

            scope = dict(request.scope)
            scope["app"] = self.app
            body = await request.body()
            sent: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    sent["status"] = message["status"]
                    sent["headers"] = message.get("headers", [])
                elif message["type"] == "http.response.body":
                    sent["body"] += message.get("body", b"")

            await self.app(scope, receive, send)
            headers = {k.decode(): v.decode() for k, v in sent["headers"] if k.lower() != b"content-length"}
            return Response(content=sent["body"], status_code=sent["status"], headers=headers)

    deployment: Any = Scoring  # the decorator returns a Deployment; its type is not visible to mypy
    serve.run(deployment.bind(settings_data), name=APP_NAME, route_prefix="/")
    url = f"http://{settings.api.host}:{http_port}"
    log.info("scoring deployed on Ray Serve", url=url, replicas=replicas)
    return url


def shutdown() -> None:
    from ray import serve

    serve.delete(APP_NAME)
