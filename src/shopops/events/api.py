"""HTTP routes of the event log: topics, recent records, consumer-group lag."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from shopops.events.service import EventsService
from shopops.governance.api import governed, mask_change_records

router = APIRouter(prefix="/v1/events", tags=["events"])


def _service(request: Request) -> EventsService:
    service: EventsService = request.app.state.platform.events
    return service


@router.get("/topics", summary="List topics with their partitions and record counts")
def list_topics(request: Request, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {"name": t.name, "partitions": t.partitions, "messages": t.messages}
        for t in _service(request).topics(prefix)
    ]


@router.get("/topics/{topic}/records", summary="The most recent records of a topic, decoded")
@governed(sensitive=True)  # change events carry personal data: every read is audited
def tail_topic(
    request: Request,
    topic: str,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10,
    partition: Annotated[int | None, Query(ge=0)] = None,
) -> list[dict[str, Any]]:
    records = [r.to_dict() for r in _service(request).tail(topic, limit, partition)]
    return mask_change_records(request, topic, records)


@router.get("/groups", summary="Consumer groups with committed offsets")
def list_groups(request: Request) -> list[str]:
    return _service(request).groups()


@router.get("/groups/{group}/lag", summary="Per-partition lag of a consumer group")
def group_lag(request: Request, group: str) -> list[dict[str, Any]]:
    return [
        {
            "topic": p.topic,
            "partition": p.partition,
            "committed": p.committed,
            "end_offset": p.end_offset,
            "lag": p.lag,
        }
        for p in _service(request).lag(group)
    ]
