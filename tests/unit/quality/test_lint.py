"""Contract lint: the shipped contracts are clean; each kind of malformed contract gets a precise
error naming the file, the YAML path, the line and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopops.quality.contracts import lint_paths, lint_texts, parse_contract
from shopops.quality.model import LintIssue

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"

GOOD = """\
apiVersion: v3.1.0
kind: DataContract
id: shop-widgets
version: 1.0.0
status: active
team:
  name: widgets
schema:
  - name: widgets
    physicalName: shop.widgets
    logicalType: object
    properties:
      - name: widget_id
        logicalType: string
        primaryKey: true
      - name: size
        logicalType: integer
        physicalType: int32
        logicalTypeOptions:
          minimum: 1
      - name: colour
        logicalType: string
        quality:
          - metric: invalidValues
            arguments:
              validValues: [red, blue]
            mustBe: 0
"""


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line of ``text`` holding ``fragment``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def errors(text: str, file: str = "widgets.yaml") -> list[LintIssue]:
    return [i for i in lint_texts([(file, text)]).issues if i.severity == "error"]


def one_error(text: str) -> LintIssue:
    found = errors(text)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


def test_the_shipped_contracts_lint_clean() -> None:
    report = lint_paths([CONTRACTS])
    assert not report.errors, [str(i) for i in report.errors]
    assert len(report.contracts) == 13
    datasets = {c.dataset for c in report.contracts}
    assert {"shop.orders", "payments.payments", "finance.fx_rates", "logistics.shipment_events"} <= datasets
    for c in report.contracts:
        assert c.owner, c.dataset
        assert c.primary_key, c.dataset
        assert c.retention is not None, c.dataset


def test_a_good_contract_has_no_issue() -> None:
    assert lint_texts([("widgets.yaml", GOOD)]).issues == []


def test_bad_yaml_names_the_line_and_column() -> None:
    issue = one_error(GOOD.replace("      - name: size\n", "      - name: size\n     bad: [\n"))
    assert issue.file == "widgets.yaml"
    assert issue.message.startswith("invalid YAML")
    assert issue.line == 17
    assert issue.column is not None
    assert str(issue).startswith("widgets.yaml:17:")


def test_an_unknown_field_points_at_the_key() -> None:
    issue = one_error(
        GOOD.replace("        primaryKey: true\n", "        primaryKey: true\n        requred: true\n")
    )
    assert issue.path == "schema[0].properties[0].requred"
    assert issue.line == 16
    assert issue.column == 9
    assert "unknown field 'requred'" in issue.message


def test_an_unknown_top_level_field() -> None:
    issue = one_error(GOOD.replace("status: active\n", "status: active\nowner: widgets\n"))
    assert issue.path == "owner"
    assert issue.line == 6
    assert "unknown field 'owner'" in issue.message


def test_a_wrong_type() -> None:
    issue = one_error(GOOD.replace("        primaryKey: true\n", "        primaryKey: yes please\n"))
    assert issue.path == "schema[0].properties[0].primaryKey"
    assert issue.line == 15
    assert issue.message == "'yes please' is not of type 'boolean'"


def test_a_missing_required_field() -> None:
    issue = one_error(GOOD.replace("id: shop-widgets\n", ""))
    assert issue.path == ""
    assert issue.message == "missing required field 'id'"


def test_a_value_outside_the_standard() -> None:
    issue = one_error(GOOD.replace("logicalType: integer", "logicalType: int"))
    assert issue.path == "schema[0].properties[1].logicalType"
    assert issue.line == 17
    assert "'int' is not one of" in issue.message


def test_a_check_on_an_unknown_column() -> None:
    text = (
        GOOD
        + """\
    quality:
      - name: size_and_weight_unique
        metric: duplicateValues
        arguments:
          properties: [size, weight]
        mustBe: 0
"""
    )
    issue = one_error(text)
    assert issue.path == "schema[0].quality[0].arguments.properties"
    assert issue.line == line_of(text, "properties: [size, weight]")
    assert issue.message == "unknown column(s) weight: the schema object has no such property"


def test_sql_naming_an_unknown_column() -> None:
    text = (
        GOOD
        + """\
    quality:
      - name: heavy
        type: sql
        query: SELECT COUNT(*) FROM ${object} WHERE weight > 10
        mustBe: 0
