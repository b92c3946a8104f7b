"""The offline store's data: the lake's change history turned into feature rows with DuckDB.

Every batch view is derived from the **bronze** tables (``bronze.<region>__<db>__<table>``, one row
per change event) because a point-in-time feature needs the history of changes, not only the
current state a silver table keeps. Each derivation reads the tables at one Iceberg snapshot (the
ids end up in the training frame's ``data_versions``), decodes the Debezium envelopes with DuckDB's
JSON functions (both converter shapes) and writes one Parquet file per view. The stock view comes
from the reservation engine's events on the event log (they never reach the lake), folded by the
same :class:`~shopops.ml.features.model.StockFold` the push worker uses.

Formulas follow ``model.py``: a row stamped ``t`` includes the event at ``t``; a window of width
``w`` holds events in ``(T - w, T]`` (``RANGE w - 1 µs PRECEDING`` over integer microseconds), and
every event adds a row at ``t + w`` when it leaves the window.
"""

# Every query here is assembled from this module's constants (window widths, column names, the
# JSON structures), never from input: the SQL-injection rule does not apply.
# ruff: noqa: S608

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from shopops.core.logging import get_logger
from shopops.domain.regions import REGIONS
from shopops.events.port import EventLog
from shopops.ml.features.model import (
    US_PER_DAY,
    US_PER_H,
    VIEW_BY_NAME,
    VIEWS,
    StockFold,
    ViewDef,
    utc_offset_us,
)

log = get_logger("shopops.ml.features")

INVENTORY_TOPIC = "shopops.inventory.events"
BRONZE = "bronze"
#: The lake datasets the views read (``<db>.<table>``).
DATASETS = (
    "shop.orders",
    "shop.customers",
    "shop.products",
    "payments.payments",
    "finance.fx_rates",
    "logistics.shipments",
)
ENTITY_FILES = {"fraud": "fraud_entities.parquet", "eta": "eta_entities.parquet"}
MANIFEST = "manifest.json"

_TS = pa.timestamp("us", tz="UTC")
_ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64()}

#: Columns of the entity files (labels and truth included; see ``service.training_frame``).
ENTITY_SCHEMAS: dict[str, pa.Schema] = {
    "fraud": pa.schema(
        [
            ("order_id", pa.string()),
            ("customer_id", pa.string()),
            ("device_id", pa.string()),
            ("card_fingerprint", pa.string()),
            ("region", pa.string()),
            ("event_timestamp", _TS),
            ("is_fraud", pa.int64()),
            ("truth_fraud_probability", pa.float64()),
        ]
    ),
    "eta": pa.schema(
        [
            ("shipment_id", pa.string()),
            ("order_id", pa.string()),
            ("carrier", pa.string()),
            ("route", pa.string()),
            ("warehouse_id", pa.string()),
            ("region", pa.string()),
            ("event_timestamp", _TS),
            ("delivery_hours", pa.float64()),
            ("truth_median_hours", pa.float64()),
        ]
    ),
}


def view_schema(view: ViewDef) -> pa.Schema:
    fields = [pa.field(k, pa.string()) for k in view.join_keys]
    fields.append(pa.field("event_timestamp", _TS))
    fields.extend(pa.field(name, _ARROW_TYPES[kind]) for name, kind in view.fields)
    return pa.schema(fields)


# --- reading the lake ------------------------------------------------------------------------------

