"""The catalog's domain: datasets, jobs, runs, lineage edges and the lineage tree. Pure: no I/O.

A dataset is known by its catalog ``name`` (unique, what people type: ``vn.shop.orders``,
``bronze.vn__shop__orders``, ``reconciliation.input.vn.orders``) and, for OpenLineage, by
``namespace`` + ``name`` (the namespace says where the data lives: ``kafka://broker:9092``, the
Iceberg warehouse, a directory). Lineage is a bipartite graph: a job run reads datasets (``in``
edges) and writes datasets (``out`` edges); column lineage says which input columns an output
column came from, where that is cheap to know.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from shopops import __version__
from shopops.core.errors import InvalidInputError


class DatasetKind(StrEnum):
    """What a dataset is. Features, models and reports register themselves with their kind."""

    TOPIC = "topic"  # a stream of the event log (CDC topics: region.database.table)
    BRONZE = "bronze"  # an Iceberg table of change events as received
    SILVER = "silver"  # an Iceberg table of the current state per key
    QUARANTINE = "quarantine"  # an Iceberg table of rows a contract check rejected
    TABLE = "table"  # any other table or file set (e.g. reconciliation inputs)
    REPORT = "report"  # results people read (reconciliation exceptions, summaries)
    FEATURE = "feature"  # a feature view of the feature store
    MODEL = "model"  # a registered model


class Sensitivity(StrEnum):
    """How sensitive a column is, least to most. ``pii`` and ``secret`` are personal data."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    PII = "pii"
    SECRET = "secret"  # noqa: S105 - a sensitivity level, not a credential

    @property
    def rank(self) -> int:
        return _SENSITIVITY_ORDER.index(self)

    @property
    def personal(self) -> bool:
        return self in (Sensitivity.PII, Sensitivity.SECRET)


_SENSITIVITY_ORDER = list(Sensitivity)

#: Documented defaults of fields a contract or a registration did not give (docs/dataops.md).
DEFAULT_OWNER = "data-platform"
DEFAULT_SENSITIVITY = Sensitivity.INTERNAL
DEFAULT_RETENTION: Mapping[DatasetKind, str] = {
    DatasetKind.TOPIC: "7d",  # Kafka's default retention.ms
    DatasetKind.BRONZE: "365d",
    DatasetKind.SILVER: "365d",
    DatasetKind.QUARANTINE: "30d",
    DatasetKind.TABLE: "30d",
    DatasetKind.REPORT: "365d",
    DatasetKind.FEATURE: "90d",
    DatasetKind.MODEL: "until archived",
}

#: Identifies shopops as the producer of OpenLineage events (a URI, as the specification asks).
PRODUCER = f"urn:shopops:{__version__}"
#: Deepest lineage tree served (levels of datasets from the one asked about).
MAX_DEPTH = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,254}$")
_CDC_TOPIC = re.compile(r"^(?P<region>[a-z]{2})\.(?P<db>[a-z0-9_]+)\.(?P<table>[a-z0-9_]+)$")
_LAKE_TABLE = re.compile(
    r"^(?P<layer>[a-z0-9_]+)\.(?P<region>[a-z]{2})__(?P<db>[a-z0-9_]+?)__(?P<table>[a-z0-9_]+)$"
)
_RECON = re.compile(r"^reconciliation\.(?P<what>input|results)\.(?P<region>[a-z]{2})\.(?P<table>[a-z0-9_]+)$")
_LAYERS = {"bronze": DatasetKind.BRONZE, "silver": DatasetKind.SILVER, "quarantine": DatasetKind.QUARANTINE}


def is_name(name: str) -> bool:
    """Whether ``name`` is a valid dataset or job name (see :func:`check_name`)."""
    return isinstance(name, str) and bool(_NAME.match(name))


def check_name(name: str) -> str:
    """A dataset or job name: letters, digits and ``_ . : @ -``, at most 255 characters."""
    if not is_name(name):
        raise InvalidInputError(
            f"{name!r} is not a valid catalog name",
            hint="use letters, digits and _ . : @ - (first a letter or digit, at most 255), "
            "e.g. vn.shop.orders or bronze.vn__shop__orders",
        )
    return name


