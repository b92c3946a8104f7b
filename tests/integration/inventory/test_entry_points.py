"""The inventory HTTP routes and CLI commands over a real SQLite store.

The routes are mounted on the platform's app factory (its error handler turns the error tree into
status codes); the CLI commands run through Typer's runner. Both find the service at
``platform.inventory``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.integration.inventory.helpers import TEST_LIMITS
from tests.support.governance import admin_headers, open_governance
from typer.testing import CliRunner

from shopops.api.app import create_app
from shopops.core.registry import BackendSelection
from shopops.core.settings import ReservationSettings
from shopops.events.backends import open_event_log
from shopops.inventory import cli as inventory_cli
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.service import InventoryService


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Any]:
    event_log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path)
    store = open_reservation_store(BackendSelection(type="sqlite"), home=tmp_path)
    svc = InventoryService(store, event_log, limits=TEST_LIMITS)
    svc.set_stock("TEE-M", "hcm-1", 2)
    svc.set_stock("TEE-M", "hn-1", 5)
    governance = open_governance(tmp_path)
    yield SimpleNamespace(event_log=event_log, inventory=svc, governance=governance, close=lambda: None)
    governance.close()
    svc.close()
    event_log.close()


@pytest.fixture
def client(platform: Any) -> Iterator[TestClient]:
    app = create_app(platform=platform)
    with TestClient(app, headers=admin_headers(platform.governance)) as test_client:
        yield test_client


def test_reserve_confirm_and_stock_over_http(client: TestClient) -> None:
    body = {"lines": [{"sku": "TEE-M", "warehouse": "hcm-1", "quantity": 2}], "ttl_ms": 60_000}
    made = client.post("/v1/reservations", json=body, headers={"Idempotency-Key": "cart-1"})
    assert made.status_code == 201, made.text
    reservation = made.json()
    assert reservation["status"] == "held"
    again = client.post("/v1/reservations", json=body, headers={"Idempotency-Key": "cart-1"})
    assert again.json()["id"] == reservation["id"]
    rid = reservation["id"]
    assert client.post(f"/v1/reservations/{rid}/extend", json={"ttl_ms": 120_000}).status_code == 200
    assert client.post(f"/v1/reservations/{rid}/confirm").json()["status"] == "confirmed"
    assert client.get(f"/v1/reservations/{rid}").json()["status"] == "confirmed"
    levels = client.get("/v1/inventory/TEE-M").json()
    assert [(lv["warehouse"], lv["committed"], lv["available"]) for lv in levels] == [
        ("hcm-1", 2, 0),
        ("hn-1", 0, 5),
    ]
    assert client.post(f"/v1/reservations/{rid}/cancel").json()["status"] == "cancelled"


def test_delete_releases_the_hold(client: TestClient) -> None:
    body = {"lines": [{"sku": "TEE-M", "warehouse": "hn-1", "quantity": 3}], "ttl_ms": 60_000}
    rid = client.post("/v1/reservations", json=body, headers={"Idempotency-Key": "cart-del"}).json()["id"]
    held = {lv["warehouse"]: lv for lv in client.get("/v1/inventory/TEE-M").json()}
    assert held["hn-1"]["held"] == 3
    assert held["hn-1"]["available"] == 2
    released = client.delete(f"/v1/reservations/{rid}")
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    after = {lv["warehouse"]: lv for lv in client.get("/v1/inventory/TEE-M").json()}
    assert after["hn-1"]["held"] == 0
    assert after["hn-1"]["available"] == 5
    assert client.post(f"/v1/reservations/{rid}/confirm").status_code == 409


def test_a_short_reserve_answers_409_with_what_is_available(client: TestClient) -> None:
    body = {
        "lines": [
            {"sku": "TEE-M", "warehouse": "hcm-1", "quantity": 1},
            {"sku": "TEE-M", "warehouse": "hcm-1", "quantity": 2},
        ],
        "idempotency_key": "cart-2",
    }
    answer = client.post("/v1/reservations", json=body)
    assert answer.status_code == 409
    assert answer.json()["error"] == "insufficient_stock"
    assert answer.json()["details"]["shortages"] == [
        {"sku": "TEE-M", "warehouse": "hcm-1", "requested": 3, "available": 2, "known": True}
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        (
            "post",
            "/v1/reservations",
            {"lines": [{"sku": "TEE-M", "warehouse": "hn-1", "quantity": 1}]},
            422,
            "invalid_input",
        ),
        ("post", "/v1/reservations", {"lines": [], "idempotency_key": "k"}, 422, "invalid_input"),
        ("post", "/v1/reservations/r-nope/confirm", None, 404, "not_found"),
        ("get", "/v1/reservations/r-nope", None, 404, "not_found"),
        (
            "post",
            "/v1/inventory/stock/adjustments",
            {"sku": "TEE-M", "warehouse": "hn-1", "delta": -9},
            422,
            "invalid_input",
        ),
    ],
)
def test_http_errors(client: TestClient, method: str, path: str, body: Any, status: int, code: str) -> None:
    answer = client.request(method.upper(), path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code


def test_stock_changes_and_audit_over_http(client: TestClient) -> None:
    changed = client.put(
        "/v1/inventory/stock", json={"sku": "TEE-M", "warehouse": "hn-1", "on_hand": 7, "reason": "count"}
    )
    assert changed.json()["after"]["on_hand"] == 7
    adjusted = client.post(
        "/v1/inventory/stock/adjustments", json={"sku": "TEE-M", "warehouse": "hn-1", "delta": -1}
    )
    assert adjusted.json()["after"]["on_hand"] == 6
    report = client.post(
        "/v1/inventory/audit",
        json={"source_on_hand": [{"sku": "TEE-M", "warehouse": "hn-1", "on_hand": 4}], "grace_ms": 0},
    ).json()
    assert report["drift"] == [
        {"sku": "TEE-M", "warehouse": "hn-1", "store_on_hand": 6, "source_on_hand": 4, "delta": 2}
    ]
    assert client.get("/v1/inventory/audit").json()["ok"] is True


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def cli(platform: Any, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    @contextmanager
    def fake_open_platform() -> Iterator[Any]:
        yield platform

    monkeypatch.setattr(inventory_cli, "open_platform", fake_open_platform)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(inventory_cli.app, list(args))


def test_cli_reserve_confirm_and_stock(cli: CliRunner) -> None:
    made = run(cli, "reserve", "TEE-M@hcm-1:1", "TEE-M@hn-1", "--key", "cli-1", "--ttl-s", "60")
    assert made.exit_code == 0, made.output
    rid = json.loads(made.output)["id"]
    assert json.loads(run(cli, "confirm", rid).output)["status"] == "confirmed"
    assert json.loads(run(cli, "get", rid).output)["status"] == "confirmed"
    levels = json.loads(run(cli, "stock", "TEE-M", "--json").output)
    assert [lv["committed"] for lv in levels] == [1, 1]
    assert "hcm-1" in run(cli, "stock", "TEE-M").output
    assert json.loads(run(cli, "adjust-stock", "TEE-M", "hn-1", "--by", "-2").output)["after"]["on_hand"] == 3
    assert run(cli, "sweep").exit_code == 0
    assert run(cli, "audit").exit_code == 0


def test_cli_prunes_settled_reservations(cli: CliRunner, platform: Any) -> None:
    platform.settings = SimpleNamespace(reservations=ReservationSettings(retention_days=0))
    off = run(cli, "prune")
    assert off.exit_code == 2
    assert "retention is off" in off.output
    rid = json.loads(run(cli, "reserve", "TEE-M@hn-1", "--key", "cli-prune").output)["id"]
    assert run(cli, "release", rid).exit_code == 0
    kept = run(cli, "prune", "--retention-days", "1")
    assert "deleted 0 reservations settled more than 1 days ago" in kept.output
    pruned = run(cli, "prune", "--retention-days", "0")
    assert pruned.exit_code == 0, pruned.output
    assert "deleted 1 reservation settled more than 0 days ago" in pruned.output
    assert run(cli, "get", rid).exit_code == 3
    assert run(cli, "prune", "--retention-days", "-1").exit_code == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("reserve", "TEE-M@hcm-1:3", "--key", "k"), 4, "not enough stock"),
        (("reserve", "TEE-M-hcm-1", "--key", "k"), 2, "invalid line"),
        (("reserve", "TEE-M@hcm-1:0", "--key", "k"), 2, "must be positive"),
        (("confirm", "r-missing"), 3, "does not exist"),
        (("set-stock", "TEE-M", "hn-1", "--", "-1"), 2, "on_hand must be between"),
    ],
)
def test_cli_errors_exit_with_the_error_trees_codes(
    cli: CliRunner, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run(cli, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
