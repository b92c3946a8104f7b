"""Avro reader/writer compatibility: the resolution rules of the Avro specification, in words."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shopops.schemas.errors import InvalidSchemaError
from shopops.schemas.formats import Dependency, parse_schema
from shopops.schemas.model import SchemaReference, SchemaType


def avro(doc: Any) -> Any:
    return parse_schema(SchemaType.AVRO, orjson.dumps(doc).decode())


def record(*fields: dict[str, Any], name: str = "Order", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "shop", "fields": list(fields), **extra}


def incompatibilities(reader: Any, writer: Any) -> list[Any]:
    return [
        c
        for c in avro(reader).changes_from(avro(writer), reader_role="new schema", writer_role="old schema")
        if not c.compatible
    ]


def reads(reader: Any, writer: Any) -> bool:
    return not incompatibilities(reader, writer)


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("int", "float", True),
        ("int", "double", True),
        ("long", "float", True),
        ("long", "double", True),
        ("float", "double", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("long", "int", False),
        ("double", "float", False),
        ("string", "int", False),
        ("boolean", "string", False),
    ],
)
def test_primitive_promotions_follow_the_specification(writer: str, reader: str, ok: bool) -> None:
    assert reads(record({"name": "f", "type": reader}), record({"name": "f", "type": writer})) is ok


def test_a_field_added_without_default_cannot_read_old_data_and_says_which() -> None:
    old = record({"name": "id", "type": "string"})
    new = record({"name": "id", "type": "string"}, {"name": "channel", "type": "string"})
    found = incompatibilities(new, old)
    assert [c.kind for c in found] == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert found[0].path == "/fields/1"
    assert "'channel'" in found[0].description
    assert "has no default value" in found[0].description
    # With a default (here a nullable field defaulting to null) the same addition is compatible.
    with_default = record(
        {"name": "id", "type": "string"}, {"name": "channel", "type": ["null", "string"], "default": None}
    )
    assert reads(with_default, old)


def test_a_removed_field_is_ignored_by_the_reader() -> None:
    old = record({"name": "id", "type": "string"}, {"name": "phone", "type": "string"})
    assert reads(record({"name": "id", "type": "string"}), old)


def test_enums_may_gain_symbols_and_lose_them_only_with_a_default() -> None:
    def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
        return record(
            {"name": "s", "type": {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}}
        )

    assert reads(enum("A", "B", "C"), enum("A", "B"))
    found = incompatibilities(enum("A"), enum("A", "B", "C"))
    assert [c.kind for c in found] == ["MISSING_ENUM_SYMBOLS"]
    assert "B, C" in found[0].description
    assert reads(enum("A", "UNKNOWN", default="UNKNOWN"), enum("A", "B"))


def test_unions() -> None:
    nullable = record({"name": "ref", "type": ["null", "string"], "default": None})
    plain = record({"name": "ref", "type": "string"})
    assert reads(nullable, plain)  # a non-union writer is read by a union holding its type
    found = incompatibilities(plain, nullable)
    assert [c.kind for c in found] == ["TYPE_MISMATCH"]  # the writer may write null
    wider = record({"name": "ref", "type": ["null", "string", "long"], "default": None})
    assert reads(wider, nullable)
    lost = incompatibilities(record({"name": "ref", "type": ["null", "long"], "default": None}), nullable)
    assert [c.kind for c in lost] == ["MISSING_UNION_BRANCH"]
    assert lost[0].path == "/fields/0/type/1"


def test_named_types_match_by_name_or_alias() -> None:
    old = record({"name": "id", "type": "string"}, name="Order")
    assert not reads(record({"name": "id", "type": "string"}, name="Purchase"), old)
    assert [
        c.kind for c in incompatibilities(record({"name": "id", "type": "string"}, name="Purchase"), old)
    ] == ["NAME_MISMATCH"]
    assert reads(record({"name": "id", "type": "string"}, name="Purchase", aliases=["shop.Order"]), old)


def test_a_renamed_field_is_read_through_its_alias() -> None:
    old = record({"name": "phone", "type": "string"})
    assert not reads(record({"name": "phone_number", "type": "string"}), old)
    assert reads(record({"name": "phone_number", "type": "string", "aliases": ["phone"]}), old)


def test_fixed_sizes_and_nested_types() -> None:
    def fixed(size: int) -> dict[str, Any]:
        return record({"name": "h", "type": {"type": "fixed", "name": "Hash", "size": size}})

    assert [c.kind for c in incompatibilities(fixed(16), fixed(32))] == ["FIXED_SIZE_MISMATCH"]
    arrays = record({"name": "q", "type": {"type": "array", "items": "long"}})
    assert reads(arrays, record({"name": "q", "type": {"type": "array", "items": "int"}}))
    maps = record({"name": "m", "type": {"type": "map", "values": "int"}})
    assert not reads(maps, record({"name": "m", "type": {"type": "map", "values": "string"}}))


def test_several_problems_are_each_reported_at_their_path() -> None:
    old = record({"name": "a", "type": "string"}, {"name": "b", "type": "double"})
    new = record({"name": "a", "type": "int"}, {"name": "b", "type": "string"}, {"name": "c", "type": "long"})
    found = {(c.kind, c.path) for c in incompatibilities(new, old)}
    assert found == {
        ("TYPE_MISMATCH", "/fields/0/type"),
        ("TYPE_MISMATCH", "/fields/1/type"),
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/2"),
    }


def test_the_confluent_message_format() -> None:
    change = incompatibilities(record({"name": "x", "type": "int"}), record({"name": "y", "type": "int"}))[0]
    text = change.confluent()
    assert text.startswith("{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'x'")
    assert text.endswith("additionalInfo:'x'}")


def test_canonical_form_ignores_spacing_and_key_order() -> None:
    a = parse_schema(
        SchemaType.AVRO, '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}'
    )
    b = parse_schema(
        SchemaType.AVRO, '{"fields":[{"type":{"type":"int"},"name":"a"}],"name":"R","type":"record"}'
    )
    c = parse_schema(SchemaType.AVRO, '{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}')
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"type": "recrd", "name": "R"}',
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Unknown"}]}',
        '{"type": "enum", "name": "E", "symbols": ["A", "A"]}',
        '{"type": "record", "name": "1bad", "fields": []}',
    ],
)
def test_malformed_avro_is_an_invalid_schema(text: str) -> None:
    with pytest.raises(InvalidSchemaError, match="Invalid schema"):
        parse_schema(SchemaType.AVRO, text)


def test_references_make_named_types_available() -> None:
    address = orjson.dumps(record({"name": "city", "type": "string"}, name="Address")).decode()
    ref = SchemaReference("shop.Address", "address-value", 1)
    parsed = parse_schema(
        SchemaType.AVRO,
        orjson.dumps(record({"name": "home", "type": "Address"}, name="Customer")).decode(),
        [ref],
        [Dependency("shop.Address", SchemaType.AVRO, address)],
    )
    assert parsed.references == (ref,)
    with pytest.raises(InvalidSchemaError):
        parse_schema(
            SchemaType.AVRO,
            '{"type": "record", "name": "Customer", "fields": [{"name": "home", "type": "shop.Address"}]}',
        )
