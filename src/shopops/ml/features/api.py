"""HTTP routes of the feature store: ``/v1/features/...``.

Thin: the handlers call the app's :class:`~shopops.ml.features.service.FeatureService`, built on the
first request (so a process that never serves features never imports Feast). They are plain
functions: FastAPI runs them in its thread pool and the event loop stays free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from shopops.api.state import app_service
from shopops.core.errors import NotFoundError
from shopops.ml.features.model import AT_KEY, USE_CASE_DEFS, USE_CASES

if TYPE_CHECKING:
    from shopops.ml.features.service import FeatureService

router = APIRouter(prefix="/v1/features", tags=["features"])


def feature_service(request: Request) -> FeatureService:
    """The app's feature service (one per app, built from the platform's settings on first use)."""
    return app_service(request, "features", _build_features)


def _build_features(state: Any) -> FeatureService:
    from shopops.bootstrap import build_features

    return build_features(state.platform.settings)


@router.get("", summary="The feature views and use cases of the feature store")
def describe(request: Request) -> dict[str, Any]:
    return feature_service(request).describe()


@router.get(
    "/{use_case}",
    summary="Online features of one entity",
    description="Query parameters are the use case's entity keys — fraud: customer_id, device_id, "
    "card_fingerprint (order_id optional); eta: carrier, route (shipment_id, order_id optional) — and "
    f"optionally {AT_KEY} (ISO-8601 or epoch ms), the time derived features are computed at "
    "(default: now). Features without an online value are null and listed in `missing`.",
)
def online(use_case: str, request: Request) -> dict[str, Any]:
    if use_case not in USE_CASE_DEFS:
        raise NotFoundError(f"unknown use case {use_case!r}", hint=f"known use cases: {', '.join(USE_CASES)}")
    entity = dict(request.query_params)
    result = feature_service(request).online_features(use_case, entity)
    return {"use_case": use_case, "entity": entity, **result.to_dict()}
