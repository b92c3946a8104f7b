"""Quarantined events applied to silver once what rejected them passes (``shopops lake replay-quarantine``).

A quarantined row says where its event sits in the log (``_partition``, ``_offset``), and bronze
keeps every event as received. A replay reads those events back from bronze and hands them to the
silver table as one batch, through the same schema decisions and contract checks as the worker,
without moving silver's position:

- an event whose schema the registry now accepts and that passes the checks is applied, by the
  same order per key as any other event (its LSN): an older event never overwrites a newer state;
- an event still refused or rejected is not applied, and not quarantined twice (it lies behind
  the quarantine table's position);
- a second replay applies nothing again: an event already applied is no newer than the state it
  left.

The quarantined rows stay in the quarantine table, the record of what was rejected and why.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, BooleanExpression, EqualTo, In, Or

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.events.model import Record
from shopops.lake.bronze import BronzeTable
from shopops.lake.checks import BatchChecker
from shopops.lake.decisions import SchemaDecisions
from shopops.lake.quarantine import QuarantineTable
from shopops.lake.silver import SilverTable, topic_parts


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did: quarantined rows considered, found in bronze, and silver rows written."""

    topic: str
    considered: int
    found: int
    written: int

    @property
    def missing(self) -> int:
        """Quarantined rows whose event bronze does not hold (bronze off, or its files removed)."""
        return self.considered - self.found


def replay_quarantine(
    catalog: Catalog,
    topic: str,
    *,
    schemas: SchemaDecisions | None = None,
    checker: BatchChecker | None = None,
    check: str | None = None,
) -> ReplayReport:
    """Apply to silver the quarantined events of ``topic`` (``<region>.<database>.<table>``) that
    now pass; ``check``: only rows quarantined by that check (e.g. ``schema``)."""
    if topic_parts(topic) is None:
        raise InvalidInputError(
            f"{topic!r} is not a CDC topic <region>.<database>.<table>", hint="e.g. vn.logistics.shipments"
        )
    quarantine = QuarantineTable(catalog, topic)
    if not quarantine.exists():
        raise NotFoundError(
            f"no quarantine table for {topic}",
            hint="`shopops lake tables` lists the lake's tables; nothing of this topic was quarantined",
        )
    rows = quarantine.read().select(["_partition", "_offset", "_check"])
    if check is not None:
        checks = [set(c.split(";")) if c else set() for c in rows.column("_check").to_pylist()]
        rows = rows.filter(pa.array([check in c for c in checks], pa.bool_()))
    wanted: dict[int, set[int]] = {}
    for partition, offset in zip(
        rows.column("_partition").to_pylist(), rows.column("_offset").to_pylist(), strict=True
    ):
        wanted.setdefault(partition, set()).add(offset)
    considered = sum(len(offsets) for offsets in wanted.values())
    if not considered:
        return ReplayReport(topic, 0, 0, 0)
    records = _from_bronze(catalog, topic, wanted)
    silver = SilverTable(catalog, topic, checker=checker, schemas=schemas)
    for attempt in range(50):
        try:
            written = silver.write(records, silver.committed_offsets()) if records else 0
        except CommitFailedException:
            # The worker committed meanwhile: apply the same events on top of its state.
            time.sleep(random.random() * 0.02 * min(attempt + 1, 10))
            silver.refresh()
            continue
        return ReplayReport(topic, considered, len(records), written)
    raise CommitFailedException(f"{silver.name}: 50 commits lost to other workers")


def _from_bronze(catalog: Catalog, topic: str, wanted: dict[int, set[int]]) -> list[Record]:
    """The events at ``wanted`` positions (partition -> offsets) as bronze keeps them, in log order."""
    where: BooleanExpression | None = None
    for partition, offsets in sorted(wanted.items()):
        here = And(EqualTo(term="partition", value=partition), In(term="offset", literals=sorted(offsets)))
        where = here if where is None else Or(where, here)
    assert where is not None
    table = BronzeTable(catalog, topic).table.scan(row_filter=where).to_arrow()
    table = table.take(pc.sort_indices(table, [("partition", "ascending"), ("offset", "ascending")]))
    return [
        Record(
            topic,
            row["partition"],
            row["offset"],
            None if row["key"] is None else row["key"].encode(),
            None if row["value"] is None else row["value"].encode(),
            row["timestamp_ms"],
        )
        for row in table.to_pylist()
    ]
