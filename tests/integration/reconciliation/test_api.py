"""`/v1/reconciliation/...` through the app: runs, reads, exports, errors, and who may do what."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from tests.integration.reconciliation.cases import DAY, build_cases
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform
from shopops.core.settings import Settings


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    build_cases(tmp_path / "reconciliation" / "input")
    platform = build_platform(Settings(home=tmp_path))
    yield platform
    platform.close()


@pytest.fixture
def finance(platform: Platform) -> Iterator[TestClient]:
    headers = bearer(key_for(platform.governance, "finance", region="sg"))
    with TestClient(create_app(platform=platform), headers=headers) as client:
        yield client


def test_run_then_read_summary_exceptions_and_exports(finance: TestClient) -> None:
    run = finance.post("/v1/reconciliation/runs", json={"from": str(DAY), "to": str(DAY), "regions": ["sg"]})
    assert run.status_code == 201, run.text
    report = run.json()
    assert report["exceptions"] == 17
    assert report["rules"] == {"sg": "sg@v1"}

    got = finance.get(f"/v1/reconciliation/runs/{report['run_id']}")
    assert got.status_code == 200
    assert got.json()["status"] == "succeeded"
    assert finance.get("/v1/reconciliation/runs").json()[0]["run_id"] == report["run_id"]

    summary = finance.get("/v1/reconciliation/summary", params={"regions": "sg"}).json()
    assert len(summary) == 1
    assert summary[0]["business_date"] == str(DAY)
    assert summary[0]["missing_payment"] == 1

    rows = finance.get("/v1/reconciliation/exceptions", params={"class": "ledger_break", "limit": 2}).json()
    assert len(rows) == 2
    assert {r["class"] for r in rows} == {"ledger_break"}
    assert all(r["explanation"] for r in rows)

    page = finance.get("/v1/reconciliation/exceptions", params={"limit": 5, "offset": 15}).json()
    assert len(page) == 2

    as_csv = finance.get("/v1/reconciliation/export", params={"format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == 17
    as_parquet = finance.get("/v1/reconciliation/export", params={"format": "parquet", "what": "summary"})
    assert pq.read_table(io.BytesIO(as_parquet.content)).num_rows == 1

    assert finance.get("/v1/reconciliation/ageing").json()[0]["age"] == "0-1d"
    classes = {c["class"] for c in finance.get("/v1/reconciliation/classes").json()}
    assert "missing_fx_rate" in classes


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/v1/reconciliation/runs", {"from": "2026-01-05", "to": "2026-01-01"}, 422, "empty window"),
        ("post", "/v1/reconciliation/runs", {"from": "yesterday", "to": "2026-01-01"}, 422, "is not a date"),
        (
            "post",
            "/v1/reconciliation/runs",
            {"from": "2026-01-05", "to": "2026-01-05", "regions": ["xx"]},
            422,
            "unknown region",
        ),
        (
            "post",
            "/v1/reconciliation/runs",
            {"from": "2026-01-05", "to": "2026-01-05", "regions": ["th"]},
            404,
            "no input tables",
        ),
        ("post", "/v1/reconciliation/runs", {"to": "2026-01-05"}, 422, "from"),
        ("get", "/v1/reconciliation/exceptions?class=nonsense", None, 422, "unknown exception class"),
        ("get", "/v1/reconciliation/exceptions?from=05-01-2026", None, 422, "is not a date"),
        ("get", "/v1/reconciliation/export?format=xlsx", None, 422, "format"),
        ("get", "/v1/reconciliation/runs/run-nope", None, 404, "no reconciliation run"),
    ],
)
def test_bad_requests_say_what_to_fix(
    finance: TestClient, method: str, path: str, body: dict[str, object] | None, status: int, message: str
) -> None:
    response = finance.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert message in response.text


def test_who_may_run_and_read(platform: Platform) -> None:
    app = create_app(platform=platform)
    with TestClient(app) as anonymous:
        assert anonymous.get("/v1/reconciliation/summary").status_code == 401
    support = bearer(key_for(platform.governance, "support"))
    with TestClient(app, headers=support) as client:
        assert client.get("/v1/reconciliation/summary").status_code == 403
        assert (
            client.post("/v1/reconciliation/runs", json={"from": str(DAY), "to": str(DAY)}).status_code == 403
        )
    operator = bearer(key_for(platform.governance, "operator"))
    with TestClient(app, headers=operator) as client:
        assert client.get("/v1/reconciliation/summary").status_code == 403
