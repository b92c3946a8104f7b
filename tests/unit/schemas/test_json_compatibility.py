"""JSON Schema compatibility: content models, required, types, enums, bounds, combinators, $ref."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shopops.schemas.errors import InvalidSchemaError
from shopops.schemas.formats import Dependency, parse_schema
from shopops.schemas.model import SchemaReference, SchemaType


def js(doc: Any) -> Any:
    return parse_schema(SchemaType.JSON, orjson.dumps(doc).decode())


def changes(old: Any, new: Any) -> list[Any]:
    """Differences when ``new`` reads data written with ``old`` (the BACKWARD direction)."""
    return js(new).changes_from(js(old), reader_role="new schema", writer_role="old schema")


def incompatible_kinds(old: Any, new: Any) -> set[str]:
    return {c.kind for c in changes(old, new) if not c.compatible}


def obj(
    props: dict[str, Any], required: list[str] | None = None, closed: bool = True, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required:
        doc["required"] = required
    if closed:
        doc["additionalProperties"] = False
    return doc


S = {"type": "string"}
N = {"type": "number"}
NULLABLE_S = {"oneOf": [{"type": "null"}, {"type": "string"}]}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # closed content model: optional property added is fine, required is not
        (obj({"a": S}, ["a"]), obj({"a": S, "b": NULLABLE_S}, ["a"]), set()),
        (
            obj({"a": S}, ["a"]),
            obj({"a": S, "b": S}, ["a", "b"]),
            {"REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"},
        ),
        (
            obj({"a": S}, ["a"]),
            obj({"a": S, "b": {"type": "string", "default": "x"}}, ["a", "b"]),
            set(),
        ),
        # open content model: the old writer may already have written anything under a new name
        (
            obj({"a": S}, closed=False),
            obj({"a": S, "b": S}, closed=False),
            {"PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"},
        ),
        (obj({"a": S}, closed=False), obj({"a": S, "b": {}}, closed=False), set()),
        # removal: an open reader still accepts the property, a closed one rejects it
        (obj({"a": S, "b": S}, closed=False), obj({"a": S}, closed=False), set()),
        (obj({"a": S, "b": S}), obj({"a": S}), {"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"}),
        # partially open: additionalProperties as a schema covers what it accepts
        (
            obj({"a": S, "b": S}, closed=False, additionalProperties=S),
            obj({"a": S}, closed=False, additionalProperties=S),
            set(),
        ),
        (
            obj({"a": S, "b": N}, closed=False, additionalProperties=S),
            obj({"a": S}, closed=False, additionalProperties=S),
            {"PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"},
        ),
        (
            obj({"a": S}, closed=False, patternProperties={"^x_": S}),
            obj({"a": S, "x_b": S}, closed=False),
            set(),
        ),
        # required
        (obj({"a": S}, ["a"]), obj({"a": S}), set()),
        (obj({"a": S}), obj({"a": S}, ["a"]), {"REQUIRED_ATTRIBUTE_ADDED"}),
        # additionalProperties itself
        (obj({"a": S}, closed=False), obj({"a": S}), {"ADDITIONAL_PROPERTIES_REMOVED"}),
        (obj({"a": S}), obj({"a": S}, closed=False), set()),
        (
            obj({"a": S}, closed=False),
            obj({"a": S}, closed=False, additionalProperties=S),
            {"ADDITIONAL_PROPERTIES_NARROWED"},
        ),
        # types
        ({"type": "integer"}, {"type": "number"}, set()),
        ({"type": "number"}, {"type": "integer"}, {"TYPE_NARROWED"}),
        (N, S, {"TYPE_CHANGED"}),
        (S, NULLABLE_S, set()),
        (S, {"type": ["string", "null"]}, set()),
        (NULLABLE_S, S, {"TYPE_CHANGED"}),
        ({"type": ["null", "number"]}, {"type": ["null", "string"]}, {"TYPE_CHANGED"}),
        ({}, S, {"TYPE_NARROWED"}),
        (S, {}, set()),
        # enums
        ({"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, set()),
        ({"enum": ["a", "b"]}, {"enum": ["a"]}, {"ENUM_ARRAY_NARROWED"}),
        ({"enum": ["a", "b"]}, {"enum": ["a", "c"]}, {"ENUM_ARRAY_CHANGED"}),
        ({"enum": ["a", "b"]}, S, set()),
        ({"enum": ["a", 1]}, S, {"TYPE_CHANGED"}),
        (S, {"enum": ["a"]}, {"TYPE_NARROWED"}),
        # numeric bounds
        ({"type": "number", "maximum": 10}, {"type": "number", "maximum": 20}, set()),
        ({"type": "number", "maximum": 10}, {"type": "number", "maximum": 5}, {"MAXIMUM_DECREASED"}),
        ({"type": "number", "minimum": 0}, {"type": "number", "minimum": 1}, {"MINIMUM_INCREASED"}),
        ({"type": "number"}, {"type": "number", "exclusiveMaximum": 1}, {"EXCLUSIVE_MAXIMUM_ADDED"}),
        ({"type": "number", "multipleOf": 4}, {"type": "number", "multipleOf": 2}, set()),
        ({"type": "number", "multipleOf": 2}, {"type": "number", "multipleOf": 4}, {"MULTIPLE_OF_EXPANDED"}),
        ({"type": "number", "multipleOf": 2}, {"type": "number", "multipleOf": 3}, {"MULTIPLE_OF_CHANGED"}),
        # string bounds
        ({"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 9}, set()),
        ({"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 3}, {"MAX_LENGTH_DECREASED"}),
        ({"type": "string"}, {"type": "string", "minLength": 2}, {"MIN_LENGTH_ADDED"}),
        ({"type": "string", "minLength": 2}, {"type": "string"}, set()),
        ({"type": "string"}, {"type": "string", "pattern": "^a"}, {"PATTERN_ADDED"}),
        ({"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "^b"}, {"PATTERN_CHANGED"}),
        # arrays
        ({"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": N}, set()),
        ({"type": "array", "items": N}, {"type": "array", "items": S}, {"TYPE_CHANGED"}),
        ({"type": "array", "maxItems": 3}, {"type": "array", "maxItems": 2}, {"MAX_ITEMS_DECREASED"}),
        ({"type": "array"}, {"type": "array", "uniqueItems": True}, {"UNIQUE_ITEMS_ADDED"}),
        (
            {"type": "array", "items": [S, N], "additionalItems": False},
            {"type": "array", "items": [S, N, S], "additionalItems": False},
            set(),
        ),
        (
            {"type": "array", "items": [S, N]},
            {"type": "array", "items": [S, N, S]},
            {"ITEM_ADDED_TO_OPEN_CONTENT_MODEL"},
        ),
        (
            {"type": "array", "items": [S, N], "additionalItems": False},
            {"type": "array", "items": [S], "additionalItems": False},
            {"ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL"},
        ),
        # combinators
        ({"anyOf": [S, N]}, {"anyOf": [S, N, {"type": "boolean"}]}, set()),
        ({"anyOf": [S, N]}, {"anyOf": [S]}, {"TYPE_CHANGED"}),
        ({"allOf": [S, {"maxLength": 3}]}, {"allOf": [S]}, set()),
        ({"allOf": [S]}, {"allOf": [S, {"maxLength": 3}]}, {"MAX_LENGTH_ADDED"}),
        ({"not": S}, {"not": {"enum": ["x"]}}, set()),
        ({"not": {"enum": ["x"]}}, {"not": S}, {"NOT_TYPE_EXTENDED"}),
    ],
)
def test_backward_rules(old: Any, new: Any, expected: set[str]) -> None:
    assert incompatible_kinds(old, new) == expected


def test_compatible_changes_are_reported_too_but_do_not_count() -> None:
    old = obj({"a": S, "b": S}, ["a", "b"])
    new = obj({"a": S, "b": NULLABLE_S, "c": NULLABLE_S}, ["a"])
    found = changes(old, new)
    assert {c.kind for c in found} == {
        "REQUIRED_ATTRIBUTE_REMOVED",
        "SUM_TYPE_EXTENDED",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    }
    assert all(c.compatible for c in found)


def test_descriptions_name_the_property_and_the_path() -> None:
    old = obj({"weight_kg": N}, ["weight_kg"])
    new = obj({"weight_kg": S}, ["weight_kg"])
    (change,) = [c for c in changes(old, new) if not c.compatible]
    assert change.path == "#/properties/weight_kg"
    assert "number in the old schema but string in the new schema" in change.description


def test_recursive_schemas_terminate() -> None:
    def tree(leaf: Any) -> dict[str, Any]:
        return {
            "$defs": {
                "node": {"type": "object", "properties": {"value": leaf, "next": {"$ref": "#/$defs/node"}}}
            },
            "$ref": "#/$defs/node",
        }

    assert incompatible_kinds(tree({"type": "integer"}), tree(N)) == set()
    assert incompatible_kinds(tree(N), tree(S)) == {"TYPE_CHANGED"}


def test_references_resolve_by_name() -> None:
    address = '{"type": "object", "properties": {"city": {"type": "string"}}}'
    ref = SchemaReference("address.json", "address-value", 1)
    customer = '{"type": "object", "properties": {"home": {"$ref": "address.json"}}}'
    parsed = parse_schema(
        SchemaType.JSON, customer, [ref], [Dependency("address.json", SchemaType.JSON, address)]
    )
    other = parse_schema(
        SchemaType.JSON,
        customer,
        [ref],
        [
            Dependency(
                "address.json",
                SchemaType.JSON,
                '{"type": "object", "properties": {"city": {"type": "integer"}}}',
            )
        ],
    )
    found = {
        c.kind for c in other.changes_from(parsed, reader_role="new", writer_role="old") if not c.compatible
    }
    assert found == {"TYPE_CHANGED"}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "objekt"}', "type"),
        ('{"type": "object", "properties": 3}', "properties"),
        ('{"$ref": "elsewhere.json"}', "cannot resolve"),
        ("[1, 2]", "must be an object or a boolean"),
    ],
)
def test_malformed_json_schemas_are_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidSchemaError, match=why):
        parse_schema(SchemaType.JSON, text)


def test_canonical_form_ignores_key_order() -> None:
    a = parse_schema(SchemaType.JSON, '{"type": "object", "properties": {"a": {"type": "string"}}}')
    b = parse_schema(SchemaType.JSON, '{"properties":{"a":{"type":"string"}},"type":"object"}')
    assert a.fingerprint == b.fingerprint
    assert a.text == '{"type":"object","properties":{"a":{"type":"string"}}}'
