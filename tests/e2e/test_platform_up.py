"""A new user's first minutes: `shopops up` seeds the demo world and serves it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.helpers import run_cli

SMALL_WORLD = {"SHOPOPS_SIMULATOR__DAYS": "1", "SHOPOPS_SIMULATOR__ORDERS_PER_DAY": "20"}


def _topics(home: Path) -> dict[str, int]:
    result = run_cli(home, "events", "topics", "--json")
    assert result.returncode == 0, result.stderr
    return {t["name"]: t["messages"] for t in json.loads(result.stdout)}


def test_up_seeds_serves_and_restarts_without_reseeding(tmp_path: Path, start_server: Any) -> None:
    home = tmp_path / "home"
    server = start_server(home, **SMALL_WORLD)
    server.wait_healthy()
    assert f"shopops is up at {server.url}" in server.output()
    # Nothing is open by default: the demo wrote the first admin key and said how to use it.
    assert f"first admin key written to {home / 'admin.key'}" in server.output()
    assert httpx.get(f"{server.url}/v1/events/topics").status_code == 401
    api = server.client()
    # A browser logs in to the portal once with the key; a session cookie does the rest.
    browser = httpx.Client(base_url=server.url)
    assert browser.get("/", headers={"accept": "text/html"}).headers["location"] == "/login?next=%2F"
    assert (
        browser.post("/login", data={"key": "sk_000000000000_wrongwrongwrongwrongwrong"}).status_code == 401
    )
    assert browser.post("/login", data={"key": server.admin_key(), "next": "/"}).status_code == 303
    assert "Checkout bursts for the last units" in browser.get("/").text

    ready = api.get("/readyz").json()
    assert ready["status"] == "ok"
    assert set(ready["checks"]) == {"event_log", "inventory"}

    # The demo raced the simulated checkout bursts against the reservation engine.
    bursts = json.loads((home / "inventory-bursts.json").read_text())
    assert bursts
    assert all(b["shopops_oversold"] == 0 for b in bursts)
    assert "Checkout bursts for the last units" in api.get("/").text

    # The demo day was reconciled on start: stored, served, and shown in the portal.
    summary = api.get("/v1/reconciliation/summary").json()
    assert {row["region"] for row in summary} == {"vn", "sg", "th"}
    assert sum(row["orders"] for row in summary) > 0
    runs = api.get("/v1/reconciliation/runs").json()
    assert runs[0]["status"] == "succeeded"
    assert "<h2>Reconciliation</h2>" in browser.get("/").text

    # The lake worker lands every CDC topic in its bronze Iceberg table, and builds silver from
    # the same read (one row per order, at the position bronze reached).
    deadline = time.monotonic() + 90
    tables: dict[str, int] = {}
    listing: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        listed = run_cli(home, "lake", "tables", "--json")
        assert listed.returncode == 0, listed.stderr
        listing = json.loads(listed.stdout)
        tables = {t["topic"]: t["records"] for t in listing if t["stage"] == "bronze"}
        if tables.get("vn.shop.orders") == _topics(home)["vn.shop.orders"]:
            break
        time.sleep(1)
    assert tables.get("vn.shop.orders") == _topics(home)["vn.shop.orders"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        positions = {t["stage"]: t["offsets"] for t in listing if t["topic"] == "vn.shop.orders"}
        if positions.get("silver") == positions.get("bronze"):
            break
        time.sleep(1)
        listing = json.loads(run_cli(home, "lake", "tables", "--json").stdout)
    assert positions.get("silver") == positions["bronze"]
    shown = run_cli(home, "lake", "show", "shop.orders", "--region", "vn", "--limit", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["order_id"].startswith("vn-o-")

    # A hold that expires is swept by the running platform within about a second.
    sku = bursts[0]["sku"]
    warehouse = bursts[0]["warehouse"]
    api.post(
        "/v1/inventory/stock/adjustments",
        json={"sku": sku, "warehouse": warehouse, "delta": 1, "reason": "test"},
    ).raise_for_status()
    held = api.post(
        "/v1/reservations",
        json={"lines": [{"sku": sku, "warehouse": warehouse, "quantity": 1}], "ttl_ms": 1_000},
        headers={"Idempotency-Key": "e2e-expiring-hold"},
    )
    assert held.status_code == 201, held.text
    rid = held.json()["id"]
    deadline = time.monotonic() + 10
    status = "held"
    while time.monotonic() < deadline and status == "held":
        time.sleep(0.2)
        status = api.get(f"/v1/reservations/{rid}").json()["status"]
    assert status == "expired"
    # ... and the sweeper published ReservationExpired for it (a read alone would not).
    deadline = time.monotonic() + 10
    expired: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not expired:
        events = api.get("/v1/events/topics/shopops.inventory.events/records", params={"limit": 50}).json()
        expired = [
            e
            for e in events
            if (e["value"] or {}).get("reservation_id") == rid
            and e["value"].get("type") == "ReservationExpired"
        ]
        time.sleep(0.2)
    assert expired, events
    topics = _topics(home)
    for region in ("vn", "sg", "th"):
        assert topics[f"{region}.shop.orders"] > 0
        assert topics[f"{region}.payments.payments"] > 0
    total = sum(topics.values())

    api_topics = {t["name"]: t["messages"] for t in api.get("/v1/events/topics").json()}
    assert api_topics == topics
    records = api.get("/v1/events/topics/vn.shop.orders/records", params={"limit": 3}).json()
    assert len(records) == 3
    assert all(r["op"] in {"c", "u", "d", "r", "tombstone"} and r["error"] is None for r in records)

    # The CDC monitor decodes everything and catches up to zero lag.
    deadline = time.monotonic() + 60
    lag = None
    while time.monotonic() < deadline:
        rows = api.get("/v1/events/groups/shopops-cdc-monitor/lag")
        if rows.status_code == 200:
            lag = sum(r["lag"] for r in rows.json())
            if lag == 0 and len(rows.json()) >= len(topics):
                break
        time.sleep(0.5)
    assert lag == 0, server.output()
    metrics = api.get("/metrics").text
    assert 'shopops_cdc_events_total{op="c",topic="vn.shop.orders"}' in metrics
    assert "shopops_http_requests_total" in metrics

    tail = run_cli(home, "events", "tail", "vn.shop.orders", "-n", "2", "--json")
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.count('"topic": "vn.shop.orders"') == 2
    lag_cli = run_cli(home, "events", "lag", "shopops-cdc-monitor")
    assert lag_cli.returncode == 0
    assert "total lag 0" in lag_cli.stdout
    assert server.stop() == 0

    # Second start: same data, no second seed.
    again = start_server(home, **SMALL_WORLD)
    again.wait_healthy()
    assert "seeding the demo world" not in again.output()
    assert sum(_topics(home).values()) == total
    assert again.stop() == 0
