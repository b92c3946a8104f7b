"""Where a source column goes in a silver table, and how the table's schema evolves. No I/O.

A source column (name and type, from the Connect schema or inferred) is stored in the first
column of its name that can hold it without loss: the column itself, or ``<name>__v2``,
``<name>__v3``… (the columns a type change created):

- same type → that column;
- narrower than the column (int → long, float → double) → that column, values widened;
- wider than the column, and Iceberg can promote it in place (int → long, float → double) → the
  column is promoted with ``update_schema().update_column``;
- otherwise (e.g. double → string, which Iceberg cannot change in place) → a new column
  ``<name>__vN``. The old column keeps every value written before; nothing is dropped or
  rewritten, and the stream never stops.

A new name becomes a new optional column. Data columns are all optional in silver: a delete
leaves a marker row holding only the key, and a renamed column (which arrives as a new name)
leaves the old one null from then on; a column the source makes optional therefore needs no
change. Key columns are required and are the table's identifier fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyiceberg.types import (
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    PrimitiveType,
    StringType,
)

#: Columns silver adds to every row, after the table's own columns.
METADATA: tuple[tuple[str, PrimitiveType], ...] = (
    ("_region", StringType()),
    ("_key", StringType()),
    ("_op", StringType()),
    ("_lsn", LongType()),
    ("_source_ts_ms", LongType()),
    ("_partition", IntegerType()),
    ("_offset", LongType()),
)
METADATA_NAMES = frozenset(name for name, _ in METADATA)
#: The first metadata column: new data columns are placed before it.
FIRST_METADATA = METADATA[0][0]

_FITS = {(IntegerType, LongType), (FloatType, DoubleType)}


def fits(source: IcebergType, column: IcebergType) -> bool:
    """Values of ``source`` type go into a ``column`` without loss."""
    return source == column or (type(source), type(column)) in _FITS


def promotable(column: IcebergType, source: IcebergType) -> bool:
    """Iceberg can promote ``column`` in place to hold ``source`` values."""
    return (type(column), type(source)) in _FITS


def versioned(name: str, version: int) -> str:
    return name if version == 1 else f"{name}__v{version}"


@dataclass
class Evolution:
    """Schema changes one batch needs, in the order they were found."""

    #: Key columns to add (required, identifier fields) — only into a table without rows.
    keys: list[tuple[str, PrimitiveType]] = field(default_factory=list)
    #: New optional columns.
    add: list[tuple[str, PrimitiveType]] = field(default_factory=list)
    #: Columns promoted in place (int → long, float → double).
    widen: list[tuple[str, PrimitiveType]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.keys or self.add or self.widen)

    def describe(self) -> list[str]:
        return (
            [f"key column {n} {t}" for n, t in self.keys]
            + [f"column {n} {t}" for n, t in self.add]
            + [f"column {n} promoted to {t}" for n, t in self.widen]
        )


class ColumnResolver:
    """Resolves source columns against a table's columns, collecting the changes they need."""

    def __init__(self, columns: Mapping[str, IcebergType], *, empty: bool) -> None:
        self.columns: dict[str, IcebergType] = dict(columns)
        #: The table holds no rows yet: key columns can still be added as required.
        self.empty = empty
        self.evolution = Evolution()

    def key(self, name: str, kind: PrimitiveType) -> str:
        """Key columns keep their name; a missing one is added (required if the table is empty)."""
        if name not in self.columns:
            self.columns[name] = kind
            if self.empty:
                self.evolution.keys.append((name, kind))
            else:
                self.evolution.add.append((name, kind))
        elif promotable(self.columns[name], kind):
            self.columns[name] = kind
            self.evolution.widen.append((name, kind))
        return name

    def column(self, name: str, kind: PrimitiveType) -> str:
        """The column ``name`` with values of ``kind`` is stored in (planning any change it needs)."""
        candidates: list[str] = []
        version = 1
        while True:
            candidate = versioned(name, version)
            if candidate in METADATA_NAMES:
                version += 1
                continue
            if candidate not in self.columns:
                break
            candidates.append(candidate)
            version += 1
        for candidate in candidates:
            if self.columns[candidate] == kind:
                return candidate
        for candidate in candidates:
            if fits(kind, self.columns[candidate]):
                return candidate
        for candidate in candidates:
            if promotable(self.columns[candidate], kind):
                self.columns[candidate] = kind
                self.evolution.widen.append((candidate, kind))
                return candidate
        new = versioned(name, version)
        self.columns[new] = kind
        self.evolution.add.append((new, kind))
        return new


def resolve_all(
    columns: Mapping[str, IcebergType],
    keys: Iterable[tuple[str, PrimitiveType]],
    sources: Iterable[tuple[str, PrimitiveType]],
    *,
    empty: bool,
) -> tuple[dict[tuple[str, PrimitiveType], str], Evolution]:
    """Target column of every ``(name, type)`` source, and the evolution they need together."""
    resolver = ColumnResolver(columns, empty=empty)
    targets: dict[tuple[str, PrimitiveType], str] = {}
    for name, kind in keys:
        targets[(name, kind)] = resolver.key(name, kind)
    for name, kind in sources:
        if (name, kind) not in targets:
            targets[(name, kind)] = resolver.column(name, kind)
    return targets, resolver.evolution
