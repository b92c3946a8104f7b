"""OpenLineage run events built from the catalog's model are valid and carry what the catalog knows."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.unit.catalog.openlineage_check import check_run_event

from shopops.catalog.lineage_events import PARAMETERS_FACET, run_event
from shopops.catalog.model import Column, ColumnEdge, RunState, Sensitivity, new_dataset

RUN_ID = "01939b2e-0000-7000-8000-000000000001"


def _datasets() -> tuple[list, list]:  # type: ignore[type-arg]
    topic = new_dataset(
        "vn.shop.customers",
        "kafka://broker:9092",
        owner="customer-identity",
        columns=(
            Column("customer_id", "string"),
            Column("email", "string", Sensitivity.PII, True),
            Column("card", "string", Sensitivity.SECRET, True),
        ),
        description="customer accounts",
    )
    silver = new_dataset(
        "silver.vn__shop__customers",
        "file:///wh",
        columns=(Column("customer_id", "string"), Column("email", "string", Sensitivity.PII, True)),
    )
    return [topic], [silver]


def test_a_complete_event_is_valid_openlineage_with_schema_owner_tags_and_column_lineage() -> None:
    ins, outs = _datasets()
    event = run_event(
        state=RunState.COMPLETE,
        event_time=datetime(2026, 1, 1, 12, tzinfo=UTC),
        run_id=RUN_ID,
        job="lake.ingest",
        job_namespace="shopops",
        inputs=ins,
        outputs=outs,
        column_lineage=[
            ColumnEdge("vn.shop.customers", c, "silver.vn__shop__customers", c)
            for c in ("customer_id", "email")
        ],
        parameters={"records": 12},
        output_rows={"silver.vn__shop__customers": 12},
        description="CDC into the lake",
    )
    model = check_run_event(event)
    assert model.eventType.value == "COMPLETE"
    assert event["job"] == {"namespace": "shopops", "name": "lake.ingest", "facets": event["job"]["facets"]}
    assert event["job"]["facets"]["documentation"]["description"] == "CDC into the lake"
    source = event["inputs"][0]
    assert (source["namespace"], source["name"]) == ("kafka://broker:9092", "vn.shop.customers")
    assert [f["name"] for f in source["facets"]["schema"]["fields"]] == ["customer_id", "email", "card"]
    assert source["facets"]["ownership"]["owners"] == [{"name": "team:customer-identity", "type": "OWNER"}]
    tags = {(t["key"], t.get("field"), t["value"]) for t in source["facets"]["tags"]["tags"]}
    assert ("sensitivity", "email", "pii") in tags
    assert ("sensitivity", "card", "secret") in tags
    assert ("residency", None, "vn") in tags
    assert ("sensitivity", "customer_id", "internal") not in tags
    target = event["outputs"][0]
    lineage = target["facets"]["columnLineage"]["fields"]
    assert lineage["email"]["inputFields"] == [
        {
            "namespace": "kafka://broker:9092",
            "name": "vn.shop.customers",
            "field": "email",
            "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}],
        }
    ]
    assert target["outputFacets"]["outputStatistics"]["rowCount"] == 12
    assert event["run"]["facets"][PARAMETERS_FACET]["records"] == 12


def test_a_failed_event_carries_the_error_and_start_events_need_no_outputs() -> None:
    ins, _ = _datasets()
    failed = run_event(
        state=RunState.FAIL,
        event_time=datetime.now(UTC),
        run_id=RUN_ID,
        job="reconciliation.run",
        job_namespace="shopops",
        inputs=ins,
        outputs=[],
        error="ValueError: no inputs",
    )
    check_run_event(failed)
    assert failed["run"]["facets"]["errorMessage"]["message"] == "ValueError: no inputs"
    assert failed["run"]["facets"]["errorMessage"]["programmingLanguage"] == "PYTHON"
    start = run_event(
        state=RunState.START,
        event_time=datetime.now(UTC),
        run_id=RUN_ID,
        job="reconciliation.run",
        job_namespace="shopops",
        inputs=[],
        outputs=[],
    )
    assert check_run_event(start).eventType.value == "START"
