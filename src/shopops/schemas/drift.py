"""The drift watch: every CDC stream's schemas checked against the registry, as the records flow.

The pain it removes: a table changes incompatibly, the registry answers 409, the connector stops,
and nobody downstream notices for hours. Here each change event's schema is taken from the event —
the JSON-with-schema envelope (Kafka Connect's declared schema), the Confluent wire format (the
schema id of an Avro/JSON-serialised record), or inferred from a plain JSON payload — and judged
against the subject's latest version under the subject's compatibility level, by the registry
itself (a registration, which the registry refuses with 409 when incompatible):

- already registered → the record passes;
- compatible evolution → registered as a new version, recorded as ``SchemaVersionRegistered`` on
  the changes topic (for the catalog), metric ``shopops_schema_drift_total{kind="compatible"}``;
  the record passes;
- incompatible → the record goes to the quarantine (dead-letter) topic with the reasons in its
  headers, ``SchemaChangeQuarantined`` is recorded, ``shopops_schema_drift_total{kind="incompatible"}``
  counts it and an error is logged (the alert rule in ``deploy/prometheus/rules/schemas.yml`` fires
  on the metric). Every other record keeps flowing.

A record that is not a valid change event is quarantined too (kind ``malformed_event``), never
dropped. Verdicts are cached per schema, so a stream costs one decode and one lookup in memory
per record; an incompatible verdict is re-checked after ``recheck_after_s``, so once an engineer
fixes the schema or the level, new records pass again — and :func:`replay_quarantined` re-ingests
the ones already quarantined.

The watch commits its offsets only after the quarantine and change records of a batch are flushed,
so a crash never loses a record: at worst a batch is checked (and quarantined) twice.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from prometheus_client import Counter

from shopops.core.errors import BackendUnavailableError, InvalidInputError
from shopops.core.logging import get_logger
from shopops.core.settings import SchemaDriftSettings
from shopops.events.debezium import DebeziumDecodeError, decode, row_columns
from shopops.events.model import Headers, Record
from shopops.events.port import Consumer, EventLog
from shopops.schemas.client import RegistryClient, SchemaSpec
from shopops.schemas.connect import (
    FieldSpec,
    fields_of_json_schema,
    from_columns,
    infer,
    render,
    row_shape,
    to_json_schema,
)
from shopops.schemas.errors import IncompatibleSchemaError, RegistryError
from shopops.schemas.model import SchemaType

log = get_logger(__name__)

SCHEMA_DRIFT = Counter(
    "shopops_schema_drift_total",
    "Schema changes seen on the CDC streams, by subject and kind (compatible, incompatible)",
    ["subject", "kind"],
)
QUARANTINED = Counter(
    "shopops_schema_quarantined_total",
    "Records sent to the quarantine topic, by subject and reason (incompatible_schema, malformed_event)",
    ["subject", "reason"],
)
CHECKED = Counter("shopops_schema_checked_total", "CDC records whose schema the drift watch checked")

# Headers of a quarantined record (beside the record's own headers).
H_TOPIC = "shopops.quarantine.topic"
H_PARTITION = "shopops.quarantine.partition"
H_OFFSET = "shopops.quarantine.offset"
H_TIMESTAMP = "shopops.quarantine.timestamp_ms"
H_SUBJECT = "shopops.quarantine.subject"
H_KIND = "shopops.quarantine.kind"
H_REASON = "shopops.quarantine.reason"
H_REASONS = "shopops.quarantine.reasons"
H_SCHEMA = "shopops.quarantine.schema"
H_SCHEMA_TYPE = "shopops.quarantine.schema_type"
H_AT = "shopops.quarantine.at_ms"
#: On a replayed record: ``<partition>:<offset>`` of the quarantine record it came from.
H_REPLAYED_FROM = "shopops.replayed-from"
_OWN_HEADERS = frozenset(
    {
        H_TOPIC,
        H_PARTITION,
        H_OFFSET,
        H_TIMESTAMP,
        H_SUBJECT,
        H_KIND,
        H_REASON,
        H_REASONS,
        H_SCHEMA,
        H_SCHEMA_TYPE,
        H_AT,
    }
)
#: Header values are bounded: a long list of reasons is cut (the changes topic has them all).
_MAX_HEADER = 16_384

Outcome = Literal["pass", "registered", "quarantine"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the watch decided for one record."""

    outcome: Outcome
    subject: str | None = None
    version: int | None = None
    schema_id: int | None = None
    #: ``incompatible_schema`` or ``malformed_event`` for a quarantined record.
    kind: str = ""
    messages: tuple[str, ...] = ()
    schema: SchemaSpec | None = None
    #: The first record of a new schema (a new version, or a newly refused change).
    first: bool = False

    @property
    def reason(self) -> str:
        return self.messages[0] if self.messages else ""


