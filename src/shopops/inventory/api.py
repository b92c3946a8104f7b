"""HTTP routes of inventory reservations.

``/v1/reservations``: reserve, confirm, extend, release (DELETE), cancel; ``/v1/inventory``: stock
per SKU, set/adjust stock, audit. Thin: every route calls :class:`~shopops.inventory.service.InventoryService`
found at ``app.state.platform.inventory``; errors answer through the app's ShopopsError handler
(a refused reserve is a 409 whose ``details.shortages`` say what is available per line)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shopops.core.errors import InvalidInputError
from shopops.inventory.cdc import read_cdc_stock
from shopops.inventory.model import StockKey
from shopops.inventory.service import InventoryService

reservations = APIRouter(prefix="/v1/reservations", tags=["inventory"])
inventory = APIRouter(prefix="/v1/inventory", tags=["inventory"])


def _service(request: Request) -> InventoryService:
    service: InventoryService = request.app.state.platform.inventory
    return service


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineIn(_Body):
    sku: str
    warehouse: str
    quantity: int


class ReserveIn(_Body):
    lines: list[LineIn]
    #: How long the hold lasts; checkout holds usually last 5-15 minutes.
    ttl_ms: int = Field(default=15 * 60 * 1000)
    #: Unique to the checkout attempt; the ``Idempotency-Key`` header works too.
    idempotency_key: str | None = None


class ExtendIn(_Body):
    ttl_ms: int


class SetStockIn(_Body):
    sku: str
    warehouse: str
    on_hand: int
    reason: str = "manual"


class AdjustStockIn(_Body):
    sku: str
    warehouse: str
    delta: int
    reason: str = "manual"


class AuditIn(_Body):
    #: The source system's units per item, e.g. from the CDC ``inventory.stock_levels`` table.
    source_on_hand: list[SetStockIn] = []
    grace_ms: int = 2_000


@inventory.put("/stock", summary="Set the units on hand of an item (a count, a CDC change)")
def set_stock(request: Request, body: SetStockIn) -> dict[str, Any]:
    return _service(request).set_stock(body.sku, body.warehouse, body.on_hand, body.reason).to_dict()


@inventory.post("/stock/adjustments", summary="Add (restock) or remove units on hand")
def adjust_stock(request: Request, body: AdjustStockIn) -> dict[str, Any]:
    return _service(request).adjust_stock(body.sku, body.warehouse, body.delta, body.reason).to_dict()


@reservations.post("", status_code=201, summary="Hold every line for a TTL, or nothing")
def reserve(
    request: Request,
    body: ReserveIn,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidInputError(
            "the Idempotency-Key header and the body's idempotency_key differ", hint="send one of them"
        )
    key = body.idempotency_key or idempotency_key
    if key is None:
        raise InvalidInputError(
            "an idempotency key is required",
            hint="send the Idempotency-Key header: a retry with it never reserves twice",
        )
    lines = [line.model_dump() for line in body.lines]
    return _service(request).reserve(lines, body.ttl_ms, key).to_dict()


@reservations.get("/{reservation_id}", summary="A reservation as of now")
def get_reservation(request: Request, reservation_id: str) -> dict[str, Any]:
    return _service(request).get(reservation_id).to_dict()


@reservations.post("/{reservation_id}/confirm", summary="Turn the hold into committed stock")
def confirm(request: Request, reservation_id: str) -> dict[str, Any]:
    return _service(request).confirm(reservation_id).to_dict()


@reservations.delete("/{reservation_id}", summary="Release the hold: give the held units back")
def release(request: Request, reservation_id: str) -> dict[str, Any]:
    return _service(request).release(reservation_id).to_dict()


@reservations.post("/{reservation_id}/extend", summary="Hold longer (until now + ttl_ms)")
def extend(request: Request, reservation_id: str, body: ExtendIn) -> dict[str, Any]:
    return _service(request).extend(reservation_id, body.ttl_ms).to_dict()


@reservations.post("/{reservation_id}/cancel", summary="Cancel a confirmed reservation")
def cancel(request: Request, reservation_id: str) -> dict[str, Any]:
    return _service(request).cancel(reservation_id).to_dict()


@inventory.get("/audit", summary="Overdue holds, oversubscribed items, blocked oversell attempts")
def audit(
    request: Request,
    grace_ms: Annotated[int, Query(ge=0)] = 2_000,
    from_cdc: Annotated[
        bool, Query(description="Compare on-hand units with the CDC stock_levels stream")
    ] = False,
) -> dict[str, Any]:
    source = read_cdc_stock(request.app.state.platform.event_log).on_hand if from_cdc else None
    return _service(request).audit(source_on_hand=source, grace_ms=grace_ms).to_dict()


@inventory.post("/audit", summary="The audit, plus drift against the source system's stock snapshot")
def audit_against(request: Request, body: AuditIn) -> dict[str, Any]:
    source = {StockKey(item.sku, item.warehouse): item.on_hand for item in body.source_on_hand}
    return _service(request).audit(source_on_hand=source, grace_ms=body.grace_ms).to_dict()


# Declared after /audit so that "audit" is not taken for a SKU.
@inventory.get("/{sku}", summary="Stock of a SKU in every warehouse")
def stock(request: Request, sku: str) -> list[dict[str, Any]]:
    return [level.to_dict() for level in _service(request).stock(sku)]
