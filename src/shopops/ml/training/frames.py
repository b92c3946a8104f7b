"""Training frames: what a model learns from, with its label and the simulator's truth beside it.

The feature service (``shopops.ml.features.service.FeatureService``) is the source of point-in-time
training frames. :class:`EventLogFrames` builds frames of the same shape from the change-event log
(features, labels) and the simulator's ground truth (the truth columns only), so training can run
on a world whose feature store is not set up; both answer the same :class:`FrameSource` protocol.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.domain.regions import REGIONS
from shopops.events.debezium import DebeziumDecodeError, decode
from shopops.events.port import EventLog

USE_CASES = ("fraud", "eta")
_US_PER_H = 3_600_000_000


@dataclass
class TrainingFrame:
    """Rows to learn from: entity keys, ``event_timestamp``, ``region``, features, label and truth."""

    frame: pd.DataFrame
    label: str
    truth: str
    features: list[str]
    data_versions: dict[str, int] = field(default_factory=dict)


class FrameSource(Protocol):
    """Where training frames come from (the feature service, or the event log)."""

    def training_frame(self, use_case: str, *, regions: list[str] | None = None) -> Any: ...

    def feature_names(self, use_case: str) -> list[str]: ...


FRAUD_FEATURES = [
    "amount_ratio",
    "item_count",
    "local_hour",
    "customer_age_hours",
    "customer_orders_before",
    "customer_new_device",
    "device_seen_before",
    "device_accounts",
    "card_accounts",
    "address_accounts",
    "device_orders_1h",
    "card_orders_1h",
]
ETA_FEATURES = [
    "region_code",
    "carrier_code",
    "route_code",
    "warehouse_code",
    "weight_kg",
    "local_hour",
    "weekday",
    "carrier_route_p50_hours",
    "carrier_route_p90_hours",
    "carrier_route_deliveries",
]
ROUTES = ("same_city", "domestic", "remote")


def check_use_case(use_case: str) -> str:
    if use_case not in USE_CASES:
        raise InvalidInputError(f"unknown use case {use_case!r}", hint=f"use one of {', '.join(USE_CASES)}")
    return use_case


class EventLogFrames:
    """Training frames built from CDC topics of the event log, truth from the simulator's files."""

    def __init__(self, event_log: EventLog, truth_dir: Path) -> None:
        self.event_log = event_log
        self.truth_dir = truth_dir

    def feature_names(self, use_case: str) -> list[str]:
        return list(FRAUD_FEATURES if check_use_case(use_case) == "fraud" else ETA_FEATURES)

    def training_frame(self, use_case: str, *, regions: list[str] | None = None) -> TrainingFrame:
        check_use_case(use_case)
        codes = self._regions(regions)
        if use_case == "fraud":
            return self._fraud(codes)
        return self._eta(codes)

    # --- inputs ---------------------------------------------------------------------------------

    def _regions(self, regions: list[str] | None) -> list[str]:
        present = sorted({t.name.split(".", 1)[0] for t in self.event_log.list_topics() if t.messages})
        codes = [r for r in present if r in REGIONS] if regions is None else list(regions)
        if not codes:
            raise NotFoundError(
                "the event log holds no CDC topics to train on",
                hint="seed a world first: `shopops simulate` (or `shopops up` on an empty data directory)",
            )
        return codes

    def _rows(self, topic: str, ops: Iterable[str]) -> list[dict[str, Any]]:
        wanted = set(ops)
        rows: list[dict[str, Any]] = []
        for record in self.event_log.read_all(topic, batch=5000):
            try:
                event = decode(record)
            except DebeziumDecodeError:
                continue  # malformed records are the drift watch's business, not training's
            if event.op is not None and event.op.value in wanted and event.after is not None:
                rows.append(event.after)
        return rows

    def _truth(self, name: str, columns: list[str]) -> pd.DataFrame:
        path = self.truth_dir / f"{name}.parquet"
        if not path.is_file():
            raise NotFoundError(
                f"no ground truth at {path}",
                hint="training scores against the simulator's truth: seed the world with `shopops simulate`",
            )
        return pd.read_parquet(path, columns=columns)

    # --- fraud ----------------------------------------------------------------------------------

    def _fraud(self, codes: list[str]) -> TrainingFrame:
        parts = []
        for code in codes:
            orders = pd.DataFrame(self._rows(f"{code}.shop.orders", ("c",)))
            if orders.empty:
                continue
            # The connector sometimes emits a change twice: one row per order.
            orders = orders.drop_duplicates("order_id")
            customers = pd.DataFrame(self._rows(f"{code}.shop.customers", ("c", "r")))
            parts.append(_fraud_features(code, orders, customers))
        if not parts:
            raise NotFoundError("no orders in the event log", hint="seed a world with `shopops simulate`")
        frame = pd.concat(parts, ignore_index=True)
        truth = self._truth("fraud_truth", ["order_id", "is_fraud", "fraud_probability"])
        frame = frame.merge(truth, on="order_id", how="inner")
        frame["is_fraud"] = frame["is_fraud"].astype(int)
        frame = frame.rename(columns={"fraud_probability": "truth_fraud_probability"})
        frame = frame.sort_values(["event_timestamp", "order_id"], kind="stable").reset_index(drop=True)
        versions = self._versions(codes, ("shop.orders", "shop.customers"))
        return TrainingFrame(frame, "is_fraud", "truth_fraud_probability", list(FRAUD_FEATURES), versions)

    # --- eta ------------------------------------------------------------------------------------

    def _eta(self, codes: list[str]) -> TrainingFrame:
        parts = []
        for code in codes:
            rows = self._rows(f"{code}.logistics.shipments", ("c", "u"))
            if rows:
                parts.append(_eta_features(code, pd.DataFrame(rows)))
        if not parts:
            raise NotFoundError("no shipments in the event log", hint="seed a world with `shopops simulate`")
        frame = pd.concat(parts, ignore_index=True)
        truth = self._truth("delivery_truth", ["shipment_id", "median_hours"])
        frame = frame.merge(truth, on="shipment_id", how="inner")
        frame = frame.rename(columns={"median_hours": "truth_median_hours"})
        frame = frame.sort_values(["event_timestamp", "shipment_id"], kind="stable").reset_index(drop=True)
        versions = self._versions(codes, ("logistics.shipments",))
        return TrainingFrame(frame, "delivery_hours", "truth_median_hours", list(ETA_FEATURES), versions)

    def _versions(self, codes: list[str], tables: tuple[str, ...]) -> dict[str, int]:
        """The log position read up to, per topic (records in it): what a rerun must match."""
        return {
            f"{code}.{table}": sum(self.event_log.end_offsets(f"{code}.{table}").values())
            for code in codes
            for table in tables
        }


