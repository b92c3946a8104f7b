"""The input tables reconciliation reads, their canonical Arrow schemas, and their Parquet layout.

Layout of a Parquet input directory: ``<root>/<region>/<table>.parquet`` (a directory of Parquet
files in place of the file works too). ``region`` is the region whose database the rows come
from; for payments that is the recording provider's region, which may differ from the order's
(``merchant_region``). Times are microseconds since the epoch (UTC), as in the change events;
``rate_date`` is days since 1970-01-01 (local date of the publishing region); amounts are
decimals in major units of their currency.
"""

from __future__ import annotations

import pyarrow as pa

AMOUNT = pa.decimal128(18, 4)
_S = pa.string()
_T = pa.int64()

SCHEMAS: dict[str, pa.Schema] = {
    "orders": pa.schema(
        [
            ("region", _S),
            ("order_id", _S),
            ("status", _S),
            ("currency", _S),
            ("total", AMOUNT),
            ("created_at", _T),
            ("updated_at", _T),
        ]
    ),
    "payments": pa.schema(
        [
            ("region", _S),
            ("payment_id", _S),
            ("order_id", _S),
            ("merchant_region", _S),
            ("provider", _S),
            ("provider_ref", _S),
            ("status", _S),
            ("currency", _S),
            ("amount", AMOUNT),
            ("fee", AMOUNT),
            ("settlement_currency", _S),
            ("settlement_amount", AMOUNT),
            ("settlement_fx_rate", pa.float64()),
            ("refunded_amount", AMOUNT),
            ("captured_at", _T),
            ("settled_at", _T),
            ("created_at", _T),
        ]
    ),
    "ledger_entries": pa.schema(
        [
            ("region", _S),
            ("entry_id", _S),
            ("journal_id", _S),
            ("kind", _S),
            ("account", _S),
            ("side", _S),
            ("amount", AMOUNT),
            ("currency", _S),
            ("order_id", _S),
            ("payment_id", _S),
            ("booked_at", _T),
        ]
    ),
    "fx_rates": pa.schema(
        [
            ("region", _S),
            ("rate_date", pa.int32()),
            ("base", _S),
            ("quote", _S),
            ("rate", pa.float64()),
        ]
    ),
    # Change events the source delivered more than once (same key, same log position at the
    # source database), found while building the tables; optional.
    "duplicates": pa.schema(
        [
            ("region", _S),
            ("table", _S),
            ("record_id", _S),
            ("copies", pa.int64()),
            ("event_at", _T),
            ("detail", _S),
        ]
    ),
}

REQUIRED = ("orders", "payments", "ledger_entries", "fx_rates")
OPTIONAL = ("duplicates",)

#: CDC topic (``<region>.<topic suffix>``) of each table, and the column that identifies a row.
CDC_TOPICS: dict[str, tuple[str, str]] = {
    "orders": ("shop.orders", "order_id"),
    "payments": ("payments.payments", "payment_id"),
    "ledger_entries": ("finance.ledger_entries", "entry_id"),
    "fx_rates": ("finance.fx_rates", ""),
}
