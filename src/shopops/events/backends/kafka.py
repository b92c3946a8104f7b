"""The scale event log: Apache Kafka (or any Kafka-protocol broker) through confluent-kafka.

Producer: idempotent (no duplicates or reordering on retries), batched (``linger.ms``); only failed
deliveries call back into Python, and :meth:`KafkaEventLog.flush` raises them. Keyed records are
placed by librdkafka's default partitioner (CRC32 of the key), the same function as
:func:`~shopops.events.model.partition_for`, so a key lands in the same partition on every backend.

Consumer: a group member with manual, synchronous commits of explicit offsets; nothing is
committed behind the application's back (no auto-commit, no auto offset store).

The per-record paths (``produce_many``, ``poll``) are kept to a few C calls per record: records
are built with ``map``/``zip`` over the message methods rather than in a Python loop body.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from functools import partial
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer as KafkaClientConsumer,
)
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import (
    TopicPartition as KafkaTopicPartition,
)

# NewTopic and OffsetSpec are exported by confluent_kafka.admin at run time but not in its stubs.
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]
from pydantic import Field

from shopops.core.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ShopopsError,
)
from shopops.core.logging import get_logger
from shopops.core.registry import BackendConfig
from shopops.events.model import (
    Headers,
    OutgoingRecord,
    Record,
    TopicInfo,
    TopicPartition,
    validate_partition_count,
    validate_subscription,
    validate_topic_name,
)
from shopops.events.port import Consumer, EventLog, OffsetReset

log = get_logger(__name__)
#: librdkafka's own log lines go through stdlib logging, hence the structured pipeline.
_RDKAFKA_LOG = logging.getLogger("shopops.events.kafka.librdkafka")

_UNSET = -1001  # librdkafka's OFFSET_INVALID: no committed offset / unknown position

_new_record = partial(tuple.__new__, Record)
_m_error = Message.error
_m_topic = Message.topic
_m_partition = Message.partition
_m_offset = Message.offset
_m_key = Message.key
_m_value = Message.value
_m_timestamp = Message.timestamp
_m_headers = Message.headers
_second = itemgetter(1)
_r_topic, _r_partition, _r_offset = itemgetter(0), itemgetter(1), itemgetter(2)

# Consumer errors that are reported but resolve themselves (a broker restarting, a subscribed
# topic not created yet): librdkafka retries them on its own.
_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._PARTITION_EOF,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError._TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
}
# Commit failures that mean "the group moved on without this member".
_REBALANCED = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
    KafkaError.FENCED_INSTANCE_ID,
}

LibrdkafkaValue = str | int | float | bool


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _error_text(exc: BaseException) -> str:
    err = _kafka_error(exc)
    return f"{err.name()}: {err.str()}" if err is not None else str(exc)


class KafkaEventLog(EventLog):
    """The :class:`~shopops.events.port.EventLog` port on a Kafka cluster (see the module doc)."""

    class Config(BackendConfig):
        """Options of the ``kafka`` event-log backend."""

        #: Comma-separated ``host:port`` list of brokers.
        bootstrap_servers: str = Field(min_length=1)
        client_id: str = "shopops"
        #: Extra librdkafka settings for producers, e.g. ``{"compression.type": "zstd"}``.
        producer: dict[str, LibrdkafkaValue] = {}
        #: Extra librdkafka settings for consumers.
        consumer: dict[str, LibrdkafkaValue] = {}
        session_timeout_ms: int = Field(default=10_000, ge=1)
        heartbeat_interval_ms: int = Field(default=3_000, ge=1)
        #: Partitions of topics created by producing to them.
        default_partitions: int = Field(default=1, ge=1)
        replication_factor: int = Field(default=1, ge=1)
        #: Bound of admin and metadata calls, and of connecting at start-up.
        request_timeout_s: float = Field(default=10.0, gt=0)

    def __init__(self, config: Config, home: Path) -> None:
        self.config = config
        self.bootstrap = config.bootstrap_servers
        self._timeout = config.request_timeout_s
        self._base: dict[str, Any] = {
            "bootstrap.servers": config.bootstrap_servers,
            "client.id": config.client_id,
            "logger": _RDKAFKA_LOG,
            # Idle connections closed by the broker are normal; logging each one is noise.
            "log.connection.close": False,
        }
        self._lock = threading.RLock()
        self._closed = False
        self._producer: Producer | None = None
        self._delivery_errors: list[str] = []
        self._fatal: str | None = None
        self._known_topics: set[str] = set()
        self._consumers: weakref.WeakSet[KafkaConsumer] = weakref.WeakSet()
        self._reader: KafkaClientConsumer | None = None
        self._admin = AdminClient(dict(self._base))
        # Fail at start-up, with the address, rather than on the first record.
        self._metadata()

    # -- plumbing -----------------------------------------------------------------------------

    def _unavailable(self, what: str, exc: BaseException | str) -> BackendUnavailableError:
        detail = exc if isinstance(exc, str) else _error_text(exc)
        return BackendUnavailableError(
            f"{what} failed on Kafka at {self.bootstrap}: {detail}",
            hint="check that the brokers in events.bootstrap_servers are up and reachable from this "
            "machine (a local broker for development: shopops.events.tansu)",
        )

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError("the Kafka event log is closed", hint="open a new one")

    def _metadata(self) -> dict[str, int]:
        """Topic name -> partition count, of every non-internal topic."""
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise BackendUnavailableError(
                f"cannot reach Kafka at {self.bootstrap} within {self._timeout:g} s ({_error_text(exc)})",
                hint="start the brokers or fix events.bootstrap_servers (comma-separated host:port)",
            ) from exc
        topics = {
            name: len(meta.partitions)
            for name, meta in metadata.topics.items()
            if meta.error is None and not name.startswith("__")
        }
        self._known_topics.update(topics)
        return topics

    def _partitions_of(self, topic: str) -> int:
        validate_topic_name(topic)
        count = self._metadata().get(topic)
        if count is None:
            raise NotFoundError(f"topic {topic!r} does not exist", hint="create it first or list topics")
        return count

    # -- topics -------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` (idempotent for the same partition count, a conflict for another)."""
        validate_topic_name(name)
        validate_partition_count(partitions)
        self._check_open()
        self._create(name, partitions, exist_ok_any_count=False)

    def _create(self, name: str, partitions: int, *, exist_ok_any_count: bool) -> None:
        futures = self._admin.create_topics(
            [NewTopic(name, partitions, self.config.replication_factor)],
            request_timeout=self._timeout,
            operation_timeout=self._timeout,
        )
        try:
            futures[name].result(timeout=self._timeout + 5)
        except KafkaException as exc:
            err = _kafka_error(exc)
            code = err.code() if err is not None else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                existing = self._metadata().get(name)
                if existing is not None and existing != partitions and not exist_ok_any_count:
                    raise ConflictError(
                        f"topic {name!r} exists with {existing} partitions, not {partitions}",
                        hint="partition counts never change: use the existing count or another topic name",
                    ) from exc
            elif code in (KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.INVALID_PARTITIONS):
                raise InvalidInputError(
                    f"Kafka refused topic {name!r}: {_error_text(exc)}",
                    hint="events.replication_factor cannot exceed the number of brokers",
                ) from exc
            else:
                raise self._unavailable(f"creating topic {name!r}", exc) from exc
        except TimeoutError as exc:
            raise self._unavailable(f"creating topic {name!r}", "no answer") from exc
        # Creation completes on the controller first; wait until metadata shows the topic so
        # that an immediate produce or subscribe sees all its partitions.
        deadline = time.monotonic() + self._timeout
        while self._metadata().get(name) is None:
            if time.monotonic() > deadline:
                raise self._unavailable(f"creating topic {name!r}", "the topic did not appear in metadata")
            time.sleep(0.05)
        self._known_topics.add(name)

    def _ensure_topic(self, topic: str) -> None:
        """Producing to a topic that does not exist creates it, whatever the broker's auto-create
        setting: clusters usually disable it, and the port promises it."""
        validate_topic_name(topic)
        with self._lock:
            if topic in self._known_topics or topic in self._metadata():
                self._known_topics.add(topic)
                return
            self._create(topic, self.config.default_partitions, exist_ok_any_count=True)

    def list_topics(self) -> list[TopicInfo]:
        """All topics (not Kafka's internal ones) with partition and record counts, sorted by name."""
        self._check_open()
        topics = self._metadata()
        ends = self._end_offsets([(name, p) for name, count in topics.items() for p in range(count)])
        messages: dict[str, int] = dict.fromkeys(topics, 0)
        for (name, _partition), end in ends.items():
            messages[name] += end
        return [TopicInfo(name, topics[name], messages[name]) for name in sorted(topics)]

    # -- producing ----------------------------------------------------------------------------

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        # Called only for failures ("delivery.report.only.error"): successes cost nothing.
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}[{msg.partition()}]: {err.name()}: {err.str()}")

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = f"{err.name()}: {err.str()}"
        log.debug("kafka client error", error=err.str(), code=err.name())

    def _get_producer(self) -> Producer:
        producer = self._producer
        if producer is None:
            with self._lock:
                self._check_open()
                if self._producer is None:
                    self._producer = Producer(
                        {
                            **self._base,
                            "enable.idempotence": True,
                            "acks": "all",
                            # Wait a little to fill large batches: fewer, bigger requests.
                            "linger.ms": 10,
                            "batch.num.messages": 10_000,
                            "batch.size": 1_000_000,
                            "queue.buffering.max.messages": 1_000_000,
                            "queue.buffering.max.kbytes": 1_048_576,
                            "delivery.report.only.error": True,
                            "on_delivery": self._on_delivery,
                            "error_cb": self._on_error,
                            **self.config.producer,
                        }
                    )
                producer = self._producer
        return producer

    def _produce_slow(
        self,
        producer: Producer,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers,
        timestamp_ms: int | None,
    ) -> None:
        """Produce with every option, waiting for room in librdkafka's queue when it is full."""
        kwargs: dict[str, Any] = {}
        if headers:
            kwargs["headers"] = list(headers)
        if timestamp_ms is not None:
            if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms < 0:
                raise InvalidInputError(f"timestamp_ms must be an integer >= 0 (got {timestamp_ms!r})")
            kwargs["timestamp"] = timestamp_ms
        if isinstance(key, bytes | bytearray) and not key:
            # librdkafka's partitioner sends empty keys to a random partition; CRC32 of b"" is 0.
            kwargs["partition"] = 0
        deadline = time.monotonic() + max(30.0, self._timeout)
        while True:
            try:
                producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until the broker drains it.
                producer.poll(0.05)
                if self._delivery_errors or self._fatal or time.monotonic() > deadline:
                    raise self._unavailable(
                        "producing", self._fatal or "the broker is not accepting records"
                    ) from None
            except KafkaException as exc:
                raise self._produce_error(topic, exc) from exc
            except TypeError as exc:
                raise InvalidInputError(
                    f"invalid record for {topic!r}: {exc}", hint="keys and values are bytes, or None"
                ) from exc

    def _produce_error(self, topic: str | None, exc: KafkaException) -> ShopopsError:
        err = _kafka_error(exc)
        where = f" to {topic!r}" if topic else ""
        if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            return InvalidInputError(
                f"a record{where} is larger than the producer accepts ({err.str()})",
                hint="split the record, or raise message.max.bytes in events.producer and on the brokers",
            )
        return self._unavailable(f"producing{where}", exc)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record in librdkafka; it is delivered in the background, confirmed by flush()."""
        if topic not in self._known_topics:
            self._ensure_topic(topic)
        self._produce_slow(self._get_producer(), topic, value, key, headers, timestamp_ms)

    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        """Queue many records; returns how many. Delivered in the background, confirmed by flush()."""
        producer = self._get_producer()
        produce = producer.produce
        known = self._known_topics
        count = 0
        try:
            for record in records:
                topic = record.topic
                if topic not in known:
                    self._ensure_topic(topic)
                key = record.key
                if record.headers or record.timestamp_ms is not None or key == b"":
                    self._produce_slow(
                        producer, topic, record.value, key, record.headers, record.timestamp_ms
                    )
                else:
                    try:
                        produce(topic, record.value, key)
                    except BufferError:
                        self._produce_slow(producer, topic, record.value, key, (), None)
                count += 1
        except KafkaException as exc:
            raise self._produce_error(None, exc) from exc
        except TypeError as exc:
            raise InvalidInputError(
                f"invalid record: {exc}", hint="keys and values are bytes, or None"
            ) from exc
        producer.poll(0)
        return count

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the brokers acknowledged every queued record; raise if any failed."""
        producer = self._producer
        if producer is None:
            return
        remaining = producer.flush(timeout_s)
        errors, self._delivery_errors = self._delivery_errors, []
        if self._fatal:
            raise self._unavailable("producing", f"the producer failed for good ({self._fatal})")
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise self._unavailable(f"delivering {len(errors)} records", f"{errors[0]}{more}")
        if remaining:
            raise self._unavailable(
                "flushing", f"{remaining} records still unacknowledged after {timeout_s:g} s"
            )

    # -- reading ------------------------------------------------------------------------------

    def _client_consumer(self, group_id: str, extra: Mapping[str, Any]) -> KafkaClientConsumer:
        return KafkaClientConsumer(
            {
                **self._base,
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "error_cb": self._on_error,
                **extra,
            }
        )

    def _end_offsets(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """High watermarks of ``tps``.

        ListOffsets gives them in one request, but some Kafka-protocol brokers (Tansu 0.6) answer
        it with the base offset of the last record batch plus one. The high watermark in a Fetch
        response is right on every broker, so a short-lived consumer fetches once at the listed
        offset and reads the watermark the response carried (on Kafka that fetch returns nothing).
        """
        if not tps:
            return {}
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {KafkaTopicPartition(t, p): latest for t, p in tps}
        try:
            futures = self._admin.list_offsets(request, request_timeout=self._timeout)
            listed = {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise self._unavailable("reading end offsets", exc) from exc
        probe = self._client_consumer(
            f"{self.config.client_id}-watermarks",
            {"enable.partition.eof": False, "fetch.wait.max.ms": 10, "auto.offset.reset": "latest"},
        )
        ends: dict[tuple[str, int], int] = {}
        try:
            probe.assign([KafkaTopicPartition(t, p, max(0, off)) for (t, p), off in listed.items()])
            missing = set(listed)
            deadline = time.monotonic() + self._timeout
            while missing and time.monotonic() < deadline:
                probe.consume(1000, 0.01)
                for t, p in list(missing):
                    _low, high = probe.get_watermark_offsets(KafkaTopicPartition(t, p), cached=True)
                    if high >= 0:
                        ends[(t, p)] = max(high, listed[(t, p)])
                        missing.discard((t, p))
        finally:
            probe.close()
        for tp in missing:
            ends[tp] = max(0, listed[tp])
        return ends

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        """Up to ``max_records`` records of one partition from ``offset``, without joining a group."""
        count = self._partitions_of(topic)
        if not 0 <= partition < count:
            raise InvalidInputError(
                f"partition {partition} does not exist in {topic!r}", hint=f"use 0..{count - 1}"
            )
        _check_offset(offset)
        _check_max_records(max_records)
        self._check_open()
        end = self._end_offsets([(topic, partition)])[(topic, partition)]
        if offset >= end:
            return []
        want = min(end - offset, max_records)
        with self._lock:
            if self._reader is None:
                self._reader = self._client_consumer(
                    f"{self.config.client_id}-reader",
                    {"enable.partition.eof": True, "fetch.wait.max.ms": 10, "auto.offset.reset": "earliest"},
                )
            reader = self._reader
            reader.assign([KafkaTopicPartition(topic, partition, offset)])
            out: list[Record] = []
            deadline = time.monotonic() + self._timeout
            try:
                while len(out) < want and time.monotonic() < deadline:
                    msgs = reader.consume(want - len(out), 0.1)
                    if any(map(_m_error, msgs)):
                        msgs = [m for m in msgs if m.error() is None]
                    # Anything from an earlier assignment, or below the start, is not ours.
                    out.extend(
                        r
                        for r in _to_records(msgs, None)
                        if r.topic == topic and r.partition == partition and r.offset >= offset
                    )
            finally:
                reader.unassign()
        out.sort(key=_r_offset)
        return out[:max_records]

    def consumer(
        self,
        group_id: str,
        topics: Iterable[str],
        auto_offset_reset: OffsetReset = "earliest",
    ) -> KafkaConsumer:
        """Join ``group_id`` and subscribe to ``topics``; partitions arrive during the first polls."""
        self._check_open()
        consumer = KafkaConsumer(self, group_id, topics, auto_offset_reset)
        self._consumers.add(consumer)
        return consumer

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get (the high watermark)."""
        self._check_open()
        count = self._partitions_of(topic)
        ends = self._end_offsets([(topic, p) for p in range(count)])
        return {p: ends[(topic, p)] for p in range(count)}

    def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        """Per partition, the group's committed offset (``None`` where it never committed)."""
        self._check_open()
        count = self._partitions_of(topic)
        request = ConsumerGroupTopicPartitions(
            group_id, [KafkaTopicPartition(topic, p) for p in range(count)]
        )
        try:
            futures = self._admin.list_consumer_group_offsets([request], request_timeout=self._timeout)
            result = futures[group_id].result()
        except KafkaException as exc:
            raise self._unavailable(f"reading the offsets of group {group_id!r}", exc) from exc
        offsets: dict[int, int | None] = dict.fromkeys(range(count))
        for tp in result.topic_partitions or []:
            if tp.topic == topic and tp.offset >= 0:
                offsets[tp.partition] = tp.offset
        return offsets

    def list_groups(self) -> list[str]:
        """Groups that have committed offsets, sorted."""
        self._check_open()
        try:
            listing = self._admin.list_consumer_groups(request_timeout=self._timeout).result()
        except KafkaException as exc:
            raise self._unavailable("listing consumer groups", exc) from exc
        names = sorted({g.group_id for g in listing.valid})
        if not names:
            return []
        # One request per group (the admin API takes one group at a time), all in flight at once.
        futures = {
            name: self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(name)], request_timeout=self._timeout
            )[name]
            for name in names
        }
        with_offsets: list[str] = []
        for name, future in futures.items():
            try:
                result = future.result()
            except KafkaException as exc:
                raise self._unavailable(f"reading the offsets of group {name!r}", exc) from exc
            if any(tp.offset >= 0 for tp in result.topic_partitions or []):
                with_offsets.append(name)
        return with_offsets

    def close(self) -> None:
        """Flush queued records, close the consumers opened here and release the clients."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._producer is not None:
                    self.flush(max(30.0, self._timeout))
            finally:
                for consumer in list(self._consumers):
                    consumer.close()
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
                self._producer = None


def _check_offset(offset: int) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offsets are integers >= 0 (got {offset!r})")


def _check_max_records(max_records: int) -> None:
    if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
        raise InvalidInputError(f"max_records must be at least 1 (got {max_records!r})")


def _headers_of(raw: Any) -> Headers:
    """librdkafka's headers (a list of pairs, values possibly null) as the port's tuple of pairs."""
    if not raw:
        return ()
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (name, value if isinstance(value, bytes) else b"" if value is None else str(value).encode())
        for name, value in pairs
    )


def _to_records(msgs: list[Message], topic: str | None) -> list[Record]:
    """Records from error-free messages, built in C (``map``/``zip``): no Python runs per message.

    ``topic`` is the one topic all messages come from, when known: it saves a call per message.
    ``msgs`` is emptied: the messages are released before the records are built, so that the
    garbage collector's young generation, which the new records fill, holds records only (the
    collector's work was the largest cost of a poll).
    """
    raw_headers = list(map(_m_headers, msgs))
    headers: Iterable[Headers] = list(map(_headers_of, raw_headers)) if any(raw_headers) else repeat(())
    topics: Iterable[str | None] = repeat(topic) if topic is not None else list(map(_m_topic, msgs))
    partitions = list(map(_m_partition, msgs))
    offsets = list(map(_m_offset, msgs))
    keys = list(map(_m_key, msgs))
    values = list(map(_m_value, msgs))
    timestamps = list(map(_second, map(_m_timestamp, msgs)))
    msgs.clear()
    return list(
        map(_new_record, zip(topics, partitions, offsets, keys, values, timestamps, headers, strict=False))
    )


class KafkaConsumer(Consumer):
    """A member of a Kafka consumer group. Use it from one thread at a time."""

    def __init__(
        self,
        log_: KafkaEventLog,
        group_id: str,
        topics: Iterable[str],
        auto_offset_reset: OffsetReset,
    ) -> None:
        names = validate_subscription(group_id, topics, auto_offset_reset)
        self.group_id = group_id
        self.topics = tuple(names)
        self._log = log_
        self._timeout = log_.config.request_timeout_s
        self._single_topic = names[0] if len(names) == 1 else None
        self._lock = threading.RLock()
        self._closed = False
        self._assigned: set[tuple[str, int]] = set()
        self._positions: dict[tuple[str, int], int] = {}
        #: Records fetched while waiting for an assignment (seek), handed out by the next polls.
        self._buffer: deque[Record] = deque()
        self._revoked = False
        config = log_.config
        try:
            self._consumer = log_._client_consumer(
                group_id,
                {
                    "auto.offset.reset": auto_offset_reset,
                    "session.timeout.ms": config.session_timeout_ms,
                    "heartbeat.interval.ms": config.heartbeat_interval_ms,
                    "enable.partition.eof": False,
                    **config.consumer,
                },
            )
            self._consumer.subscribe(
                list(names), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
        except KafkaException as exc:
            raise log_._unavailable(f"joining group {group_id!r}", exc) from exc

    # Rebalance callbacks run inside consume(), on the polling thread.
    def _on_assign(self, _consumer: KafkaClientConsumer, partitions: list[KafkaTopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)

    def _on_revoke(self, _consumer: KafkaClientConsumer, partitions: list[KafkaTopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        for key in gone:
            # Progress on a partition given up is not this member's to commit any more: the new
            # owner resumes from the group's committed offset (at-least-once).
            self._positions.pop(key, None)
        if self._buffer:
            self._buffer = deque(r for r in self._buffer if (r.topic, r.partition) not in gone)
        self._revoked = True

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"the consumer of group {self.group_id!r} is closed")

    def _consume(self, num: int, timeout_s: float) -> list[Record]:
        """One consume() call turned into records; transient errors are logged, fatal ones raised."""
        try:
            msgs = self._consumer.consume(num, timeout_s)
        except KafkaException as exc:
            raise self._log._unavailable(f"polling group {self.group_id!r}", exc) from exc
        if not msgs:
            return []
        if any(map(_m_error, msgs)):
            good = []
            for m in msgs:
                err = m.error()
                if err is None:
                    good.append(m)
                elif err.fatal() or err.code() not in _TRANSIENT:
                    raise self._log._unavailable(f"polling group {self.group_id!r}", KafkaException(err))
                else:
                    log.debug("kafka consumer notice", group=self.group_id, error=err.str())
            msgs = good
        # A batch allocates thousands of small tuples at once; pausing the cyclic collector while
        # they are built (none of them can form a cycle) saves a collector pass every 700 of them.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return _to_records(msgs, self._single_topic)
        finally:
            if paused:
                gc.enable()

    def _advance(self, records: list[Record]) -> None:
        # Records of one partition come in offset order, so building a dict keeps the last offset
        # per partition; it is built in C, keyed by the partition alone when there is one topic.
        positions = self._positions
        topic = self._single_topic
        if topic is not None:
            last = dict(zip(map(_r_partition, records), map(_r_offset, records), strict=False))
            for partition, offset in last.items():
                positions[(topic, partition)] = offset + 1
        else:
            pairs = zip(map(_r_topic, records), map(_r_partition, records), strict=False)
            for key, offset in dict(zip(pairs, map(_r_offset, records), strict=False)).items():
                positions[key] = offset + 1

    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records, waiting up to ``timeout_s`` for the first one."""
        _check_max_records(max_records)
        if timeout_s < 0:
            raise InvalidInputError(f"timeout_s must be >= 0 (got {timeout_s!r})")
        with self._lock:
            self._check_open()
            if self._buffer:
                count = min(max_records, len(self._buffer))
                records = [self._buffer.popleft() for _ in range(count)]
                self._advance(records)
                return records
            self._revoked = False
            deadline = time.monotonic() + timeout_s
            # consume(n, t) waits for all n records or the whole timeout: take what is ready, and
            # when nothing is, wait for one record and then take what came with it.
            records = self._consume(max_records, 0)
            while not records:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                records = self._consume(1, remaining)
                if records and max_records > 1:
                    records += self._consume(max_records - 1, 0)
            if self._revoked:
                # A rebalance happened between two consume() calls of this poll.
                assigned = self._assigned
                records = [r for r in records if (r.topic, r.partition) in assigned]
            self._advance(records)
            return records

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (or the positions after the last polled records) synchronously."""
        with self._lock:
            self._check_open()
            if offsets is None:
                tps = [
                    KafkaTopicPartition(topic, partition, offset)
                    for (topic, partition), offset in self._positions.items()
                    if (topic, partition) in self._assigned
                ]
            else:
                tps = []
                for tp, offset in offsets.items():
                    _check_offset(offset)
                    tps.append(KafkaTopicPartition(tp.topic, tp.partition, offset))
            if not tps:
                return
            try:
                result = self._consumer.commit(offsets=tps, asynchronous=False)
            except KafkaException as exc:
                raise self._commit_error(exc) from exc
            for part in result or []:
                if part.error is not None:
                    raise self._commit_error(KafkaException(part.error))

    def _commit_error(self, exc: KafkaException) -> ShopopsError:
        err = _kafka_error(exc)
        if err is not None and err.code() in _REBALANCED:
            return ConflictError(
                f"offsets not committed: group {self.group_id!r} rebalanced and this consumer lost "
                f"its partitions ({err.name()})",
                hint="poll more often than max.poll.interval.ms; the uncommitted records will be "
                "delivered again",
            )
        return self._log._unavailable(f"committing offsets of group {self.group_id!r}", exc)

    def _await_assignment(self, key: tuple[str, int]) -> None:
        """Poll (keeping what arrives for the next polls) until ``key`` is assigned or time is up."""
        deadline = time.monotonic() + self._timeout
        while key not in self._assigned and time.monotonic() < deadline:
            self._buffer.extend(self._consume(500, 0.1))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next poll of ``tp`` start at ``offset``; waits for the group to assign ``tp``."""
        _check_offset(offset)
        if tp.topic not in self.topics:
            raise InvalidInputError(
                f"cannot seek {tp}: this consumer subscribes to {', '.join(self.topics)} only"
            )
        key = (tp.topic, tp.partition)
        with self._lock:
            self._check_open()
            if key not in self._assigned:
                self._await_assignment(key)
            if key not in self._assigned:
                assigned = ", ".join(f"{t}[{p}]" for t, p in sorted(self._assigned)) or "nothing"
                raise InvalidInputError(
                    f"cannot seek {tp}: it is not assigned to this consumer of group {self.group_id!r}",
                    hint=f"assigned: {assigned}",
                )
            if self._buffer:
                self._buffer = deque(r for r in self._buffer if (r.topic, r.partition) != key)
            deadline = time.monotonic() + self._timeout
            while True:
                try:
                    self._consumer.seek(KafkaTopicPartition(tp.topic, tp.partition, offset))
                    break
                except KafkaException as exc:
                    err = _kafka_error(exc)
                    # A partition whose fetcher is still starting refuses seeks for a moment.
                    if err is None or err.code() != KafkaError._STATE or time.monotonic() > deadline:
                        raise self._log._unavailable(f"seeking {tp}", exc) from exc
                    self._buffer.extend(r for r in self._consume(500, 0.05) if (r.topic, r.partition) != key)
            self._positions[key] = offset

    def position(self, tp: TopicPartition) -> int | None:
        """The offset the next poll of ``tp`` returns, if known."""
        key = (tp.topic, tp.partition)
        with self._lock:
            for record in self._buffer:
                if (record.topic, record.partition) == key:
                    return record.offset
            if key in self._positions:
                return self._positions[key]
            if key not in self._assigned:
                return None
            try:
                (current,) = self._consumer.position([KafkaTopicPartition(tp.topic, tp.partition)])
            except KafkaException:
                return None
            offset: int = current.offset
            return offset if offset >= 0 else None

    def assignment(self) -> set[TopicPartition]:
        """The partitions the group assigned to this member (as of the last poll)."""
        return {TopicPartition(topic, partition) for topic, partition in self._assigned}

    def close(self) -> None:
        """Leave the group (its partitions go to the other members). Does not commit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("kafka consumer did not close cleanly", group=self.group_id, error=str(exc))
            self._assigned.clear()
            self._positions.clear()
            self._buffer.clear()
