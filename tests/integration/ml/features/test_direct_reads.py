"""Online reads straight from the rows Feast wrote answer exactly what Feast's
``get_online_features`` answers, on SQLite and on Redis, after a materialization and after pushes;
a pushed value is read back as soon as the push returns."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import pandas as pd
import pytest
from tests.integration.ml.features.conftest import REGIONS, FeaturesFactory

from shopops.core.errors import BackendUnavailableError
from shopops.ml.features.service import FeatureService

REDIS = {"type": "redis", "connection_string": "127.0.0.1:6379,db=13"}


def _requests(service: FeatureService) -> list[tuple[str, dict[str, str]]]:
    """Fraud and ETA requests over real entities, with partial keys, new and unknown ids."""
    fraud = service.training_frame("fraud").frame
    eta = service.training_frame("eta").frame
    out: list[tuple[str, dict[str, str]]] = []
    for row in fraud.iloc[:: max(1, len(fraud) // 40)].itertuples(index=False):
        entity = {
            "customer_id": row.customer_id,
            "device_id": row.device_id,
            "card_fingerprint": row.card_fingerprint,
            "order_id": row.order_id,
            "event_timestamp": str(row.event_timestamp.isoformat()),
        }
        out.append(("fraud", entity))
        out.append(("fraud", {k: v for k, v in entity.items() if k != "order_id"}))  # a view not asked
        out.append(("fraud", {**entity, "device_id": "dev-never-seen", "card_fingerprint": "fp-never-seen"}))
    for row in eta.iloc[:: max(1, len(eta) // 20)].itertuples(index=False):
        out.append(
            (
                "eta",
                {
                    "carrier": row.carrier,
                    "route": row.route,
                    "shipment_id": row.shipment_id,
                    "order_id": row.order_id,
                },
            )
        )
        out.append(("eta", {"carrier": row.carrier, "route": row.route}))
    out.append(
        ("fraud", {"customer_id": "vn-c-none", "device_id": "dev-none", "card_fingerprint": "fp-none"})
    )
    out.append(("eta", {"carrier": "NoSuchCarrier", "route": "domestic"}))
    return out


def _push_some(service: FeatureService, requests: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """New values for known keys, and keys the materialization never saw; returns what was pushed."""
    now = pd.Timestamp.now(tz="UTC")
    orders = list(dict.fromkeys(e["order_id"] for uc, e in requests if uc == "fraud" and "order_id" in e))[:5]
    new_order = f"vn-o-new-{uuid.uuid4().hex[:8]}"
    service.push(
        "order_facts",
        [
            {"order_id": o, "event_timestamp": now, "total_usd": 1000.0 + i, "item_count": 7, "local_hour": 3}
            for i, o in enumerate([*orders, new_order])
        ],
    )
    customers = list(dict.fromkeys(e["customer_id"] for uc, e in requests if uc == "fraud"))[:3]
    service.push(
        "customer_velocity",
        [{"customer_id": c, "event_timestamp": now, "orders_1h": 42, "orders_24h": 99} for c in customers],
    )
    return {"orders": orders, "new_order": new_order, "customers": customers}


def _assert_same(
    direct: FeatureService, feast: FeatureService, requests: list[tuple[str, dict[str, str]]]
) -> None:
    assert direct.direct_reads
    assert not feast.direct_reads
    for use_case, entity in requests:
        assert direct.online_features(use_case, entity) == feast.online_features(use_case, entity), entity


def _check_store(factory: FeaturesFactory, name: str, **options: Any) -> None:
    direct = factory(name, **options)
    feast = factory(name, online_reads="feast", **options)
    direct.materialize(regions=REGIONS)
    requests = _requests(direct)
    _assert_same(direct, feast, requests)
    pushed = _push_some(direct, requests)
    _assert_same(direct, feast, requests)
    # Fresh at once: what a push wrote is what the next read returns.
    entity = next(e for uc, e in requests if uc == "fraud" and e.get("order_id") == pushed["orders"][0])
    values = direct.online_features("fraud", entity).values
    assert values["order_facts__total_usd"] == 1000.0
    assert values["order_facts__item_count"] == 7.0
    brand_new = {**entity, "order_id": pushed["new_order"]}
    got = direct.online_features("fraud", brand_new)
    assert got == feast.online_features("fraud", brand_new)
    assert got.values["order_facts__total_usd"] == 1000.0 + len(pushed["orders"])
    velocity = direct.online_features("fraud", {**entity, "customer_id": pushed["customers"][0]})
    assert velocity.values["customer_velocity__orders_1h"] == 42.0


def test_sqlite_direct_reads_are_feasts_reads(features_factory: FeaturesFactory) -> None:
    _check_store(features_factory, "sqlite")


def test_redis_direct_reads_are_feasts_reads(features_factory: FeaturesFactory) -> None:
    project = f"t_{uuid.uuid4().hex[:10]}"
    direct = features_factory("redis", project=project, online_store=REDIS)
    try:
        _check_store(features_factory, "redis", project=project, online_store=REDIS)
    finally:
        direct.store.teardown()


def test_a_broken_online_store_is_a_clear_error_on_direct_reads(features_factory: FeaturesFactory) -> None:
    service = features_factory("broken")
    service.apply()
    entity = {"customer_id": "vn-c-1", "device_id": "d", "card_fingerprint": "c", "order_id": "o"}
    assert service.online_features("fraud", entity).missing  # an empty store answers: all missing
    conn = sqlite3.connect(service.repo_dir / "online.db")
    conn.execute(f'DROP TABLE "{service.project}_order_facts"')
    conn.commit()
    conn.close()
    with pytest.raises(
        BackendUnavailableError, match=r"online store \(sqlite .*\) failed: no such table"
    ) as err:
        service.online_features("fraud", entity)
    assert "shopops features apply" in (err.value.hint or "")


def test_an_unknown_online_reads_setting_is_refused(features_factory: FeaturesFactory) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="online_reads"):
        features_factory("bad", online_reads="fast")