def parse_kind(text: str) -> DatasetKind:
    """``text`` as a :class:`DatasetKind`; an unknown kind names the known ones."""
    try:
        return DatasetKind(text.strip().lower())
    except ValueError:
        raise InvalidInputError(
            f"unknown dataset kind {text!r}", hint=f"use one of {', '.join(k.value for k in DatasetKind)}"
        ) from None


def check_depth(depth: int) -> int:
    """A lineage depth between 1 and :data:`MAX_DEPTH`."""
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
        raise InvalidInputError(
            f"depth {depth!r} is out of range",
            hint=f"give a depth from 1 to {MAX_DEPTH} (levels of datasets shown each way)",
        )
    return depth


@dataclass(frozen=True, slots=True)
class NameInfo:
    """What a dataset's name says by the platform's naming conventions."""

    kind: DatasetKind
    domain: str
    region: str | None = None
    #: The dataset of the contracts and personal-data tags (``<db>.<table>``), if the name has one.
    logical: str | None = None
    #: The CDC topic the dataset is built from, if any.
    topic: str | None = None


def describe_name(name: str) -> NameInfo:
    """Kind, domain, region and logical dataset of ``name`` by the platform's conventions.

    ``vn.shop.orders`` is a CDC topic of the ``shop`` domain in region ``vn``;
    ``silver.vn__shop__orders`` its silver table; ``reconciliation.input.vn.orders`` an input table
    of reconciliation; ``features.*``, ``models.*`` and ``reports.*`` what their prefix says. Any
    other name is a table whose domain is its first part.
    """
    if m := _CDC_TOPIC.match(name):
        logical = f"{m['db']}.{m['table']}"
        return NameInfo(DatasetKind.TOPIC, m["db"], m["region"], logical, name)
    if (m := _LAKE_TABLE.match(name)) and m["layer"] in _LAYERS:
        logical = f"{m['db']}.{m['table']}"
        topic = f"{m['region']}.{logical}"
        return NameInfo(_LAYERS[m["layer"]], m["db"], m["region"], logical, topic)
    if m := _RECON.match(name):
        kind = DatasetKind.TABLE if m["what"] == "input" else DatasetKind.REPORT
        return NameInfo(kind, "reconciliation", m["region"])
    head = name.split(".", 1)[0]
    if head in ("features", "feature"):
        return NameInfo(DatasetKind.FEATURE, "ml")
    if head in ("models", "model"):
        return NameInfo(DatasetKind.MODEL, "ml")
    if head == "reports":
        return NameInfo(DatasetKind.REPORT, name.split(".")[1] if name.count(".") >= 2 else "reports")
    if head == "shopops":
        return NameInfo(DatasetKind.TOPIC, "platform")
    return NameInfo(DatasetKind.TABLE, head)


def lake_table_name(layer: str, topic: str) -> str:
    """``("silver", "vn.shop.orders")`` -> ``silver.vn__shop__orders`` (the lake's table names)."""
    return f"{layer}.{topic.replace('.', '__')}"


@dataclass(frozen=True, slots=True)
class Column:
    """One column and how sensitive it is.

    ``masked`` says the governance data-access service masks (pii) or removes (secret) the column
    for anyone no policy clears; ``sources`` say which files said the column is sensitive.
    """

    name: str
    type: str | None = None
    sensitivity: Sensitivity = DEFAULT_SENSITIVITY
    masked: bool = False
    description: str = ""
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "sensitivity": self.sensitivity.value,
            "masked": self.masked,
            "description": self.description,
            "sources": list(self.sources),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Column:
        return cls(
            name=str(raw["name"]),
            type=raw.get("type"),
            sensitivity=Sensitivity(raw.get("sensitivity", DEFAULT_SENSITIVITY.value)),
            masked=bool(raw.get("masked", False)),
            description=str(raw.get("description") or ""),
            sources=tuple(raw.get("sources") or ()),
        )


