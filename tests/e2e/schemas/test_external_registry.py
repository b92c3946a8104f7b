"""The platform pointed at an external Confluent-API registry by configuration only (the `http` client).

`shopops schemas serve` plays the external registry; the drift watch, replay and the client port
talk to it over HTTP exactly as they would to Confluent, Karapace or Apicurio.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from tests.e2e.schemas.conftest import RegistryServer

from shopops.bootstrap import build_platform
from shopops.core.settings import Settings
from shopops.events.debezium import Column, Op, encode_key, encode_value, value_schema
from shopops.schemas.backends.http_client import HttpRegistryClient
from shopops.schemas.client import SchemaSpec
from shopops.schemas.drift import DriftWatch, replay_quarantined, topic_records
from shopops.schemas.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryUnavailableError,
    SubjectNotFoundError,
)
from shopops.schemas.model import CompatibilityLevel, SchemaType


def test_the_http_client_speaks_the_confluent_api(registry_server: RegistryServer) -> None:
    client = HttpRegistryClient(
        HttpRegistryClient.Config(
            url=registry_server.url, username="admin", password=registry_server.admin_key
        ),
        None,
    )
    subject = f"ext-{uuid.uuid4().hex[:8]}"
    v1 = SchemaSpec(
        SchemaType.JSON, '{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}'
    )
    v2 = SchemaSpec(
        SchemaType.JSON,
        '{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}',
    )
    assert client.lookup(subject, v1) is None
    first = client.register(subject, v1)
    assert first.version == 1
    assert client.lookup(subject, v1).id == first.id  # type: ignore[union-attr]
    assert client.versions(subject) == [1]
    assert client.schema(first.id).schema_type is SchemaType.JSON
    verdict = client.check(subject, v2)
    assert not verdict.is_compatible
    assert any("TYPE_CHANGED" in m for m in verdict.messages)
    with pytest.raises(IncompatibleSchemaError):
        client.register(subject, v2)
    with pytest.raises(SubjectNotFoundError):
        client.versions("nope-" + subject)
    with pytest.raises(InvalidSchemaError):
        client.register(subject, SchemaSpec(SchemaType.JSON, '{"type": 5}'))
    client.set_compatibility(CompatibilityLevel.NONE, subject)
    assert client.compatibility(subject) is CompatibilityLevel.NONE
    assert client.register(subject, v2).version == 2
    _, _, backward, _ = client.diff(subject, 1, 2)
    assert [c.kind for c in backward if not c.compatible] == ["TYPE_CHANGED"]
    client.close()

    down = HttpRegistryClient(HttpRegistryClient.Config(url="http://127.0.0.1:9", timeout_s=2), None)
    with pytest.raises(RegistryUnavailableError, match="cannot be reached"):
        down.subjects()


def test_the_drift_watch_and_replay_against_an_external_registry(
    registry_server: RegistryServer, tmp_path: Path
) -> None:
    prefix = f"x{uuid.uuid4().hex[:6]}"
    topic = f"vn.{prefix}.shipments"
    settings = Settings(
        home=tmp_path,
        schemas={
            "registry": {
                "url": registry_server.url,
                "username": "admin",
                "password": registry_server.admin_key,
            },
            "drift": {"topics": rf"^vn\.{prefix}\.[a-z]+$"},
        },
    )
    platform = build_platform(settings)
    try:
        assert isinstance(platform.schema_client, HttpRegistryClient)
        log = platform.event_log
        source = {"connector": "postgresql", "db": prefix, "table": "shipments", "ts_ms": 0}
        for i, columns in enumerate(
            [
                [Column("id", "string"), Column("weight_kg", "float64")],
                [Column("id", "string"), Column("weight_kg", "string")],
            ]
        ):
            row = {"id": f"s-{i}", "weight_kg": 1.5 if i == 0 else "1.500"}
            schema = orjson.dumps(value_schema(topic, columns))
            log.produce(
                topic, encode_value(Op.CREATE, None, row, source, i, schema), key=encode_key({"id": f"s-{i}"})
            )
        log.flush()
        stats = DriftWatch(log, platform.schema_client, settings.schemas.drift, poll_timeout_s=0.05).drain()
        assert (stats.checked, stats.quarantined) == (2, 1)
        (q,) = list(topic_records(log, settings.schemas.drift.quarantine_topic))
        reason = next(v.decode() for k, v in q.headers if k == "shopops.quarantine.reason")
        assert "TYPE_CHANGED" in reason  # the verbose reasons came back over HTTP

        platform.schema_client.set_compatibility(CompatibilityLevel.NONE, f"{topic}-value")
        report = replay_quarantined(log, platform.schema_client, settings.schemas.drift)
        assert report.replayed == [(topic, 0, 1)]
        assert platform.schema_client.versions(f"{topic}-value") == [1, 2]
    finally:
        platform.close()
