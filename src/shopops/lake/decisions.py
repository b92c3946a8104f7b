"""The seam between silver and the schema registry: which schema changes silver may follow. No I/O.

Silver does not judge a schema change itself: when a batch brings a schema the table has not
taken yet, it asks a :class:`SchemaDecisions` (the registry's drift watch verdict, wired in
:mod:`shopops.bootstrap`) about one change event of that schema:

- accepted → the table evolves as Iceberg allows (columns added, promoted, ``<col>__vN``);
- refused → the events of that schema are not applied; they go to the quarantine table with
  ``_check = "schema"`` and the registry's reason;
- the registry cannot be reached → the decision raises
  :class:`~shopops.core.errors.BackendUnavailableError` and the batch is not applied (the worker
  retries it in its next round).

Which events need a decision (:func:`undecided`):

- a **declared** schema (the Connect schema of a JSON-with-schema envelope): every event (rows
  and deletes) of a schema the table has not accepted before. The table keeps the fingerprints of the declared
  schemas it accepted (:data:`ACCEPTED_SCHEMAS_PROPERTY`), so after a restart only new schemas
  are asked about;
- **plain JSON** (no declared schema; the registry infers one per row shape): the row events
  holding a value in a column the table would have to change for (a new column, a promotion, a
  versioned column), grouped by row shape. A plain row that fits the table as it is needs no
  decision.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
from pyiceberg.types import IcebergType

from shopops.events.model import Record
from shopops.lake.changes import ChangeBatch, ChangeDecoder, infer_plain
from shopops.lake.evolution import ColumnResolver
from shopops.schemas.connect import json_kind

#: ``_check`` of an event quarantined because the registry refused its schema.
SCHEMA_CHECK = "schema"
#: Table property of a silver table: the fingerprints of the declared schemas it accepted (JSON list).
ACCEPTED_SCHEMAS_PROPERTY = "shopops.accepted-schemas"
_ROW_OPS = frozenset({"c", "u", "r"})
_DECLARED_OPS = _ROW_OPS | {"d"}
_PLAIN = "plain:"


@dataclass(frozen=True, slots=True)
class SchemaDecision:
    """The registry's verdict on the schema of a change event: ``reason`` says why it was refused."""

    accepted: bool
    reason: str = ""


class SchemaDecisions(Protocol):
    """Whether the schema registry accepts the schema a change event carries."""

    def decide(self, record: Record) -> SchemaDecision:
        """The verdict on ``record``'s schema under its subject's compatibility level. Raises
        :class:`~shopops.core.errors.BackendUnavailableError` when the registry cannot be reached."""
        ...


def is_declared(identity: str) -> bool:
    """Whether a schema identity of :func:`undecided` names a declared schema (else a plain row shape)."""
    return not identity.startswith(_PLAIN)


@dataclass(slots=True)
class Question:
    """Events of one batch with the same schema, waiting for the registry's verdict."""

    identity: str
    #: Indices into the batch, in log order; the first one is asked about.
    events: list[int] = field(default_factory=list)


def undecided(
    batch: ChangeBatch,
    decoder: ChangeDecoder,
    columns: Mapping[str, IcebergType],
    keys: Sequence[str],
    *,
    accepted: Collection[str],
    excluded: Collection[int] = (),
    empty: bool = False,
) -> dict[str, Question]:
    """The events of ``batch`` silver may apply only once the registry accepts their schema,
    by schema identity (a declared schema's fingerprint, or ``plain:`` and a plain row's shape).

    ``columns`` are the table's columns, ``keys`` its key columns, ``accepted`` the fingerprints of
    the declared schemas the table accepted already; ``excluded`` events are left out; ``empty``:
    the table holds no rows yet.
    """
    questions: dict[str, Question] = {}
    plain: list[int] = []
    for i, op in enumerate(batch.ops):
        if op not in _DECLARED_OPS or i in excluded:
            continue
        schema = batch.schemas[i]
        if schema < 0:
            if op != "d":  # a plain delete carries no row shape to judge
                plain.append(i)
            continue
        identity = decoder.schema_keys[schema]
        if identity not in accepted:
            questions.setdefault(identity, Question(identity)).events.append(i)
    if plain:
        rows: list[dict[str, Any]] = [batch.rows[i] for i in plain]  # type: ignore[misc]
        resolver = ColumnResolver(columns, empty=empty)
        changing: set[int] = set()
        for column, values in infer_plain(rows, frozenset(keys)):
            before = len(resolver.evolution.add) + len(resolver.evolution.widen)
            resolver.column(column.name, column.type)
            if len(resolver.evolution.add) + len(resolver.evolution.widen) > before:
                changing.update(_present(values))
        for position in sorted(changing):
            i = plain[position]
            identity = _PLAIN + shape(rows[position])
            questions.setdefault(identity, Question(identity)).events.append(i)
    for question in questions.values():
        question.events.sort()
    return questions


def _present(values: list[Any] | pa.Array) -> Iterable[int]:
    """Positions holding a value."""
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    return (p for p, v in enumerate(values) if v is not None)


def shape(row: Mapping[str, Any]) -> str:
    """What the registry infers a plain row's schema from: its columns and their JSON types."""
    return ",".join(f"{name}:{json_kind(value)}" for name, value in row.items())
