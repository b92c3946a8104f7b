"""HTTP routes of data contracts and quality: ``/v1/quality/...``.

Thin: every route calls the :class:`~shopops.quality.service.QualityService` kept in
``app.state.quality`` (built on first use from the platform's settings, unless the process that
started the app put its own there). Handlers are plain functions: FastAPI runs them in its thread
pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from shopops.api.state import app_service
from shopops.quality.compile import compile_checks
from shopops.quality.contracts import lint_texts

if TYPE_CHECKING:
    from shopops.quality.service import QualityService

router = APIRouter(prefix="/v1/quality", tags=["quality"])
#: Largest contract body ``POST /v1/quality/lint`` reads.
MAX_CONTRACT_BYTES = 1_048_576


def quality_service(request: Request) -> QualityService:
    """The app's quality service (built on first use)."""
    return app_service(request, "quality", _build_quality)


def _build_quality(state: Any) -> QualityService:
    from shopops.bootstrap import build_quality

    platform = state.platform
    return build_quality(platform.settings, registry=lambda: platform.schema_client)


@router.get("/contracts", summary="Every data contract: dataset, owner, version, columns, PII, freshness")
def list_contracts(request: Request) -> list[dict[str, Any]]:
    return [c.summary() for c in quality_service(request).contracts()]


@router.get("/contracts/{dataset}", summary="One contract: its summary, the checks it compiles to, the file")
def get_contract(request: Request, dataset: str) -> dict[str, Any]:
    contract = quality_service(request).contract(dataset)
    checks = [
        {
            "check": s.name,
            "kind": s.kind,
            "level": s.level,
            "columns": list(s.columns),
            "severity": s.severity,
            "expected": s.threshold.describe(),
            "quarantines_rows": s.rejects_rows,
            "description": s.description,
        }
        for s in compile_checks(contract)
    ]
    return {**contract.summary(), "checks": checks, "document": contract.document}


@router.get("/runs", summary="Check runs, newest first")
def list_runs(
    request: Request,
    dataset: Annotated[str | None, Query(description="Only this dataset (db.table)")] = None,
    mode: Annotated[Literal["batch", "table"] | None, Query(description="batch or table runs")] = None,
    failed: Annotated[bool, Query(description="Only runs with a failed check")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> list[dict[str, Any]]:
    return quality_service(request).runs(dataset, mode=mode, failed_only=failed, limit=limit)


@router.get("/runs/{run_id}", summary="One run with the outcome of every check")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    return quality_service(request).run(run_id)


@router.get("/runs/{run_id}/failures", summary="The failing rows a run sampled: check, key and reason")
def get_failures(
    request: Request,
    run_id: str,
    check: Annotated[str | None, Query(description="Only this check")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[dict[str, Any]]:
    return quality_service(request).failures(run_id, check, limit)


@router.get("/datasets", summary="The newest run of every dataset")
def list_datasets(
    request: Request,
    mode: Annotated[Literal["batch", "table"] | None, Query(description="batch or table runs")] = "table",
) -> list[dict[str, Any]]:
    return quality_service(request).latest(mode)


@router.get("/datasets/{dataset}/results", summary="The newest run of one dataset, every check's outcome")
def dataset_results(
    request: Request,
    dataset: str,
    mode: Annotated[Literal["batch", "table"], Query(description="batch or table runs")] = "table",
) -> dict[str, Any]:
    return quality_service(request).dataset_results(dataset, mode)


@router.post("/lint", summary="Lint a contract (ODCS YAML in the body): every issue with its path and line")
async def lint(request: Request) -> dict[str, Any]:
    from shopops.core.errors import InvalidInputError

    body = await request.body()
    if len(body) > MAX_CONTRACT_BYTES:
        raise InvalidInputError(f"the contract is larger than {MAX_CONTRACT_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the body is not UTF-8 text: {exc}") from None
    name = request.query_params.get("file", "<request>")
    report = lint_texts([(name, text)], context=quality_service(request).contracts())
    return {
        "ok": report.ok,
        "dataset": report.contracts[0].dataset if report.contracts else None,
        "issues": [i.to_dict() for i in report.issues],
    }