_RAW = pa.schema(
    [
        ("region", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp_ms", pa.int64()),
        ("value", pa.string()),
    ]
)


def bronze_name(region: str, dataset: str) -> str:
    return f"{BRONZE}.{region}__{dataset.replace('.', '__')}"


def lake_regions(catalog: Catalog) -> list[str]:
    """Regions with a bronze ``shop.orders`` table, in the order of :data:`REGIONS`."""
    try:
        names = {name for _, name in catalog.list_tables(BRONZE)}
    except NoSuchNamespaceError:
        return []
    return [code for code in REGIONS if f"{code}__shop__orders" in names]


def read_changes(catalog: Catalog, dataset: str, regions: Iterable[str]) -> tuple[pa.Table, dict[str, int]]:
    """Every change event of ``dataset`` in ``regions`` from bronze, with the snapshot read per table.

    The one reader of lake history for the feature store: columns ``region``, ``partition``,
    ``offset``, ``timestamp_ms`` and the raw Debezium ``value``. A region without the table (yet)
    contributes nothing.
    """
    parts: list[pa.Table] = []
    versions: dict[str, int] = {}
    for region in regions:
        name = bronze_name(region, dataset)
        try:
            table = catalog.load_table(name)
        except NoSuchTableError:
            continue
        snapshot = table.current_snapshot()
        if snapshot is None:
            continue
        versions[name] = snapshot.snapshot_id
        rows = table.scan(
            selected_fields=("partition", "offset", "timestamp_ms", "value"), snapshot_id=snapshot.snapshot_id
        ).to_arrow()
        rows = rows.append_column("region", pa.array([region] * rows.num_rows, pa.string()))
        parts.append(rows.select(_RAW.names).cast(_RAW))
    if not parts:
        return _RAW.empty_table(), versions
    return pa.concat_tables(parts), versions


# --- the DuckDB derivation -------------------------------------------------------------------------

#: json_transform structures: what each dataset's change events carry for the features.
_STRUCTS: dict[str, str] = {
    "shop.orders": '{"op":"VARCHAR","after":{"order_id":"VARCHAR","customer_id":"VARCHAR",'
    '"currency":"VARCHAR","total":"VARCHAR","item_count":"BIGINT","device_id":"VARCHAR",'
    '"card_fingerprint":"VARCHAR","created_at":"BIGINT"}}',
    "shop.customers": '{"op":"VARCHAR","after":{"customer_id":"VARCHAR","created_at":"BIGINT"}}',
    "shop.products": '{"op":"VARCHAR","before":{"price":"VARCHAR"},"after":{"product_id":"VARCHAR",'
    '"price":"VARCHAR","currency":"VARCHAR","weight_kg":"VARCHAR","updated_at":"BIGINT"}}',
    "payments.payments": '{"op":"VARCHAR","before":{"status":"VARCHAR"},"after":{"payment_id":"VARCHAR",'
    '"order_id":"VARCHAR","status":"VARCHAR","updated_at":"BIGINT"}}',
    "finance.fx_rates": '{"op":"VARCHAR","after":{"quote":"VARCHAR","rate":"VARCHAR",'
    '"published_at":"BIGINT"}}',
    "logistics.shipments": '{"op":"VARCHAR","before":{"status":"VARCHAR"},"after":{"shipment_id":"VARCHAR",'
    '"order_id":"VARCHAR","warehouse_id":"VARCHAR","carrier":"VARCHAR","route":"VARCHAR",'
    '"status":"VARCHAR","weight_kg":"VARCHAR","promised_date":"BIGINT","created_at":"BIGINT",'
    '"delivered_at":"BIGINT"}}',
}


def _window(width_us: int) -> str:
    # (T - w, T] over integer microseconds; peers at T are included by RANGE.
    return f"(PARTITION BY k ORDER BY ts RANGE BETWEEN {width_us - 1} PRECEDING AND CURRENT ROW)"


_ALL = "(PARTITION BY k ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"

_SETUP_SQL = """
CREATE TEMP TABLE offsets AS SELECT * FROM offsets_arrow;
CREATE TEMP MACRO env(v) AS coalesce(json_extract(v, '$.payload'), v::JSON);
CREATE TEMP TABLE orders AS
  SELECT region, partition, "offset", timestamp_ms, json_transform(env(value), '{orders}') AS e
  FROM raw_orders WHERE value IS NOT NULL;
CREATE TEMP TABLE order_created AS
  SELECT o.region, e.after.order_id AS order_id, e.after.customer_id AS customer_id,
         e.after.device_id AS device_id, e.after.card_fingerprint AS card_fingerprint,
         e.after.currency AS currency, e.after.total AS total, e.after.item_count AS item_count,
         e.after.created_at AS created_at, f.off
  FROM orders o JOIN offsets f USING (region)
  WHERE e.op IN ('c', 'r') AND e.after.order_id IS NOT NULL AND e.after.created_at IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY e.after.order_id ORDER BY timestamp_ms, partition, "offset") = 1;
CREATE TEMP TABLE fx AS
  SELECT e.after.quote AS quote, e.after.published_at AS published_at, max(e.after.rate::DOUBLE) AS rate
  FROM (SELECT json_transform(env(value), '{fx}') AS e FROM raw_fx WHERE value IS NOT NULL)
  WHERE e.op IN ('c', 'r', 'u') AND e.after.rate IS NOT NULL AND e.after.published_at IS NOT NULL
  GROUP BY ALL;
CREATE TEMP TABLE orders_usd AS
  SELECT o.*, CASE WHEN o.currency = 'USD' THEN o.total::DOUBLE
                   ELSE o.total::DOUBLE / nullif(fx.rate, 0) END AS total_usd
  FROM order_created o ASOF LEFT JOIN fx ON o.currency = fx.quote AND o.created_at >= fx.published_at;
"""

_CUSTOMER_HISTORY_SQL = f"""
WITH created AS (
  SELECT e.after.customer_id AS k, min(e.after.created_at) AS ts
  FROM (SELECT json_transform(env(value), '{{customers}}') AS e FROM raw_customers WHERE value IS NOT NULL)
  WHERE e.op IN ('c', 'r') AND e.after.customer_id IS NOT NULL AND e.after.created_at IS NOT NULL
  GROUP BY 1
), chargebacks AS (
  SELECT o.customer_id AS k, min(p.ts) AS ts
  FROM (
    SELECT e.after.payment_id AS payment_id, e.after.order_id AS order_id, e.after.updated_at AS ts
    FROM (SELECT json_transform(env(value), '{{payments}}') AS e FROM raw_payments WHERE value IS NOT NULL)
    WHERE e.after.status = 'charged_back' AND coalesce(e.before.status, '') <> 'charged_back'
  ) p JOIN order_created o USING (order_id)
  GROUP BY p.payment_id, o.customer_id
), devices AS (
  SELECT customer_id AS k, min(created_at) AS ts FROM order_created WHERE device_id IS NOT NULL
  GROUP BY customer_id, device_id
), cards AS (
  SELECT customer_id AS k, min(created_at) AS ts FROM order_created WHERE card_fingerprint IS NOT NULL
  GROUP BY customer_id, card_fingerprint
), pts AS (
  SELECT customer_id AS k, created_at AS ts, 1 AS o, total_usd AS amt, NULL::BIGINT AS cb,
         NULL::BIGINT AS made, NULL::BIGINT AS nd, NULL::BIGINT AS nc FROM orders_usd
  UNION ALL SELECT customer_id, created_at + {7 * US_PER_DAY}, NULL, NULL, NULL, NULL, NULL, NULL
    FROM orders_usd
  UNION ALL SELECT customer_id, created_at + {30 * US_PER_DAY}, NULL, NULL, NULL, NULL, NULL, NULL
    FROM orders_usd
  UNION ALL SELECT k, ts, NULL, NULL, 1, NULL, NULL, NULL FROM chargebacks
  UNION ALL SELECT k, ts, NULL, NULL, NULL, ts // 1000, NULL, NULL FROM created
  UNION ALL SELECT k, ts, NULL, NULL, NULL, NULL, 1, NULL FROM devices
  UNION ALL SELECT k, ts, NULL, NULL, NULL, NULL, NULL, 1 FROM cards
), w AS (
  SELECT k, ts,
    count(o) OVER d7 AS orders_7d, coalesce(sum(amt) OVER d7, 0) AS amount_usd_7d,
    count(o) OVER d30 AS orders_30d, coalesce(sum(amt) OVER d30, 0) AS amount_usd_30d,
    max(made) OVER a AS account_created_ms, coalesce(sum(cb) OVER a, 0) AS chargebacks,
    coalesce(sum(nd) OVER a, 0) AS distinct_devices, coalesce(sum(nc) OVER a, 0) AS distinct_cards
  FROM pts WINDOW d7 AS {_window(7 * US_PER_DAY)}, d30 AS {_window(30 * US_PER_DAY)}, a AS {_ALL}
)
SELECT k AS customer_id, ts, max(orders_7d) AS orders_7d, max(amount_usd_7d) AS amount_usd_7d,
       max(orders_30d) AS orders_30d, max(amount_usd_30d) AS amount_usd_30d,
       max(account_created_ms) AS account_created_ms, max(chargebacks) AS chargebacks,
       max(distinct_devices) AS distinct_devices, max(distinct_cards) AS distinct_cards
FROM w GROUP BY k, ts
"""


def usage_sql(key: str, counters: bool) -> str:
    """Velocity of one key over order creations (the batch twin of ``model.OrderFold``)."""
    exits = "\n".join(
        f"  UNION ALL SELECT {key}, created_at + {width}, NULL, NULL FROM order_created\n"
        f"    WHERE {key} IS NOT NULL"
        for width in (US_PER_H, US_PER_DAY)
    )
    extra_cols = (
        "coalesce(sum(first_pair) OVER a, 0) AS accounts, count(o) OVER a AS orders_total,"
        if counters
        else ""
    )
    extra_out = "max(accounts) AS accounts, max(orders_total) AS orders_total," if counters else ""
    return f"""
WITH pts AS (
  SELECT {key} AS k, created_at AS ts, 1 AS o,
         CASE WHEN row_number() OVER (PARTITION BY {key}, customer_id ORDER BY created_at, order_id) = 1
              THEN 1 END AS first_pair
  FROM order_created WHERE {key} IS NOT NULL
{exits}
), w AS (
  SELECT k, ts, {extra_cols}
    count(o) OVER h AS orders_1h, count(o) OVER d AS orders_24h
  FROM pts WINDOW h AS {_window(US_PER_H)}, d AS {_window(US_PER_DAY)}, a AS {_ALL}
)
SELECT k AS {key}, ts, {extra_out} max(orders_1h) AS orders_1h, max(orders_24h) AS orders_24h
FROM w GROUP BY k, ts
"""


_ORDER_FACTS_SQL = f"""
SELECT order_id, created_at AS ts, total_usd, item_count,
       ((created_at + off) // {US_PER_H}) % 24 AS local_hour
FROM orders_usd
"""

_SHIPMENTS_SQL = """
CREATE TEMP TABLE shipments AS
  SELECT region, partition, "offset", timestamp_ms, json_transform(env(value), '{shipments}') AS e
  FROM raw_shipments WHERE value IS NOT NULL;
CREATE TEMP TABLE shipment_created AS
  SELECT s.region, e.after.shipment_id AS shipment_id, e.after.order_id AS order_id,
         e.after.warehouse_id AS warehouse_id, e.after.carrier AS carrier, e.after.route AS route,
         TRY_CAST(e.after.weight_kg AS DOUBLE) AS weight_kg, e.after.promised_date AS promised_date,
         e.after.created_at AS created_at, f.off
  FROM shipments s JOIN offsets f USING (region)
  WHERE e.op IN ('c', 'r') AND e.after.shipment_id IS NOT NULL AND e.after.created_at IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY e.after.shipment_id ORDER BY timestamp_ms, partition, "offset") = 1;
CREATE TEMP TABLE deliveries AS
  SELECT c.*, d.delivered_at,
         (d.delivered_at - c.created_at) / 3600000000.0 AS hours,
         CASE WHEN (d.delivered_at + c.off) // 86400000000 > c.promised_date THEN 1.0 ELSE 0.0 END AS slipped
  FROM (
    SELECT e.after.shipment_id AS shipment_id, min(e.after.delivered_at) AS delivered_at FROM shipments
    WHERE e.after.status = 'delivered' AND e.after.delivered_at IS NOT NULL GROUP BY 1
  ) d JOIN shipment_created c USING (shipment_id);
"""

_SHIPMENT_FACTS_SQL = f"""
SELECT shipment_id, created_at AS ts, weight_kg,
       ((promised_date + 1) * {US_PER_DAY} - off - created_at) / {float(US_PER_H)} AS promised_hours,
       ((created_at + off) // {US_PER_H}) % 24 AS local_hour
FROM shipment_created
"""

_SHIPMENT_PERFORMANCE_SQL = f"""
WITH pts AS (
  SELECT carrier || chr(31) || route AS k, carrier, route, delivered_at AS ts, hours AS h, slipped AS s
  FROM deliveries WHERE carrier IS NOT NULL AND route IS NOT NULL
  UNION ALL SELECT carrier || chr(31) || route, carrier, route, delivered_at + {30 * US_PER_DAY}, NULL, NULL
  FROM deliveries WHERE carrier IS NOT NULL AND route IS NOT NULL
), w AS (
  SELECT k, carrier, route, ts, count(h) OVER d AS deliveries_30d,
         quantile_cont(h, 0.5) OVER d AS p50_hours_30d, quantile_cont(h, 0.9) OVER d AS p90_hours_30d,
         avg(s) OVER d AS slip_rate_30d
  FROM pts WINDOW d AS {_window(30 * US_PER_DAY)}
)
SELECT any_value(carrier) AS carrier, any_value(route) AS route, ts, max(deliveries_30d) AS deliveries_30d,
       max(p50_hours_30d) AS p50_hours_30d, max(p90_hours_30d) AS p90_hours_30d,
       max(slip_rate_30d) AS slip_rate_30d
FROM w GROUP BY k, ts
"""

_PRODUCT_HISTORY_SQL = f"""
WITH ev AS (
  SELECT e.after.product_id AS k, e.after.updated_at AS ts, e.after.currency AS currency,
         TRY_CAST(e.after.price AS DOUBLE) AS price, TRY_CAST(e.before.price AS DOUBLE) AS before_price,
         TRY_CAST(e.after.weight_kg AS DOUBLE) AS weight_kg,
         CASE WHEN e.op = 'u' AND e.before.price IS DISTINCT FROM e.after.price THEN 1 END AS chg
  FROM (SELECT json_transform(env(value), '{{products}}') AS e FROM raw_products WHERE value IS NOT NULL)
  WHERE e.op IN ('c', 'r', 'u') AND e.after.product_id IS NOT NULL AND e.after.updated_at IS NOT NULL
), pts AS (
  SELECT k, ts, currency, price, weight_kg, chg,
         CASE WHEN chg = 1 THEN least(price, before_price) END AS lo,
         CASE WHEN chg = 1 THEN greatest(price, before_price) END AS hi FROM ev
  UNION ALL SELECT k, ts + {30 * US_PER_DAY}, NULL, NULL, NULL, NULL, NULL, NULL FROM ev WHERE chg = 1
), w AS (
  SELECT k, ts,
    last_value(price IGNORE NULLS) OVER a AS price, last_value(currency IGNORE NULLS) OVER a AS currency,
    last_value(weight_kg IGNORE NULLS) OVER a AS weight_kg, coalesce(sum(chg) OVER d, 0) AS price_changes_30d,
    min(lo) OVER d AS lo, max(hi) OVER d AS hi
  FROM pts WINDOW d AS {_window(30 * US_PER_DAY)}, a AS (PARTITION BY k ORDER BY ts
    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), g AS (
  SELECT k, ts, max(price) AS price, max(currency) AS currency, max(weight_kg) AS weight_kg,
         max(price_changes_30d) AS price_changes_30d, min(lo) AS lo, max(hi) AS hi
  FROM w GROUP BY k, ts
)
SELECT g.k AS product_id, g.ts, g.price,
       CASE WHEN g.currency = 'USD' THEN g.price
            ELSE g.price / nullif(coalesce(fx.rate, first_fx.rate), 0) END AS price_usd,
       g.price_changes_30d, least(coalesce(g.lo, g.price), g.price) AS price_min_30d,
       greatest(coalesce(g.hi, g.price), g.price) AS price_max_30d, g.weight_kg
FROM g ASOF LEFT JOIN fx ON g.currency = fx.quote AND g.ts >= fx.published_at
-- Prices set before the first published rate (catalogue snapshots) use the first rate.
LEFT JOIN (SELECT quote, arg_min(rate, published_at) AS rate FROM fx GROUP BY quote) first_fx
  ON first_fx.quote = g.currency
"""


@dataclass
class Derived:
    """The result of one derivation: rows per view, entity frames, the lake snapshots read."""

    views: dict[str, pa.Table]
    entities: dict[str, pa.Table]
    data_versions: dict[str, int]
    regions: list[str]
    #: The newest change event read from the lake (microseconds): the data's "now", where the
    #: materialization of the lake's views ends by default.
    clock_us: int
    #: The newest reservation-engine event (its own clock: the engine stamps events with the wall's).
    stock_clock_us: int = -1
    notes: list[str] = field(default_factory=list)


def _finish(view: ViewDef, table: pa.Table) -> pa.Table:
    """A DuckDB result (``ts`` in microseconds) as the view's Parquet schema, sorted by key and time."""
    schema = view_schema(view)
    columns: list[pa.Array] = []
    for f in schema:
        if f.name == "event_timestamp":
            columns.append(table.column("ts").cast(pa.int64()).cast(_TS))
        else:
            columns.append(table.column(f.name).cast(f.type))
    out = pa.Table.from_arrays(columns, schema=schema)
    return out.sort_by([(k, "ascending") for k in view.join_keys] + [("event_timestamp", "ascending")])


def stock_rows(event_log: EventLog | None, topic: str = INVENTORY_TOPIC) -> tuple[pa.Table, int]:
    """The stock view's rows from the reservation engine's events (and the newest event time, µs)."""
    view = VIEW_BY_NAME["stock_availability"]
    if event_log is None or topic not in {t.name for t in event_log.list_topics()}:
        return view_schema(view).empty_table(), -1
    events: list[tuple[int, int, int, dict[str, Any]]] = []
    for record in event_log.read_all(topic):
        if record.value is None:
            continue
        try:
            data = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and "at_ms" in data:
            events.append((int(data["at_ms"]), record.partition, record.offset, data))
    events.sort(key=lambda e: e[:3])
    fold = StockFold()
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for _, _, _, data in events:
        if fold.apply(data):
            for row in fold.drain():
                rows[(row["sku"], row["warehouse_id"], row["event_timestamp"])] = row
    clock = events[-1][0] * 1000 if events else -1
    if not rows:
        return view_schema(view).empty_table(), clock
    return pa.Table.from_pylist(list(rows.values()), schema=view_schema(view)), clock


def _truth(truth_dir: Path | None, name: str) -> Path | None:
    if truth_dir is None:
        return None
    path = truth_dir / f"{name}.parquet"
    return path if path.is_file() else None


def derive(
    catalog: Catalog,
    *,
    regions: list[str] | None = None,
    event_log: EventLog | None = None,
    truth_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Derived:
    """Derive every view's rows and the entity frames from the lake (and the inventory events)."""
    import duckdb

    step = progress or (lambda _: None)
    codes = regions if regions is not None else lake_regions(catalog)
    raw: dict[str, pa.Table] = {}
    versions: dict[str, int] = {}
    for dataset in DATASETS:
        step(f"reading {dataset}")
        raw[dataset], read = read_changes(catalog, dataset, codes)
        versions.update(read)
    clock = max(
        (int(pc.max(t.column("timestamp_ms")).as_py() or -1) * 1000 for t in raw.values() if t.num_rows),
        default=-1,
    )
    offsets_arrow = pa.table(
        {"region": list(REGIONS), "off": [utc_offset_us(code) for code in REGIONS]},
        schema=pa.schema([("region", pa.string()), ("off", pa.int64())]),
    )
    con = duckdb.connect(config={"threads": 2})
    try:
        con.register("offsets_arrow", offsets_arrow)
        for dataset, name in (
            ("shop.orders", "raw_orders"),
            ("shop.customers", "raw_customers"),
            ("shop.products", "raw_products"),
            ("payments.payments", "raw_payments"),
            ("finance.fx_rates", "raw_fx"),
            ("logistics.shipments", "raw_shipments"),
        ):
            con.register(name, raw[dataset])
        structs = {
            "orders": _STRUCTS["shop.orders"],
            "customers": _STRUCTS["shop.customers"],
            "products": _STRUCTS["shop.products"],
            "payments": _STRUCTS["payments.payments"],
            "fx": _STRUCTS["finance.fx_rates"],
            "shipments": _STRUCTS["logistics.shipments"],
        }

        def sql(text: str) -> str:
            for name, struct in structs.items():
                text = text.replace("{" + name + "}", struct)
            return text

        step("decoding change events")
        con.execute(sql(_SETUP_SQL))
        con.execute(sql(_SHIPMENTS_SQL))
        queries = {
            "customer_history": _CUSTOMER_HISTORY_SQL,
            "product_history": _PRODUCT_HISTORY_SQL,
            "shipment_performance": _SHIPMENT_PERFORMANCE_SQL,
            "order_facts": _ORDER_FACTS_SQL,
            "shipment_facts": _SHIPMENT_FACTS_SQL,
            "customer_velocity": usage_sql("customer_id", counters=False),
            "device_usage": usage_sql("device_id", counters=True),
            "card_usage": usage_sql("card_fingerprint", counters=True),
        }
        views: dict[str, pa.Table] = {}
        for name, query in queries.items():
            step(f"deriving {name}")
            views[name] = _finish(VIEW_BY_NAME[name], con.sql(sql(query)).to_arrow_table())
        step("deriving stock_availability")
        views["stock_availability"], stock_clock = stock_rows(event_log)
        step("building the training entities")
        entities = {
            "fraud": _fraud_entities(con, _truth(truth_dir, "fraud_truth")),
            "eta": _eta_entities(con, _truth(truth_dir, "delivery_truth")),
        }
    finally:
        con.close()
    missing = [v.name for v in VIEWS if v.name not in views]
    assert not missing, missing  # every view has a derivation
    return Derived(views, entities, versions, codes, clock, stock_clock)


def _fraud_entities(con: Any, truth: Path | None) -> pa.Table:
    if truth is not None:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW fraud_truth AS SELECT order_id, is_fraud::BIGINT AS is_fraud, "
            f"fraud_probability FROM read_parquet('{_sql_path(truth)}')"
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW fraud_truth AS SELECT NULL::VARCHAR AS order_id, "
            "NULL::BIGINT AS is_fraud, NULL::DOUBLE AS fraud_probability WHERE false"
        )
    table = con.sql(
        """
        SELECT o.order_id, o.customer_id, o.device_id, o.card_fingerprint, o.region, o.created_at AS ts,
               t.is_fraud, t.fraud_probability AS truth_fraud_probability
        FROM order_created o LEFT JOIN fraud_truth t USING (order_id)
        ORDER BY o.created_at, o.order_id
        """
    ).to_arrow_table()
    return _entity_table("fraud", table)


def _eta_entities(con: Any, truth: Path | None) -> pa.Table:
    if truth is not None:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW delivery_truth AS SELECT shipment_id, median_hours "
            f"FROM read_parquet('{_sql_path(truth)}')"
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW delivery_truth AS SELECT NULL::VARCHAR AS shipment_id, "
            "NULL::DOUBLE AS median_hours WHERE false"
        )
    table = con.sql(
        """
        SELECT c.shipment_id, c.order_id, c.carrier, c.route, c.warehouse_id, c.region, c.created_at AS ts,
               d.hours AS delivery_hours, t.median_hours AS truth_median_hours
        FROM shipment_created c
        LEFT JOIN deliveries d USING (shipment_id)
        LEFT JOIN delivery_truth t USING (shipment_id)
        ORDER BY c.created_at, c.shipment_id
        """
    ).to_arrow_table()
    return _entity_table("eta", table)


def _entity_table(case: str, table: pa.Table) -> pa.Table:
    schema = ENTITY_SCHEMAS[case]
    columns = [
        table.column("ts").cast(pa.int64()).cast(_TS)
        if f.name == "event_timestamp"
        else table.column(f.name).cast(f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


# --- writing ----------------------------------------------------------------------------------------


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None
