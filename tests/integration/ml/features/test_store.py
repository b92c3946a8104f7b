"""Apply, materialize, training frames and online features over a simulated world (SQLite and Redis)."""

from __future__ import annotations

import statistics
import threading
import uuid
from bisect import bisect_right
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.integration.ml.features.conftest import REGIONS, FeaturesFactory, World

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.debezium import Op, decode
from shopops.lake.catalog import open_catalog
from shopops.ml.features.model import US_PER_DAY, US_PER_H, USE_CASES
from shopops.ml.features.service import FeatureService

H, DAY = US_PER_H, US_PER_DAY


def _creates(world: World, table: str) -> list[dict[str, Any]]:
    """First creation of every row of ``<region>.<table>``, decoded straight from the event log."""
    log = open_event_log(BackendSelection(type="sqlite"), home=world.home)
    seen: dict[str, dict[str, Any]] = {}
    key = {"shop.orders": "order_id", "logistics.shipments": "shipment_id"}[table]
    try:
        for region in REGIONS:
            for record in log.read_all(f"{region}.{table}"):
                event = decode(record)
                if event.op in (Op.CREATE, Op.READ) and event.after and event.after[key] not in seen:
                    seen[event.after[key]] = event.after
    finally:
        log.close()
    return list(seen.values())


def _deliveries(world: World) -> list[dict[str, Any]]:
    log = open_event_log(BackendSelection(type="sqlite"), home=world.home)
    first: dict[str, dict[str, Any]] = {}
    try:
        for region in REGIONS:
            for record in log.read_all(f"{region}.logistics.shipments"):
                after = decode(record).after
                if after and after["status"] == "delivered" and after["shipment_id"] not in first:
                    first[after["shipment_id"]] = after
    finally:
        log.close()
    return list(first.values())


