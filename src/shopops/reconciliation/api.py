"""HTTP routes of reconciliation: ``/v1/reconciliation/...``.

Thin: every route calls the platform's :class:`~shopops.reconciliation.service.ReconciliationService`
(``app.state.platform.reconciliation``). Runs are synchronous (seconds on DuckDB); the handlers are
plain functions, so FastAPI runs them in its thread pool and the event loop stays free.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from shopops.core.errors import NotFoundError
from shopops.domain.regions import parse_regions
from shopops.reconciliation.model import CLASS_DESCRIPTIONS, ExceptionClass, parse_day, severity

if TYPE_CHECKING:
    from shopops.reconciliation.service import ReconciliationService

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])


def _service(request: Request) -> ReconciliationService:
    service: ReconciliationService = request.app.state.platform.reconciliation
    return service


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str = Field(alias="from", description="First business day, YYYY-MM-DD (local to each region)")
    end: str = Field(alias="to", description="Last business day, YYYY-MM-DD, included")
    regions: list[str] = Field(default=["vn", "sg", "th"], min_length=1)
    build_inputs: bool = Field(
        default=False, description="Rebuild the input tables from the CDC topics before the run"
    )


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    # Dates and timestamps as ISO strings: JSON has no date type.
    return json.loads(json.dumps(table.to_pylist(), default=str))  # type: ignore[no-any-return]


def _filters(
    start: str | None, end: str | None, regions: str | None
) -> tuple[date | None, date | None, list[str] | None]:
    return (
        parse_day(start, "from") if start else None,
        parse_day(end, "to") if end else None,
        [r.code for r in parse_regions(regions)] if regions else None,
    )


FromQ = Annotated[str | None, Query(alias="from", description="First business day, YYYY-MM-DD")]
ToQ = Annotated[str | None, Query(alias="to", description="Last business day, YYYY-MM-DD")]
RegionsQ = Annotated[str | None, Query(description="Comma-separated region codes")]


@router.post("/runs", status_code=201, summary="Reconcile a window and store the results")
def create_run(request: Request, body: RunIn) -> dict[str, Any]:
    service = _service(request)
    first, last = parse_day(body.start, "from"), parse_day(body.end, "to")
    codes = [r.code for r in parse_regions(body.regions)]
    if body.build_inputs:
        service.export_inputs(codes)
    return service.run(first, last, codes).to_dict()


@router.get("/runs", summary="The latest runs")
def list_runs(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
    return _service(request).store.runs(limit)


@router.get("/runs/{run_id}", summary="One run: window, engine, rules, duration, exceptions by class")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    run = _service(request).store.run(run_id)
    if run is None:
        raise NotFoundError(
            f"no reconciliation run {run_id!r}", hint="GET /v1/reconciliation/runs lists them"
        )
    return run


@router.get("/summary", summary="Per region and business day: orders, matched, exceptions by class")
def get_summary(
    request: Request, start: FromQ = None, end: ToQ = None, regions: RegionsQ = None
) -> list[dict[str, Any]]:
    first, last, codes = _filters(start, end, regions)
    return _rows(_service(request).summary(regions=codes, start=first, end=last))


@router.get("/exceptions", summary="Open exceptions, each with its class and one-line explanation")
def get_exceptions(
    request: Request,
    start: FromQ = None,
    end: ToQ = None,
    regions: RegionsQ = None,
    classes: Annotated[
        str | None, Query(alias="class", description="Comma-separated exception classes")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    first, last, codes = _filters(start, end, regions)
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    table = _service(request).exceptions(
        regions=codes, start=first, end=last, classes=wanted, limit=limit, offset=offset
    )
    return _rows(table)


@router.get("/export", summary="Download stored exceptions or summaries as CSV or Parquet")
def export(
    request: Request,
    what: Literal["exceptions", "summary"] = "exceptions",
    fmt: Annotated[Literal["csv", "parquet"], Query(alias="format")] = "csv",
    start: FromQ = None,
    end: ToQ = None,
    regions: RegionsQ = None,
) -> Response:
    first, last, codes = _filters(start, end, regions)
    handle = tempfile.NamedTemporaryFile(suffix=f".{fmt}", delete=False)  # noqa: SIM115 - removed after sending
    handle.close()
    path = Path(handle.name)
    _service(request).export(what, fmt, path, regions=codes, start=first, end=last)
    media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return FileResponse(
        path,
        media_type=media,
        filename=f"reconciliation-{what}.{fmt}",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get("/ageing", summary="Open exceptions by region, class and age bucket")
def get_ageing(request: Request) -> list[dict[str, Any]]:
    return _service(request).ageing()


@router.get("/classes", summary="The exception classes and what each means")
def get_classes() -> list[dict[str, str]]:
    return [
        {"class": c.value, "severity": severity(c), "meaning": CLASS_DESCRIPTIONS[c]} for c in ExceptionClass
    ]
