"""Ground truth: every order and shipment covered, and consistent with the events."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from tests.unit.simulator.helpers import World

from shopops.domain.regions import REGIONS
from shopops.simulator.truth import SCHEMAS


def test_every_truth_file_is_written_with_its_schema(world: World) -> None:
    files = world.report.truth_files
    assert set(files) == {*SCHEMAS, "manifest"}
    for name, schema in SCHEMAS.items():
        assert files[name].name == f"{name}.parquet"
        assert world.truth(name).schema.equals(schema)
    manifest = orjson.loads(files["manifest"].read_bytes())
    assert manifest["config"] == world.config.model_dump(mode="json")
    assert manifest["events"] == world.report.events
    assert manifest["per_topic"] == world.report.per_topic
    assert manifest["pains"] == world.report.pains
    assert manifest["exposures"] == world.report.exposures
    assert manifest["orders"] == world.report.orders == world.truth("fraud_truth").num_rows
    assert manifest["rows"]["delivery_truth"] == manifest["shipments"]


def test_fraud_truth_covers_every_order(world: World) -> None:
    created = {
        e.after["order_id"]
        for region in world.config.regions
        for e in world.rows(f"{region}.shop.orders")
        if e.op.value == "c"  # type: ignore[union-attr]
    }
    truth = world.truth_rows("fraud_truth")
    assert {r["order_id"] for r in truth} == created
    assert len(truth) == len(created)
    for row in truth:
        assert 0 < row["fraud_probability"] < 1
        assert isinstance(row["is_fraud"], bool)
        assert row["source"] in ("normal", "fraud_ring", "checkout_burst")
        assert (row["ring_id"] is not None) == (row["source"] == "fraud_ring")
    labels = sum(r["is_fraud"] for r in truth)
    expected = sum(r["fraud_probability"] for r in truth)
    assert abs(labels - expected) < 5 * expected**0.5 + 3, (
        "labels are sampled from the recorded probabilities"
    )


def test_fraud_labels_lead_to_chargebacks(world: World) -> None:
    fraud = {r["order_id"] for r in world.truth_rows("fraud_truth") if r["is_fraud"]}
    charged_back = {
        e.after["order_id"]
        for region in world.config.regions
        for e in world.rows(f"{region}.payments.payments")
        if e.after["status"] == "charged_back"
    }
    assert charged_back <= fraud


def test_delivery_truth_covers_every_shipment(world: World) -> None:
    shipments = {}
    for region in world.config.regions:
        shipments.update(world.history(f"{region}.logistics.shipments", "shipment_id"))
    truth = {r["shipment_id"]: r for r in world.truth_rows("delivery_truth")}
    assert set(truth) == set(shipments)
    for sid, row in truth.items():
        events = shipments[sid]
        created = events[0].after
        tz = ZoneInfo(REGIONS[row["region"]].timezone)
        assert created["created_at"] // 1000 == row["created_at_ms"]
        assert created["promised_date"] == (row["promised_date"] - date(1970, 1, 1)).days
        assert row["median_hours"] > 0
        assert row["sigma"] > 0
        assert row["distribution"] == "lognormal"
        assert abs((row["delivered_at_ms"] - row["created_at_ms"]) / 3_600_000 - row["sampled_hours"]) < 0.001
        end_of_promise = datetime.combine(
            row["promised_date"] + timedelta(days=1), datetime.min.time(), tzinfo=tz
        )
        assert row["promised_by_ms"] == int(end_of_promise.timestamp() * 1000) - 1
        delivered_local = datetime.fromtimestamp(row["delivered_at_ms"] / 1000, tz).date()
        assert row["slipped"] == (delivered_local > row["promised_date"])
        statuses = [e.after["status"] for e in events]
        if row["delivered_in_window"]:
            assert statuses == ["created", "picked", "in_transit", "out_for_delivery", "delivered"]
            assert events[-1].after["delivered_at"] // 1000 == row["delivered_at_ms"]
        else:
            assert "delivered" not in statuses
    slipped = sum(r["slipped"] for r in truth.values()) / len(truth)
    assert 0.02 < slipped < 0.6, "some, not most, shipments slip"


def test_fx_truth_matches_the_published_rates(world: World) -> None:
    truth = {(r["rate_date"], r["quote"]): r["rate"] for r in world.truth_rows("fx_rates")}
    currencies = {REGIONS[r].currency for r in world.config.regions}
    assert {q for _, q in truth} == currencies
    assert len(truth) == len(currencies) * world.config.days
    for region in world.config.regions:
        published = {
            (date(1970, 1, 1) + timedelta(days=e.after["rate_date"]), e.after["quote"]): e.after["rate"]
            for e in world.rows(f"{region}.finance.fx_rates")
        }
        assert published == truth
