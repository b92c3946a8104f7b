"""HTTP routes of the knowledge base: ``/v1/rag/...``.

Thin: every route calls the platform's :class:`~shopops.rag.service.RagService`
(``app.state.platform.rag``). Searching is a read even though it is a POST (the question travels in
the body): the route declares the Cedar action ``read``. Handlers are plain functions, so FastAPI
runs them in its thread pool (embedding a question takes milliseconds of CPU).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from shopops.governance.api import governed
from shopops.rag.model import MAX_K, MAX_QUERY_CHARS

if TYPE_CHECKING:
    from shopops.rag.service import RagService

router = APIRouter(prefix="/v1/rag", tags=["rag"])


def _service(request: Request) -> RagService:
    service: RagService = request.app.state.platform.rag
    return service


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="The question (English or Vietnamese)"
    )
    k: int = Field(default=5, ge=1, le=MAX_K, description="Passages to return")
    lang: str | None = Field(
        default=None, pattern=r"^[a-z]{2}$", description="Only passages in this language"
    )
    audience: Literal["customer", "internal"] | None = Field(
        default=None, description="Only passages for this audience (customer: safe to show customers)"
    )
    mode: Literal["hybrid", "dense", "sparse"] = Field(
        default="hybrid", description="hybrid (default), or one side alone for comparison"
    )


class IngestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rebuild: bool = Field(default=False, description="Empty the collection and embed everything again")


@router.post("/search", summary="The passages that best answer a question, with source and heading path")
@governed(action="read")
def search(request: Request, body: SearchIn) -> dict[str, Any]:
    started = time.perf_counter()
    passages = _service(request).search(
        body.query, body.k, lang=body.lang, audience=body.audience, mode=body.mode
    )
    return {
        "query": body.query,
        "passages": [p.to_dict() for p in passages],
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
    }


@router.get("/stats", summary="Points, files, chunks by language and audience, the last ingestion")
def stats(request: Request) -> dict[str, Any]:
    return _service(request).stats().to_dict()


@router.post("/ingest", summary="Ingest the configured knowledge folder now (changed files only)")
def ingest(request: Request, body: IngestIn | None = None) -> dict[str, Any]:
    from shopops.rag.service import default_knowledge_dir

    settings = request.app.state.platform.settings
    folder = settings.rag.knowledge_dir or default_knowledge_dir()
    report = _service(request).ingest(folder, rebuild=bool(body and body.rebuild))
    return report.to_dict()
