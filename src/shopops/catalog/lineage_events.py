"""OpenLineage run events built with the OpenLineage client's own models (``openlineage-python``).

An event carries the job, the run, the input and output datasets with their facets — schema
(columns and types), ownership, documentation, tags (the sensitivity of personal-data columns, the
residency region, the dataset kind), column lineage on outputs, row counts — and, on a failed run,
the error message. :func:`run_event` returns it as the client serialises it (``Serde.to_dict``):
that JSON is what the catalog stores and what the transports send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    JobFacet,
    OutputDatasetFacet,
    RunFacet,
    column_lineage_dataset,
    dataset_type_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    processing_engine_run,
    schema_dataset,
    tags_dataset,
)
from openlineage.client.serde import Serde

from shopops import __version__
from shopops.catalog.model import PRODUCER, ColumnEdge, Dataset, DatasetKind
from shopops.catalog.model import RunState as State

#: Facet of the run's own parameters (window, regions, records...).
PARAMETERS_FACET = "shopops_parameters"

_DATASET_TYPES = {
    DatasetKind.TOPIC: "STREAM",
    DatasetKind.MODEL: "MODEL",
    DatasetKind.FEATURE: "FEATURE_VIEW",
    DatasetKind.REPORT: "REPORT",
}


def _dataset_facets(ds: Dataset, producer: str) -> dict[str, DatasetFacet]:
    facets: dict[str, DatasetFacet] = {
        "datasetType": dataset_type_dataset.DatasetTypeDatasetFacet(
            datasetType=_DATASET_TYPES.get(ds.kind, "TABLE"), subType=ds.kind.value, producer=producer
        ),
        "ownership": ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=f"team:{ds.owner}", type="OWNER")], producer=producer
        ),
    }
    if ds.columns:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=c.name, type=c.type, description=c.description or None, ordinal_position=i
                )
                for i, c in enumerate(ds.columns, start=1)
            ],
            producer=producer,
        )
    if ds.description:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
            description=ds.description, producer=producer
        )
    tags = [tags_dataset.TagsDatasetFacetFields(key="kind", value=ds.kind.value, source="shopops")]
    if ds.residency:
        tags.append(
            tags_dataset.TagsDatasetFacetFields(key="residency", value=ds.residency, source="shopops")
        )
    for col in ds.columns:
        if col.sensitivity.personal:
            tags.append(
                tags_dataset.TagsDatasetFacetFields(
                    key="sensitivity", value=col.sensitivity.value, source="shopops", field=col.name
                )
            )
    facets["tags"] = tags_dataset.TagsDatasetFacet(tags=tags, producer=producer)
    return facets


def _column_lineage(
    ds: Dataset, edges: Sequence[ColumnEdge], namespaces: Mapping[str, str], producer: str
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    mine = [e for e in edges if e.out_dataset == ds.name]
    if not mine:
        return None
    fields: dict[str, column_lineage_dataset.Fields] = {}
    for edge in mine:
        entry = fields.setdefault(edge.out_column, column_lineage_dataset.Fields(inputFields=[]))
        entry.inputFields.append(
            column_lineage_dataset.InputField(
                namespace=namespaces.get(edge.in_dataset, ds.namespace),
                name=edge.in_dataset,
                field=edge.in_column,
                transformations=[
                    column_lineage_dataset.Transformation(type="DIRECT", subtype=edge.transformation)
                ],
            )
        )
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=producer)


def run_event(
    *,
    state: State,
    event_time: datetime,
    run_id: str,
    job: str,
    job_namespace: str,
    inputs: Sequence[Dataset],
    outputs: Sequence[Dataset],
    column_lineage: Sequence[ColumnEdge] = (),
    parameters: Mapping[str, Any] | None = None,
    output_rows: Mapping[str, int] | None = None,
    description: str = "",
    error: str | None = None,
    producer: str = PRODUCER,
) -> dict[str, Any]:
    """One OpenLineage ``RunEvent`` as JSON-ready data (see the module docstring)."""
    namespaces = {d.name: d.namespace for d in (*inputs, *outputs)}
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="SHOPOPS", jobType="JOB", producer=producer
        )
    }
    if description:
        job_facets["documentation"] = documentation_job.DocumentationJobFacet(
            description=description, producer=producer
        )
    run_facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=__version__, name="shopops", producer=producer
        )
    }
    if parameters:
        run_facets[PARAMETERS_FACET] = RunFacet(producer=producer).with_additional_properties(**parameters)  # type: ignore[assignment]
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="PYTHON", producer=producer
        )
    outs: list[OutputDataset] = []
    for ds in outputs:
        output_facets: dict[str, OutputDatasetFacet] = {}
        if output_rows and ds.name in output_rows:
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=int(output_rows[ds.name]), producer=producer
                )
            )
        facets = _dataset_facets(ds, producer)
        lineage = _column_lineage(ds, column_lineage, namespaces, producer)
        if lineage is not None:
            facets["columnLineage"] = lineage
        outs.append(OutputDataset(ds.namespace, ds.name, facets=facets, outputFacets=output_facets))
    event = RunEvent(
        eventType=RunState(state.value),
        eventTime=event_time.isoformat(),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(namespace=job_namespace, name=job, facets=job_facets),
        inputs=[InputDataset(d.namespace, d.name, facets=_dataset_facets(d, producer)) for d in inputs],
        outputs=outs,
        producer=producer,
    )
    data: dict[str, Any] = Serde.to_dict(event)
    return data
