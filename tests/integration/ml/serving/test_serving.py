"""Online scoring through the HTTP API: features from the store, the champion, reasons, bad input,
hot reload, signature checks, the prediction log and batch scoring."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.integration.ml.serving.conftest import Serving, Trained, open_serving

from shopops.core.errors import BackendUnavailableError
from shopops.ml.serving.batch import score_table
from shopops.ml.serving.loader import load_model
from shopops.ml.serving.predlog import count
from shopops.ml.tracking.service import CHAMPION
from shopops.ml.training.frames import EventLogFrames
from shopops.ml.training.service import TrainingService


def _orders(trained: Trained) -> pd.DataFrame:
    return pd.read_parquet(trained.world.home / "truth" / "fraud_truth.parquet")


def _shipments(trained: Trained) -> pd.DataFrame:
    return pd.read_parquet(trained.world.home / "truth" / "delivery_truth.parquet")


def _fraud_body(row: Any, **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": row.customer_id,
        "device_id": row.device_id,
        "card_fingerprint": row.card_fingerprint,
        "order_id": row.order_id,
        "event_timestamp": int(row.created_at_ms),
        **extra,
    }


def _wait(predicate: Any, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_fraud_score_with_reasons_from_online_features(serving: Serving, trained: Trained) -> None:
    orders = _orders(trained)
    ring = orders[orders.source == "fraud_ring"].iloc[-1]
    got = serving.client.post("/v1/score/fraud", json=_fraud_body(ring))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["model"] == "fraud"
    assert body["version"] == trained.versions["fraud"]
    assert 0.0 <= body["score"] <= 1.0
    assert body["reasons"], "a ring order has features pushing its score up"
    assert all(r["contribution"] > 0 for r in body["reasons"])
    assert [r["contribution"] for r in body["reasons"]] == sorted(
        (r["contribution"] for r in body["reasons"]), reverse=True
    )
    # The score is the booster's own probability for the same features.
    model = serving.service.slots.get("fraud")
    row = [[body_features(serving, body)[f] for f in model.features]]
    assert body["score"] == pytest.approx(float(model.boosters["score"].predict(row)[0]), rel=1e-9)
    # The reasons are the largest positive contributions of LightGBM's own TreeSHAP.
    contrib = model.boosters["score"].predict(row, pred_contrib=True)[0][:-1]
    top = sorted((j for j in range(len(contrib)) if contrib[j] > 0), key=lambda j: -contrib[j])[:3]
    assert [r["feature"] for r in body["reasons"]] == [model.features[j] for j in top]
    assert [r["contribution"] for r in body["reasons"]] == [round(float(contrib[j]), 6) for j in top]


def body_features(serving: Serving, body: dict[str, Any]) -> dict[str, float]:
    serving.service.prediction_log.flush()  # type: ignore[union-attr]
    import sqlite3

    import orjson

    conn = sqlite3.connect(serving.home / "ml" / "predictions.db")
    raw = conn.execute(
        "SELECT features FROM predictions WHERE request_id = ?", (body["request_id"],)
    ).fetchone()
    conn.close()
    features: dict[str, float] = orjson.loads(raw[0])
    return features


def test_eta_prediction_p50_below_p90(serving: Serving, trained: Trained) -> None:
    ship = _shipments(trained).iloc[-1]
    got = serving.client.post(
        "/v1/predict/eta",
        json={
            "carrier": ship.carrier,
            "route": ship.route,
            "shipment_id": ship.shipment_id,
            "event_timestamp": int(ship.created_at_ms),
        },
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert 0 < body["p50_hours"] <= body["p90_hours"]
    assert body["version"] == trained.versions["eta"]
    assert body["p50_at"] < body["p90_at"]


def test_bad_input_answers_404_or_422_with_the_reason(serving: Serving, trained: Trained) -> None:
    row = _orders(trained).iloc[0]
    unknown = serving.client.post("/v1/score/fraud", json=_fraud_body(row, customer_id="vn-c-9999999"))
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "unknown customer: vn-c-9999999"
    no_order = serving.client.post("/v1/score/fraud", json=_fraud_body(row, order_id="vn-o-999999999"))
    assert no_order.status_code == 404
    assert "unknown order" in no_order.json()["message"]
    missing = serving.client.post("/v1/score/fraud", json={"customer_id": row.customer_id})
    assert missing.status_code == 422
    assert {tuple(e["loc"]) for e in missing.json()["detail"]} == {
        ("body", "device_id"),
        ("body", "card_fingerprint"),
    }
    extra = serving.client.post("/v1/score/fraud", json=_fraud_body(row, amount=3))
    assert extra.status_code == 422
    assert [tuple(e["loc"]) for e in extra.json()["detail"]] == [("body", "amount")]
    malformed = serving.client.post(
        "/v1/score/fraud", content=b'{"customer_id": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["type"] == "json_invalid"
    bad_id = serving.client.post("/v1/predict/eta", json={"carrier": "bad carrier!", "route": "domestic"})
    assert bad_id.status_code == 422
    assert bad_id.json()["detail"][0]["loc"] == ["body", "carrier"]
    bad_feature = serving.client.post("/v1/score/fraud", json=_fraud_body(row, features={"nope": 1.0}))
    assert bad_feature.status_code == 422
    assert "unknown feature(s) for fraud: nope" in bad_feature.json()["message"]
    lane = serving.client.post("/v1/predict/eta", json={"carrier": "NoSuchCarrier", "route": "domestic"})
    assert lane.status_code == 404
    assert "unknown carrier lane: NoSuchCarrier on route domestic" in lane.json()["message"]
    route = serving.client.post("/v1/predict/eta", json={"carrier": "SaigonPost", "route": "moon"})
    assert route.status_code == 422
    assert "unknown route 'moon'" in route.json()["message"]
    forbidden = serving.client.post(
        "/v1/score/fraud", json=_fraud_body(row), headers=serving.as_role("support")
    )
    assert forbidden.status_code == 403


def test_the_scoring_routes_document_their_request_bodies(serving: Serving) -> None:
    paths = serving.client.get("/openapi.json").json()["paths"]
    for path, fields in (("/v1/score/fraud", "card_fingerprint"), ("/v1/predict/eta", "carrier")):
        body = paths[path]["post"]["requestBody"]
        assert body["required"] is True
        assert fields in body["content"]["application/json"]["schema"]["required"]


def test_missing_features_take_documented_defaults_and_are_flagged(
    serving: Serving, trained: Trained
) -> None:
    row = _orders(trained).iloc[-1]
    body = {**_fraud_body(row), "device_id": "dev-neverseen01", "card_fingerprint": "fp-neverseen0001"}
    del body["order_id"]
    got = serving.client.post("/v1/score/fraud", json=body)
    assert got.status_code == 200, got.text
    defaults = got.json()["defaults"]
    model = serving.service.slots.get("fraud")
    assert {f for f in defaults if f.startswith("device_usage__")} == {
        f for f in model.features if f.startswith("device_usage__")
    }
    assert any(f.startswith("order_facts__") for f in defaults)
    for name, value in defaults.items():
        assert value == model.default_map[name]  # the training median, recorded with the model
    # A value the caller knows is used instead of the default, and no longer flagged.
    given = serving.client.post(
        "/v1/score/fraud", json={**body, "features": {"order_facts__total_usd": 900.0}}
    )
    assert "order_facts__total_usd" not in given.json()["defaults"]


def test_the_champion_reloads_when_the_alias_moves(serving: Serving, trained: Trained) -> None:
    first = trained.versions["fraud"]
    training = TrainingService(serving.tracking, trained.features, home=serving.home, source_name="features")
    second = training.train("fraud", seed=2).version
    row = _orders(trained).iloc[-1]
    assert serving.client.post("/v1/score/fraud", json=_fraud_body(row)).json()["version"] == first
    serving.tracking.set_alias("fraud", second, CHAMPION)
    _wait(lambda: serving.service.slots.loaded().get("fraud") == second)
    assert serving.client.post("/v1/score/fraud", json=_fraud_body(row)).json()["version"] == second


def test_a_model_whose_signature_does_not_match_refuses_to_load(
    serving: Serving, trained: Trained, tmp_path: Path
) -> None:
    from shopops.core.registry import BackendSelection
    from shopops.events.backends import open_event_log

    log = open_event_log(BackendSelection(type="sqlite"), home=trained.world.home)
    try:
        frames = EventLogFrames(log, trained.world.home / "truth")
        other = TrainingService(serving.tracking, frames, home=serving.home, source_name="events").train(
            "eta", seed=1
        )
    finally:
        log.close()
    serving.tracking.set_alias("eta", other.version, CHAMPION)
    _wait(lambda: "eta" in serving.service.slots.errors)
    reason = serving.service.slots.errors["eta"]
    assert (
        f"v{other.version} eta v{other.version} refused to load: its signature lacks shipment_performance__"
        in reason
    )
    # The previous champion keeps serving.
    assert serving.service.slots.loaded()["eta"] == trained.versions["eta"]
    status = serving.client.get("/v1/score/status").json()
    assert "refused to load" in status["eta"]["error"]
    # A process with nothing else to serve answers 503 with the reason.
    fresh = open_serving(trained, tmp_path / "fresh", serving.tracking).start()
    try:
        with pytest.raises(BackendUnavailableError, match="refused to load"):
            fresh.score("eta", {"carrier": "SaigonPost", "route": "domestic"})
    finally:
        fresh.close()


def test_every_prediction_is_logged(serving: Serving, trained: Trained) -> None:
    orders = _orders(trained).tail(25)
    for row in orders.itertuples():
        assert serving.client.post("/v1/score/fraud", json=_fraud_body(row)).status_code == 200
    serving.service.close()
    assert count(serving.home / "ml" / "predictions.db", "fraud") == 25


def test_batch_scoring_of_a_table(serving: Serving, trained: Trained, tmp_path: Path) -> None:
    model = load_model(serving.tracking, "eta", trained.versions["eta"], tmp_path / "cache")
    holdout = pd.read_parquet(model.holdout_path())
    source = tmp_path / "shipments.parquet"
    holdout.to_parquet(source)
    report = score_table(model, source, tmp_path / "scored.parquet")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert report.rows == len(holdout) == len(scored)
    assert (scored["p50_hours"] <= scored["p90_hours"]).all()
