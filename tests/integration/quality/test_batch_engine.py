"""Micro-batches are judged by one compiled DuckDB query per batch schema; whole tables by pandera,
one query per check. Both run the same predicates: on the same rows they must find the same
failing rows, with the same reasons, and a check that cannot run must not hide the others."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pyarrow as pa

from shopops.quality.checker import ContractChecker
from shopops.quality.contracts import parse_contract
from shopops.quality.model import Contract, RunRecord

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: engine-lines
name: Engine lines
version: 1.0.0
status: active
schema:
  - name: lines
    physicalName: shop.lines
    physicalType: table
    logicalType: object
    properties:
      - {{name: line_id, logicalType: string, physicalType: string, primaryKey: true, primaryKeyPosition: 1,
         required: true}}
      - name: sku
        logicalType: string
        physicalType: string
        required: true
        logicalTypeOptions: {{pattern: '{pattern}', maxLength: 8}}
      - name: quantity
        logicalType: integer
        physicalType: int64
        logicalTypeOptions: {{minimum: 1, maximum: 100}}
      - name: price
        logicalType: number
        physicalType: float64
        logicalTypeOptions: {{exclusiveMinimum: 0}}
      - name: currency
        logicalType: string
        physicalType: string
        quality:
          - {{metric: invalidValues, arguments: {{validValues: [VND, SGD, THB]}}, mustBe: 0}}
      - {{name: created_at, logicalType: timestamp, physicalType: timestamp, required: true}}
"""


def _contract(pattern: str = "^SKU-[0-9]+$") -> Contract:
    parsed = parse_contract(CONTRACT.format(pattern=pattern))
    assert parsed.contract is not None, [i.message for i in parsed.issues]
    return parsed.contract


def _rows() -> pa.Table:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        ("l1", "SKU-1", 3, 9.5, "VND", at),  # clean
        ("l2", "sku-2", 3, 9.5, "VND", at),  # pattern
        ("l3", "SKU-123456", 0, 9.5, "SGD", at),  # length, range
        ("l4", None, None, None, None, at),  # sku required; nulls pass the other checks
        ("l5", "SKU-5", -3, -1.0, "USD", None),  # range (int), price range, currency, created_at
        ("l6", "SKU-6", 101, float("nan"), "THB", at),  # range, NaN price
        ("l7", "SKU-7", 7, 1.25, "THB", at + dt.timedelta(microseconds=123456)),  # clean
    ]
    names = ["line_id", "sku", "quantity", "price", "currency", "created_at"]
    types = [pa.large_string(), pa.large_string(), pa.int64(), pa.float64(), pa.large_string(),
             pa.timestamp("us", tz="UTC")]  # fmt: skip
    columns = [pa.array([r[i] for r in rows], t) for i, t in enumerate(types)]
    regions = pa.array(["vn"] * len(rows), pa.large_string())
    return pa.Table.from_arrays([*columns, regions], names=[*names, "_region"])


def _batch_failures(checker: ContractChecker, rows: pa.Table) -> dict[str, dict[str, str]]:
    """check -> line_id -> reason, from a micro-batch check."""
    verdict = checker.check_batch("shop.lines", rows)
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for row in verdict.rejected.to_pylist():
        for check, reason in zip(row["_check"].split(";"), row["_reason"].split("; "), strict=True):
            out[check][row["line_id"]] = reason
    return dict(out)


def _table_failures(checker: ContractChecker, rows: pa.Table) -> dict[str, dict[str, str]]:
    """check -> line_id -> reason, from a whole-table run (pandera)."""
    run = checker.check_table("shop.lines", rows)
    out: dict[str, dict[str, str]] = {}
    for outcome in run.checks:
        if outcome.samples and outcome.kind not in ("primary_key", "unique"):
            out[outcome.check] = {str(s.key["line_id"]): s.reason for s in outcome.samples}
    return out


def test_batch_and_table_runs_find_the_same_failing_rows_and_reasons() -> None:
    checker = ContractChecker([_contract()])
    try:
        rows = _rows()
        batch = _batch_failures(checker, rows)
        assert batch == _table_failures(checker, rows)
        assert batch == {
            "sku.required": {"l4": "sku is null (required)"},
            "sku.pattern": {"l2": "sku='sku-2' does not match ^SKU-[0-9]+$"},
            "sku.length": {"l3": "sku='SKU-123456' has a length outside [None, 8]"},
            "quantity.range": {
                "l3": "quantity=0 is out of range (minimum 1, maximum 100)",
                "l5": "quantity=-3 is out of range (minimum 1, maximum 100)",
                "l6": "quantity=101 is out of range (minimum 1, maximum 100)",
            },
            "price.range": {
                "l5": "price=-1.0 is out of range (exclusiveMinimum 0)",
                "l6": "price=None is out of range (exclusiveMinimum 0)",  # NaN fails, shown as null
            },
            "currency.invalidValues": {"l5": "currency='USD' is not an accepted value (VND, SGD, THB)"},
            "created_at.required": {"l5": "created_at is null (required)"},
        }
        # The compiled query is reused by the next batch of the same schema, with other rows.
        again = _batch_failures(checker, rows.slice(4, 3))
        assert again == {check: {k: v for k, v in found.items() if k in ("l5", "l6", "l7")}
                         for check, found in batch.items() if set(found) & {"l5", "l6"}}  # fmt: skip
    finally:
        checker.close()


def test_a_check_that_cannot_run_is_reported_and_the_others_still_reject_their_rows() -> None:
    runs: list[RunRecord] = []
    checker = ContractChecker([_contract(pattern="^SKU-(")], recorder=runs.append)  # not a regex
    try:
        rows = _rows()
        verdict = checker.check_batch("shop.lines", rows)
        rejected = {r["line_id"]: set(r["_check"].split(";")) for r in verdict.rejected.to_pylist()}
        assert rejected == {
            "l3": {"sku.length", "quantity.range"},
            "l4": {"sku.required"},
            "l5": {"quantity.range", "price.range", "currency.invalidValues", "created_at.required"},
            "l6": {"quantity.range", "price.range"},
        }
        checker.check_table("shop.lines", rows)
        for run in runs:  # the batch run, then the whole-table run
            pattern = next(c for c in run.checks if c.check == "sku.pattern")
            assert not pattern.passed
            assert pattern.message.startswith("the check could not run: "), pattern.message
    finally:
        checker.close()
