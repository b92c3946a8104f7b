"""The seam between lake ingestion and data-contract checks.

The silver stage hands each micro-batch of typed rows of one dataset (``<db>.<table>``, e.g.
``shop.orders``, the same for every region) to a :class:`BatchChecker` before applying it. Rows
that pass are applied; rejected rows go to the dataset's quarantine table with the reason, and
the stream keeps flowing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

#: Columns a checker adds to each rejected row.
CHECK_COLUMN = "_check"
REASON_COLUMN = "_reason"


@dataclass(frozen=True)
class BatchVerdict:
    """What a checker made of one batch: ``passed`` has the batch's columns; ``rejected`` has them
    plus ``_check`` (the failed check's name; several joined by ``;``) and ``_reason`` (why, in words)."""

    passed: pa.Table
    rejected: pa.Table


class BatchChecker(Protocol):
    """Checks a micro-batch of one dataset's rows (after-images of inserts, updates, snapshots)."""

    def check_batch(self, dataset: str, rows: pa.Table) -> BatchVerdict: ...
