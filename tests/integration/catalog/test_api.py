"""`/v1/catalog/...` through the app: datasets, lineage trees, runs; bad input; who may do what."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform
from shopops.catalog.model import Column, ColumnEdge
from shopops.core.settings import Settings


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("catalog-api")
    platform = build_platform(Settings(home=home, catalog={"contracts_dir": home / "no-contracts"}))
    catalog = platform.catalog
    catalog.register_dataset(
        "vn.shop.customers",
        columns=(Column("customer_id", "string"), Column("email", "string")),
        registered_by="test",
    )
    catalog.record_run(
        "lake.ingest",
        ["vn.shop.customers"],
        ["silver.vn__shop__customers"],
        column_lineage=[ColumnEdge("vn.shop.customers", "email", "silver.vn__shop__customers", "email")],
    )
    catalog.record_run("ml.features", ["silver.vn__shop__customers"], ["features.customer_stats"])
    catalog.record_run(
        "ml.features", ["silver.vn__shop__customers"], ["features.customer_stats"], error="oom"
    )
    yield platform
    platform.close()


def _client(platform: Platform, *roles: str, region: str = "vn") -> TestClient:
    return TestClient(
        create_app(platform=platform), headers=bearer(key_for(platform.governance, *roles, region=region))
    )


@pytest.fixture(scope="module")
def support(platform: Platform) -> Iterator[TestClient]:
    with _client(platform, "support") as client:
        yield client


def test_every_role_reads_datasets_with_column_sensitivity(platform: Platform, support: TestClient) -> None:
    listed = support.get("/v1/catalog/datasets")
    assert listed.status_code == 200, listed.text
    by_name = {d["name"]: d for d in listed.json()}
    assert set(by_name) == {
        "vn.shop.customers",
        "silver.vn__shop__customers",
        "features.customer_stats",
    }
    # The governance plane's tags mark the personal columns (of those the dataset has); their names
    # are not personal data.
    assert by_name["vn.shop.customers"]["personal_columns"] == ["email"]
    assert [d["name"] for d in support.get("/v1/catalog/datasets", params={"kind": "feature"}).json()] == [
        "features.customer_stats"
    ]
    assert len(support.get("/v1/catalog/datasets", params={"domain": "shop", "q": "SILVER"}).json()) == 1
    one = support.get("/v1/catalog/datasets/vn.shop.customers").json()
    assert one["owner"] == "data-platform"
    assert "owner" in one["defaulted"]
    assert one["readers"] == ["lake.ingest"]
    assert one["writers"] == []
    email = next(c for c in one["columns"] if c["name"] == "email")
    assert (email["sensitivity"], email["masked"]) == ("pii", True)
    with _client(platform, "checkout") as checkout:
        assert checkout.get("/v1/catalog/datasets/features.customer_stats").status_code == 200


def test_lineage_is_served_as_trees(support: TestClient) -> None:
    body = support.get("/v1/catalog/lineage/silver.vn__shop__customers").json()
    assert body["upstream"]["children"][0] == {
        "kind": "job",
        "name": "lake.ingest",
        "children": [{"kind": "dataset", "name": "vn.shop.customers", "children": []}],
    }
    assert body["downstream"]["children"][0]["name"] == "ml.features"
    assert body["columns"] == [
        {
            "in_dataset": "vn.shop.customers",
            "in_column": "email",
            "out_dataset": "silver.vn__shop__customers",
            "out_column": "email",
            "transformation": "IDENTITY",
        }
    ]
    down = support.get(
        "/v1/catalog/lineage/vn.shop.customers", params={"direction": "downstream", "depth": 1}
    ).json()
    assert down["upstream"] is None
    assert down["downstream"]["children"][0]["children"][0]["truncated"] is True


def test_runs_are_served_newest_first(support: TestClient) -> None:
    runs = support.get("/v1/catalog/runs", params={"job": "ml.features"}).json()
    assert [r["state"] for r in runs] == ["FAIL", "COMPLETE"]
    assert runs[0]["error"] == "oom"
    one = support.get(f"/v1/catalog/runs/{runs[1]['run_id']}").json()
    assert one["outputs"] == ["features.customer_stats"]
    by_dataset = support.get("/v1/catalog/runs", params={"dataset": "vn.shop.customers"}).json()
    assert [r["job"] for r in by_dataset] == ["lake.ingest"]
    assert {j["name"] for j in support.get("/v1/catalog/jobs").json()} == {"lake.ingest", "ml.features"}


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/v1/catalog/datasets/vn.shop.customer", {}, 404, "no dataset named 'vn.shop.customer'"),
        ("/v1/catalog/lineage/vn.shop.custmers", {}, 404, "no dataset named"),
        ("/v1/catalog/lineage/vn.shop.customers", {"depth": 0}, 422, "depth 0 is out of range"),
        ("/v1/catalog/lineage/vn.shop.customers", {"depth": 11}, 422, "depth 11 is out of range"),
        ("/v1/catalog/lineage/vn.shop.customers", {"direction": "sideways"}, 422, ""),
        ("/v1/catalog/datasets", {"kind": "view"}, 422, "unknown dataset kind 'view'"),
        ("/v1/catalog/runs", {"limit": 0}, 422, "limit 0 is out of range"),
        ("/v1/catalog/runs", {"job": "ml.feature"}, 404, "no job named 'ml.feature'"),
        ("/v1/catalog/runs", {"dataset": "nope"}, 404, "no dataset named 'nope'"),
        ("/v1/catalog/runs/not-a-run", {}, 404, "no run 'not-a-run'"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    support: TestClient, path: str, params: dict[str, object], status: int, message: str
) -> None:
    got = support.get(path, params=params)
    assert got.status_code == status, got.text
    assert message in got.text


def test_near_misses_are_suggested(support: TestClient) -> None:
    body = support.get("/v1/catalog/datasets/vn.shop.customer").json()
    assert body["details"]["suggestions"][0] == "vn.shop.customers"
    assert "did you mean vn.shop.customers" in body["hint"]


def test_only_operators_and_ml_engineers_register(platform: Platform, support: TestClient) -> None:
    body = {
        "name": "models.churn",
        "owner": "growth-ml",
        "description": "churn model",
        "links": {"model_card": "mlflow://models/churn/1"},
        "columns": [{"name": "score", "type": "double"}],
    }
    assert support.post("/v1/catalog/datasets", json=body).status_code == 403
    assert support.post("/v1/catalog/sync").status_code == 403
    with _client(platform, "ml_engineer") as ml:
        made = ml.post("/v1/catalog/datasets", json=body)
        assert made.status_code == 201, made.text
        assert made.json()["kind"] == "model"
        assert made.json()["links"] == {"model_card": "mlflow://models/churn/1"}
        bad = ml.post("/v1/catalog/datasets", json={**body, "name": "bad name"})
        assert bad.status_code == 422
        assert "not a valid catalog name" in bad.text
        assert ml.post("/v1/catalog/datasets", json={**body, "kind": "blob"}).status_code == 422
    with _client(platform, "operator") as operator:
        synced = operator.post("/v1/catalog/sync")
        assert synced.status_code == 200, synced.text
        assert synced.json()["problems"] == []
    assert support.get("/v1/catalog/datasets/models.churn").json()["owner"] == "growth-ml"
    with TestClient(create_app(platform=platform)) as anonymous:
        assert anonymous.get("/v1/catalog/datasets").status_code == 401
