"""Replay the simulator's checkout bursts against the reservation engine.

The simulated company's legacy checkout oversells when many carts race for the last units of a
SKU (its ground truth, ``checkout_bursts.parquet``, records how many units were on the shelf, how
many carts tried and how many orders the legacy system accepted). Replaying each burst with real
concurrent reserve calls shows, side by side, what the legacy system sold and what shopops sells:
never more than the units on the shelf.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from shopops.core.errors import InvalidInputError
from shopops.inventory.model import InsufficientStockError, StockKey
from shopops.inventory.service import InventoryService

#: Where ``shopops up`` keeps the outcomes of the demo's replay (in the data directory).
OUTCOMES_FILE = "inventory-bursts.json"
#: Holds of a replayed burst are confirmed at once; the TTL only matters if a confirm is lost.
_REPLAY_TTL_MS = 60_000


@dataclass(frozen=True, slots=True)
class BurstOutcome:
    """One burst: what the legacy checkout did, and what shopops did under the same race."""

    burst_id: str
    region: str
    sku: str
    warehouse: str
    units_available: int
    attempts: int
    legacy_accepted: int
    shopops_accepted: int

    @property
    def legacy_oversold(self) -> int:
        return max(0, self.legacy_accepted - self.units_available)

    @property
    def shopops_oversold(self) -> int:
        return max(0, self.shopops_accepted - self.units_available)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "legacy_oversold": self.legacy_oversold,
            "shopops_oversold": self.shopops_oversold,
        }


def load_bursts(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InvalidInputError(
            f"no checkout bursts at {path}", hint="run `shopops simulate` first (it writes the ground truth)"
        )
    rows: list[dict[str, Any]] = pq.read_table(
        path,
        columns=[
            "burst_id",
            "region",
            "warehouse_id",
            "sku",
            "units_available",
            "attempts",
            "accepted_by_source",
            "checkout_ids",
        ],
    ).to_pylist()
    return rows


def replay_checkout_bursts(
    service: InventoryService,
    bursts_path: Path,
    *,
    concurrency: int = 16,
    run_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[BurstOutcome]:
    """Replay every burst: put exactly ``units_available`` units on the shelf, then fire every
    cart's one-unit reserve at once from ``concurrency`` threads and confirm the winners."""
    if concurrency < 1:
        raise InvalidInputError(f"concurrency must be at least 1 (got {concurrency})")
    run = run_id or uuid.uuid4().hex[:8]
    bursts = load_bursts(bursts_path)
    outcomes: list[BurstOutcome] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="burst") as pool:
        for done, burst in enumerate(bursts, start=1):
            sku, warehouse = burst["sku"], burst["warehouse_id"]
            # Units already promised by earlier replays stay promised: add the burst's shelf on top.
            level = service.stock_levels([StockKey(sku, warehouse)])
            promised = sum(lv.committed + lv.held for lv in level)
            service.set_stock(sku, warehouse, promised + int(burst["units_available"]), reason="burst-replay")

            def attempt(checkout_id: str, sku: str = sku, warehouse: str = warehouse) -> str | None:
                try:
                    held = service.reserve([(sku, warehouse, 1)], _REPLAY_TTL_MS, f"{run}:{checkout_id}")
                except InsufficientStockError:
                    return None
                return held.id

            winners = [rid for rid in pool.map(attempt, burst["checkout_ids"]) if rid is not None]
            for rid in winners:
                service.confirm(rid)
            outcomes.append(
                BurstOutcome(
                    burst["burst_id"],
                    burst["region"],
                    sku,
                    warehouse,
                    int(burst["units_available"]),
                    int(burst["attempts"]),
                    int(burst["accepted_by_source"]),
                    len(winners),
                )
            )
            if progress is not None:
                progress(done, len(bursts))
    return outcomes
