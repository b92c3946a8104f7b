"""`/v1/features/...` through the app: online features, errors, and who may read them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.integration.ml.features.conftest import World
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform
from shopops.ml.features.service import FeatureService


@pytest.fixture
def platform(world: World, materialized: FeatureService) -> Iterator[Platform]:
    platform = build_platform(world.settings(materialized.repo_dir))
    yield platform
    platform.close()


def test_ml_engineers_read_online_features(platform: Platform, materialized: FeatureService) -> None:
    row = materialized.training_frame("fraud").frame.iloc[-1]
    params = {
        "customer_id": row["customer_id"],
        "device_id": row["device_id"],
        "card_fingerprint": row["card_fingerprint"],
        "order_id": row["order_id"],
        "event_timestamp": row["event_timestamp"].isoformat(),
    }
    headers = bearer(key_for(platform.governance, "ml_engineer"))
    with TestClient(create_app(platform=platform), headers=headers) as client:
        got = client.get("/v1/features/fraud", params=params)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["use_case"] == "fraud"
        assert body["missing"] == []
        assert list(body["values"]) == materialized.feature_names("fraud")
        assert body["values"] == materialized.online_features("fraud", params).values

        missing = client.get("/v1/features/fraud", params={"customer_id": "vn-c-1"})
        assert missing.status_code == 422
        assert "missing entity key(s) for fraud: device_id, card_fingerprint" in missing.json()["message"]
        bad_time = client.get(
            "/v1/features/eta", params={"carrier": "a", "route": "b", "event_timestamp": "soon"}
        )
        assert bad_time.status_code == 422
        unknown = client.get("/v1/features/churn", params={"customer_id": "x"})
        assert unknown.status_code == 404
        assert unknown.json()["hint"] == "known use cases: fraud, eta"
        listing = client.get("/v1/features").json()
        assert {v["name"] for v in listing["views"]} >= {"customer_history", "stock_availability"}


def test_only_permitted_roles_read_features(platform: Platform) -> None:
    app = create_app(platform=platform)
    params = {"carrier": "RedRiver", "route": "domestic"}
    with TestClient(app) as client:
        assert client.get("/v1/features/eta", params=params).status_code == 401
        operator = bearer(key_for(platform.governance, "operator"))
        assert client.get("/v1/features/eta", params=params, headers=operator).status_code == 200
        support = bearer(key_for(platform.governance, "support"))
        assert client.get("/v1/features/eta", params=params, headers=support).status_code == 403
        ml = bearer(key_for(platform.governance, "ml_engineer"))
        assert client.post("/v1/features/eta", params=params, headers=ml).status_code == 403