@dataclass(slots=True)
class _Decision:
    outcome: Outcome
    version: int | None
    schema_id: int | None
    spec: SchemaSpec | None
    messages: tuple[str, ...] = ()
    kind: str = "incompatible_schema"
    decided_at: float = 0.0
    reported: bool = False


class SchemaGate:
    """Decides, record by record, whether a CDC record's schema is acceptable (with caches)."""

    def __init__(
        self,
        client: RegistryClient,
        settings: SchemaDriftSettings,
        *,
        recheck_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        register: bool = True,
    ) -> None:
        self.client = client
        self.settings = settings
        #: Register compatible new schemas (the watch); without, only judge them (a dry run).
        self.register = register
        self.schema_type = SchemaType.AVRO if settings.format == "avro" else SchemaType.JSON
        self._recheck = recheck_after_s
        self._clock = clock
        self._decisions: dict[tuple[str, Any], _Decision] = {}
        self._current: dict[str, tuple[FieldSpec, ...] | None] = {}
        self._by_id: dict[int, SchemaSpec] = {}

    def subject_for(self, topic: str) -> str:
        return self.settings.subject_template.format(topic=topic)

    def check(self, record: Record) -> Verdict:
        """The verdict on ``record``; raises only when the registry cannot be reached."""
        value = record.value
        if value is None:
            return Verdict("pass")  # a tombstone has no schema
        subject = self.subject_for(record.topic)
        if len(value) >= 5 and value[0] == 0:
            # Confluent wire format: magic byte 0, then the id of the schema it was written with.
            schema_id = int.from_bytes(value[1:5], "big")
            return self._decided(subject, ("id", schema_id), lambda: self._spec_of_id(schema_id))
        try:
            event = decode(record)
        except DebeziumDecodeError as exc:
            return self._malformed(subject, exc.message)
        if event.is_tombstone:
            return Verdict("pass")
        if event.value_schema is not None:
            schema = event.value_schema
            fields = schema.get("fields")
            after = (
                next(
                    (f for f in fields if isinstance(f, dict) and f.get("field") == "after"),
                    schema,
                )
                if isinstance(fields, list)
                else schema
            )
            try:
                key = orjson.dumps(after)
            except orjson.JSONEncodeError as exc:
                return self._malformed(
                    subject, f"{record.topic}[{record.partition}]@{record.offset}: schema: {exc}"
                )
            topic = record.topic

            def declared() -> SchemaSpec:
                fields = from_columns(row_columns(schema))
                return SchemaSpec(self.schema_type, render(fields, topic, self.schema_type))

            # The serialised row schema is the cache key: cheaper than reading its columns, and
            # Connect writes the same schema the same way every time.
            return self._decided(subject, ("declared", key), declared)
        row = event.row
        if row is None:
            return Verdict("pass")  # a truncate carries no row
        return self._inferred(subject, record.topic, row_shape(row))

    # -- decisions --

    def _spec_of_id(self, schema_id: int) -> SchemaSpec:
        spec = self._by_id.get(schema_id)
        if spec is None:
            stored = self.client.schema(schema_id)
            spec = self._by_id[schema_id] = SchemaSpec(stored.schema_type, stored.text, stored.references)
        return spec

    def _malformed(self, subject: str, message: str) -> Verdict:
        return Verdict("quarantine", subject, kind="malformed_event", messages=(message,), first=True)

    def _stale(self, decision: _Decision | None) -> bool:
        return decision is None or (
            decision.outcome == "quarantine" and self._clock() - decision.decided_at > self._recheck
        )

    def _store(self, subject: str, key: Any, decision: _Decision, previous: _Decision | None) -> None:
        decision.decided_at = self._clock()
        # A refusal that stands after a re-check was already reported.
        if previous is not None and previous.outcome == decision.outcome == "quarantine":
            decision.reported = True
        self._decisions[(subject, key)] = decision

    def _decided(self, subject: str, key: Any, spec_of: Callable[[], SchemaSpec]) -> Verdict:
        decision = self._decisions.get((subject, key))
        if self._stale(decision):
            previous = decision
            try:
                spec = spec_of()
            except RegistryError as exc:
                if isinstance(exc, BackendUnavailableError):
                    raise
                decision = _Decision("quarantine", None, None, None, (exc.message,), kind="unknown_schema")
            except (InvalidInputError, KeyError, TypeError, AttributeError) as exc:
                message = exc.message if isinstance(exc, InvalidInputError) else f"unreadable schema: {exc!r}"
                decision = _Decision("quarantine", None, None, None, (message,), kind="malformed_event")
            else:
                decision = self._decide(subject, spec)
            self._store(subject, key, decision, previous)
        assert decision is not None
        return self._verdict(subject, decision)

    def _verdict(self, subject: str, decision: _Decision) -> Verdict:
        first = not decision.reported
        decision.reported = True
        outcome = decision.outcome
        if outcome == "registered" and not first:
            outcome = "pass"
        return Verdict(
            outcome,
            subject,
            decision.version,
            decision.schema_id,
            kind=decision.kind if outcome == "quarantine" else "",
            messages=decision.messages,
            schema=decision.spec,
            first=first and outcome != "pass",
        )

    def _decide(self, subject: str, spec: SchemaSpec) -> _Decision:
        found = self.client.lookup(subject, spec)
        if found is not None:
            return _Decision("pass", found.version, found.id, spec)
        if not self.register:
            verdict = self.client.check(subject, spec)
            if verdict.is_compatible:
                return _Decision("registered", None, None, spec)
            return _Decision("quarantine", None, None, spec, tuple(verdict.messages))
        try:
            registration = self.client.register(subject, spec)
        except IncompatibleSchemaError as exc:
            messages = list(getattr(exc, "messages", None) or [])
            if len(messages) <= 1:
                # A remote registry puts everything in one message: ask for the verbose list.
                try:
                    messages = self.client.check(subject, spec).messages or messages or [exc.message]
                except RegistryError:
                    messages = messages or [exc.message]
            latest = self.client.latest(subject)
            return _Decision(
                "quarantine",
                latest.version if latest else None,
                latest.id if latest else None,
                spec,
                tuple(messages),
            )
        except RegistryError as exc:
            if isinstance(exc, BackendUnavailableError):
                raise
            # Refused for another reason (a read-only subject, a schema of another type…).
            return _Decision("quarantine", None, None, spec, (exc.message,), kind="registration_refused")
        outcome: Outcome = "registered" if registration.created else "pass"
        return _Decision(outcome, registration.version, registration.id, spec)

    def _inferred(self, subject: str, topic: str, shape: tuple[tuple[str, str], ...]) -> Verdict:
        key = ("inferred", shape)
        previous = self._decisions.get((subject, key))
        if not self._stale(previous):
            assert previous is not None
            return self._verdict(subject, previous)
        if subject not in self._current:
            self._current[subject] = self._latest_fields(subject)
        current = self._current[subject]
        fields = infer(shape, current)
        if current is not None and fields == current:
            decision = _Decision("pass", None, None, None, reported=True)
        else:
            spec = SchemaSpec(SchemaType.JSON, to_json_schema(fields, f"{topic}.Value"))
            decision = self._decide(subject, spec)
            if decision.outcome != "quarantine" and self.register:
                # The subject moved on: earlier shapes are judged again against the new base.
                self._current[subject] = fields
                for stale in [k for k in self._decisions if k[0] == subject and k[1][0] == "inferred"]:
                    del self._decisions[stale]
        self._store(subject, key, decision, previous)
        return self._verdict(subject, decision)

    def _latest_fields(self, subject: str) -> tuple[FieldSpec, ...] | None:
        latest = self.client.latest(subject)
        if latest is None or latest.schema.schema_type is not SchemaType.JSON:
            return None
        return fields_of_json_schema(latest.schema.text)


