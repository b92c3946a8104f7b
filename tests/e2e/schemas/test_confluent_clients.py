"""confluent-kafka's own Schema Registry client and serializers, unchanged, against `shopops schemas serve`.

Every call goes through a real uvicorn server; the serializer tests also produce and consume
through the Kafka-protocol test broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from tests.e2e.schemas.conftest import RegistryServer

ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": "order_id", "type": "string"}, {"name": "total", "type": "long"}],
}
ORDER_V2 = {
    **ORDER_V1,
    "fields": [*ORDER_V1["fields"], {"name": "channel", "type": ["null", "string"], "default": None}],
}
ORDER_BAD = {
    **ORDER_V1,
    "fields": [{"name": "order_id", "type": "string"}, {"name": "total", "type": "string"}],
}


def avro_schema(doc: dict[str, Any]) -> Schema:
    return Schema(orjson.dumps(doc).decode(), "AVRO")


def subject_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(registry_server: RegistryServer) -> SchemaRegistryClient:
    return SchemaRegistryClient(registry_server.client_config())


def fresh_client(client: SchemaRegistryClient) -> SchemaRegistryClient:
    """Another client of the same registry and credentials, without the first one's cache."""
    user, password = client._rest_client.auth
    return SchemaRegistryClient(
        {"url": client._rest_client.base_urls[0], "basic.auth.user.info": f"{user}:{password}"}
    )


def test_subjects_versions_ids_and_lookups(client: SchemaRegistryClient) -> None:
    subject = subject_name("orders-value")
    schema_id = client.register_schema(subject, avro_schema(ORDER_V1))
    assert client.register_schema(subject, avro_schema(ORDER_V1)) == schema_id
    fresh = fresh_client(client)  # no client-side cache
    assert fresh.register_schema(subject, avro_schema(ORDER_V1)) == schema_id
    v2_id = fresh.register_schema(subject, avro_schema(ORDER_V2))
    assert v2_id != schema_id

    assert subject in fresh.get_subjects()
    assert fresh.get_versions(subject) == [1, 2]
    latest = fresh.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, v2_id)
    first = fresh.get_version(subject, 1)
    assert orjson.loads(first.schema.schema_str) == ORDER_V1
    assert orjson.loads(fresh.get_schema(schema_id).schema_str) == ORDER_V1
    found = fresh.lookup_schema(subject, avro_schema(ORDER_V1))
    assert (found.schema_id, found.version) == (schema_id, 1)
    assert subject in fresh.get_subjects_by_schema_id(schema_id)
    assert [(v.subject, v.version) for v in fresh.get_schema_versions(schema_id)] == [(subject, 1)]
    assert set(fresh.get_schema_types()) >= {"AVRO", "JSON"}


def test_compatibility_config_and_verbose_checks(client: SchemaRegistryClient) -> None:
    subject = subject_name("payments-value")
    client.register_schema(subject, avro_schema(ORDER_V1))
    assert client.test_compatibility(subject, avro_schema(ORDER_V2)) is True
    assert client.test_compatibility(subject, avro_schema(ORDER_BAD)) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, avro_schema(ORDER_BAD))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "TYPE_MISMATCH" in refused.value.error_message

    assert client.set_compatibility(subject, "NONE")["compatibility"] == "NONE"
    assert client.get_compatibility(subject) == "NONE"
    client.register_schema(subject, avro_schema(ORDER_BAD))
    assert client.get_versions(subject) == [1, 2]
    with pytest.raises(SchemaRegistryError) as bad_level:
        client.set_compatibility(subject, "SIDEWAYS")
    assert bad_level.value.error_code == 42203