def merge_columns(*layers: Iterable[Column]) -> tuple[Column, ...]:
    """Columns of several sources merged by name: the first source's order, then new names in the
    order later sources give them; the highest sensitivity wins, ``masked`` if any says so, the
    first known type and description are kept."""
    merged: dict[str, Column] = {}
    for layer in layers:
        for col in layer:
            have = merged.get(col.name)
            if have is None:
                merged[col.name] = col
                continue
            top = col.sensitivity if col.sensitivity.rank > have.sensitivity.rank else have.sensitivity
            merged[col.name] = Column(
                name=col.name,
                type=have.type or col.type,
                sensitivity=top,
                masked=have.masked or col.masked,
                description=have.description or col.description,
                sources=tuple(dict.fromkeys((*have.sources, *col.sources))),
            )
    return tuple(merged.values())


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset of the catalog. ``defaulted`` names the fields that took a documented default."""

    name: str
    kind: DatasetKind
    namespace: str
    owner: str = DEFAULT_OWNER
    domain: str = ""
    sla: str | None = None
    retention: str = ""
    residency: str | None = None
    columns: tuple[Column, ...] = ()
    #: The data contract file (path relative to the contracts folder's parent) and the dataset it
    #: describes (``<db>.<table>``).
    contract: str | None = None
    schema_subject: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    #: Stable facts of the dataset's store (partitions, Iceberg location, schema version...).
    properties: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    defaulted: tuple[str, ...] = ()
    #: Who registered it last: ``sync``, ``lineage``, ``api`` or a component's name.
    registered_by: str = "api"
    created_at_ms: int = 0
    updated_at_ms: int = 0

    @property
    def urn(self) -> str:
        """The OpenLineage identity of the dataset: ``namespace`` + ``name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def personal_columns(self) -> list[Column]:
        return [c for c in self.columns if c.sensitivity.personal]

    def content(self) -> dict[str, Any]:
        """Everything but the timestamps: two registrations with equal content change nothing."""
        out = self.to_dict()
        out.pop("created_at_ms")
        out.pop("updated_at_ms")
        out.pop("urn")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "urn": self.urn,
            "kind": self.kind.value,
            "namespace": self.namespace,
            "owner": self.owner,
            "domain": self.domain,
            "sla": self.sla,
            "retention": self.retention,
            "residency": self.residency,
            "columns": [c.to_dict() for c in self.columns],
            "contract": self.contract,
            "schema_subject": self.schema_subject,
            "links": dict(sorted(self.links.items())),
            "properties": dict(sorted(self.properties.items())),
            "description": self.description,
            "defaulted": list(self.defaulted),
            "registered_by": self.registered_by,
            "created_at_ms": self.created_at_ms,
            "updated_at_ms": self.updated_at_ms,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Dataset:
        return cls(
            name=str(raw["name"]),
            kind=DatasetKind(raw["kind"]),
            namespace=str(raw["namespace"]),
            owner=str(raw.get("owner") or DEFAULT_OWNER),
            domain=str(raw.get("domain") or ""),
            sla=raw.get("sla"),
            retention=str(raw.get("retention") or ""),
            residency=raw.get("residency"),
            columns=tuple(Column.from_dict(c) for c in raw.get("columns") or ()),
            contract=raw.get("contract"),
            schema_subject=raw.get("schema_subject"),
            links=dict(raw.get("links") or {}),
            properties=dict(raw.get("properties") or {}),
            description=str(raw.get("description") or ""),
            defaulted=tuple(raw.get("defaulted") or ()),
            registered_by=str(raw.get("registered_by") or "api"),
            created_at_ms=int(raw.get("created_at_ms") or 0),
            updated_at_ms=int(raw.get("updated_at_ms") or 0),
        )


def new_dataset(
    name: str,
    namespace: str,
    *,
    kind: DatasetKind | None = None,
    owner: str | None = None,
    domain: str | None = None,
    sla: str | None = None,
    retention: str | None = None,
    residency: str | None = None,
    registered_by: str = "api",
    **rest: Any,
) -> Dataset:
    """A dataset with what its name implies and the documented defaults for what is not given.

    Kind, domain and residency come from the name when not given (:func:`describe_name`); owner
    defaults to :data:`DEFAULT_OWNER`, retention to :data:`DEFAULT_RETENTION` of the kind. The
    fields that took a default are listed in ``defaulted``.
    """
    check_name(name)
    info = describe_name(name)
    kind = kind or info.kind
    defaulted = [f for f, v in (("owner", owner), ("retention", retention), ("sla", sla)) if not v]
    return Dataset(
        name=name,
        kind=kind,
        namespace=namespace,
        owner=owner or DEFAULT_OWNER,
        domain=domain or info.domain,
        sla=sla,
        retention=retention or DEFAULT_RETENTION[kind],
        residency=residency if residency is not None else info.region,
        defaulted=tuple(defaulted),
        registered_by=registered_by,
        **rest,
    )