# --- the worker ------------------------------------------------------------------------------------


@dataclass
class WatchStats:
    """What the watch has done since it started."""

    checked: int = 0
    passed: int = 0
    registered: int = 0
    quarantined: int = 0
    malformed: int = 0
    subjects_refused: set[str] = field(default_factory=set)


def _text(value: str) -> bytes:
    data = value.encode()
    return data if len(data) <= _MAX_HEADER else data[: _MAX_HEADER - 3] + b"..."


class DriftWatch:
    """A stream worker over every CDC topic: :meth:`start`/:meth:`stop`, or :meth:`drain` in-line."""

    def __init__(
        self,
        event_log: EventLog,
        client: RegistryClient,
        settings: SchemaDriftSettings,
        *,
        batch: int = 2000,
        poll_timeout_s: float = 0.5,
        discover_every_s: float = 10.0,
        recheck_after_s: float = 30.0,
        retry_initial_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = event_log
        self._retry_initial = retry_initial_s
        self.settings = settings
        self.gate = SchemaGate(client, settings, recheck_after_s=recheck_after_s, clock=clock)
        self._batch = batch
        self._poll_timeout = poll_timeout_s
        self._discover_every = discover_every_s
        self._pattern = re.compile(settings.topics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schema-drift-watch", daemon=True)
        self.stats = WatchStats()

    @property
    def group_id(self) -> str:
        return self.settings.group_id

    def topics(self) -> list[str]:
        """The topics watched now: every topic matching ``schemas.drift.topics`` but the watch's own."""
        own = {self.settings.quarantine_topic, self.settings.changes_topic}
        return sorted(
            t.name for t in self._log.list_topics() if self._pattern.match(t.name) and t.name not in own
        )

    def start(self) -> DriftWatch:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                topics = self.topics()
                if not topics:
                    self._stop.wait(self._discover_every)
                    continue
                log.info("schema drift watch started", topics=len(topics), group=self.group_id)
                with self._log.consumer(self.group_id, topics) as consumer:
                    next_discovery = time.monotonic() + self._discover_every
                    while not self._stop.is_set():
                        self.process_batch(consumer)
                        if time.monotonic() >= next_discovery:
                            next_discovery = time.monotonic() + self._discover_every
                            if self.topics() != topics:
                                break  # new CDC topics: subscribe again with them
        except Exception:
            if not self._stop.is_set():
                log.exception("schema drift watch stopped on an error")

    def drain(self, idle_polls: int = 2, timeout_s: float = 300.0) -> WatchStats:
        """Check every record there is now, in this thread, then return (tests, one-off runs).

        Returns once the consumer holds its partitions and has read to the end offsets they had
        when the drain began (or after ``idle_polls`` empty polls past that point).
        """
        deadline = time.monotonic() + timeout_s
        topics = self.topics()
        if not topics:
            return self.stats
        ends = {t: self._log.end_offsets(t) for t in topics}
        with self._log.consumer(self.group_id, topics) as consumer:
            idle = 0
            while time.monotonic() < deadline:
                if self.process_batch(consumer):
                    idle = 0
                    continue
                if self._caught_up(consumer, ends):
                    idle += 1
                    if idle >= idle_polls:
                        break
        return self.stats

    @staticmethod
    def _caught_up(consumer: Consumer, ends: dict[str, dict[int, int]]) -> bool:
        assigned = consumer.assignment()
        if {(tp.topic, tp.partition) for tp in assigned} != {
            (t, p) for t, parts in ends.items() for p in parts
        }:
            return False  # still joining the group (Kafka takes seconds to assign)
        for tp in assigned:
            end = ends[tp.topic][tp.partition]
            position = consumer.position(tp)
            if end > 0 and (position is None or position < end):
                return False
        return True

    def process_batch(self, consumer: Consumer) -> int:
        """Poll one batch, judge each record, write quarantine and change records, then commit."""
        records = consumer.poll(self._batch, timeout_s=self._poll_timeout)
        if not records:
            return 0
        for record in records:
            self._handle(record, self._check_with_retry(record))
        self._log.flush()
        consumer.commit()
        return len(records)

    def _check_with_retry(self, record: Record) -> Verdict:
        delay = self._retry_initial
        while True:
            try:
                return self.gate.check(record)
            except BackendUnavailableError as exc:
                # The registry is down: nothing can be judged, so wait instead of guessing.
                log.error(
                    "schema registry unavailable; the drift watch waits", error=str(exc), retry_in_s=delay
                )
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 10.0)
            except Exception as exc:
                # A record the watch cannot judge must not stop the stream: quarantine it, loudly.
                log.exception(
                    "schema check failed; record quarantined", topic=record.topic, offset=record.offset
                )
                subject = self.gate.subject_for(record.topic)
                return Verdict("quarantine", subject, kind="check_failed", messages=(repr(exc),), first=True)

    def _handle(self, record: Record, verdict: Verdict) -> None:
        self.stats.checked += 1
        CHECKED.inc()
        if verdict.outcome == "quarantine":
            self._quarantine(record, verdict)
            return
        if verdict.outcome == "registered":
            self.stats.registered += 1
            if verdict.version == 1:
                log.info(
                    "schema registered for a new subject",
                    subject=verdict.subject,
                    schema_id=verdict.schema_id,
                )
            else:
                SCHEMA_DRIFT.labels(verdict.subject, "compatible").inc()
                log.info(
                    "schema drift: compatible change registered",
                    subject=verdict.subject,
                    version=verdict.version,
                    schema_id=verdict.schema_id,
                    topic=record.topic,
                )
            self._record_change("SchemaVersionRegistered", record, verdict)
        self.stats.passed += 1

    def _quarantine(self, record: Record, verdict: Verdict) -> None:
        subject = verdict.subject or record.topic
        self.stats.quarantined += 1
        QUARANTINED.labels(subject, verdict.kind).inc()
        if verdict.kind == "malformed_event":
            self.stats.malformed += 1
            log.warning("malformed change event quarantined", topic=record.topic, error=verdict.reason)
        elif verdict.first:
            self.stats.subjects_refused.add(subject)
            SCHEMA_DRIFT.labels(subject, "incompatible").inc()
            log.error(
                "schema drift: incompatible change quarantined",
                subject=subject,
                topic=record.topic,
                latest_version=verdict.version,
                reasons=[m for m in verdict.messages if m.startswith("{errorType")][:5],
                quarantine_topic=self.settings.quarantine_topic,
            )
            self._record_change("SchemaChangeQuarantined", record, verdict)
        headers: Headers = (
            *record.headers,
            (H_TOPIC, record.topic.encode()),
            (H_PARTITION, str(record.partition).encode()),
            (H_OFFSET, str(record.offset).encode()),
            (H_TIMESTAMP, str(record.timestamp_ms).encode()),
            (H_SUBJECT, subject.encode()),
            (H_KIND, verdict.kind.encode()),
            (H_REASON, _text(verdict.reason)),
            (H_REASONS, _text(orjson.dumps(list(verdict.messages)).decode())),
            (H_SCHEMA, _text(verdict.schema.text if verdict.schema else "")),
            (H_SCHEMA_TYPE, (verdict.schema.schema_type.value if verdict.schema else "").encode()),
            (H_AT, str(int(time.time() * 1000)).encode()),
        )
        self._log.produce(
            self.settings.quarantine_topic,
            record.value,
            record.key,
            headers,
            timestamp_ms=record.timestamp_ms,
        )

    def _record_change(self, event: str, record: Record, verdict: Verdict) -> None:
        body: dict[str, Any] = {
            "event": event,
            "subject": verdict.subject,
            "topic": record.topic,
            "version": verdict.version,
            "schema_id": verdict.schema_id,
            "schema_type": verdict.schema.schema_type.value if verdict.schema else None,
            "schema": verdict.schema.text if verdict.schema else None,
            "source": {
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp_ms,
            },
            "at_ms": int(time.time() * 1000),
        }
        if event == "SchemaChangeQuarantined":
            body["reasons"] = list(verdict.messages)
            body["quarantine_topic"] = self.settings.quarantine_topic
        self._log.produce(self.settings.changes_topic, orjson.dumps(body), (verdict.subject or "").encode())


# --- replay ----------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What a replay did: records re-ingested, still refused (with why), and skipped."""

    replayed: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, offset)
    refused: list[tuple[str, int, int, str]] = field(default_factory=list)  # ... and the reason
    already_replayed: int = 0
    filtered_out: int = 0


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode() if value is not None else None
    return None


