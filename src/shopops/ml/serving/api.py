"""HTTP routes of online serving: ``POST /v1/score/fraud`` and ``POST /v1/predict/eta``.

The handlers are ``async`` on purpose: scoring is sub-millisecond CPU work (an online-store read
and a booster call), cheaper on the event loop than the thread hop a plain function costs.
"""

from __future__ import annotations

import atexit
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopops.api.state import app_service
from shopops.core.errors import InvalidInputError
from shopops.core.heap import settle_heap

if TYPE_CHECKING:
    from shopops.ml.serving.service import Scored, ServingService

router = APIRouter(tags=["ml serving"])

_Id = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


class FraudScoreRequest(BaseModel):
    """An order at checkout, by its ids; ``features`` supplies values the caller already knows."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = _Id
    device_id: str = _Id
    card_fingerprint: str = _Id
    order_id: str | None = Field(default=None, min_length=1, max_length=128)
    #: When the order is placed (ISO-8601 or epoch ms; default now): time-derived features use it.
    event_timestamp: str | int | None = None
    features: dict[str, float] | None = None


class EtaRequest(BaseModel):
    """A shipment at creation: its lane (carrier and route), optionally its ids."""

    model_config = ConfigDict(extra="forbid")

    carrier: str = _Id
    route: str = Field(min_length=1, max_length=32)
    shipment_id: str | None = Field(default=None, min_length=1, max_length=128)
    order_id: str | None = Field(default=None, min_length=1, max_length=128)
    warehouse_id: str | None = Field(default=None, min_length=1, max_length=128)
    #: When the shipment was created (ISO-8601 or epoch ms): the predicted times are counted from it.
    event_timestamp: str | int | None = None
    features: dict[str, float] | None = None


def serving_service(request: Request) -> ServingService:
    """The app's serving service (built on first use, sharing the app's feature store)."""
    return app_service(request, "ml_serving", lambda state: _build_serving(request))


def _build_serving(request: Request) -> ServingService:
    from shopops.bootstrap import build_serving
    from shopops.ml.features.api import feature_service

    service = build_serving(request.app.state.platform.settings, feature_service(request)).start()
    # The prediction log is flushed at exit however the server stops.
    atexit.register(service.close)
    # Feast, MLflow and LightGBM are imported now: keep full collections off them.
    settle_heap("scoring service built")
    return service


Body = TypeVar("Body", bound=BaseModel)


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that parses ``model`` itself (see :func:`_parse`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def _parse(request: Request, model: type[Body]) -> Body:
    """The JSON body as ``model``, parsed and validated in one pass by pydantic-core.

    FastAPI's own body handling (``json.loads``, then validation of the dict, then dependency
    resolution) costs several times more on the scoring routes; errors are the same 422 it answers,
    each located in the body.
    """
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=raw) from None


def _entity(body: BaseModel, keys: tuple[str, ...]) -> dict[str, str]:
    out = {k: str(getattr(body, k)) for k in keys if getattr(body, k) is not None}
    stamp = getattr(body, "event_timestamp", None)
    if stamp is not None:
        out["event_timestamp"] = str(stamp)
    return out


def _json(body: dict[str, Any]) -> Response:
    # Plain floats, strings and lists: orjson directly, without FastAPI's generic encoder pass.
    return Response(orjson.dumps(body), media_type="application/json")


def _common(scored: Scored) -> dict[str, Any]:
    return {
        "request_id": scored.request_id,
        "model": scored.model,
        "version": scored.version,
        # Features without an online value: the documented default (training median) was used.
        "defaults": scored.defaults,
        "latency_us": scored.latency_us,
    }


@router.post(
    "/v1/score/fraud",
    summary="Fraud score of an order, with the reasons (top SHAP contributions)",
    description="Online features of the customer, device, card (and order, if given) from the feature "
    "store, scored by the fraud champion. Unknown customer or order ids answer 404; features without "
    "an online value take the model's default and are listed in `defaults`.",
    openapi_extra=_json_body(FraudScoreRequest),
)
async def score_fraud(request: Request) -> Response:
    body = await _parse(request, FraudScoreRequest)
    service = serving_service(request)
    entity = _entity(body, ("customer_id", "device_id", "card_fingerprint", "order_id"))
    scored = service.score("fraud", entity, body.features)
    return _json({"score": scored.outputs["score"], "reasons": scored.reasons, **_common(scored)})


@router.post(
    "/v1/predict/eta",
    summary="Delivery-time prediction of a shipment: P50 and P90 hours",
    description="Online features of the carrier's lane on the route (and the shipment and order, if "
    "given), predicted by the ETA champion. An unknown lane or shipment answers 404.",
    openapi_extra=_json_body(EtaRequest),
)
async def predict_eta(request: Request) -> Response:
    from shopops.fulfillment.eta import ROUTES

    body = await _parse(request, EtaRequest)
    if body.route not in ROUTES:
        raise InvalidInputError(f"unknown route {body.route!r}", hint=f"routes: {', '.join(ROUTES)}")
    service = serving_service(request)
    entity = _entity(body, ("carrier", "route", "shipment_id", "order_id", "warehouse_id"))
    scored = service.score("eta", entity, body.features)
    out: dict[str, Any] = {
        "p50_hours": scored.outputs["p50_hours"],
        "p90_hours": scored.outputs["p90_hours"],
        **_common(scored),
    }
    if body.event_timestamp is not None:
        from shopops.ml.features.model import parse_timestamp_ms

        start = datetime.fromtimestamp(parse_timestamp_ms(str(body.event_timestamp)) / 1000, UTC)
        out["p50_at"] = (start + timedelta(hours=out["p50_hours"])).isoformat()
        out["p90_at"] = (start + timedelta(hours=out["p90_hours"])).isoformat()
    return _json(out)


@router.get("/v1/score/status", summary="The champions being served, and why one is not")
async def status(request: Request) -> dict[str, Any]:
    return serving_service(request).status()
