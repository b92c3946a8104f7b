"""Every injected break found with the right class, and nothing else, at 1x and 10x the rates."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.reconciliation.world import World, simulate

#: The classes the simulator's pains map to (see shopops.reconciliation.scoring).
SCORED = {
    "missing_payment",
    "late_settlement",
    "cross_region_payment",
    "currency_mismatch",
    "fx_difference",
    "rounding_difference",
    "payment_without_order",
    "ledger_break",
    "duplicate",
}


@pytest.fixture(scope="module", params=[1.0, 10.0], ids=["default-rates", "10x-rates"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    multiplier = request.param
    home: Path = tmp_path_factory.mktemp(f"world-{int(multiplier)}x")
    # Enough orders that every class occurs at the default rates (about 4,800 orders in all).
    return simulate(
        home, days=8, orders_per_day=200 if multiplier == 1 else 60, multiplier=multiplier, seed=3
    )


def test_every_break_found_and_no_false_exception(world: World) -> None:
    service = world.service()
    try:
        report = service.run(world.start, world.end, world.regions)
        result = service.score(world.truth, world.start, world.end, world.regions)
    finally:
        service.close()
    assert report.exceptions > 0
    # Not vacuous: each class was injected and expected at least once.
    assert {cls for cls, n in result.expected.items() if n > 0} == SCORED, result.expected
    assert result.missed_examples == [], result.missed_examples
    assert result.false_examples == [], result.false_examples
    assert result.recall == 1.0
    assert result.precision == 1.0
