"""Scoring a run against the simulator's ground truth (``pains.parquet`` and ``manifest.json``).

Each injected pain that reconciliation can see becomes an expected ``(class, record)``:

| pain | expected exception |
| --- | --- |
| ``missing_payment`` | ``missing_payment`` on the order |
| ``late_payment`` | ``late_settlement`` on the payment if recorded inside the window, else |
| | ``missing_payment`` on the order (if the order was paid inside the window) |
| ``cross_region_payment`` | ``cross_region_payment`` on the payment; same rule |
| ``currency_mismatch`` | ``currency_mismatch`` on the order |
| ``fx_difference`` / ``rounding_difference`` | the same class on the payment, if settled inside the window |
| ``orphan_payment`` | ``payment_without_order`` on the payment |
| ``ledger_break`` | ``ledger_break`` on the order |
| ``duplicate_event`` on orders, payments or ledger entries | ``duplicate`` on that record |

Other pains (partial refunds, checkout bursts, fraud, shipments, schema changes) must raise no
exception. Precision counts every exception that matches no expected one as false.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shopops.core.errors import NotFoundError

_TOPIC_TABLE = {
    "shop.orders": "orders",
    "payments.payments": "payments",
    "finance.ledger_entries": "ledger_entries",
}
_ID = {"orders": "order_id", "payments": "payment_id", "ledger_entries": "entry_id"}


@dataclass
class Score:
    """Per class: expected, found (true positives), missed, false exceptions."""

    expected: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    false: Counter[str] = field(default_factory=Counter)
    missed_examples: list[tuple[str, str]] = field(default_factory=list)
    false_examples: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        total = sum(self.expected.values())
        return sum(self.found.values()) / total if total else 1.0

    @property
    def precision(self) -> float:
        reported = sum(self.found.values()) + sum(self.false.values())
        return sum(self.found.values()) / reported if reported else 1.0

    def per_class(self) -> list[dict[str, Any]]:
        classes = sorted(set(self.expected) | set(self.false))
        rows = []
        for cls in classes:
            exp, tp, fp = self.expected[cls], self.found[cls], self.false[cls]
            rows.append(
                {
                    "class": cls,
                    "expected": exp,
                    "found": tp,
                    "missed": exp - tp,
                    "false": fp,
                    "recall": tp / exp if exp else 1.0,
                    "precision": tp / (tp + fp) if tp + fp else 1.0,
                }
            )
        return rows


def expected_exceptions(truth_dir: Path, regions: list[str] | None = None) -> dict[tuple[str, str], str]:
    """``(class, record) -> pain kind`` of every pain a reconciliation of the whole window must find."""
    pains_path, manifest_path = truth_dir / "pains.parquet", truth_dir / "manifest.json"
    if not pains_path.exists() or not manifest_path.exists():
        raise NotFoundError(f"no ground truth under {truth_dir}", hint="run `shopops simulate` first")
    windows = json.loads(manifest_path.read_text())["window"]
    pains = pq.read_table(pains_path).to_pylist()
    expected: dict[tuple[str, str], str] = {}
    for pain in pains:
        kind, region = pain["kind"], pain["region"]
        detail = orjson.loads(pain["detail"]) if pain["detail"] else {}
        order_region = detail.get("order_region", region)
        if regions is not None and order_region not in regions:
            continue
        visible = pain["in_window"]
        if kind in ("late_payment", "cross_region_payment"):
            if visible:
                cls = "late_settlement" if kind == "late_payment" else "cross_region_payment"
                expected[(cls, f"payments:{pain['payment_id']}")] = kind
            else:
                w = windows[order_region]
                if w["start_ms"] <= detail["paid_at_ms"] < w["end_ms"]:
                    expected[("missing_payment", f"orders:{pain['order_id']}")] = kind
        elif not visible:
            continue
        elif kind == "missing_payment":
            expected[("missing_payment", f"orders:{pain['order_id']}")] = kind
        elif kind == "currency_mismatch":
            expected[("currency_mismatch", f"orders:{pain['order_id']}")] = kind
        elif kind in ("fx_difference", "rounding_difference"):
            expected[(kind, f"payments:{pain['payment_id']}")] = kind
        elif kind == "orphan_payment":
            expected[("payment_without_order", f"payments:{pain['payment_id']}")] = kind
        elif kind == "ledger_break":
            expected[("ledger_break", f"orders:{pain['order_id']}")] = kind
        elif kind == "duplicate_event":
            suffix = pain["topic"].split(".", 1)[1]
            table = _TOPIC_TABLE.get(suffix)
            if table is not None:
                key = orjson.loads(pain["key"])
                expected[("duplicate", f"{table}:{key[_ID[table]]}")] = kind
    return expected


def score(exceptions: pa.Table, truth_dir: Path, regions: list[str] | None = None) -> Score:
    """Compare a run's exceptions (``class`` and ``record`` columns) with the ground truth."""
    expected = expected_exceptions(truth_dir, regions)
    result = Score()
    for cls, _ in expected:
        result.expected[cls] += 1
    seen: set[tuple[str, str]] = set()
    rows = zip(
        exceptions.column("class").to_pylist(),
        exceptions.column("record").to_pylist(),
        exceptions.column("explanation").to_pylist(),
        strict=True,
    )
    for cls, record, explanation in rows:
        key = (cls, record)
        if key in seen:
            continue
        seen.add(key)
        if key in expected:
            result.found[cls] += 1
        else:
            result.false[cls] += 1
            if len(result.false_examples) < 20:
                result.false_examples.append((cls, record, explanation))
    for key in expected:
        if key not in seen and len(result.missed_examples) < 20:
            result.missed_examples.append(key)
    return result
