"""The registry's use cases on a real store: the seven compatibility levels, references, modes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shopops.schemas.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidSubjectError,
    OperationNotPermittedError,
    SchemaNotFoundError,
    SubjectCompatibilityNotConfiguredError,
    SubjectNotFoundError,
)
from shopops.schemas.model import CompatibilityLevel, Mode, SchemaReference, SchemaType
from shopops.schemas.service import SchemaRegistry


def rec(*fields: dict[str, Any]) -> str:
    return orjson.dumps({"type": "record", "name": "R", "fields": list(fields)}).decode()


A = {"name": "a", "type": "string"}

# BACKWARD history: v3 reads v2 (f is missing there and has a default) but not v1 (f was an int).
BACKWARD_HISTORY = [rec(A, {"name": "f", "type": "int"}), rec(A)]
BACKWARD_CANDIDATE = rec(A, {"name": "f", "type": "string", "default": ""})
# FORWARD history: v1 reads the candidate's data only through... nothing: f changed type.
FORWARD_HISTORY = [rec(A, {"name": "f", "type": "int", "default": 0}), rec(A)]
FORWARD_CANDIDATE = rec(A, {"name": "f", "type": "string"})
# FULL history: the candidate is fully compatible with v2 but v1 cannot read it (f's type).
FULL_HISTORY = [rec(A, {"name": "f", "type": "int", "default": 0}), rec(A)]
FULL_CANDIDATE = rec(A, {"name": "f", "type": "string", "default": ""})


@pytest.mark.parametrize(
    ("level", "history", "candidate", "accepted"),
    [
        (CompatibilityLevel.NONE, [rec(A)], rec({"name": "a", "type": "int"}), True),
        (CompatibilityLevel.BACKWARD, BACKWARD_HISTORY, BACKWARD_CANDIDATE, True),
        (CompatibilityLevel.BACKWARD_TRANSITIVE, BACKWARD_HISTORY, BACKWARD_CANDIDATE, False),
        (CompatibilityLevel.BACKWARD, [rec(A)], rec(A, {"name": "b", "type": "int"}), False),
        (CompatibilityLevel.FORWARD, FORWARD_HISTORY, FORWARD_CANDIDATE, True),
        (CompatibilityLevel.FORWARD_TRANSITIVE, FORWARD_HISTORY, FORWARD_CANDIDATE, False),
        (CompatibilityLevel.FORWARD, [rec(A, {"name": "b", "type": "int"})], rec(A), False),
        (CompatibilityLevel.FULL, FULL_HISTORY, FULL_CANDIDATE, True),
        (CompatibilityLevel.FULL_TRANSITIVE, FULL_HISTORY, FULL_CANDIDATE, False),
        (CompatibilityLevel.FULL, [rec(A)], rec(A, {"name": "b", "type": "int"}), False),
    ],
)
def test_the_seven_levels(
    registry: SchemaRegistry, level: CompatibilityLevel, history: list[str], candidate: str, accepted: bool
) -> None:
    registry.set_compatibility(CompatibilityLevel.NONE, "s")
    for text in history:
        registry.register("s", SchemaType.AVRO, text)
    registry.set_compatibility(level, "s")
    report = registry.check_compatibility("s", None, SchemaType.AVRO, candidate, all_versions=True)
    assert report.is_compatible is accepted
    if accepted:
        assert registry.register("s", SchemaType.AVRO, candidate).version == len(history) + 1
    else:
        with pytest.raises(IncompatibleSchemaError) as refused:
            registry.register("s", SchemaType.AVRO, candidate)
        assert "errorType:" in refused.value.message
        assert f"compatibility: '{level.value}'" in refused.value.message
        assert registry.versions("s") == list(range(1, len(history) + 1))


def test_check_against_one_version_uses_the_levels_direction_only(registry: SchemaRegistry) -> None:
    registry.set_compatibility(CompatibilityLevel.NONE, "s")
    for text in BACKWARD_HISTORY:
        registry.register("s", SchemaType.AVRO, text)
    registry.set_compatibility(CompatibilityLevel.BACKWARD_TRANSITIVE, "s")
    latest = registry.check_compatibility("s", None, SchemaType.AVRO, BACKWARD_CANDIDATE)
    first = registry.check_compatibility("s", 1, SchemaType.AVRO, BACKWARD_CANDIDATE)
    assert latest.is_compatible
    assert not first.is_compatible
    assert any("TYPE_MISMATCH" in m for m in first.messages)
    assert "{oldSchemaVersion: 1}" in first.messages


def test_same_schema_twice_is_one_id_and_lookup_finds_it(registry: SchemaRegistry) -> None:
    text = rec(A)
    one = registry.register("s", SchemaType.AVRO, text)
    spaced = orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    assert registry.register("s", SchemaType.AVRO, spaced) == one.__class__(one.id, 1, created=False)
    assert registry.register("t", SchemaType.AVRO, spaced).id == one.id
    found = registry.lookup("s", SchemaType.AVRO, spaced)
    assert (found.id, found.version) == (one.id, 1)
    with pytest.raises(SchemaNotFoundError):
        registry.lookup("s", SchemaType.AVRO, rec({"name": "z", "type": "int"}))
    with pytest.raises(SubjectNotFoundError):
        registry.lookup("nope", SchemaType.AVRO, text)


def test_json_and_avro_subjects_do_not_mix(registry: SchemaRegistry) -> None:
    registry.register("s", SchemaType.AVRO, rec(A))
    with pytest.raises(IncompatibleSchemaError, match="JSON"):
        registry.register("s", SchemaType.JSON, '{"type": "object"}')


def test_references_across_subjects(registry: SchemaRegistry) -> None:
    address = (
        '{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"city","type":"string"}]}'
    )
    registry.register("address", SchemaType.AVRO, address)
    customer = (
        '{"type":"record","name":"Customer","namespace":"shop",'
        '"fields":[{"name":"home","type":"shop.Address"}]}'
    )
    reg = registry.register(
        "customer", SchemaType.AVRO, customer, [SchemaReference("shop.Address", "address", -1)]
    )
    stored = registry.schema(reg.id)
    assert stored.references == (SchemaReference("shop.Address", "address", 1),)
    assert registry.referenced_by("address", 1) == [reg.id]
    with pytest.raises(InvalidSchemaError, match="no version 7"):
        registry.register("other", SchemaType.AVRO, customer, [SchemaReference("shop.Address", "address", 7)])
    json_ref = registry.register(
        "point", SchemaType.JSON, '{"type":"object","properties":{"x":{"type":"number"}}}'
    )
    shape = registry.register(
        "shape",
        SchemaType.JSON,
        '{"type":"object","properties":{"centre":{"$ref":"point.json"}}}',
        [SchemaReference("point.json", "point", 1)],
    )
    assert shape.id != json_ref.id


def test_read_only_mode_refuses_writes_with_42205(registry: SchemaRegistry) -> None:
    registry.register("s", SchemaType.AVRO, rec(A))
    registry.set_mode(Mode.READONLY, "s")
    with pytest.raises(OperationNotPermittedError, match="readonly mode") as refused:
        registry.register("s", SchemaType.AVRO, rec(A, {"name": "b", "type": "int", "default": 0}))
    assert refused.value.error_code == 42205
    with pytest.raises(OperationNotPermittedError):
        registry.delete_subject("s")
    registry.register("t", SchemaType.AVRO, rec(A))  # other subjects follow the global mode
    registry.set_mode(Mode.READONLY)
    with pytest.raises(OperationNotPermittedError):
        registry.register("t", SchemaType.AVRO, rec(A, {"name": "b", "type": "int", "default": 0}))
    assert registry.delete_mode() is Mode.READONLY
    assert registry.delete_mode("s") is Mode.READONLY
    assert (
        registry.register("s", SchemaType.AVRO, rec(A, {"name": "b", "type": "int", "default": 0})).version
        == 2
    )


def test_compatibility_settings(registry: SchemaRegistry) -> None:
    assert registry.compatibility() is CompatibilityLevel.BACKWARD
    with pytest.raises(SubjectCompatibilityNotConfiguredError):
        registry.compatibility("s", default_to_global=False)
    registry.set_compatibility(CompatibilityLevel.FULL)
    assert registry.compatibility("s") is CompatibilityLevel.FULL
    registry.set_compatibility(CompatibilityLevel.NONE, "s")
    assert registry.compatibility("s", default_to_global=False) is CompatibilityLevel.NONE
    assert registry.delete_compatibility("s") is CompatibilityLevel.NONE
    assert registry.delete_compatibility() is CompatibilityLevel.FULL
    assert registry.compatibility() is CompatibilityLevel.BACKWARD


@pytest.mark.parametrize("subject", ["", "   ", "bad\nname", "x" * 1001])
def test_bad_subject_names(registry: SchemaRegistry, subject: str) -> None:
    with pytest.raises(InvalidSubjectError):
        registry.register(subject, SchemaType.AVRO, rec(A))


def test_diff_lists_changes_both_ways(registry: SchemaRegistry) -> None:
    registry.set_compatibility(CompatibilityLevel.NONE, "s")
    registry.register("s", SchemaType.AVRO, rec(A, {"name": "w", "type": "double"}))
    registry.register("s", SchemaType.AVRO, rec(A, {"name": "w", "type": "string"}))
    old, new, backward, forward = registry.diff("s", 1, 2)
    assert (old.version, new.version) == (1, 2)
    assert [c.kind for c in backward] == ["TYPE_MISMATCH"]
    assert [c.kind for c in forward] == ["TYPE_MISMATCH"]
    assert "new schema (v2)" in backward[0].description
