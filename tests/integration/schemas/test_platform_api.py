"""The registry mounted on the platform server at /schema-registry, beside the other routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from tests.support.governance import admin_headers

from shopops.api.app import create_app
from shopops.bootstrap import build_platform
from shopops.core.errors import ConfigError
from shopops.core.settings import Settings, load_settings

SCHEMA = orjson.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}).decode()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    platform = build_platform(Settings(home=tmp_path))
    with TestClient(create_app(platform=platform), headers=admin_headers(platform.governance)) as test_client:
        yield test_client
    platform.close()


def test_the_confluent_api_is_served_under_its_prefix(client: TestClient) -> None:
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    registered = client.post(
        "/schema-registry/subjects/vn.shop.orders-value/versions", json={"schema": SCHEMA}
    )
    assert registered.status_code == 200
    assert registered.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    schema_id = registered.json()["id"]
    assert client.get(f"/schema-registry/schemas/ids/{schema_id}").json() == {"schema": SCHEMA}
    assert client.get("/schema-registry/subjects").json() == ["vn.shop.orders-value"]
    missing = client.get("/schema-registry/subjects/nope/versions", headers=headers)
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40401)
    unknown = client.get("/schema-registry/no/such/route")
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, 404)
    # The platform's own routes still answer in the platform's format.
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/schema-registry/subjects/{subject}/versions" in client.get("/openapi.json").json()["paths"]


def test_a_misconfigured_registry_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schema store"):
        build_platform(Settings(home=tmp_path, schemas={"store": {"type": "cassandra"}}))
    with pytest.raises(ConfigError, match="url"):
        build_platform(Settings(home=tmp_path, schemas={"registry": {"type": "http"}}))
    with pytest.raises(ConfigError, match="subject_template"):
        load_settings(home=tmp_path, schemas={"drift": {"subject_template": "{table}-value"}})
    with pytest.raises(ConfigError, match="topics"):
        load_settings(home=tmp_path, schemas={"drift": {"topics": "vn.(unclosed"}})
