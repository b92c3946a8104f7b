"""Ground truth: what the simulator did on purpose, kept so that every engine and model can be scored.

The generator records into a :class:`Truth` while it runs; :meth:`Truth.write` then writes one
Parquet file per table plus ``manifest.json`` under the truth directory. Columns are documented in
docs/simulator.md. Times are integer milliseconds since the Unix epoch (UTC), amounts are decimal
strings in the minor units of their currency, as in the change events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

#: Bumped when a truth file changes shape.
TRUTH_FORMAT_VERSION = 1

_STR = pa.string()
_I64 = pa.int64()
_F64 = pa.float64()
_BOOL = pa.bool_()
_LIST_STR = pa.list_(pa.string())

SCHEMAS: dict[str, pa.Schema] = {
    "pains": pa.schema(
        [
            ("pain_id", _I64),
            ("kind", _STR),
            ("region", _STR),
            ("topic", _STR),
            ("key", _STR),
            ("order_id", _STR),
            ("payment_id", _STR),
            ("ts_ms", _I64),
            ("in_window", _BOOL),
            ("currency", _STR),
            ("expected_amount", _STR),
            ("actual_amount", _STR),
            ("detail", _STR),
        ]
    ),
    "fraud_truth": pa.schema(
        [
            ("order_id", _STR),
            ("region", _STR),
            ("customer_id", _STR),
            ("created_at_ms", _I64),
            ("currency", _STR),
            ("total", _STR),
            ("device_id", _STR),
            ("card_fingerprint", _STR),
            ("ip", _STR),
            ("shipping_address_hash", _STR),
            ("new_customer", _BOOL),
            ("new_device", _BOOL),
            ("night", _BOOL),
            ("high_value", _BOOL),
            ("fraud_probability", _F64),
            ("is_fraud", _BOOL),
            ("ring_id", _STR),
            ("source", _STR),
        ]
    ),
    "delivery_truth": pa.schema(
        [
            ("shipment_id", _STR),
            ("order_id", _STR),
            ("region", _STR),
            ("warehouse_id", _STR),
            ("carrier", _STR),
            ("route", _STR),
            ("distribution", _STR),
            ("mu", _F64),
            ("sigma", _F64),
            ("median_hours", _F64),
            ("disrupted", _BOOL),
            ("disruption_factor", _F64),
            ("created_at_ms", _I64),
            ("promised_date", pa.date32()),
            ("promised_by_ms", _I64),
            ("sampled_hours", _F64),
            ("delivered_at_ms", _I64),
            ("slipped", _BOOL),
            ("delivered_in_window", _BOOL),
        ]
    ),
    "schema_changes": pa.schema(
        [
            ("region", _STR),
            ("topic", _STR),
            ("database", _STR),
            ("table", _STR),
            ("kind", _STR),
            ("column", _STR),
            ("new_column", _STR),
            ("old_type", _STR),
            ("new_type", _STR),
            ("version_before", _I64),
            ("version_after", _I64),
            ("change_ts_ms", _I64),
            ("first_ts_ms", _I64),
            ("first_key", _STR),
            ("first_offsets", _STR),
            ("records_after", _I64),
        ]
    ),
    "checkout_bursts": pa.schema(
        [
            ("burst_id", _STR),
            ("region", _STR),
            ("warehouse_id", _STR),
            ("sku", _STR),
            ("product_id", _STR),
            ("started_at_ms", _I64),
            ("window_ms", _F64),
            ("units_available", _I64),
            ("attempts", _I64),
            ("should_win", _I64),
            ("accepted_by_source", _I64),
            ("oversold", _I64),
            ("checkout_ids", _LIST_STR),
            ("fair_winner_ids", _LIST_STR),
            ("accepted_ids", _LIST_STR),
            ("order_ids", _LIST_STR),
            ("cancelled_order_ids", _LIST_STR),
        ]
    ),
    "fx_rates": pa.schema(
        [
            ("rate_date", pa.date32()),
            ("base", _STR),
            ("quote", _STR),
            ("rate", _STR),
            ("rate_float", _F64),
        ]
    ),
}


class Truth:
    """Collects ground-truth rows in memory, column by column, and writes them as Parquet."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in schema} for name, schema in SCHEMAS.items()
        }
        self.pain_counts: Counter[str] = Counter()
        #: Per pain kind, how many opportunities it had (the denominator of its rate).
        self.exposures: Counter[str] = Counter()

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        """Append one row to ``table``; every column of its schema must be given."""
        cols = self.columns[table]
        for name, values in cols.items():
            values.append(row[name])

    def rows(self, table: str) -> int:
        return len(next(iter(self.columns[table].values())))

    def pain(
        self,
        kind: str,
        region: str,
        topic: str,
        key: Mapping[str, Any],
        ts_us: int,
        in_window: bool,
        *,
        order_id: str | None = None,
        payment_id: str | None = None,
        currency: str | None = None,
        expected_amount: str | None = None,
        actual_amount: str | None = None,
        **detail: Any,
    ) -> None:
        """Record one injected pain: what, where, when, and the amounts an engine should find."""
        self.pain_counts[kind] += 1
        self.add(
            "pains",
            {
                "pain_id": self.rows("pains") + 1,
                "kind": kind,
                "region": region,
                "topic": topic,
                "key": orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode(),
                "order_id": order_id,
                "payment_id": payment_id,
                "ts_ms": ts_us // 1000,
                "in_window": in_window,
                "currency": currency,
                "expected_amount": expected_amount,
                "actual_amount": actual_amount,
                "detail": orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode(),
            },
        )

    def table(self, name: str) -> pa.Table:
        """The collected rows of ``name`` as an Arrow table with its declared schema."""
        schema = SCHEMAS[name]
        arrays = [pa.array(self.columns[name][f.name], type=f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    def write(self, truth_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Path]:
        """Write every table and ``manifest.json`` under ``truth_dir``; return name -> path.

        Files are written to a temporary name and renamed, so a reader never sees half a file.
        """
        truth_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in SCHEMAS:
            path = truth_dir / f"{name}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(self.table(name), tmp, compression="zstd")
            tmp.replace(path)
            paths[name] = path
        path = truth_dir / "manifest.json"
        doc = {
            "format_version": TRUTH_FORMAT_VERSION,
            **manifest,
            "rows": {name: self.rows(name) for name in SCHEMAS},
            "files": {name: p.name for name, p in paths.items()},
        }
        tmp = path.with_suffix(".json.tmp")
        tmp.write_bytes(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=_json_default)
        )
        tmp.replace(path)
        paths["manifest"] = path
        return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