def test_deletes_soft_and_permanent(client: SchemaRegistryClient) -> None:
    subject = subject_name("deletes")
    # A schema no other test registers: a schema id lives as long as any subject uses it.
    own = {**ORDER_V1, "doc": subject}
    schema_id = client.register_schema(subject, avro_schema(own))
    client.register_schema(subject, avro_schema({**ORDER_V2, "doc": subject}))
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    with pytest.raises(SchemaRegistryError) as not_soft:
        client.delete_subject(subject, permanent=True)
    assert not_soft.value.error_code == 40405
    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert client.delete_subject(subject, permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as gone:
        fresh_client(client).get_schema(schema_id)
    assert gone.value.error_code == 40403


def test_references_and_modes(client: SchemaRegistryClient) -> None:
    address_subject = subject_name("address")
    address = {
        "type": "record",
        "name": "Address",
        "namespace": "shop",
        "fields": [{"name": "city", "type": "string"}],
    }
    client.register_schema(address_subject, avro_schema(address))
    customer = {
        "type": "record",
        "name": "Customer",
        "namespace": "shop",
        "fields": [{"name": "home", "type": "shop.Address"}],
    }
    customer_subject = subject_name("customer")
    with_ref = Schema(
        orjson.dumps(customer).decode(), "AVRO", [SchemaReference("shop.Address", address_subject, 1)]
    )
    customer_id = client.register_schema(customer_subject, with_ref)
    assert client.get_referenced_by(address_subject, 1) == [customer_id]
    assert client.get_schema(customer_id).references[0].subject == address_subject

    assert client.update_mode(customer_subject, "READONLY") == "READONLY"
    assert client.get_mode(customer_subject) == "READONLY"
    with pytest.raises(SchemaRegistryError) as readonly:
        client.delete_subject(customer_subject)
    assert readonly.value.error_code == 42205
    assert client.delete_mode(customer_subject) == "READONLY"
    assert client.get_global_mode() == "READWRITE"


def _consume_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    try:
        for _ in range(100):
            for msg in consumer.consume(count - len(values), timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(msg.value())
            if len(values) >= count:
                break
    finally:
        consumer.close()
    return values


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(30) == 0


@pytest.mark.kafka
def test_avro_serializer_and_deserializer_through_kafka(
    client: SchemaRegistryClient, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("orders")
    ctx = SerializationContext(topic, MessageField.VALUE)
    v1 = AvroSerializer(client, orjson.dumps(ORDER_V1).decode())
    v2 = AvroSerializer(client, orjson.dumps(ORDER_V2).decode())
    sent = [
        v1({"order_id": "o-1", "total": 1200}, ctx),
        v2({"order_id": "o-2", "total": 99, "channel": "app"}, ctx),
    ]
    assert client.get_versions(f"{topic}-value") == [1, 2]
    _produce(kafka_bootstrap, topic, sent)

    # A consumer with a fresh client fetches each writer schema by id from the server.
    reader = AvroDeserializer(fresh_client(client))
    received = [reader(value, ctx) for value in _consume_all(kafka_bootstrap, topic, 2)]
    assert received == [
        {"order_id": "o-1", "total": 1200},
        {"order_id": "o-2", "total": 99, "channel": "app"},
    ]

    with pytest.raises(SchemaRegistryError) as refused:
        AvroSerializer(client, orjson.dumps(ORDER_BAD).decode())({"order_id": "o-3", "total": "x"}, ctx)
    assert refused.value.error_code == 409


@pytest.mark.kafka
def test_json_serializer_through_kafka(
    client: SchemaRegistryClient, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("shipments")
    ctx = SerializationContext(topic, MessageField.VALUE)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Shipment",
        "type": "object",
        "properties": {"shipment_id": {"type": "string"}, "weight_kg": {"type": "number"}},
        "required": ["shipment_id"],
        "additionalProperties": False,
    }
    serializer = JSONSerializer(orjson.dumps(schema).decode(), client)
    _produce(kafka_bootstrap, topic, [serializer({"shipment_id": "s-1", "weight_kg": 1.25}, ctx)])
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema.schema_type == "JSON"

    reader = JSONDeserializer(None, schema_registry_client=fresh_client(client))
    (value,) = _consume_all(kafka_bootstrap, topic, 1)
    assert reader(value, ctx) == {"shipment_id": "s-1", "weight_kg": 1.25}

    retyped = {**schema, "properties": {"shipment_id": {"type": "string"}, "weight_kg": {"type": "string"}}}
    with pytest.raises(SchemaRegistryError) as refused:
        JSONSerializer(orjson.dumps(retyped).decode(), client)(
            {"shipment_id": "s-2", "weight_kg": "1.25"}, ctx
        )
    assert refused.value.error_code == 409
    assert "TYPE_CHANGED" in refused.value.error_message
