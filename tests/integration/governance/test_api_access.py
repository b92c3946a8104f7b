"""Every route behind authentication and Cedar: the roles-by-routes matrix, personal-data masking
and residency, revocation, HTTP Basic for Confluent clients, and routers added later."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from tests.support.governance import bearer

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform
from shopops.core.settings import Settings
from shopops.events.debezium import Op, encode_key, encode_value
from shopops.governance.model import MASK

SERVICE_ROLES = {"checkout", "schema_client"}
ROLES = ["admin", "operator", "support", "finance", "ml_engineer", "checkout", "schema_client", "auditor"]
CUSTOMER = {
    "customer_id": "vn-c-0000001",
    "email": "customer1@vn.example.com",
    "phone": "+8412345678",
    "full_name": "Lan Nguyen",
    "city": "Hanoi",
    "segment": "regular",
}
ORDER = {"order_id": "vn-o-1", "customer_id": "vn-c-0000001", "ip": "10.0.0.1", "card_fingerprint": "fp-1"}


@dataclass
class World:
    platform: Platform
    client: TestClient
    keys: dict[str, str]

    def as_role(self, role: str) -> dict[str, str]:
        return bearer(self.keys[role])


def _produce(platform: Platform, topic: str, row: dict[str, Any], table: str) -> None:
    source = {"connector": "postgresql", "db": topic.split(".")[1], "table": table, "ts_ms": 0}
    platform.event_log.produce(
        topic,
        encode_value(Op.CREATE, None, row, source, 1_000),
        key=encode_key({"id": 1}),
        timestamp_ms=1_000,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home: Path = tmp_path_factory.mktemp("governed")
    platform = build_platform(Settings(home=home))
    platform.inventory.set_stock("TEE-M", "hcm-1", 5)
    for region in ("vn", "sg"):
        platform.event_log.create_topic(f"{region}.shop.customers", 1)
        _produce(
            platform, f"{region}.shop.customers", {**CUSTOMER, "customer_id": f"{region}-c-1"}, "customers"
        )
    _produce(platform, "vn.shop.orders", ORDER, "orders")
    platform.event_log.flush()
    governance = platform.governance
    keys = {
        role: governance.create_key(
            kind="service" if role in SERVICE_ROLES else "user",
            name=f"{role.replace('_', '-')}-1",
            roles=[role],
            home_region="vn",
        ).token
        for role in ROLES
    }
    keys["finance-sg"] = governance.create_key(
        kind="user", name="finance-sg", roles=["finance"], home_region="sg"
    ).token
    app = create_app(platform=platform)
    later = APIRouter(prefix="/v1/added-later")

    @later.get("/things")
    def things() -> list[str]:
        return ["thing"]

    app.include_router(later)
    with TestClient(app) as client:
        yield World(platform, client, keys)
    platform.close()


RESERVE = {"lines": [{"sku": "TEE-M", "warehouse": "hcm-1", "quantity": 1}], "ttl_ms": 60_000}
STOCK = {"sku": "TEE-M", "warehouse": "hcm-1", "on_hand": 5, "reason": "count"}

# (method, path, body, a role that may, a role that may not)
MATRIX = [
    ("GET", "/v1/events/topics", None, "support", "checkout"),
    ("GET", "/v1/events/topics/vn.shop.orders/records", None, "finance", "schema_client"),
    ("GET", "/v1/events/groups", None, "operator", "checkout"),
    ("GET", "/v1/inventory/TEE-M", None, "checkout", "finance"),
    ("PUT", "/v1/inventory/stock", STOCK, "operator", "support"),
    ("POST", "/v1/reservations", RESERVE, "checkout", "support"),
    ("GET", "/schema-registry/subjects", None, "schema_client", "support"),
    ("GET", "/", None, "support", "checkout"),
    ("GET", "/docs", None, "finance", "schema_client"),
    ("GET", "/openapi.json", None, "auditor", "checkout"),
    ("GET", "/v1/auth/whoami", None, "checkout", None),
    ("GET", "/v1/auth/keys", None, "admin", "operator"),
    ("GET", "/v1/policy", None, "auditor", "support"),
    ("POST", "/v1/policy/reload", None, "admin", "auditor"),
    ("GET", "/v1/audit/verify", None, "auditor", "finance"),
    ("GET", "/v1/added-later/things", None, "admin", "operator"),
]


def _call(world: World, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    extra = {"Idempotency-Key": f"k-{len(headers)}-{id(body)}"} if path == "/v1/reservations" else {}
    return world.client.request(method, path, json=body, headers={**headers, **extra})


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "denied"), MATRIX, ids=[f"{m} {p}" for m, p, *_ in MATRIX]
)
def test_each_route_answers_401_403_and_2xx(
    world: World, method: str, path: str, body: Any, allowed: str, denied: str | None
) -> None:
    unauthenticated = _call(world, method, path, body, {})
    assert unauthenticated.status_code == 401, unauthenticated.text
    wrong = _call(world, method, path, body, bearer("sk_0123456789ab_notarealkeynotarealkeynotarealkey"))
    assert wrong.status_code == 401
    if denied is not None:
        refused = _call(world, method, path, body, world.as_role(denied))
        assert refused.status_code == 403, refused.text
        assert "may not" in refused.text
    ok = _call(world, method, path, body, world.as_role(allowed))
    assert ok.status_code in (200, 201), ok.text


def test_health_readiness_and_metrics_stay_open(world: World) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert world.client.get(path).status_code == 200


def _customer(world: World, role: str, region: str = "vn") -> dict[str, Any]:
    records = world.client.get(
        f"/v1/events/topics/{region}.shop.customers/records", headers=world.as_role(role)
    ).json()
    after: dict[str, Any] = records[0]["value"]["after"]
    return after


def test_personal_data_is_masked_for_support_and_clear_for_finance_in_its_region(world: World) -> None:
    support = _customer(world, "support")
    assert (support["email"], support["phone"], support["full_name"]) == (MASK, MASK, MASK)
    assert support["city"] == "Hanoi"  # untagged columns stay
    finance = _customer(world, "finance")
    assert finance["email"] == CUSTOMER["email"]
    assert finance["full_name"] == CUSTOMER["full_name"]
    # Residency: a finance user of sg sees vn customers masked, and sg customers in clear.
    assert _customer(world, "finance-sg")["email"] == MASK
    assert _customer(world, "finance-sg", region="sg")["email"] == CUSTOMER["email"]


def test_secret_columns_are_removed_and_the_reads_are_audited(world: World) -> None:
    orders = world.client.get(
        "/v1/events/topics/vn.shop.orders/records", headers=world.as_role("finance")
    ).json()
    after = orders[0]["value"]["after"]
    assert "card_fingerprint" not in after
    assert after["ip"] == ORDER["ip"]
    records = list(world.platform.governance.audit.records())
    data = [r for r in records if r.kind == "data" and r.resource == 'Dataset::"shop.orders"']
    assert data
    assert data[-1].details["masked"] == ["card_fingerprint"]
    assert world.platform.governance.verify_audit().ok


def test_http_basic_with_the_key_as_password_works_for_the_registry(world: World) -> None:
    answer = world.client.get("/schema-registry/subjects", auth=("producer", world.keys["schema_client"]))
    assert answer.status_code == 200
    refused = world.client.get("/schema-registry/subjects")
    assert refused.status_code == 401
    assert refused.json()["error_code"] == 40101
    assert refused.headers["www-authenticate"].startswith("Basic")


def test_a_revoked_key_stops_working_at_once(world: World) -> None:
    governance = world.platform.governance
    issued = governance.create_key(kind="user", name="leaver", roles=["support"], home_region="vn")
    headers = bearer(issued.token)
    assert world.client.get("/v1/events/topics", headers=headers).status_code == 200
    governance.revoke_key(issued.record.key_id)
    refused = world.client.get("/v1/events/topics", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["message"]


def test_the_portal_login_sets_a_session_cookie(world: World) -> None:
    client = world.client
    redirect = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    assert redirect.status_code == 303
    assert redirect.headers["location"] == "/login?next=%2F"
    bad = client.post("/login", data={"key": "nope", "next": "/"}, follow_redirects=False)
    assert bad.status_code == 401
    evil = client.post(
        "/login", data={"key": world.keys["support"], "next": "//evil.example"}, follow_redirects=False
    )
    assert evil.headers["location"] == "/"
    cookie = evil.cookies.get("shopops_session")
    assert cookie
    assert "httponly" in evil.headers["set-cookie"].lower()
    client.cookies.set("shopops_session", cookie)
    assert client.get("/").status_code == 200
    client.cookies.set("shopops_session", cookie[:-2] + "00")
    assert client.get("/v1/events/topics").status_code == 401
    client.cookies.clear()


def test_explain_says_why(world: World) -> None:
    answer = world.client.post(
        "/v1/policy/explain",
        json={
            "principal": {"name": "sam", "roles": ["support"], "home_region": "vn"},
            "action": "write",
            "resource": 'Api::"inventory"',
            "context": {"method": "PUT", "path": "/v1/inventory/stock"},
        },
        headers=world.as_role("auditor"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "deny"
    assert "default deny" in body["explanation"]
    assert any(p["id"] == "operators-run-the-platform" for p in body["policies"])
