"""What the catalog reads from ODCS contracts: dataset, owner, domain, SLA, retention, column
sensitivity — tolerant of both team layouts and of custom properties; precise about bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shopops.catalog.contracts import ContractError, load_contracts, parse_contract, sensitivity_of
from shopops.catalog.model import Sensitivity

ODCS_31 = """
apiVersion: v3.1.0
kind: DataContract
id: shop-customers
name: Customers
version: 1.0.0
status: active
domain: shop
description:
  purpose: The customer accounts of each regional shop.
team:
  name: customer-identity
  members:
    - {username: mai@example.com, role: owner}
schema:
  - name: customers
    physicalName: shop.customers
    properties:
      - {name: customer_id, logicalType: string, physicalType: string, primaryKey: true}
      - {name: email, logicalType: string, classification: confidential, tags: [pii]}
      - {name: segment, logicalType: string, classification: public}
      - name: ssn
        logicalType: string
        customProperties: [{property: sensitivity, value: secret}]
slaProperties:
  - {property: latency, value: 1, unit: d, element: customers.updated_at}
  - {property: availability, value: 99.9, unit: "%"}
  - {property: retention, value: 5, unit: y}
"""


def test_an_odcs_31_contract_gives_owner_domain_sla_retention_and_sensitivity() -> None:
    info = parse_contract(yaml.safe_load(ODCS_31), Path("contracts/shop.customers.odcs.yaml"))
    assert info.dataset == "shop.customers"
    assert info.owner == "customer-identity"
    assert info.domain == "shop"
    assert info.description == "The customer accounts of each regional shop."
    assert info.sla == "latency 1d (customers.updated_at); availability 99.9 %"
    assert info.retention == "5y"
    columns = {c.name: c for c in info.columns}
    assert columns["email"].sensitivity is Sensitivity.PII
    assert columns["email"].sources == ("contracts/shop.customers.odcs.yaml",)
    assert columns["segment"].sensitivity is Sensitivity.PUBLIC
    assert columns["ssn"].sensitivity is Sensitivity.SECRET
    assert columns["customer_id"].sensitivity is Sensitivity.INTERNAL
    assert columns["customer_id"].sources == ()
    assert columns["customer_id"].type == "string"


def test_odcs_30_team_list_and_custom_owner() -> None:
    v30 = {
        "apiVersion": "v3.0.2",
        "name": "payments.payments",
        "team": [{"username": "ann", "role": "data steward"}, {"username": "bo", "role": "Data Owner"}],
    }
    assert parse_contract(v30, Path("p.yaml")).owner == "bo"
    first = {"name": "payments.payments", "team": [{"name": "Cy", "role": "engineer"}]}
    assert parse_contract(first, Path("p.yaml")).owner == "Cy"
    custom = {**v30, "customProperties": [{"property": "owner", "value": "payments-team"}]}
    assert parse_contract(custom, Path("p.yaml")).owner == "payments-team"
    assert parse_contract({"name": "a.b"}, Path("a.yaml")).owner is None


@pytest.mark.parametrize(
    ("doc", "file", "dataset"),
    [
        (
            {"customProperties": [{"property": "dataset", "value": "shop.orders"}], "name": "Orders"},
            "x.yaml",
            "shop.orders",
        ),
        ({"name": "shop.orders"}, "x.yaml", "shop.orders"),
        ({"name": "Orders", "id": "shop.orders"}, "x.yaml", "shop.orders"),
        ({"name": "Orders"}, "contracts/shop.orders.odcs.yaml", "shop.orders"),
        ({"name": "Orders"}, "contracts/shop.orders.yml", "shop.orders"),
    ],
)
def test_the_dataset_comes_from_the_contract_or_its_file_name(
    doc: dict[str, object], file: str, dataset: str
) -> None:
    assert parse_contract(doc, Path(file)).dataset == dataset


def test_a_contract_that_names_no_dataset_is_a_precise_problem() -> None:
    with pytest.raises(ContractError, match=r"orders\.yaml: cannot tell which dataset"):
        parse_contract({"name": "Orders"}, Path("contracts/orders.yaml"))
    with pytest.raises(ContractError, match="YAML mapping"):
        parse_contract(["not", "a", "mapping"], Path("contracts/x.yaml"))


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"name": "a", "tags": ["pii"]}, Sensitivity.PII),
        ({"name": "a", "classification": "restricted"}, Sensitivity.CONFIDENTIAL),
        ({"name": "a", "customProperties": [{"property": "pii", "value": True}]}, Sensitivity.PII),
        ({"name": "a", "customProperties": {"pii": "yes"}}, Sensitivity.PII),
        ({"name": "a", "pii": True, "classification": "secret"}, Sensitivity.SECRET),
        ({"name": "a", "classification": "unknown-level"}, None),
        ({"name": "a"}, None),
    ],
)
def test_column_sensitivity_from_classification_tags_and_custom_properties(
    prop: dict[str, object], expected: Sensitivity | None
) -> None:
    assert sensitivity_of(prop) is expected


def test_loading_a_folder_reports_bad_and_duplicate_files_and_reads_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    (folder / "shop").mkdir(parents=True)
    (folder / "shop" / "shop.customers.odcs.yaml").write_text(ODCS_31)
    (folder / "a.yaml").write_text("name: shop.customers\n")
    (folder / "broken.yaml").write_text("name: [unclosed\n")
    (folder / "nameless.yaml").write_text("kind: DataContract\n")
    (folder / "notes.txt").write_text("not a contract")
    found, problems = load_contracts(folder)
    assert list(found) == ["shop.customers"]
    assert found["shop.customers"].path == "contracts/a.yaml"
    assert len(problems) == 3
    assert any(p.startswith("contracts/broken.yaml: not readable YAML") for p in problems)
    assert any("contracts/nameless.yaml: cannot tell which dataset" in p for p in problems)
    assert any(
        "contracts/shop/shop.customers.odcs.yaml: shop.customers already has a contract" in p
        for p in problems
    )
    assert load_contracts(tmp_path / "missing") == ({}, [])


def test_the_repository_contracts_are_readable() -> None:
    folder = Path(__file__).resolve().parents[3] / "contracts"
    assert folder.is_dir(), "the repository's contracts/ folder is missing"
    found, problems = load_contracts(folder)
    assert problems == []
    for name, info in found.items():
        assert name.count(".") == 1
        assert info.owner, f"{info.path} names no owner"
