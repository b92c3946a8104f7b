"""The HTTP metrics middleware: requests counted by method, route template and status, timed."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from shopops.api.middleware import MetricsMiddleware


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("shopops_http_requests_total", labels) or 0.0


def _timed(method: str, route: str) -> float:
    labels = {"method": method, "route": route}
    return REGISTRY.get_sample_value("shopops_http_request_duration_seconds_count", labels) or 0.0


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "gone":
            raise HTTPException(status_code=404, detail="no such thing")
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken handler")

    app.add_middleware(MetricsMiddleware)
    return TestClient(app, raise_server_exceptions=False)


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    ok, missing, timed = (
        _count("GET", "/things/{thing_id}", "200"),
        _count("GET", "/things/{thing_id}", "404"),
        _timed("GET", "/things/{thing_id}"),
    )
    assert client.get("/things/a").status_code == 200
    assert client.get("/things/b").status_code == 200
    assert client.get("/things/gone").status_code == 404
    assert _count("GET", "/things/{thing_id}", "200") == ok + 2  # one series for every id
    assert _count("GET", "/things/{thing_id}", "404") == missing + 1
    assert _timed("GET", "/things/{thing_id}") == timed + 3


def test_unmatched_paths_and_failing_handlers_are_counted_too(client: TestClient) -> None:
    unmatched, failed = _count("GET", "unmatched", "404"), _count("GET", "/boom", "500")
    assert client.get("/nowhere").status_code == 404
    assert client.get("/boom").status_code == 500
    assert _count("GET", "unmatched", "404") == unmatched + 1
    assert _count("GET", "/boom", "500") == failed + 1
