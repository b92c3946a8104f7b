"""The ETA tool's adapter to the platform's own model serving (``shopops.ml.serving``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from shopops.agents.tools import InProcessEta, eta_request
from shopops.core.errors import NotFoundError

SHIPMENT = {
    "shipment_id": "vn-s-000000001",
    "order_id": "vn-o-000000001",
    "warehouse_id": "vn-wh-01",
    "carrier": "RedRiver",
    "route": "domestic",
    "created_at": 1_767_225_600_000_000,  # 2026-01-01T00:00:00Z in microseconds
}


@dataclass
class Scored:
    outputs: dict[str, float]
    model: str = "eta"
    version: int = 3


@dataclass
class Serving:
    """The part of ``ServingService`` the adapter uses: ``score(use_case, entity)``."""

    fail: bool = False
    seen: list[dict[str, str]] = field(default_factory=list)

    def score(self, use_case: str, entity: dict[str, str]) -> Any:
        if self.fail:
            raise NotFoundError("no eta model is being served")
        self.seen.append({"use_case": use_case, **entity})
        return Scored({"p50_hours": 36.0, "p90_hours": 60.0})


def test_the_request_is_the_shipments_lane_and_creation_time() -> None:
    assert eta_request(SHIPMENT) == {
        "carrier": "RedRiver",
        "route": "domestic",
        "shipment_id": "vn-s-000000001",
        "order_id": "vn-o-000000001",
        "warehouse_id": "vn-wh-01",
        "event_timestamp": 1_767_225_600_000,
    }


def test_predictions_become_dates_counted_from_the_shipment() -> None:
    serving = Serving()
    predicted = InProcessEta(lambda: serving).predict(SHIPMENT, {"order_id": "vn-o-000000001"})
    assert predicted["p50_at"].startswith("2026-01-02T12:00")
    assert predicted["p90_at"].startswith("2026-01-03T12:00")
    assert serving.seen[0]["use_case"] == "eta"
    assert serving.seen[0]["event_timestamp"] == "1767225600000"


def test_a_model_that_is_not_served_is_a_connection_problem_for_the_tool() -> None:
    with pytest.raises(ConnectionError, match="no eta model is being served"):
        InProcessEta(lambda: Serving(fail=True)).predict(SHIPMENT, {})
