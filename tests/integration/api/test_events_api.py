"""The event-log routes over a real SQLite event log, through FastAPI's test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.support.governance import admin_headers

from shopops.api.app import create_app
from shopops.bootstrap import build_platform
from shopops.core.settings import Settings
from shopops.events.debezium import Op, encode_key, encode_value

SOURCE = {"connector": "postgresql", "db": "shop", "table": "orders", "ts_ms": 0}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    platform = build_platform(Settings(home=tmp_path))
    log = platform.event_log
    log.create_topic("vn.shop.orders", 2)
    for i in range(6):
        log.produce(
            "vn.shop.orders",
            encode_value(Op.CREATE, None, {"id": i, "total": f"{i}.00"}, SOURCE, 1_000 + i),
            key=encode_key({"id": i}),
            timestamp_ms=1_000 + i,
        )
    log.produce("vn.shop.orders", b"not json", key=encode_key({"id": 99}), timestamp_ms=2_000)
    log.produce("vn.shop.orders", None, key=encode_key({"id": 3}), timestamp_ms=3_000)
    log.flush()
    with log.consumer("reader", ["vn.shop.orders"]) as consumer:
        got = []
        while len(got) < 4:
            got += consumer.poll(4 - len(got), timeout_s=2)
        consumer.commit()
    headers = admin_headers(platform.governance)
    with TestClient(create_app(platform=platform), headers=headers) as test_client:
        yield test_client
    platform.close()


def test_health_ready_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["event_log"]["topics"] == 1
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "shopops_http_requests_total" in metrics.text


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/events/topics",
        "/v1/events/topics/{topic}/records",
        "/v1/events/groups",
        "/v1/events/groups/{group}/lag",
    ):
        assert path in paths


def test_topics_and_records(client: TestClient) -> None:
    assert client.get("/v1/events/topics").json() == [
        {"name": "vn.shop.orders", "partitions": 2, "messages": 8}
    ]
    assert client.get("/v1/events/topics", params={"prefix": "sg."}).json() == []
    records = client.get("/v1/events/topics/vn.shop.orders/records", params={"limit": 3}).json()
    assert [r["timestamp_ms"] for r in records] == [1_005, 2_000, 3_000]
    assert records[0]["op"] == "c"
    assert records[0]["value"]["after"] == {"id": 5, "total": "5.00"}
    assert records[1]["op"] is None
    assert "value: not valid JSON" in records[1]["error"]
    assert records[2]["op"] == "tombstone"
    assert records[2]["key"] == {"id": 3}


def test_lag(client: TestClient) -> None:
    assert client.get("/v1/events/groups").json() == ["reader"]
    rows = client.get("/v1/events/groups/reader/lag").json()
    assert sum(r["end_offset"] for r in rows) == 8
    assert sum(r["lag"] for r in rows) == 4


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/v1/events/topics/nope/records", 404, "topic 'nope' does not exist"),
        ("/v1/events/topics/vn.shop.orders/records?partition=5", 422, "partition 5 does not exist"),
        ("/v1/events/topics/vn.shop.orders/records?limit=0", 422, "limit"),
        ("/v1/events/topics/vn.shop.orders/records?limit=abc", 422, "limit"),
        ("/v1/events/groups/ghost/lag", 404, "consumer group 'ghost'"),
    ],
)
def test_errors_are_precise(client: TestClient, url: str, status: int, fragment: str) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert fragment in orjson.dumps(response.json()).decode()


def test_portal_overview(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "vn.shop.orders" in page.text
    assert "change events<b class=>8</b>" in page.text
