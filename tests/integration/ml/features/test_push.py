"""The push worker: real-time features from the event log into the online store."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow.parquet as pq
from tests.integration.ml.features.conftest import FeaturesFactory, World

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.debezium import Op, encode_key, encode_value
from shopops.events.port import EventLog
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.service import InventoryService
from shopops.ml.features.model import US_PER_H, US_PER_S, VIEW_BY_NAME
from shopops.ml.features.push import FeaturePusher
from shopops.ml.features.service import FeatureService

T0 = int(datetime(2026, 3, 1, 2, tzinfo=UTC).timestamp()) * US_PER_S


def _drain(pusher: FeaturePusher) -> dict[str, int]:
    pushed: dict[str, int] = {}
    while True:
        result = pusher.run_once()
        for view, rows in result.pushed.items():
            pushed[view] = pushed.get(view, 0) + rows
        if result.records == 0:
            return pushed


def _online(service: FeatureService, view: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    definition = VIEW_BY_NAME[view]
    got = service.store.get_online_features(
        features=[f"{view}:{f}" for f in definition.feature_names], entity_rows=rows
    ).to_dict()
    return pd.DataFrame(got)


def _latest(path: Path, keys: tuple[str, ...], until_us: int) -> pd.DataFrame:
    rows = pq.read_table(path).to_pandas()
    rows = rows[rows["event_timestamp"] <= pd.Timestamp(until_us, unit="us", tz="UTC")]
    return rows.sort_values("event_timestamp").groupby(list(keys), as_index=False).last()


def test_pushed_values_equal_the_materialized_rows_and_survive_a_restart(
    world: World, features_factory: FeaturesFactory, materialized: FeatureService
) -> None:
    service = features_factory("push")
    log = open_event_log(BackendSelection(type="sqlite"), home=world.home)
    try:
        pusher = FeaturePusher(service, log, max_records_per_partition=500)
        pushed = _drain(pusher)
        assert set(pushed) >= {
            "customer_velocity",
            "device_usage",
            "card_usage",
            "order_facts",
            "stock_availability",
        }
        clock = pusher.orders.clock
        for view in ("customer_velocity", "device_usage", "card_usage", "stock_availability"):
            keys = VIEW_BY_NAME[view].join_keys
            until = clock if view != "stock_availability" else 2**62
            batch = _latest(materialized.data_dir / f"{view}.parquet", keys, until)
            online = _online(service, view, batch[list(keys)].to_dict("records"))
            for feature in VIEW_BY_NAME[view].feature_names:
                assert online[feature].tolist() == batch[feature].tolist(), (view, feature)

        # A restart replays the log: the same values, nothing counted twice.
        sample = {"device_id": batch_device(materialized)}
        before = _online(service, "device_usage", [sample])
        again = FeaturePusher(service, log)
        _drain(again)
        assert _online(service, "device_usage", [sample]).equals(before)
    finally:
        log.close()


def batch_device(materialized: FeatureService) -> str:
    devices = pq.read_table(materialized.data_dir / "device_usage.parquet").to_pandas()
    return str(devices.sort_values("orders_total").iloc[-1]["device_id"])


def _order(
    log: EventLog, order_id: str, customer: str, device: str, at_us: int, total: str = "500000"
) -> None:
    after = {
        "order_id": order_id,
        "customer_id": customer,
        "status": "placed",
        "currency": "VND",
        "total": total,
        "item_count": 2,
        "device_id": device,
        "card_fingerprint": "fp-ring",
        "created_at": at_us,
        "updated_at": at_us,
    }
    source = {"version": "2.7", "connector": "postgresql", "name": "vn", "ts_ms": at_us // 1000, "db": "shop",
              "schema": "public", "table": "orders", "snapshot": "false"}  # fmt: skip
    value = encode_value(Op.CREATE, None, after, source, at_us // 1000)
    log.produce(
        "vn.shop.orders", value, key=encode_key({"order_id": order_id}), timestamp_ms=at_us // 1000 + 3
    )


def _fx(log: EventLog, at_us: int, rate: str) -> None:
    after = {
        "rate_date": 0,
        "base": "USD",
        "quote": "VND",
        "rate": rate,
        "source": "ref",
        "published_at": at_us,
    }
    source = {"version": "2.7", "connector": "postgresql", "name": "vn", "ts_ms": at_us // 1000,
              "db": "finance",
              "schema": "public", "table": "fx_rates", "snapshot": "false"}  # fmt: skip
    log.produce("vn.finance.fx_rates", encode_value(Op.CREATE, None, after, source, at_us // 1000),
                timestamp_ms=at_us // 1000)  # fmt: skip


def test_new_events_update_the_online_values(features_factory: FeaturesFactory, tmp_path: Path) -> None:
    service = features_factory("live")
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path / "log")
    topic = f"inventory-{uuid.uuid4().hex[:8]}"
    inventory = InventoryService(
        open_reservation_store(BackendSelection(type="sqlite"), tmp_path / "inv"), log, topic=topic
    )
    try:
        log.create_topic("vn.shop.orders", 2)
        log.create_topic("vn.finance.fx_rates", 1)
        pusher = FeaturePusher(service, log, inventory_topic=topic)
        fraud = {
            "customer_id": "vn-c-1",
            "device_id": "dev-ring",
            "card_fingerprint": "fp-ring",
            "order_id": "vn-o-1",
        }
        assert service.online_features("fraud", fraud).values["device_usage__orders_1h"] is None

        _fx(log, T0 - US_PER_H, "25000")
        _order(log, "vn-o-1", "vn-c-1", "dev-ring", T0)
        _order(log, "vn-o-2", "vn-c-2", "dev-ring", T0 + 10 * 60 * US_PER_S)
        log.flush()
        pusher.run_once()
        values = service.online_features("fraud", fraud).values
        assert values["order_facts__total_usd"] == 20.0
        assert values["order_facts__local_hour"] == 9.0
        assert values["device_usage__accounts"] == 2.0
        assert values["device_usage__orders_1h"] == 2.0
        assert values["card_usage__orders_24h"] == 2.0
        assert values["customer_velocity__orders_1h"] == 1.0

        # The same order again (a duplicated CDC event) changes nothing; an order two hours later
        # closes the hour window of the first two.
        _order(log, "vn-o-2", "vn-c-2", "dev-ring", T0 + 10 * 60 * US_PER_S)
        _order(log, "vn-o-3", "vn-c-3", "dev-ring", T0 + 2 * US_PER_H)
        log.flush()
        pusher.run_once()
        values = service.online_features("fraud", {**fraud, "order_id": "vn-o-3"}).values
        assert (values["device_usage__accounts"], values["device_usage__orders_total"]) == (3.0, 3.0)
        assert (values["device_usage__orders_1h"], values["device_usage__orders_24h"]) == (1.0, 3.0)
        assert values["customer_velocity__orders_1h"] == 0.0  # vn-c-1's order left the window

        # Reservations move the stock a checkout would see.
        inventory.set_stock("SKU-9", "vn-wh-01", 10, reason="count")
        held = inventory.reserve([("SKU-9", "vn-wh-01", 3)], 60_000, "cart-1")
        log.flush()
        pusher.run_once()
        stock = _online(service, "stock_availability", [{"sku": "SKU-9", "warehouse_id": "vn-wh-01"}])
        assert stock[["on_hand", "held", "committed", "available"]].iloc[0].tolist() == [10, 3, 0, 7]
        inventory.confirm(held.id)
        log.flush()
        pusher.run_once()
        stock = _online(service, "stock_availability", [{"sku": "SKU-9", "warehouse_id": "vn-wh-01"}])
        assert stock[["on_hand", "held", "committed", "available"]].iloc[0].tolist() == [10, 0, 3, 7]
    finally:
        inventory.close()
        log.close()


def test_a_failed_push_is_retried_not_lost(features_factory: FeaturesFactory, tmp_path: Path) -> None:
    service = features_factory("retry")
    log = open_event_log(BackendSelection(type="sqlite"), home=tmp_path / "log")
    try:
        pusher = FeaturePusher(service, log)
        _order(log, "vn-o-7", "vn-c-7", "dev-7", T0)
        log.flush()
        real_push = service.push
        calls: list[str] = []

        def failing(view: str, rows: Any) -> int:
            calls.append(view)
            raise ConnectionError("online store down")

        service.push = failing  # type: ignore[method-assign]
        with contextlib.suppress(ConnectionError):
            pusher.run_once()
        service.push = real_push  # type: ignore[method-assign]
        assert calls
        result = pusher.run_once()  # nothing new to read: the waiting rows go out now
        assert result.records == 0
        assert set(result.pushed) >= {"customer_velocity", "device_usage", "card_usage", "order_facts"}
        got = _online(service, "customer_velocity", [{"customer_id": "vn-c-7"}])
        assert got["orders_1h"].tolist() == [1]
    finally:
        log.close()


def test_a_materialization_makes_the_worker_push_everything_again(
    world: World, features_factory: FeaturesFactory
) -> None:
    service = features_factory("repush")
    log = open_event_log(BackendSelection(type="sqlite"), home=world.home)
    try:
        pusher = FeaturePusher(service, log)
        _drain(pusher)
        assert not pusher.run_once().repushed
        manifest = service.data_dir / "manifest.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_bytes(orjson.dumps({"generation": 7}))
        result = pusher.run_once()
        assert result.repushed
        assert result.pushed["device_usage"] > 10
    finally:
        log.close()