# --- jobs, runs, edges --------------------------------------------------------------------------


class RunState(StrEnum):
    """OpenLineage run states (``eventType``)."""

    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"
    ABORT = "ABORT"

    @property
    def terminal(self) -> bool:
        return self in (RunState.COMPLETE, RunState.FAIL, RunState.ABORT)


@dataclass(frozen=True, slots=True)
class Job:
    """A job that reads and writes datasets (``reconciliation.run``, ``lake.ingest``...)."""

    name: str
    namespace: str
    description: str = ""
    last_run_id: str | None = None
    updated_at_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "description": self.description,
            "last_run_id": self.last_run_id,
            "updated_at_ms": self.updated_at_ms,
        }


@dataclass(frozen=True, slots=True)
class ColumnEdge:
    """Output column ``out_dataset.out_column`` was computed from ``in_dataset.in_column``."""

    in_dataset: str
    in_column: str
    out_dataset: str
    out_column: str
    #: OpenLineage transformation subtype: ``IDENTITY`` (copied), ``TRANSFORMATION``, ``AGGREGATION``.
    transformation: str = "IDENTITY"

    def to_dict(self) -> dict[str, str]:
        return {
            "in_dataset": self.in_dataset,
            "in_column": self.in_column,
            "out_dataset": self.out_dataset,
            "out_column": self.out_column,
            "transformation": self.transformation,
        }


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a job: what it read and wrote, its state, and its facts (``facets``)."""

    run_id: str
    job: str
    state: RunState
    started_at_ms: int | None = None
    ended_at_ms: int | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    facets: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def merge(self, later: Run) -> Run:
        """This run after the event ``later`` (same run id), in whatever order events arrive: a
        terminal state is never left, inputs and outputs accumulate, the earliest start and the
        latest end win."""
        if self.state.terminal and not later.state.terminal:
            state = self.state
        elif later.state.terminal or later.state is RunState.RUNNING:
            state = later.state
        else:
            state = self.state
        starts = [t for t in (self.started_at_ms, later.started_at_ms) if t is not None]
        ends = [t for t in (self.ended_at_ms, later.ended_at_ms) if t is not None]
        return replace(
            self,
            state=state,
            started_at_ms=min(starts) if starts else None,
            ended_at_ms=max(ends) if ends else None,
            inputs=tuple(dict.fromkeys((*self.inputs, *later.inputs))),
            outputs=tuple(dict.fromkeys((*self.outputs, *later.outputs))),
            facets={**self.facets, **later.facets},
            error=later.error or self.error,
        )

    @property
    def seconds(self) -> float | None:
        if self.started_at_ms is None or self.ended_at_ms is None:
            return None
        return (self.ended_at_ms - self.started_at_ms) / 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "state": self.state.value,
            "started_at_ms": self.started_at_ms,
            "ended_at_ms": self.ended_at_ms,
            "seconds": self.seconds,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "facets": dict(self.facets),
            "error": self.error,
        }


Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Flow:
    """A run of ``job`` wrote ``out_dataset`` from ``in_dataset`` (among others)."""

    job: str
    in_dataset: str
    out_dataset: str


@dataclass(frozen=True, slots=True)
class Edge:
    """``job`` reads (``in``) or writes (``out``) ``dataset``."""

    job: str
    dataset: str
    direction: Direction


# --- the lineage tree ---------------------------------------------------------------------------


@dataclass
class LineageNode:
    """A node of a lineage tree: a dataset, or a job between two levels of datasets.

    ``seen``: the dataset appears elsewhere in the tree (a diamond or a cycle), expanded there
    only. ``truncated``: the tree stops here at its depth though the graph goes on.
    """

    kind: Literal["dataset", "job"]
    name: str
    children: list[LineageNode] = field(default_factory=list)
    seen: bool = False
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.seen:
            out["seen"] = True
        if self.truncated:
            out["truncated"] = True
        out["children"] = [c.to_dict() for c in self.children]
        return out

    def names(self, kind: Literal["dataset", "job"] | None = None) -> set[str]:
        """Every name in the tree (of one kind), the root included."""
        found = {self.name} if kind in (None, self.kind) else set()
        for child in self.children:
            found |= child.names(kind)
        return found


class LineageGraph:
    """The lineage graph: which jobs read and write which datasets (``edges``) and, run by run,
    which inputs each output was written from (``flows``), so that a job writing several outputs
    from several inputs links each output to its own inputs only."""

    def __init__(self, edges: Iterable[Edge], flows: Iterable[Flow] = ()) -> None:
        self.readers: dict[str, list[str]] = {}  # dataset -> jobs reading it
        self.writers: dict[str, list[str]] = {}  # dataset -> jobs writing it
        for e in sorted(set(edges), key=lambda e: (e.job, e.dataset, e.direction)):
            side = self.readers if e.direction == "in" else self.writers
            side.setdefault(e.dataset, []).append(e.job)
        self.outputs_from: dict[tuple[str, str], list[str]] = {}  # (job, input) -> outputs
        self.inputs_of: dict[tuple[str, str], list[str]] = {}  # (job, output) -> inputs
        for f in sorted(set(flows), key=lambda f: (f.job, f.in_dataset, f.out_dataset)):
            self.outputs_from.setdefault((f.job, f.in_dataset), []).append(f.out_dataset)
            self.inputs_of.setdefault((f.job, f.out_dataset), []).append(f.in_dataset)

    def datasets(self) -> set[str]:
        return set(self.readers) | set(self.writers)

    def steps(
        self, dataset: str, direction: Literal["upstream", "downstream"]
    ) -> list[tuple[str, list[str]]]:
        """One step from ``dataset``: each job reading it (downstream) with what that job wrote from
        it, or each job writing it (upstream) with what that job wrote it from."""
        if direction == "downstream":
            return [(job, self.outputs_from.get((job, dataset), [])) for job in self.readers.get(dataset, [])]
        return [(job, self.inputs_of.get((job, dataset), [])) for job in self.writers.get(dataset, [])]

    def tree(self, root: str, direction: Literal["upstream", "downstream"], depth: int) -> LineageNode:
        """The lineage of ``root`` one way, ``depth`` levels of datasets deep.

        Downstream: the jobs reading ``root``, the datasets they wrote from it, the jobs reading
        those... Upstream: the jobs writing ``root``, the datasets they wrote it from, and so on.
        A dataset is expanded once, where it is nearest to ``root``; its other occurrences are
        marked ``seen`` (so a diamond is expanded once and a cycle ends).
        """
        check_depth(depth)
        nearest = {root: 0}
        frontier = [root]
        while frontier:
            following: list[str] = []
            for dataset in frontier:
                if nearest[dataset] >= depth:
                    continue
                for _job, targets in self.steps(dataset, direction):
                    for target in targets:
                        if target not in nearest:
                            nearest[target] = nearest[dataset] + 1
                            following.append(target)
            frontier = following
        shown: set[str] = set()

        def visit(dataset: str, level: int) -> LineageNode:
            node = LineageNode("dataset", dataset)
            steps = self.steps(dataset, direction)
            if dataset in shown or level > nearest[dataset]:
                node.seen = True
                return node
            shown.add(dataset)
            if level >= depth:
                node.truncated = bool(steps)
                return node
            for job, targets in steps:
                node.children.append(LineageNode("job", job, [visit(t, level + 1) for t in targets]))
            return node

        return visit(root, 0)


# --- names people mistype ------------------------------------------------------------------------


def near_misses(name: str, known: Sequence[str], limit: int = 5) -> list[str]:
    """Known names close to ``name``: similar spellings first, then names containing it."""
    lowered = {k.lower(): k for k in known}
    close = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.6)]
    containing = sorted(k for k in known if name.lower() in k.lower() and k not in close)
    return list(dict.fromkeys([*close, *containing]))[:limit]