def _local(code: str, created_us: pd.Series) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(created_us, unit="us", utc=True)).tz_convert(REGIONS[code].tz)


def _fraud_features(code: str, orders: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Point in time: each order sees only orders placed, and accounts opened, before it."""
    orders = orders.sort_values(["created_at", "order_id"], kind="stable").reset_index(drop=True)
    created = orders["created_at"].to_numpy(dtype=np.int64)
    total = orders["total"].astype(float).to_numpy()
    # The basket against the region's median basket so far (amounts are in each region's currency).
    prior_median = pd.Series(total).expanding().median().shift(1).to_numpy()
    amount_ratio = np.where(prior_median > 0, total / np.where(prior_median > 0, prior_median, 1), np.nan)
    signup = customers.drop_duplicates("customer_id").set_index("customer_id")
    cust_created = orders["customer_id"].map(signup["created_at"]).to_numpy(dtype=float)
    address_members: dict[str, list[int]] = defaultdict(list)
    for addr, at in zip(signup["address_hash"], signup["created_at"], strict=True):
        address_members[addr].append(int(at))
    for members in address_members.values():
        members.sort()
    cust_orders: dict[str, int] = defaultdict(int)
    cust_devices: dict[str, set[str]] = defaultdict(set)
    device_accounts: dict[str, set[str]] = defaultdict(set)
    card_accounts: dict[str, set[str]] = defaultdict(set)
    device_recent: dict[str, deque[int]] = defaultdict(deque)
    card_recent: dict[str, deque[int]] = defaultdict(deque)
    n = len(orders)
    out = {name: np.zeros(n) for name in FRAUD_FEATURES}
    cols = zip(
        orders["customer_id"],
        orders["device_id"],
        orders["card_fingerprint"],
        orders["shipping_address_hash"],
        strict=True,
    )
    for i, (cust, device, card, addr) in enumerate(cols):
        t = int(created[i])
        seen = cust_orders[cust]
        out["customer_orders_before"][i] = seen
        out["device_seen_before"][i] = float(device in device_accounts)
        out["customer_new_device"][i] = float(seen > 0 and device not in cust_devices[cust])
        out["device_accounts"][i] = len(device_accounts[device] - {cust})
        out["card_accounts"][i] = len(card_accounts[card] - {cust})
        members = address_members.get(addr, [])
        out["address_accounts"][i] = max(0, int(np.searchsorted(members, t, side="left")) - 1)
        for recent, key in ((device_recent, device), (card_recent, card)):
            window = recent[key]
            while window and window[0] < t - _US_PER_H:
                window.popleft()
        out["device_orders_1h"][i] = len(device_recent[device])
        out["card_orders_1h"][i] = len(card_recent[card])
        cust_orders[cust] = seen + 1
        cust_devices[cust].add(device)
        device_accounts[device].add(cust)
        card_accounts[card].add(cust)
        device_recent[device].append(t)
        card_recent[card].append(t)
    out["amount_ratio"] = amount_ratio
    out["item_count"] = orders["item_count"].astype(float).to_numpy()
    out["local_hour"] = _local(code, orders["created_at"]).hour.to_numpy(dtype=float)
    out["customer_age_hours"] = (created - cust_created) / _US_PER_H
    frame = pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "customer_id": orders["customer_id"],
            "device_id": orders["device_id"],
            "card_fingerprint": orders["card_fingerprint"],
            "event_timestamp": pd.to_datetime(orders["created_at"], unit="us", utc=True),
            "region": code,
            **out,
        }
    )
    return frame


def _eta_features(code: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Point in time: a shipment's carrier-route history counts deliveries completed before it ships."""
    created = rows[rows["status"] == "created"].drop_duplicates("shipment_id")
    delivered = rows[rows["delivered_at"].notna()].drop_duplicates("shipment_id")
    ship = created.drop(columns=["delivered_at"]).merge(
        delivered[["shipment_id", "delivered_at"]], on="shipment_id", how="left"
    )
    ship = ship.sort_values(["created_at", "shipment_id"], kind="stable").reset_index(drop=True)
    hours = (ship["delivered_at"].astype(float) - ship["created_at"].astype(float)) / _US_PER_H
    carriers = sorted(ship["carrier"].unique())
    warehouses = sorted(ship["warehouse_id"].unique())
    p50 = np.full(len(ship), np.nan)
    p90 = np.full(len(ship), np.nan)
    count = np.zeros(len(ship))
    done = ship.loc[hours.notna(), ["carrier", "route", "delivered_at"]].assign(hours=hours[hours.notna()])
    done = done.sort_values("delivered_at", kind="stable")
    for (carrier, route), group in ship.groupby(["carrier", "route"], sort=False):
        history = done[(done["carrier"] == carrier) & (done["route"] == route)]
        times = history["delivered_at"].to_numpy(dtype=np.int64)
        values = history["hours"].to_numpy()
        for i, t in zip(group.index, group["created_at"].to_numpy(dtype=np.int64), strict=True):
            k = int(np.searchsorted(times, t, side="left"))
            count[i] = k
            if k:
                p50[i], p90[i] = np.quantile(values[:k], [0.5, 0.9])
    local = _local(code, ship["created_at"])
    weight = pd.to_numeric(ship["weight_kg"], errors="coerce")  # a string after the schema change
    frame = pd.DataFrame(
        {
            "shipment_id": ship["shipment_id"],
            "order_id": ship["order_id"],
            "event_timestamp": pd.to_datetime(ship["created_at"], unit="us", utc=True),
            "region": code,
            "region_code": float(sorted(REGIONS).index(code)),
            "carrier_code": ship["carrier"].map({c: float(i) for i, c in enumerate(carriers)}),
            "route_code": ship["route"].map({r: float(i) for i, r in enumerate(ROUTES)}),
            "warehouse_code": ship["warehouse_id"].map({w: float(i) for i, w in enumerate(warehouses)}),
            "weight_kg": weight.astype(float),
            "local_hour": local.hour.to_numpy(dtype=float),
            "weekday": local.weekday.to_numpy(dtype=float),
            "carrier_route_p50_hours": p50,
            "carrier_route_p90_hours": p90,
            "carrier_route_deliveries": count,
            "delivery_hours": hours,
        }
    )
    return frame
