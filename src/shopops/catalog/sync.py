"""Finding the platform's datasets where they live: topics in the event log, their row schemas in
the schema registry, tables in the lake's Iceberg catalog.

:func:`discover` returns them as bare :class:`Dataset` records (name, kind, namespace, columns,
schema subject, stable properties); the service adds what contracts and the personal-data tags
say, and registers them. A source that fails is reported and the others still count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from shopops.catalog.model import Column, Dataset, DatasetKind, describe_name, is_name, new_dataset
from shopops.core.logging import get_logger

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from shopops.events.port import EventLog
    from shopops.schemas.client import RegistryClient

log = get_logger("shopops.catalog")

#: Called as work proceeds: ``(step, done, total)``.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Namespaces:
    """OpenLineage namespaces of the platform's stores (where the data of a dataset lives)."""

    #: The event log: ``kafka://host:port`` or ``sqlite:///path/events.db``.
    events: str
    #: The lake's Iceberg warehouse (``file:///...`` or ``s3://...``).
    lake: str
    #: Files under the data directory (``file:///...``): reconciliation inputs and results.
    files: str
    #: Anything else (features, models), and the namespace of the platform's jobs.
    default: str = "shopops"

    def for_kind(self, kind: DatasetKind) -> str:
        if kind is DatasetKind.TOPIC:
            return self.events
        if kind in (DatasetKind.BRONZE, DatasetKind.SILVER, DatasetKind.QUARANTINE):
            return self.lake
        if kind in (DatasetKind.TABLE, DatasetKind.REPORT):
            return self.files
        return self.default

    def for_name(self, name: str) -> str:
        return self.for_kind(describe_name(name).kind)


@dataclass
class SyncSources:
    """What a sync looks at; a source left ``None`` is skipped."""

    event_log: EventLog | None = None
    registry: RegistryClient | None = None
    lake: Catalog | None = None
    #: Subject of a topic's row schema (``schemas.drift.subject_template``).
    subject_template: str = "{topic}-value"


@dataclass
class Discovery:
    datasets: dict[str, Dataset] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def columns_of_schema(schema_type: str, text: str) -> tuple[Column, ...]:
    """Top-level columns of a registered row schema (a JSON Schema object or an Avro record)."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(doc, dict):
        return ()
    if schema_type.upper() == "AVRO":
        return tuple(
            Column(str(f["name"]), _avro_type(f.get("type")), description=str(f.get("doc") or ""))
            for f in doc.get("fields") or ()
            if isinstance(f, dict) and f.get("name")
        )
    props = doc.get("properties")
    if not isinstance(props, dict):
        return ()
    return tuple(
        Column(
            str(name),
            _json_type(prop),
            description=str(prop.get("description") or "") if isinstance(prop, dict) else "",
        )
        for name, prop in props.items()
    )


def _json_type(prop: Any) -> str | None:
    if not isinstance(prop, dict):
        return None
    for key in ("oneOf", "anyOf"):
        options = prop.get(key)
        if isinstance(options, list):
            kinds = [_json_type(o) for o in options if o != {"type": "null"}]
            return "|".join(k for k in kinds if k) or None
    kind = prop.get("type")
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind if k != "null") or None
    connect = prop.get("connect.type")
    if isinstance(kind, str):
        return f"{kind}:{connect}" if isinstance(connect, str) and connect != kind else kind
    return None


def _avro_type(kind: Any) -> str | None:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return "|".join(t for t in (_avro_type(k) for k in kind if k != "null") if t) or None
    if isinstance(kind, dict):
        return str(kind.get("logicalType") or kind.get("type"))
    return None


def topic_of_subject(subject: str, template: str) -> str | None:
    """The topic whose row schema ``subject`` is, under ``template`` (``{topic}-value``)."""
    head, _, tail = template.partition("{topic}")
    if len(subject) <= len(head) + len(tail) or not subject.startswith(head) or not subject.endswith(tail):
        return None
    return subject[len(head) : len(subject) - len(tail)]


def _topics(sources: SyncSources, ns: Namespaces, found: Discovery) -> None:
    if sources.event_log is None:
        return
    topics = sources.event_log.list_topics()
    for t in topics:
        found.datasets[t.name] = new_dataset(
            t.name,
            ns.events,
            kind=DatasetKind.TOPIC,
            registered_by="sync",
            properties={"partitions": t.partitions},
        )
    found.counts["topics"] = len(topics)


def _subjects(sources: SyncSources, ns: Namespaces, found: Discovery) -> None:
    if sources.registry is None:
        return
    registry = sources.registry
    matched = 0
    for subject in registry.subjects():
        topic = topic_of_subject(subject, sources.subject_template)
        if topic is None:
            continue
        latest = registry.latest(subject)
        if latest is None:
            continue
        schema = latest.schema
        base = found.datasets.get(topic)
        if base is None:
            if not is_name(topic):  # a subject whose topic part is no catalog name: not a dataset
                continue
            base = new_dataset(topic, ns.events, kind=DatasetKind.TOPIC, registered_by="sync")
        found.datasets[topic] = replace(
            base,
            columns=columns_of_schema(schema.schema_type.value, schema.text),
            schema_subject=subject,
            properties={**base.properties, "schema_id": schema.id, "schema_version": latest.version},
        )
        matched += 1
    found.counts["subjects"] = matched


def _lake(sources: SyncSources, ns: Namespaces, found: Discovery, progress: Progress) -> None:
    if sources.lake is None:
        return
    catalog = sources.lake
    identifiers = [
        ident for (namespace, *_) in catalog.list_namespaces() for ident in catalog.list_tables(namespace)
    ]
    for done, ident in enumerate(sorted(identifiers), start=1):
        name = ".".join(ident)
        try:
            table = catalog.load_table(ident)
            columns = tuple(
                Column(f.name, str(f.field_type), description=f.doc or "") for f in table.schema().fields
            )
            found.datasets[name] = new_dataset(
                name,
                ns.lake,
                registered_by="sync",
                columns=columns,
                properties={"location": table.location(), "format_version": table.format_version},
            )
        except Exception as exc:  # one unreadable table must not hide the others
            found.problems.append(f"lake table {name}: {exc}")
        progress("lake tables", done, len(identifiers))
    found.counts["lake_tables"] = len(identifiers)


def discover(sources: SyncSources, ns: Namespaces, progress: Progress | None = None) -> Discovery:
    """Every dataset the sources hold (see the module docstring)."""
    step = progress or (lambda _s, _d, _t: None)
    found = Discovery()
    steps: list[tuple[str, Callable[[], None]]] = [
        ("event log", lambda: _topics(sources, ns, found)),
        ("schema registry", lambda: _subjects(sources, ns, found)),
        ("lake catalog", lambda: _lake(sources, ns, found, step)),
    ]
    for name, run in steps:
        step(name, 0, 1)
        try:
            run()
        except Exception as exc:  # a source that cannot be read is reported; the others still count
            log.warning("catalog sync: a source failed", source=name, error=str(exc))
            found.problems.append(f"{name}: {exc}")
        step(name, 1, 1)
    return found