def topic_records(event_log: EventLog, topic: str) -> Iterable[Record]:
    """Every record of ``topic`` (the quarantine, its replay markers, the changes), partition by
    partition, oldest first; nothing if the topic does not exist."""
    if topic not in {t.name for t in event_log.list_topics()}:
        return
    yield from event_log.read_all(topic)


def original_record(quarantined: Record) -> Record:
    """The record as it was on its CDC topic before it was quarantined."""
    return Record(
        _header(quarantined.headers, H_TOPIC) or "",
        int(_header(quarantined.headers, H_PARTITION) or 0),
        int(_header(quarantined.headers, H_OFFSET) or 0),
        quarantined.key,
        quarantined.value,
        int(_header(quarantined.headers, H_TIMESTAMP) or quarantined.timestamp_ms),
        tuple((k, v) for k, v in quarantined.headers if k not in _OWN_HEADERS),
    )


def replay_quarantined(
    event_log: EventLog,
    client: RegistryClient,
    settings: SchemaDriftSettings,
    *,
    topic: str | None = None,
    subject: str | None = None,
    dry_run: bool = False,
) -> ReplayReport:
    """Re-ingest quarantined records whose schema is now accepted (after a fix of the schema or level).

    Each record is judged again (a fresh gate: nothing cached); an accepted one is produced back to
    its original topic with header ``shopops.replayed-from``, and a marker on
    ``<quarantine topic>.replayed`` makes sure it is replayed once only, however often this runs.
    Records still refused stay in quarantine and are listed with the reason.
    """
    gate = SchemaGate(client, settings, recheck_after_s=0.0, register=not dry_run)
    markers_topic = f"{settings.quarantine_topic}.replayed"
    done = {r.key for r in topic_records(event_log, markers_topic) if r.key is not None}
    report = ReplayReport()
    for q in topic_records(event_log, settings.quarantine_topic):
        marker = f"{q.partition}:{q.offset}".encode()
        original = original_record(q)
        if (topic is not None and original.topic != topic) or (
            subject is not None and gate.subject_for(original.topic) != subject
        ):
            report.filtered_out += 1
            continue
        if marker in done:
            report.already_replayed += 1
            continue
        verdict = gate.check(original)
        where = (original.topic, original.partition, original.offset)
        if verdict.outcome == "quarantine":
            report.refused.append((*where, verdict.reason))
            continue
        report.replayed.append(where)
        if dry_run:
            continue
        event_log.produce(
            original.topic,
            original.value,
            original.key,
            (*original.headers, (H_REPLAYED_FROM, marker)),
            timestamp_ms=original.timestamp_ms,
        )
        event_log.produce(markers_topic, orjson.dumps({"topic": original.topic}), marker)
        done.add(marker)
    if not dry_run:
        event_log.flush()
    return report
