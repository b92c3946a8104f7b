"""Every kind of bad row the simulator injects is caught by the check its ground truth names, and
no clean row is: in micro-batches (rejected with the reason) and in whole-table runs."""

from __future__ import annotations

from collections import Counter, defaultdict

import orjson
import pyarrow as pa
import pytest
from tests.integration.quality.world import BadWorld

from shopops.lake.checks import CHECK_COLUMN, REASON_COLUMN
from shopops.quality.checker import ContractChecker
from shopops.quality.compile import compile_checks
from shopops.simulator.model import BAD_ROW_KINDS, BAD_ROWS


def _key(contract_pk: tuple[str, ...], row: dict[str, object]) -> tuple[object, ...]:
    return tuple(row[k] for k in contract_pk)


def _expected(world: BadWorld) -> dict[str, dict[tuple[object, ...], str]]:
    """dataset -> (region, key...) -> the check that must catch it."""
    out: dict[str, dict[tuple[object, ...], str]] = defaultdict(dict)
    for b in world.bad_rows:
        contract = world.contracts[str(b["dataset"])]
        key = b["key"]
        assert isinstance(key, dict)
        out[str(b["dataset"])][(b["region"], *(key[k] for k in contract.primary_key))] = str(b["check"])
    return out


def test_the_truth_names_existing_checks_for_every_kind(bad_world: BadWorld) -> None:
    kinds = Counter(str(b["kind"]) for b in bad_world.bad_rows)
    assert set(kinds) == set(BAD_ROW_KINDS), kinds
    assert all(n >= 3 for n in kinds.values()), kinds
    for kind in BAD_ROW_KINDS:
        spec = BAD_ROWS[kind]
        checks = {c.name for c in compile_checks(bad_world.contracts[spec.table])}
        assert spec.check in checks, (kind, spec.check)


def test_micro_batches_reject_exactly_the_bad_rows_with_the_right_check(bad_world: BadWorld) -> None:
    expected = _expected(bad_world)
    parents = bad_world.tables
    # Foreign keys in a batch are checked against what is known: here, the referenced tables.
    checker = ContractChecker(bad_world.contracts.values(), references=lambda ds: parents.get(ds))
    try:
        for dataset, contract in bad_world.contracts.items():
            table = bad_world.tables[dataset]
            # the table arrives in micro-batches of 2,000 rows
            rejected: dict[tuple[object, ...], tuple[str, str]] = {}
            passed = 0
            for start in range(0, table.num_rows, 2000):
                verdict = checker.check_batch(dataset, table.slice(start, 2000))
                assert verdict.passed.num_rows + verdict.rejected.num_rows == min(
                    2000, table.num_rows - start
                )
                assert verdict.passed.schema == table.schema
                passed += verdict.passed.num_rows
                for row in verdict.rejected.to_pylist():
                    rejected[(row["_region"], *_key(contract.primary_key, row))] = (
                        row[CHECK_COLUMN],
                        row[REASON_COLUMN],
                    )
            want = expected.get(dataset, {})
            if dataset == "inventory.stock_levels":
                assert not rejected  # oversold stock is a warning, reported but never quarantined
                continue
            assert set(rejected) == set(want), (dataset, set(rejected) ^ set(want))
            for key, check in want.items():
                checks, reason = rejected[key]
                assert check in checks.split(";"), (dataset, key, check, checks)
                assert reason
            assert passed == table.num_rows - len(want)
    finally:
        checker.close()


def test_whole_table_runs_find_every_bad_row_and_no_clean_one(bad_world: BadWorld) -> None:
    expected = _expected(bad_world)
    checker = ContractChecker(bad_world.contracts.values(), sample_limit=10_000)
    try:
        for dataset, contract in bad_world.contracts.items():
            run = checker.check_table(
                dataset, bad_world.tables[dataset], references=bad_world.tables, now_ms=bad_world.end_ms
            )
            want = expected.get(dataset, {})
            flagged: dict[str, set[tuple[object, ...]]] = defaultdict(set)
            for outcome in run.checks:
                if outcome.severity != "error":
                    continue
                for sample in outcome.samples:
                    flagged[outcome.check].add(
                        (sample.key["_region"], *(sample.key[k] for k in contract.primary_key))
                    )
            by_check: dict[str, set[tuple[object, ...]]] = defaultdict(set)
            for key, check in want.items():
                by_check[check].add(key)
            assert dict(flagged) == dict(by_check), dataset
            assert run.rows_failed == len(want), dataset
            assert (run.outcome == "failed") == bool(want), (
                dataset,
                [c.to_dict() for c in run.checks if not c.passed],
            )
    finally:
        checker.close()


def test_a_dataset_without_a_contract_passes_unchecked(bad_world: BadWorld) -> None:
    checker = ContractChecker(bad_world.contracts.values())
    rows = pa.table({"x": [1, 2]})
    verdict = checker.check_batch("shop.unknown", rows)
    assert verdict.passed.num_rows == 2
    assert verdict.rejected.num_rows == 0
    assert verdict.rejected.column_names == ["x", CHECK_COLUMN, REASON_COLUMN]


def test_a_mistyped_or_missing_required_column_rejects_the_whole_batch(bad_world: BadWorld) -> None:
    checker = ContractChecker(bad_world.contracts.values())
    lines = bad_world.tables["shop.order_lines"].slice(0, 20)
    broken = lines.set_column(
        lines.schema.get_field_index("quantity"),
        "quantity",
        pa.array([str(v) for v in lines["quantity"].to_pylist()]),
    )
    verdict = checker.check_batch("shop.order_lines", broken)
    assert verdict.passed.num_rows == 0
    assert all("quantity.type" in c.split(";") for c in verdict.rejected[CHECK_COLUMN].to_pylist())
    assert all(
        "quantity has type string, the contract says integer" in r
        for r in verdict.rejected[REASON_COLUMN].to_pylist()
    )
    without = lines.drop_columns(["order_id"])
    verdict = checker.check_batch("shop.order_lines", without)
    assert verdict.passed.num_rows == 0
    assert all(
        "required column order_id is missing" in r for r in verdict.rejected[REASON_COLUMN].to_pylist()
    )


@pytest.mark.parametrize("kind", BAD_ROW_KINDS)
def test_each_kind_is_recorded_with_its_table_column_and_check(bad_world: BadWorld, kind: str) -> None:
    rows = [b for b in bad_world.bad_rows if b["kind"] == kind]
    spec = BAD_ROWS[kind]
    assert rows
    assert {b["dataset"] for b in rows} == {spec.table}
    assert {b["check"] for b in rows} == {spec.check}
    assert all(orjson.dumps(b["key"]) for b in rows)