"""
    )
    issue = one_error(text)
    assert issue.path == "schema[0].quality[0].query"
    assert issue.line == line_of(text, "query:")
    assert "column(s) the contract does not have: weight" in issue.message


def test_sql_that_does_not_parse() -> None:
    text = (
        GOOD
        + """\
    quality:
      - type: sql
        query: SELECT COUNT(* FROM ${object}
        mustBe: 0
"""
    )
    issue = one_error(text)
    assert issue.path == "schema[0].quality[0].query"
    assert "does not parse" in issue.message


def test_a_freshness_sla_on_an_unknown_column() -> None:
    text = (
        GOOD
        + "slaProperties:\n  - property: latency\n    value: 1\n    unit: h\n"
        + "    element: widgets.updated_at\n"
    )
    issue = one_error(text)
    assert issue.path == "slaProperties[0].element"
    assert issue.line == line_of(text, "element:")
    assert "unknown column 'widgets.updated_at'" in issue.message


def test_invalid_values_without_arguments_and_a_bad_pattern() -> None:
    no_args = GOOD.replace("            arguments:\n              validValues: [red, blue]\n", "")
    issue = one_error(no_args)
    assert issue.path == "schema[0].properties[2].quality[0].arguments"
    assert "invalidValues needs arguments.validValues" in issue.message
    bad_regex = GOOD.replace(
        "          minimum: 1\n",
        "          minimum: 1\n      - name: code\n        logicalType: string\n"
        "        logicalTypeOptions:\n          pattern: '([a-z'\n",
    )
    issue = one_error(bad_regex)
    assert issue.path == "schema[0].properties[2].logicalTypeOptions.pattern"
    assert "is not a regular expression" in issue.message


def test_a_rule_without_a_comparison() -> None:
    issue = one_error(GOOD.replace("            mustBe: 0\n", ""))
    assert issue.path == "schema[0].properties[2].quality[0]"
    assert issue.message.startswith("a quality rule needs one comparison: mustBe")


def test_duplicate_keys_are_errors() -> None:
    issue = one_error(GOOD.replace("status: active\n", "status: active\nstatus: draft\n"))
    assert issue.path == "status"
    assert issue.line == 6
    assert "duplicate key 'status'" in issue.message


def test_a_dataset_name_that_is_not_database_dot_table() -> None:
    issue = one_error(GOOD.replace("physicalName: shop.widgets", "physicalName: widgets"))
    assert issue.path == "schema[0].physicalName"
    assert "<database>.<table>" in issue.message


def test_a_foreign_key_to_an_unknown_column() -> None:
    text = GOOD.replace(
        "      - name: colour\n",
        "      - name: order_id\n        logicalType: string\n        relationships:\n"
        "          - to: orders.order_idd\n      - name: colour\n",
    )
    orders = (CONTRACTS / "shop.orders.odcs.yaml").read_text()
    report = lint_texts([("widgets.yaml", text), ("orders.yaml", orders)])
    found = [i for i in report.issues if i.severity == "error"]
    assert len(found) == 1
    assert found[0].path == "schema[0].properties[2].relationships[0].to"
    assert found[0].line == line_of(text, "to: orders.order_idd")
    assert "unknown column orders.order_idd" in found[0].message


def test_two_contracts_for_one_dataset() -> None:
    report = lint_texts([("a.yaml", GOOD), ("b.yaml", GOOD)])
    assert [i.message for i in report.errors] == ["dataset shop.widgets already has a contract in a.yaml"]


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text"])
def test_not_a_contract_at_all(text: str) -> None:
    parsed = parse_contract(text, "x.yaml")
    assert parsed.contract is None
    assert parsed.issues
    assert parsed.issues[0].severity == "error"


def test_the_contract_model_reads_owner_pii_sla() -> None:
    report = lint_paths([CONTRACTS / "shop.customers.odcs.yaml"])
    (c,) = report.contracts
    assert c.dataset == "shop.customers"
    assert c.owner == "customer-identity"
    assert c.primary_key == ("customer_id",)
    assert {p.name for p in c.properties if p.pii} == {"email", "phone", "full_name", "address_hash"}
    fresh = c.freshness
    assert fresh is not None
    assert fresh.seconds == 86400
    assert c.custom["sensitivity"] == "confidential"
