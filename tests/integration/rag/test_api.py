"""`/v1/rag/...` through the app: search with citations, stats, ingest, errors, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.integration.rag.conftest import Knowledge
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform


@pytest.fixture(scope="module")
def platform(knowledge: Knowledge) -> Iterator[Platform]:
    platform = build_platform(knowledge.settings)
    yield platform
    platform.close()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform=platform)) as client:
        yield client


def _as(platform: Platform, role: str) -> dict[str, str]:
    return bearer(key_for(platform.governance, role))


def test_support_searches_with_citations(client: TestClient, platform: Platform) -> None:
    response = client.post(
        "/v1/rag/search",
        json={"query": "Tôi có bao nhiêu ngày để trả hàng?", "k": 3, "audience": "customer"},
        headers=_as(platform, "support"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["passages"]) == 3
    first = body["passages"][0]
    assert first["source"] == "docs/knowledge/policies/refunds-and-returns.vi.md"
    assert first["heading_path"][0] == "Hoàn tiền và đổi trả hàng"
    assert first["citation"].startswith("docs/knowledge/policies/refunds-and-returns.vi.md > ")
    assert {p["audience"] for p in body["passages"]} == {"customer"}
    assert body["took_ms"] >= 0


@pytest.mark.parametrize("role", ["operator", "ml_engineer", "finance"])
def test_staff_roles_read_stats(client: TestClient, platform: Platform, role: str) -> None:
    response = client.get("/v1/rag/stats", headers=_as(platform, role))
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["points"] == stats["chunks"] > 100
    assert stats["files"] >= 30
    assert set(stats["by_lang"]) == {"en", "vi"}


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "refund", "k": 0},
        {"query": "refund", "k": 51},
        {"query": "refund", "lang": "english"},
        {"query": "refund", "audience": "everyone"},
        {"query": "refund", "mode": "magic"},
        {"query": "refund", "unexpected": 1},
        {"query": "   "},
    ],
)
def test_bad_requests_are_422(client: TestClient, platform: Platform, body: dict[str, object]) -> None:
    response = client.post("/v1/rag/search", json=body, headers=_as(platform, "support"))
    assert response.status_code == 422, response.text


def test_who_may_do_what(client: TestClient, platform: Platform) -> None:
    question = {"query": "refund"}
    assert client.post("/v1/rag/search", json=question).status_code == 401
    assert client.post("/v1/rag/search", json=question, headers=_as(platform, "checkout")).status_code == 403
    assert client.post("/v1/rag/ingest", json={}, headers=_as(platform, "support")).status_code == 403
    ingested = client.post("/v1/rag/ingest", json={}, headers=_as(platform, "operator"))
    assert ingested.status_code == 200, ingested.text
    report = ingested.json()
    assert report["embedded"] == 0
    assert report["unchanged"] > 100
