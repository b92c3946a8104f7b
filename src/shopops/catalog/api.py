"""HTTP routes of the catalog: ``/v1/catalog/...``.

Thin: every route calls the platform's :class:`~shopops.catalog.service.CatalogService`
(``app.state.platform.catalog``). Every role may read the catalog (``policies/api.cedar``): it
holds column names and their sensitivity, never the data itself. Registering and syncing are
writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shopops.catalog.model import Column, Dataset, Sensitivity, parse_kind

if TYPE_CHECKING:
    from shopops.catalog.service import CatalogService

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])


def _service(request: Request) -> CatalogService:
    service: CatalogService = request.app.state.platform.catalog
    return service


def summary(ds: Dataset) -> dict[str, Any]:
    """One line of a dataset list."""
    return {
        "name": ds.name,
        "kind": ds.kind.value,
        "domain": ds.domain,
        "owner": ds.owner,
        "residency": ds.residency,
        "sla": ds.sla,
        "retention": ds.retention,
        "columns": len(ds.columns),
        "personal_columns": [c.name for c in ds.personal_columns],
        "contract": ds.contract,
    }


@router.get("/datasets", summary="Registered datasets (filter by kind, domain, name)")
def list_datasets(
    request: Request,
    kind: Annotated[str | None, Query(description="topic, bronze, silver, quarantine, table, ...")] = None,
    domain: Annotated[str | None, Query(description="e.g. shop, payments, reconciliation")] = None,
    q: Annotated[str | None, Query(description="Part of the name", max_length=255)] = None,
) -> list[dict[str, Any]]:
    rows = _service(request).datasets(parse_kind(kind) if kind else None, domain)
    if q:
        rows = [d for d in rows if q.lower() in d.name.lower()]
    return [summary(d) for d in rows]


@router.get("/datasets/{name}", summary="One dataset: owner, SLA, retention, columns with sensitivity, links")
def get_dataset(request: Request, name: str) -> dict[str, Any]:
    service = _service(request)
    ds = service.dataset(name)
    view = service.lineage(name, "both", 1)
    out = ds.to_dict()
    out["writers"] = [j.name for j in view.upstream.children] if view.upstream else []
    out["readers"] = [j.name for j in view.downstream.children] if view.downstream else []
    return out


class ColumnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    type: str | None = None
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    description: str = ""


class DatasetIn(BaseModel):
    """A dataset a component registers itself (a feature view, a model, a report...)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, description="e.g. models.fraud, features.customer_stats")
    kind: str | None = Field(default=None, description="Default: what the name says (see docs/dataops.md)")
    owner: str | None = None
    domain: str | None = None
    sla: str | None = None
    retention: str | None = None
    residency: str | None = None
    description: str = ""
    columns: list[ColumnIn] = []
    links: dict[str, str] = {}


@router.post("/datasets", status_code=201, summary="Register (or replace) a dataset")
def register_dataset(request: Request, body: DatasetIn) -> dict[str, Any]:
    fields: dict[str, Any] = body.model_dump(exclude={"name", "kind", "columns"}, exclude_none=True)
    if body.kind:
        fields["kind"] = parse_kind(body.kind)
    if body.columns:
        fields["columns"] = tuple(
            Column(c.name, c.type, c.sensitivity, description=c.description) for c in body.columns
        )
    return _service(request).register_dataset(body.name, registered_by="api", **fields).to_dict()


@router.get("/lineage/{name}", summary="Lineage of a dataset as trees upstream and downstream")
def lineage(
    request: Request,
    name: str,
    direction: Literal["upstream", "downstream", "both"] = "both",
    depth: int = 3,
) -> dict[str, Any]:
    return _service(request).lineage(name, direction, depth).to_dict()


@router.get("/runs", summary="The latest job runs (of one job; touching one dataset)")
def list_runs(
    request: Request,
    job: str | None = None,
    dataset: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    return [r.to_dict() for r in _service(request).runs(job, dataset, limit)]


@router.get("/runs/{run_id}", summary="One run")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    return _service(request).get_run(run_id).to_dict()


@router.get("/jobs", summary="Jobs that recorded lineage")
def list_jobs(request: Request) -> list[dict[str, Any]]:
    return [j.to_dict() for j in _service(request).jobs()]


@router.post("/sync", summary="Register the platform's topics, schemas, lake tables and contracts")
def sync(request: Request) -> dict[str, Any]:
    from shopops.catalog.setup import sync_platform

    report = sync_platform(request.app.state.platform)
    return report.to_dict()


@router.post("/flush", summary="Send queued OpenLineage events now")
def flush(request: Request) -> dict[str, Any]:
    return _service(request).flush(force=True).to_dict()