def _us(ts: pd.Timestamp) -> int:
    return int(ts.value // 1000)


def _count(times: list[int], at: int, width: int | None) -> int:
    """Events in (at - width, at] (all up to ``at`` without a width)."""
    end = bisect_right(times, at)
    return end if width is None else end - bisect_right(times, at - width)


def test_fraud_frame_is_point_in_time_correct(world: World, materialized: FeatureService) -> None:
    tf = materialized.training_frame("fraud")
    frame = tf.frame
    assert tf.label == "is_fraud"
    assert tf.truth == "truth_fraud_probability"
    assert tf.features == materialized.feature_names("fraud")
    assert list(frame.columns) == [
        "order_id", "customer_id", "device_id", "card_fingerprint", "region", "event_timestamp",
        *tf.features, "is_fraud", "truth_fraud_probability",
    ]  # fmt: skip
    truth = pq.read_table(world.home / "truth" / "fraud_truth.parquet").to_pandas().set_index("order_id")
    assert len(frame) == len(truth)  # every order, each once
    assert frame["is_fraud"].dtype == "int64"
    assert (
        frame["is_fraud"].to_numpy() == truth.loc[frame["order_id"], "is_fraud"].astype(int).to_numpy()
    ).all()

    # Recompute every window by brute force from the raw change events (neither DuckDB nor the fold).
    orders = _creates(world, "shop.orders")
    by: dict[str, dict[str, list[int]]] = {
        k: defaultdict(list) for k in ("customer_id", "device_id", "card_fingerprint")
    }
    accounts: dict[str, dict[str, list[tuple[int, str]]]] = {
        k: defaultdict(list) for k in ("device_id", "card_fingerprint")
    }
    for order in sorted(orders, key=lambda o: o["created_at"]):
        for key in by:
            by[key][order[key]].append(order["created_at"])
        for key in accounts:
            accounts[key][order[key]].append((order["created_at"], order["customer_id"]))
    for row in frame.itertuples(index=False):
        at = _us(row.event_timestamp)
        mine = by["customer_id"][row.customer_id]
        assert row.customer_history__orders_7d == _count(mine, at, 7 * DAY)
        assert row.customer_history__orders_30d == _count(mine, at, 30 * DAY)
        assert row.customer_velocity__orders_1h == _count(mine, at, H)
        assert row.customer_velocity__orders_24h == _count(mine, at, DAY)
        device = by["device_id"][row.device_id]
        assert row.device_usage__orders_1h == _count(device, at, H)
        assert row.device_usage__orders_24h == _count(device, at, DAY)
        assert row.device_usage__orders_total == _count(device, at, None)
        assert row.device_usage__accounts == len(
            {c for t, c in accounts["device_id"][row.device_id] if t <= at}
        )
        assert row.card_usage__accounts == len(
            {c for t, c in accounts["card_fingerprint"][row.card_fingerprint] if t <= at}
        )
        assert row.customer_history__orders_7d >= 1  # the order itself, placed at event_timestamp
    assert frame["customer_history__account_age_days"].notna().all()
    assert (frame["customer_history__account_age_days"] >= 0).all()
    assert frame["order_facts__total_usd"].gt(0).mean() > 0.9  # USD once the first FX rate is out
    assert frame["card_usage__accounts"].max() >= 2  # the fraud rings share cards


def test_eta_frame_is_point_in_time_correct(world: World, materialized: FeatureService) -> None:
    tf = materialized.training_frame("eta")
    frame = tf.frame
    assert tf.label == "delivery_hours"
    assert tf.truth == "truth_median_hours"
    assert frame["delivery_hours"].notna().all()
    assert frame["truth_median_hours"].notna().all()
    deliveries = _deliveries(world)
    created = {s["shipment_id"]: s for s in _creates(world, "logistics.shipments")}
    assert len(frame) == len(deliveries)
    lanes: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for d in deliveries:
        start = created[d["shipment_id"]]
        lanes[(start["carrier"], start["route"])].append(
            (d["delivered_at"], (d["delivered_at"] - start["created_at"]) / H)
        )
    for row in frame.itertuples(index=False):
        at = _us(row.event_timestamp)
        seen = [hours for t, hours in lanes[(row.carrier, row.route)] if at - 30 * DAY < t <= at]
        assert row.delivery_hours == pytest.approx(
            (next(d["delivered_at"] for d in deliveries if d["shipment_id"] == row.shipment_id) - at) / H
        )
        if not seen:
            assert pd.isna(row.shipment_performance__deliveries_30d)
            continue
        assert row.shipment_performance__deliveries_30d == len(seen)
        assert row.shipment_performance__p50_hours_30d == pytest.approx(statistics.median(seen))
    assert frame["shipment_performance__deliveries_30d"].notna().mean() > 0.5


def test_a_value_stamped_after_the_event_time_never_leaks(features_factory: FeaturesFactory) -> None:
    service = features_factory()
    service.materialize()
    frame = service.training_frame("fraud", regions=["vn"]).frame
    row = frame.iloc[len(frame) // 2]
    at = row["event_timestamp"]
    path = service.data_dir / "customer_history.parquet"
    table = pq.read_table(path)
    planted = {
        "customer_id": [row["customer_id"]] * 2,
        # One microsecond after the order, and a day after: neither may reach the training row.
        "event_timestamp": [at + pd.Timedelta(microseconds=1), at + pd.Timedelta(days=1)],
        **{name: [999, 999] for name in table.schema.names if name not in ("customer_id", "event_timestamp")},
    }
    pq.write_table(pa.concat_tables([table, pa.Table.from_pydict(planted, schema=table.schema)]), path)
    again = service.training_frame("fraud", regions=["vn"]).frame.set_index("order_id")
    got = again.loc[row["order_id"]]
    assert got["customer_history__orders_7d"] == row["customer_history__orders_7d"] != 999
    assert got["customer_history__chargebacks"] != 999
    later = frame[
        (frame["customer_id"] == row["customer_id"]) & (frame["event_timestamp"] > at + pd.Timedelta(days=1))
    ]
    for order_id in later["order_id"]:  # orders after the planted day-later row do see it
        assert again.loc[order_id, "customer_history__orders_7d"] == 999


def test_online_features_are_the_latest_offline_rows(materialized: FeatureService) -> None:
    manifest = materialized.manifest()
    assert manifest is not None
    end = pd.Timestamp(manifest["end"])
    frame = materialized.training_frame("fraud").frame
    history = pq.read_table(materialized.data_dir / "customer_history.parquet").to_pandas()
    device = pq.read_table(materialized.data_dir / "device_usage.parquet").to_pandas()
    for row in frame.tail(5).itertuples(index=False):
        entity = {
            "customer_id": row.customer_id,
            "device_id": row.device_id,
            "card_fingerprint": row.card_fingerprint,
            "order_id": row.order_id,
            "event_timestamp": end.isoformat(),
        }
        online = materialized.online_features("fraud", entity)
        assert online.missing == []
        assert list(online.values) == materialized.feature_names("fraud")
        mine = history[(history.customer_id == row.customer_id) & (history.event_timestamp <= end)].iloc[-1]
        assert online.values["customer_history__orders_30d"] == mine["orders_30d"]
        age = (end - pd.Timestamp(int(mine["account_created_ms"]), unit="ms", tz="UTC")) / timedelta(days=1)
        assert online.values["customer_history__account_age_days"] == pytest.approx(age)
        dev = device[(device.device_id == row.device_id) & (device.event_timestamp <= end)].iloc[-1]
        assert online.values["device_usage__orders_24h"] == dev["orders_24h"]
    # Only some keys given: the views of the others come back missing, not as an error.
    partial = materialized.online_features("eta", {"carrier": "RedRiver", "route": "domestic"})
    assert set(partial.missing) == {n for n in partial.values if not n.startswith("shipment_performance")}
    unknown = materialized.online_features(
        "fraud", {"customer_id": "vn-c-none", "device_id": "dev-none", "card_fingerprint": "fp-none"}
    )
    assert unknown.missing == list(unknown.values)


def test_data_versions_are_the_snapshots_read(world: World, materialized: FeatureService) -> None:
    versions = materialized.training_frame("eta", regions=["sg"]).data_versions
    catalog = open_catalog(None, None, world.home)
    assert "bronze.sg__shop__orders" in versions
    assert "bronze.vn__logistics__shipments" in versions
    for name, snapshot in versions.items():
        current = catalog.load_table(name).current_snapshot()
        assert current is not None
        assert current.snapshot_id == snapshot


def test_bad_requests_and_missing_data_say_what_to_do(
    world: World, features_factory: FeaturesFactory, materialized: FeatureService, tmp_path: Path
) -> None:
    fresh = features_factory("fresh")
    with pytest.raises(NotFoundError, match="no data yet") as err:
        fresh.training_frame("fraud")
    assert "shopops features materialize" in (err.value.hint or "")
    with pytest.raises(InvalidInputError, match="unknown region"):
        materialized.training_frame("fraud", regions=["xx"])
    with pytest.raises(NotFoundError, match="no labelled fraud rows in th"):
        materialized.training_frame("fraud", regions=["th"])
    with pytest.raises(InvalidInputError, match="unknown use case"):
        materialized.training_frame("churn")
    assert set(USE_CASES) == {"fraud", "eta"}
    from shopops.bootstrap import build_features
    from shopops.core.settings import Settings

    empty = build_features(Settings(home=tmp_path / "empty"))
    with pytest.raises(NotFoundError, match="no bronze tables") as err:
        empty.materialize()
    assert "shopops lake ingest" in (err.value.hint or "")


def test_two_materializations_at_once_leave_one_consistent_store(features_factory: FeaturesFactory) -> None:
    first, second = features_factory("shared"), features_factory("shared")
    first.apply()
    errors: list[BaseException] = []

    def run(service: FeatureService) -> None:
        try:
            service.materialize(regions=["sg"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    manifest = first.manifest()
    assert manifest is not None
    assert manifest["generation"] == 2
    frame = second.training_frame("fraud").frame
    assert set(frame["region"]) == {"sg"}
    assert frame["order_id"].is_unique


def test_redis_online_store_serves_the_same_values(
    features_factory: FeaturesFactory, materialized: FeatureService
) -> None:
    project = f"t_{uuid.uuid4().hex[:10]}"
    service = features_factory(
        "redis", project=project, online_store={"type": "redis", "connection_string": "127.0.0.1:6379,db=13"}
    )
    assert service.online_store.describe() == "redis 127.0.0.1:6379,db=13"
    try:
        service.materialize(regions=REGIONS)
        frame = materialized.training_frame("eta").frame
        for row in frame.tail(3).itertuples(index=False):
            entity = {
                "carrier": row.carrier,
                "route": row.route,
                "shipment_id": row.shipment_id,
                "order_id": row.order_id,
            }
            assert service.online_features("eta", entity) == materialized.online_features("eta", entity)
        # A push with an older timestamp than the stored value does not overwrite it on Redis.
        key = {"order_id": frame.iloc[-1]["order_id"]}
        before = service.online_features("eta", {"carrier": "x", "route": "y", **key}).values[
            "order_facts__total_usd"
        ]
        service.push("order_facts", [{**key, "event_timestamp": pd.Timestamp("2000-01-01", tz="UTC"),
                                      "total_usd": -1.0, "item_count": 0, "local_hour": 0}])  # fmt: skip
        after = service.online_features("eta", {"carrier": "x", "route": "y", **key}).values[
            "order_facts__total_usd"
        ]
        assert after == before
    finally:
        service.store.teardown()


def test_unreachable_redis_is_a_clear_error(features_factory: FeaturesFactory) -> None:
    from shopops.core.errors import BackendUnavailableError

    service = features_factory(
        "down", online_store={"type": "redis", "connection_string": "127.0.0.1:1,password=s3cret"}
    )
    with pytest.raises(BackendUnavailableError, match="does not answer") as err:
        service.apply()
    assert "s3cret" not in err.value.message
    assert "ml.features.online_store" in (err.value.hint or "")


def test_region_filter_keeps_only_those_rows(materialized: FeatureService) -> None:
    frame = materialized.training_frame("fraud", regions=["vn"]).frame
    assert set(frame["region"]) == {"vn"}
    stock = pq.read_table(materialized.data_dir / "stock_availability.parquet")
    assert stock.num_rows > 0  # the replayed checkout bursts
    assert pc.min(stock.column("available")).as_py() >= 0
