"""`/v1/quality/...` through the app: contracts, runs, results per dataset, failing rows, lint, and
who may call it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from tests.integration.quality.world import BadWorld
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform, build_quality
from shopops.core.settings import Settings
from shopops.quality.sources import ParquetSource


@pytest.fixture
def platform(tmp_path: Path, bad_world: BadWorld) -> Iterator[Platform]:
    data = tmp_path / "parquet"
    data.mkdir()
    for name in ("shop.order_lines", "shop.orders", "shop.products"):
        pq.write_table(bad_world.tables[name], data / f"{name}.parquet")
    platform = build_platform(Settings(home=tmp_path / "home"))
    service = build_quality(platform.settings)
    try:
        service.check(ParquetSource(data), ["shop.order_lines"], now_ms=bad_world.end_ms)
    finally:
        service.close()
    yield platform
    platform.close()


@pytest.fixture
def operator(platform: Platform) -> Iterator[TestClient]:
    headers = bearer(key_for(platform.governance, "operator"))
    with TestClient(create_app(platform=platform), headers=headers) as client:
        yield client


def test_contracts_runs_results_and_failing_rows(operator: TestClient) -> None:
    contracts = operator.get("/v1/quality/contracts")
    assert contracts.status_code == 200, contracts.text
    assert len(contracts.json()) == 13
    lines = operator.get("/v1/quality/contracts/shop.order_lines").json()
    assert lines["owner"] == "checkout"
    by_name = {c["check"]: c for c in lines["checks"]}
    assert by_name["quantity.range"]["quarantines_rows"] is True
    assert by_name["order_lines_volume"]["level"] == "dataset"
    assert lines["document"]["kind"] == "DataContract"

    runs = operator.get("/v1/quality/runs", params={"failed": True}).json()
    assert len(runs) == 1
    run = runs[0]
    assert (run["dataset"], run["mode"], run["source"], run["outcome"]) == (
        "shop.order_lines",
        "table",
        "parquet",
        "failed",
    )
    detail = operator.get(f"/v1/quality/runs/{run['run_id']}").json()
    failed = {c["check"] for c in detail["checks"] if c["outcome"] == "failed"}
    assert failed == {"quantity.range", "unit_price_not_negative", "order_id.references"}
    rows = operator.get(
        f"/v1/quality/runs/{run['run_id']}/failures", params={"check": "quantity.range"}
    ).json()
    assert rows
    assert all(r["check"] == "quantity.range" for r in rows)
    assert set(rows[0]["key"]) == {"_region", "line_id"}
    assert "is out of range" in rows[0]["reason"]

    latest = operator.get("/v1/quality/datasets").json()
    assert [r["dataset"] for r in latest] == ["shop.order_lines"]
    results = operator.get("/v1/quality/datasets/shop.order_lines/results").json()
    assert results["run_id"] == run["run_id"]


def test_errors_are_precise(operator: TestClient) -> None:
    missing = operator.get("/v1/quality/contracts/shop.nothing")
    assert missing.status_code == 404
    assert "known datasets" in missing.json()["hint"]
    assert operator.get("/v1/quality/runs/nope").status_code == 404
    runs = operator.get("/v1/quality/runs").json()
    bad_check = operator.get(f"/v1/quality/runs/{runs[0]['run_id']}/failures", params={"check": "nope"})
    assert bad_check.status_code == 404
    assert operator.get("/v1/quality/runs", params={"limit": 0}).status_code == 422
    assert operator.get("/v1/quality/runs", params={"mode": "weekly"}).status_code == 422
    never = operator.get("/v1/quality/datasets/shop.orders/results")
    assert never.status_code == 404
    assert "shopops contracts check shop.orders" in never.json()["hint"]


def test_lint_a_posted_contract(operator: TestClient) -> None:
    good = (Path(__file__).resolve().parents[3] / "contracts" / "shop.orders.odcs.yaml").read_text()
    ok = operator.post("/v1/quality/lint", content=good, headers={"Content-Type": "application/yaml"})
    assert ok.status_code == 200
    assert ok.json()["ok"] is True
    assert ok.json()["dataset"] == "shop.orders"
    bad = good.replace("        primaryKey: true\n", "        primaryKey: true\n        requred: true\n", 1)
    answer = operator.post("/v1/quality/lint", params={"file": "orders.yaml"}, content=bad).json()
    assert answer["ok"] is False
    (issue,) = [i for i in answer["issues"] if i["severity"] == "error"]
    assert issue["file"] == "orders.yaml"
    assert issue["path"] == "schema[0].properties[0].requred"
    assert issue["line"] == bad.splitlines().index("        requred: true") + 1


def test_who_may_call_it(platform: Platform) -> None:
    app = create_app(platform=platform)
    with TestClient(app) as client:
        assert client.get("/v1/quality/contracts").status_code == 401
        support = bearer(key_for(platform.governance, "support"))
        assert client.get("/v1/quality/contracts", headers=support).status_code == 403
        for role in ("ml_engineer", "finance", "auditor"):
            headers = bearer(key_for(platform.governance, role))
            assert client.get("/v1/quality/runs", headers=headers).status_code == 200, role
            assert client.post("/v1/quality/lint", content="x: 1", headers=headers).status_code == 403, role
