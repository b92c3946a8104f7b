"""`lint --registry`: contracts against the schemas registered for their datasets' topics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopops.bootstrap import build_quality
from shopops.core.settings import Settings
from shopops.quality.service import QualityService
from shopops.schemas.client import BuiltinRegistryClient, RegistryClient, SchemaSpec
from shopops.schemas.connect import from_columns, render
from shopops.schemas.model import SchemaType
from shopops.schemas.server import open_registry
from shopops.simulator.model import SCHEMA_CHANGES, TABLES

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"


@pytest.fixture(params=[SchemaType.JSON, SchemaType.AVRO])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryClient]:
    """A registry holding the CDC row schemas of two regions, as the drift watch registers them
    (the compatible changes applied: orders gain channel, provider_ref becomes optional)."""
    registry = open_registry(Settings(home=tmp_path))
    client = BuiltinRegistryClient(BuiltinRegistryClient.Config(), tmp_path, lambda: registry)
    compatible = {c.table: c for c in SCHEMA_CHANGES if c.kind in ("column_added", "made_nullable")}
    for region in ("vn", "sg"):
        for table in TABLES:
            topic = table.topic(region)
            versions = [table.columns]
            if table.name in compatible:
                versions.append(compatible[table.name].columns_after)
            for columns in versions:
                client.register(
                    f"{topic}-value",
                    SchemaSpec(request.param, render(from_columns(columns), topic, request.param)),
                )
    yield client
    registry.close()


@pytest.fixture
def service(tmp_path: Path, client: RegistryClient) -> Iterator[QualityService]:
    svc = build_quality(
        Settings(home=tmp_path, quality={"contracts_dir": CONTRACTS}), registry=lambda: client
    )
    yield svc
    svc.close()


def test_the_shipped_contracts_are_compatible_with_the_registered_schemas(service: QualityService) -> None:
    files, issues = service.lint(registry=True)
    assert len(files) == 13
    assert [str(i) for i in issues if i.severity == "error"] == []


def test_incompatible_contracts_are_rejected_with_the_place_and_reason(
    service: QualityService, tmp_path: Path
) -> None:
    text = (CONTRACTS / "payments.payments.odcs.yaml").read_text()
    text = text.replace(
        "      - name: provider_ref\n        logicalType: string\n",
        "      - name: provider_ref\n        logicalType: string\n        required: true\n",
    )
    text = text.replace(
        "      - name: method\n        logicalType: string\n        physicalType: string\n",
        "      - name: method\n        logicalType: integer\n        physicalType: int32\n",
    )
    text = text.replace(
        "      - name: captured_at\n",
        "      - name: risk_score\n        logicalType: number\n      - name: captured_at\n",
    )
    path = tmp_path / "payments.payments.odcs.yaml"
    path.write_text(text)
    lines = text.splitlines()
    _, issues = service.lint([path], registry=True)
    errors = sorted((i.path, i.line, i.message) for i in issues if i.severity == "error")
    assert len(errors) == 3, "\n".join(map(str, errors))
    by_path = {p: (line, m) for p, line, m in errors}
    line, message = by_path["schema[0].properties[4].required"]
    assert line == lines.index("        required: true", lines.index("      - name: provider_ref")) + 1
    assert "declares provider_ref optional (nullable)" in message
    assert "vn.payments.payments-value (version 2)" in message
    line, message = by_path["schema[0].properties[5].logicalType"]
    assert "logicalType integer does not match the registered type string of method" in message
    line, message = by_path["schema[0].properties[14]"]
    assert line == lines.index("      - name: risk_score") + 1
    assert "column risk_score is not in the schema registered for vn.payments.payments-value" in message


def test_a_dataset_nobody_registered_is_a_warning(service: QualityService, tmp_path: Path) -> None:
    text = (
        (CONTRACTS / "shop.orders.odcs.yaml")
        .read_text()
        .replace("physicalName: shop.orders", "physicalName: shop.orders_v2")
    )
    path = tmp_path / "orders_v2.yaml"
    path.write_text(text)
    _, issues = service.lint([path], registry=True)
    assert [i.severity for i in issues] == ["warning"]
    assert "no schema is registered for the topics of shop.orders_v2" in issues[0].message
