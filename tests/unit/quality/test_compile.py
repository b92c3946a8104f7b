"""Thresholds, SQL rules that identify rows, and the checks a contract compiles to."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopops.quality.compile import compile_checks, row_condition
from shopops.quality.contracts import lint_paths
from shopops.quality.model import Threshold

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"


@pytest.mark.parametrize(
    ("threshold", "accepted", "refused", "zero_tolerance"),
    [
        (Threshold("mustBe", 0), [0], [1, 2], True),
        (Threshold("mustBeLessThan", 5), [0, 4.9], [5, 6], False),
        (Threshold("mustBeLessOrEqualTo", 0), [0], [1], True),
        (Threshold("mustBeGreaterThan", 0), [1], [0], False),
        (Threshold("mustBeBetween", [1, 10]), [1, 10], [0, 11], False),
        (Threshold("mustNotBeBetween", [1, 10]), [0, 11], [5], True),
    ],
)
def test_thresholds(
    threshold: Threshold, accepted: list[float], refused: list[float], zero_tolerance: bool
) -> None:
    assert all(threshold.accepts(v) for v in accepted)
    assert not any(threshold.accepts(v) for v in refused)
    assert threshold.zero_tolerance is zero_tolerance


def test_describe() -> None:
    assert Threshold("mustBe", 0).describe() == "= 0"
    assert Threshold("mustBeBetween", [1.0, 10]).describe() == "between 1 and 10"


@pytest.mark.parametrize(
    ("query", "condition"),
    [
        ("SELECT COUNT(*) FROM checked_rows WHERE quantity < 0", "quantity < 0"),
        ("select count(*) as n from checked_rows where a = 'x' and b is null", "a = 'x' AND b IS NULL"),
        ("SELECT COUNT(*) FROM checked_rows", None),
        ("SELECT COUNT(DISTINCT a) FROM checked_rows WHERE a > 1", None),
        ("SELECT COUNT(*) FROM checked_rows WHERE a > 1 GROUP BY b", None),
        ("SELECT COUNT(*) FROM (SELECT a FROM checked_rows) t WHERE a > 1", None),
        ("SELECT SUM(a) FROM checked_rows WHERE a > 1", None),
    ],
)
def test_sql_rules_that_identify_their_rows(query: str, condition: str | None) -> None:
    assert row_condition(query) == condition


def test_a_contract_compiles_to_named_checks() -> None:
    # its foreign keys resolve against the other contracts of the folder
    (orders,) = [c for c in lint_paths([CONTRACTS]).contracts if c.dataset == "shop.order_lines"]
    checks = {c.name: c for c in compile_checks(orders)}
    assert checks["quantity.range"].params == {"minimum": 1, "maximum": 1000}
    assert checks["quantity.range"].rejects_rows
    assert checks["order_id.references"].params == {"object": "orders", "column": "order_id"}
    assert checks["unit_price_not_negative"].level == "row"
    assert (
        checks["unit_price_not_negative"].params["condition"] == "TRY_CAST(unit_price AS DECIMAL(38, 6)) < 0"
    )
    assert checks["line_no_unique_in_order"].columns == ("order_id", "line_no")
    assert checks["order_lines_volume"].level == "dataset"
    assert checks["freshness"].threshold.value == 900
    assert checks["primary_key"].columns == ("line_id",)
    assert not any(c.rejects_rows for c in checks.values() if c.level != "row")
