"""JSON Schema: validated with ``jsonschema``, references resolved with ``referencing``.

Compatibility. No maintained library decides whether one JSON Schema accepts everything another
accepts (``jsonsubschema`` is a 0.0.x research prototype that answers yes or no, without reasons,
for draft 4 only), so the rules are written here, after the ones the Confluent registry documents
and names (``io.confluent.kafka.schemaregistry.json.diff``):

- the *writer* schema (the one data was written with) is compared with the *reader* schema (the
  one reading it); the reader must accept every document the writer accepts;
- objects follow the open/closed content model: ``additionalProperties`` absent or ``true`` is
  open, ``false`` is closed, a schema (or ``patternProperties``) is partially open. Adding a
  property is compatible only if the writer's content model could not have produced something the
  new property rejects (closed writer, or a covering partial model); removing one only if the
  reader's model still accepts it (open reader, or a covering partial model);
- ``required`` may lose names, not gain them (unless the new required property has a default);
- types may widen (integer → number, a type → a union containing it), not narrow or change;
- enums may gain values, not lose them; numeric bounds (``minimum``, ``maximum``, exclusive
  bounds, ``multipleOf``), string bounds (``minLength``, ``maxLength``, ``pattern``), array bounds
  (``minItems``, ``maxItems``, ``uniqueItems``, tuple items, ``additionalItems``) and object bounds
  (``minProperties``, ``maxProperties``, dependencies) may relax, not tighten;
- ``anyOf``/``oneOf`` (sum types) may gain alternatives; each writer alternative must be read by
  some reader alternative. ``allOf`` (product types) may lose members, not gain them. ``not`` is
  compared the other way round. ``$ref`` is followed, recursive schemas included.

Each difference is reported with Confluent's name for it (``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_
MODEL``, ``TYPE_CHANGED``, …), its JSON path and a sentence; compatible ones are kept for ``diff``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import orjson
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from jsonschema.validators import Draft7Validator, validator_for  # type: ignore[import-untyped]

from shopops.schemas.errors import InvalidSchemaError
from shopops.schemas.formats.base import Change, Dependency, ParsedSchema, SchemaFormat
from shopops.schemas.model import SchemaReference, SchemaType

if TYPE_CHECKING:
    # ``referencing`` exports its resolver type only from its core module.
    from referencing._core import Resolver

_DRAFT7 = referencing.jsonschema.DRAFT7
#: Schemas without ``$schema`` are draft 7, as in the Confluent registry.
_DEFAULT_DIALECT = "http://json-schema.org/draft-07/schema#"
#: Drafts where keywords beside ``$ref`` are ignored.
_REF_OVERRIDES = {
    "http://json-schema.org/draft-04/schema",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-07/schema",
}

# --- the normalised model ------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """A schema in normal form. Identity matters (recursion guard), so nodes are not compared by value."""

    title: Any = None
    description: Any = None
    default: Any = None
    has_default: bool = False


@dataclass(eq=False)
class AnyNode(Node):
    """``true`` or ``{}``: accepts every document."""


@dataclass(eq=False)
class NothingNode(Node):
    """``false``: accepts nothing."""


@dataclass(eq=False)
class RefNode(Node):
    """A ``$ref``, filled in once its target is built (so that recursive schemas terminate)."""

    target: Node | None = None


@dataclass(eq=False)
class EnumNode(Node):
    values: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class CombinedNode(Node):
    kind: str = "anyOf"  # anyOf, oneOf, allOf
    subs: list[Node] = field(default_factory=list)


@dataclass(eq=False)
class NotNode(Node):
    sub: Node = field(default_factory=AnyNode)


@dataclass(eq=False)
class TypeNode(Node):
    """One JSON type and the keywords that constrain it."""

    json_type: str = "object"  # object, array, string, number, integer, boolean, null
    # object
    properties: dict[str, Node] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    additional: bool | Node = True
    pattern_properties: dict[str, Node] = field(default_factory=dict)
    min_properties: int | None = None
    max_properties: int | None = None
    dependent_required: dict[str, set[str]] = field(default_factory=dict)
    dependent_schemas: dict[str, Node] = field(default_factory=dict)
    # array: positional items, then ``additional_items`` for the rest (``items: S`` is ([], S))
    tuple_items: list[Node] = field(default_factory=list)
    additional_items: bool | Node = True
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool = False
    # string
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    # number / integer
    minimum: Fraction | None = None
    maximum: Fraction | None = None
    exclusive_minimum: Fraction | None = None
    exclusive_maximum: Fraction | None = None
    multiple_of: Fraction | None = None


_OBJECT_KEYWORDS = (
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "minProperties",
    "maxProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
)
_ARRAY_KEYWORDS = ("items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems")
_STRING_KEYWORDS = ("minLength", "maxLength", "pattern")
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_JSON_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")


def _number(value: Any) -> Fraction | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


class _Builder:
    """Turns a schema document into :class:`Node` trees, following ``$ref`` through ``referencing``."""

    def __init__(self, dialect: str) -> None:
        self._ref_overrides = dialect.rstrip("#") in _REF_OVERRIDES
        self._memo: dict[int, RefNode] = {}

    def build(self, schema: Any, resolver: Resolver[Any]) -> Node:
        if schema is True:
            return AnyNode()
        if schema is False:
            return NothingNode()
        if not isinstance(schema, dict):
            raise InvalidSchemaError(
                f"Invalid schema: a subschema must be an object or a boolean, got {schema!r}"
            )
        if "$id" in schema and isinstance(schema["$id"], str):
            resolver = resolver.in_subresource(_DRAFT7.create_resource(schema))
        parts: list[Node] = []
        if "$ref" in schema:
            parts.append(self._ref(schema["$ref"], resolver))
            if self._ref_overrides:
                return parts[0]
        if "enum" in schema and isinstance(schema["enum"], list):
            parts.append(EnumNode(values=list(schema["enum"])))
        elif "const" in schema:
            parts.append(EnumNode(values=[schema["const"]]))
        else:
            typed = self._typed(schema, resolver)
            if typed is not None:
                parts.append(typed)
        for kind in ("allOf", "anyOf", "oneOf"):
            subs = schema.get(kind)
            if isinstance(subs, list) and subs:
                parts.append(CombinedNode(kind=kind, subs=[self.build(s, resolver) for s in subs]))
        if "not" in schema:
            parts.append(NotNode(sub=self.build(schema["not"], resolver)))
        if not parts:
            node: Node = AnyNode()
        elif len(parts) == 1:
            node = parts[0]
        else:
            node = CombinedNode(kind="allOf", subs=parts)
        if not isinstance(node, RefNode):
            node.title = schema.get("title")
            node.description = schema.get("description")
            node.has_default = "default" in schema
            node.default = schema.get("default")
        return node

    def _ref(self, ref: Any, resolver: Resolver[Any]) -> Node:
        if not isinstance(ref, str):
            raise InvalidSchemaError(f"Invalid schema: $ref must be a string, got {ref!r}")
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            raise InvalidSchemaError(
                f"Invalid schema: cannot resolve $ref {ref!r} ({exc}); a reference to another subject "
                "needs an entry in 'references' whose name is the $ref"
            ) from None
        key = id(resolved.contents)
        node = self._memo.get(key)
        if node is None:
            node = self._memo[key] = RefNode()
            node.target = self.build(resolved.contents, resolved.resolver)
        return node

    def _typed(self, schema: dict[str, Any], resolver: Resolver[Any]) -> Node | None:
        declared = schema.get("type")
        if declared is None:
            types = [
                name
                for name, keywords in (
                    ("object", _OBJECT_KEYWORDS),
                    ("array", _ARRAY_KEYWORDS),
                    ("string", _STRING_KEYWORDS),
                    ("number", _NUMBER_KEYWORDS),
                )
                if any(k in schema for k in keywords)
            ]
            if not types:
                return None
        else:
            types = [declared] if isinstance(declared, str) else list(declared)
        if "number" in types and "integer" in types:
            types.remove("integer")
        nodes: list[Node] = [self._type_node(t, schema, resolver) for t in types if t in _JSON_TYPES]
        if not nodes:
            return NothingNode()
        return nodes[0] if len(nodes) == 1 else CombinedNode(kind="anyOf", subs=nodes)

    def _type_node(self, json_type: str, s: dict[str, Any], resolver: Resolver[Any]) -> TypeNode:
        node = TypeNode(json_type=json_type)
        if json_type == "object":
            props = s.get("properties") or {}
            node.properties = {name: self.build(sub, resolver) for name, sub in props.items()}
            node.required = set(s.get("required") or [])
            node.additional = self._open(s.get("additionalProperties", True), resolver)
            node.pattern_properties = {
                pattern: self.build(sub, resolver)
                for pattern, sub in (s.get("patternProperties") or {}).items()
            }
            node.min_properties = s.get("minProperties")
            node.max_properties = s.get("maxProperties")
            deps = dict(s.get("dependencies") or {})
            deps.update(s.get("dependentRequired") or {})
            for name, dep in deps.items():
                if isinstance(dep, list):
                    node.dependent_required[name] = set(dep)
                else:
                    node.dependent_schemas[name] = self.build(dep, resolver)
            for name, dep in (s.get("dependentSchemas") or {}).items():
                node.dependent_schemas[name] = self.build(dep, resolver)
        elif json_type == "array":
            items = s.get("items")
            if "prefixItems" in s:
                node.tuple_items = [self.build(x, resolver) for x in s["prefixItems"]]
                node.additional_items = self._open(items if items is not None else True, resolver)
            elif isinstance(items, list):
                node.tuple_items = [self.build(x, resolver) for x in items]
                node.additional_items = self._open(s.get("additionalItems", True), resolver)
            else:
                node.additional_items = self._open(items if items is not None else True, resolver)
            node.min_items = s.get("minItems")
            node.max_items = s.get("maxItems")
            node.unique_items = bool(s.get("uniqueItems", False))
        elif json_type == "string":
            node.min_length = s.get("minLength")
            node.max_length = s.get("maxLength")
            node.pattern = s.get("pattern")
        elif json_type in ("number", "integer"):
            node.minimum = _number(s.get("minimum"))
            node.maximum = _number(s.get("maximum"))
            # Draft 4 writes exclusive bounds as booleans beside minimum/maximum.
            if s.get("exclusiveMinimum") is True:
                node.exclusive_minimum, node.minimum = node.minimum, None
            else:
                node.exclusive_minimum = _number(s.get("exclusiveMinimum"))
            if s.get("exclusiveMaximum") is True:
                node.exclusive_maximum, node.maximum = node.maximum, None
            else:
                node.exclusive_maximum = _number(s.get("exclusiveMaximum"))
            node.multiple_of = _number(s.get("multipleOf"))
        return node

    def _open(self, value: Any, resolver: Resolver[Any]) -> bool | Node:
        if value is True or value == {}:
            return True
        if value is False:
            return False
        return self.build(value, resolver)


# --- comparison ----------------------------------------------------------------------------------

_COMPATIBLE = frozenset(
    {
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REDUCED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "DEPENDENCY_ARRAY_NARROWED",
        "DEPENDENCY_ARRAY_REMOVED",
        "DEPENDENCY_SCHEMA_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ADDITIONAL_ITEMS_ADDED",
        "ADDITIONAL_ITEMS_EXTENDED",
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
        "NOT_TYPE_NARROWED",
    }
)


def _deref(node: Node) -> Node:
    seen = 0
    while isinstance(node, RefNode):
        assert node.target is not None
        node = node.target
        seen += 1
        if seen > 1000:  # a $ref chain that never reaches a schema: treat as unconstrained
            return AnyNode()
    return node


def _describe_node(node: Node) -> str:
    node = _deref(node)
    if isinstance(node, AnyNode):
        return "any value"
    if isinstance(node, NothingNode):
        return "no value"
    if isinstance(node, EnumNode):
        return "one of " + ", ".join(orjson.dumps(v).decode() for v in node.values[:8])
    if isinstance(node, NotNode):
        return f"not ({_describe_node(node.sub)})"
    if isinstance(node, CombinedNode):
        joiner = " and " if node.kind == "allOf" else " or "
        return "(" + joiner.join(_describe_node(s) for s in node.subs) + ")"
    assert isinstance(node, TypeNode)
    return node.json_type


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _accepts_value(node: Node, value: Any) -> bool:
    """Whether ``node`` accepts the JSON value ``value`` (for enums compared with typed schemas)."""
    node = _deref(node)
    if isinstance(node, AnyNode):
        return True
    if isinstance(node, NothingNode):
        return False
    if isinstance(node, EnumNode):
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        return any(orjson.dumps(v, option=orjson.OPT_SORT_KEYS) == encoded for v in node.values)
    if isinstance(node, NotNode):
        return not _accepts_value(node.sub, value)
    if isinstance(node, CombinedNode):
        results = [_accepts_value(s, value) for s in node.subs]
        if node.kind == "allOf":
            return all(results)
        return sum(results) == 1 if node.kind == "oneOf" else any(results)
    assert isinstance(node, TypeNode)
    kind = _json_type(value)
    if not (kind == node.json_type or (node.json_type == "number" and kind == "integer")):
        return False
    if kind == "string":
        if node.min_length is not None and len(value) < node.min_length:
            return False
        if node.max_length is not None and len(value) > node.max_length:
            return False
        return node.pattern is None or re.search(node.pattern, value) is not None
    if kind in ("number", "integer"):
        number = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
        return not (
            (node.minimum is not None and number < node.minimum)
            or (node.maximum is not None and number > node.maximum)
            or (node.exclusive_minimum is not None and number <= node.exclusive_minimum)
            or (node.exclusive_maximum is not None and number >= node.exclusive_maximum)
            or (node.multiple_of is not None and number % node.multiple_of != 0)
        )
    return True


class _Diff:
    """Collects the differences of a writer node read by a reader node."""

    def __init__(self, reader: str, writer: str) -> None:
        self.reader = reader
        self.writer = writer
        self.changes: list[Change] = []
        self._visiting: set[tuple[int, int]] = set()

    def add(self, kind: str, path: str, text: str) -> None:
        self.changes.append(Change(kind, path, text, compatible=kind in _COMPATIBLE))

    @contextmanager
    def trial(self) -> Iterator[list[Change]]:
        """Collect into a fresh list (to try an alternative), restoring the outer list afterwards."""
        outer = self.changes
        self.changes = []
        try:
            yield self.changes
        finally:
            self.changes = outer

    def compatible_with(self, writer: Node, reader: Node, path: str) -> tuple[bool, list[Change]]:
        with self.trial() as found:
            self.compare(writer, reader, path)
        return all(c.compatible for c in found), found

    # -- the walk --

    def compare(self, writer: Node, reader: Node, path: str) -> None:
        w, r = _deref(writer), _deref(reader)
        key = (id(w), id(r))
        if key in self._visiting:  # a recursive schema met again: assume what is being proven
            return
        self._visiting.add(key)
        try:
            self._compare(w, r, path)
        finally:
            self._visiting.discard(key)

    def _compare(self, w: Node, r: Node, path: str) -> None:
        self._annotations(w, r, path)
        if isinstance(r, AnyNode) or isinstance(w, NothingNode):
            return
        if isinstance(r, NothingNode):
            self.add("TYPE_NARROWED", path, f"At '{path}' the {self.reader} accepts no value at all")
            return
        if isinstance(w, AnyNode):
            self.add(
                "TYPE_NARROWED",
                path,
                f"At '{path}' the {self.writer} accepts any value but the {self.reader} only "
                f"{_describe_node(r)}",
            )
            return
        if isinstance(w, CombinedNode) and w.kind in ("anyOf", "oneOf"):
            self._writer_sum(w, r, path)
            return
        if isinstance(r, CombinedNode):
            self._reader_combined(w, r, path)
            return
        if isinstance(w, CombinedNode):  # allOf writer, plain reader
            self._writer_product(w, r, path)
            return
        if isinstance(w, NotNode) or isinstance(r, NotNode):
            self._not(w, r, path)
            return
        if isinstance(w, EnumNode) or isinstance(r, EnumNode):
            self._enum(w, r, path)
            return
        assert isinstance(w, TypeNode)
        assert isinstance(r, TypeNode)
        if w.json_type != r.json_type:
            if w.json_type == "integer" and r.json_type == "number":
                self.add("TYPE_EXTENDED", path, f"At '{path}' the type widens from integer to number")
                self._number(w, r, path)
            elif w.json_type == "number" and r.json_type == "integer":
                self.add(
                    "TYPE_NARROWED",
                    path,
                    f"At '{path}' the {self.writer} writes numbers but the {self.reader} accepts only "
                    "integers",
                )
            else:
                self.add(
                    "TYPE_CHANGED",
                    path,
                    f"The type at '{path}' is {w.json_type} in the {self.writer} but {r.json_type} in the "
                    f"{self.reader}",
                )
            return
        if w.json_type == "object":
            self._object(w, r, path)
        elif w.json_type == "array":
            self._array(w, r, path)
        elif w.json_type == "string":
            self._string(w, r, path)
        elif w.json_type in ("number", "integer"):
            self._number(w, r, path)

    def _annotations(self, w: Node, r: Node, path: str) -> None:
        for kind, attribute in (("TITLE_CHANGED", "title"), ("DESCRIPTION_CHANGED", "description")):
            if getattr(w, attribute) != getattr(r, attribute):
                self.add(kind, path, f"The {attribute} at '{path}' changed")
        if (w.has_default, w.default) != (r.has_default, r.default):
            self.add("DEFAULT_CHANGED", path, f"The default at '{path}' changed")

    # -- combined schemas --

    def _writer_sum(self, w: CombinedNode, r: Node, path: str) -> None:
        # Every alternative the writer may use must be read by the reader. Matching a writer
        # alternative to a reader alternative is no widening by itself, so that note is dropped.
        for sub in w.subs:
            _, found = self.compatible_with(sub, r, path)
            self.changes.extend(c for c in found if not (c.kind == "SUM_TYPE_EXTENDED" and c.path == path))
        rr = _deref(r)
        if isinstance(rr, CombinedNode) and rr.kind in ("anyOf", "oneOf") and len(rr.subs) > len(w.subs):
            self.add(
                "SUM_TYPE_EXTENDED",
                path,
                f"At '{path}' the {self.reader} allows more alternatives ({len(rr.subs)}) than the "
                f"{self.writer} ({len(w.subs)})",
            )

    def _reader_combined(self, w: Node, r: CombinedNode, path: str) -> None:
        if r.kind == "allOf":
            for i, sub in enumerate(r.subs):
                self.compare(w, sub, f"{path}/allOf/{i}")
            return
        attempts: list[list[Change]] = []
        for sub in r.subs:
            ok, found = self.compatible_with(w, sub, path)
            if ok:
                self.changes.extend(found)
                if len(r.subs) > 1:
                    self.add(
                        "SUM_TYPE_EXTENDED",
                        path,
                        f"At '{path}' the {self.writer}'s {_describe_node(w)} became one of the "
                        f"{self.reader}'s alternatives {_describe_node(r)}",
                    )
                return
            attempts.append(found)
        # No alternative reads it: explain with the alternative of the same type, if there is one.
        same = self._same_kind(w, r.subs)
        if same is not None:
            self.changes.extend(attempts[same])
        else:
            self.add(
                "TYPE_CHANGED",
                path,
                f"At '{path}' the {self.writer}'s {_describe_node(w)} is accepted by none of the "
                f"{self.reader}'s alternatives {_describe_node(r)}",
            )

    def _writer_product(self, w: CombinedNode, r: Node, path: str) -> None:
        attempts: list[list[Change]] = []
        for sub in w.subs:
            ok, found = self.compatible_with(sub, r, path)
            if ok:
                self.changes.extend(found)
                self.add(
                    "PRODUCT_TYPE_NARROWED",
                    path,
                    f"At '{path}' the {self.reader} keeps fewer of the {self.writer}'s allOf members",
                )
                return
            attempts.append(found)
        same = self._same_kind(r, w.subs)
        if same is not None:
            self.changes.extend(attempts[same])
        else:
            self.add(
                "TYPE_CHANGED",
                path,
                f"At '{path}' the {self.reader}'s {_describe_node(r)} does not accept the {self.writer}'s "
                f"{_describe_node(w)}",
            )

    @staticmethod
    def _same_kind(node: Node, candidates: Sequence[Node]) -> int | None:
        target = _deref(node)
        for i, candidate in enumerate(candidates):
            c = _deref(candidate)
            if type(c) is type(target) and (
                not isinstance(c, TypeNode)
                or (isinstance(target, TypeNode) and c.json_type == target.json_type)
            ):
                return i
        return None

    def _not(self, w: Node, r: Node, path: str) -> None:
        if isinstance(w, NotNode) and isinstance(r, NotNode):
            # not A ⊆ not B  ⇔  B ⊆ A: the reader's excluded set must lie inside the writer's.
            ok, _ = self.compatible_with(r.sub, w.sub, f"{path}/not")
            if ok:
                self.add("NOT_TYPE_NARROWED", path, f"At '{path}' the {self.reader} excludes less")
            else:
                self.add(
                    "NOT_TYPE_EXTENDED",
                    path,
                    f"At '{path}' the {self.reader} excludes values ({_describe_node(r.sub)}) the "
                    f"{self.writer} may write",
                )
            return
        self.add(
            "TYPE_CHANGED",
            path,
            f"The schema at '{path}' is {_describe_node(w)} in the {self.writer} but {_describe_node(r)} "
            f"in the {self.reader}",
        )

    def _enum(self, w: Node, r: Node, path: str) -> None:
        if isinstance(w, EnumNode) and isinstance(r, EnumNode):
            wv = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in w.values}
            rv = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in r.values}
            if wv == rv:
                return
            missing = ", ".join(sorted(v.decode() for v in wv - rv))
            if rv > wv:
                self.add("ENUM_ARRAY_EXTENDED", path, f"The enum at '{path}' gained values")
            elif rv < wv:
                self.add(
                    "ENUM_ARRAY_NARROWED",
                    path,
                    f"The enum at '{path}' of the {self.reader} lacks {missing}, which the "
                    f"{self.writer} may write",
                )
            else:
                self.add(
                    "ENUM_ARRAY_CHANGED",
                    path,
                    f"The enum at '{path}' of the {self.reader} lacks {missing}, which the "
                    f"{self.writer} may write",
                )
            return
        if isinstance(w, EnumNode):
            rejected = [v for v in w.values if not _accepts_value(r, v)]
            if rejected:
                values = ", ".join(orjson.dumps(v).decode() for v in rejected[:8])
                self.add(
                    "TYPE_CHANGED",
                    path,
                    f"At '{path}' the {self.reader} ({_describe_node(r)}) rejects the {self.writer}'s enum "
                    f"values {values}",
                )
            return
        assert isinstance(r, EnumNode)
        wt = _deref(w)
        if isinstance(wt, TypeNode) and (
            (wt.json_type == "null" and _accepts_value(r, None))
            or (wt.json_type == "boolean" and _accepts_value(r, True) and _accepts_value(r, False))
        ):
            return
        self.add(
            "TYPE_NARROWED",
            path,
            f"At '{path}' the {self.writer} writes any {_describe_node(w)} but the {self.reader} accepts "
            f"only {_describe_node(r)}",
        )

    # -- bounds --

    def _bound(self, name: str, w: Any, r: Any, path: str, *, upper: bool) -> None:
        """A limit that relaxes when it grows (``upper``, e.g. maxLength) or when it shrinks."""
        if w == r:
            return
        keyword = path.rsplit("/", 1)[-1]
        if w is None:
            self.add(f"{name}_ADDED", path, f"The {self.reader} adds {keyword} {r} at '{path}'")
        elif r is None:
            self.add(f"{name}_REMOVED", path, f"The {self.reader} drops {keyword} ({w}) at '{path}'")
        elif (r > w) == upper:
            self.add(
                f"{name}_INCREASED" if upper else f"{name}_DECREASED",
                path,
                f"{keyword} at '{path}' relaxes from {w} to {r}",
            )
        else:
            self.add(
                f"{name}_DECREASED" if upper else f"{name}_INCREASED",
                path,
                f"{keyword} at '{path}' tightens from {w} in the {self.writer} to {r} in the {self.reader}",
            )

    def _string(self, w: TypeNode, r: TypeNode, path: str) -> None:
        self._bound("MAX_LENGTH", w.max_length, r.max_length, f"{path}/maxLength", upper=True)
        self._bound("MIN_LENGTH", w.min_length, r.min_length, f"{path}/minLength", upper=False)
        if w.pattern != r.pattern:
            p = f"{path}/pattern"
            if w.pattern is None:
                self.add("PATTERN_ADDED", p, f"The {self.reader} adds the pattern {r.pattern!r} at '{p}'")
            elif r.pattern is None:
                self.add("PATTERN_REMOVED", p, f"The {self.reader} drops the pattern at '{p}'")
            else:
                self.add(
                    "PATTERN_CHANGED", p, f"The pattern at '{p}' changed from {w.pattern!r} to {r.pattern!r}"
                )

    def _number(self, w: TypeNode, r: TypeNode, path: str) -> None:
        def show(value: Fraction | None) -> Any:
            if value is None:
                return None
            return value.numerator if value.denominator == 1 else float(value)

        self._bound("MAXIMUM", show(w.maximum), show(r.maximum), f"{path}/maximum", upper=True)
        self._bound("MINIMUM", show(w.minimum), show(r.minimum), f"{path}/minimum", upper=False)
        self._bound(
            "EXCLUSIVE_MAXIMUM",
            show(w.exclusive_maximum),
            show(r.exclusive_maximum),
            f"{path}/exclusiveMaximum",
            upper=True,
        )
        self._bound(
            "EXCLUSIVE_MINIMUM",
            show(w.exclusive_minimum),
            show(r.exclusive_minimum),
            f"{path}/exclusiveMinimum",
            upper=False,
        )
        if w.multiple_of != r.multiple_of:
            p = f"{path}/multipleOf"
            if w.multiple_of is None:
                self.add(
                    "MULTIPLE_OF_ADDED",
                    p,
                    f"The {self.reader} adds multipleOf {show(r.multiple_of)} at '{p}'",
                )
            elif r.multiple_of is None:
                self.add("MULTIPLE_OF_REMOVED", p, f"The {self.reader} drops multipleOf at '{p}'")
            elif w.multiple_of % r.multiple_of == 0:
                self.add("MULTIPLE_OF_REDUCED", p, f"multipleOf at '{p}' relaxes to {show(r.multiple_of)}")
            elif r.multiple_of % w.multiple_of == 0:
                self.add(
                    "MULTIPLE_OF_EXPANDED",
                    p,
                    f"multipleOf at '{p}' tightens from {show(w.multiple_of)} to {show(r.multiple_of)}",
                )
            else:
                self.add(
                    "MULTIPLE_OF_CHANGED",
                    p,
                    f"multipleOf at '{p}' changes from {show(w.multiple_of)} to {show(r.multiple_of)}",
                )

    # -- objects --

    @staticmethod
    def _cover(node: TypeNode, name: str) -> bool | Node:
        """What ``node``'s content model says about an undeclared property ``name``:
        ``True`` (anything), ``False`` (rejected), or the schema it must match."""
        matching = [sub for pattern, sub in node.pattern_properties.items() if re.search(pattern, name)]
        if matching:
            return matching[0] if len(matching) == 1 else CombinedNode(kind="allOf", subs=matching)
        return node.additional

    def _object(self, w: TypeNode, r: TypeNode, path: str) -> None:
        for name in sorted(r.required - w.required):
            if name in w.properties or name not in r.properties:
                p = f"{path}/required/{name}"
                target = r.properties.get(name)
                if target is not None and _deref(target).has_default:
                    self.add(
                        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
                        p,
                        f"'{name}' becomes required (it has a default)",
                    )
                else:
                    self.add(
                        "REQUIRED_ATTRIBUTE_ADDED",
                        p,
                        f"The {self.reader} requires the property '{name}', which the {self.writer} does not "
                        "require",
                    )
        for name in sorted(w.required - r.required):
            self.add(
                "REQUIRED_ATTRIBUTE_REMOVED", f"{path}/required/{name}", f"'{name}' is no longer required"
            )
        for name in sorted(w.properties.keys() | r.properties.keys()):
            p = f"{path}/properties/{name}"
            if name not in r.properties:
                self._property_removed(w, r, name, p)
            elif name not in w.properties:
                self._property_added(w, r, name, p)
            else:
                self.compare(w.properties[name], r.properties[name], p)
        self._open_model(
            "ADDITIONAL_PROPERTIES", w.additional, r.additional, f"{path}/additionalProperties", "properties"
        )
        self._bound("MAX_PROPERTIES", w.max_properties, r.max_properties, f"{path}/maxProperties", upper=True)
        self._bound(
            "MIN_PROPERTIES", w.min_properties, r.min_properties, f"{path}/minProperties", upper=False
        )
        self._dependencies(w, r, f"{path}/dependencies")

    def _property_removed(self, w: TypeNode, r: TypeNode, name: str, p: str) -> None:
        if isinstance(_deref(w.properties[name]), NothingNode):
            self.add(
                "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                p,
                f"'{name}' (never allowed) is removed",
            )
            return
        cover = self._cover(r, name)
        if cover is True:
            self.add(
                "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
                p,
                f"The property '{name}' is removed; the {self.reader}'s open content model still accepts it",
            )
        elif cover is False:
            self.add(
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                p,
                f"The property '{name}' at '{p}' of the {self.writer} is missing in the {self.reader}, whose "
                "closed content model (additionalProperties: false) rejects it",
            )
        else:
            ok, _ = self.compatible_with(w.properties[name], cover, p)
            if ok:
                self.add(
                    "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    p,
                    f"The property '{name}' is removed; the {self.reader}'s additional/pattern properties "
                    "still accept it",
                )
            else:
                self.add(
                    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    p,
                    f"The property '{name}' is removed and the {self.reader}'s additional/pattern properties "
                    f"reject the {self.writer}'s values for it",
                )

    def _property_added(self, w: TypeNode, r: TypeNode, name: str, p: str) -> None:
        added = r.properties[name]
        cover = self._cover(w, name)
        if cover is True:
            if isinstance(_deref(added), AnyNode):
                self.add(
                    "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
                    p,
                    f"The property '{name}' is added with an empty schema",
                )
            else:
                self.add(
                    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                    p,
                    f"The {self.writer} has an open content model and may already write '{name}' with any "
                    f"value, but the {self.reader} constrains it to {_describe_node(added)}; close the "
                    "content model (additionalProperties: false) to add properties compatibly",
                )
        elif cover is False:
            if name in r.required:
                if _deref(added).has_default:
                    self.add(
                        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
                        p,
                        f"The required property '{name}' is added with a default",
                    )
                else:
                    self.add(
                        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                        p,
                        f"The {self.reader} requires the new property '{name}', which the "
                        f"{self.writer} never writes",
                    )
            else:
                self.add(
                    "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                    p,
                    f"The optional property '{name}' is added",
                )
        else:
            ok, _ = self.compatible_with(cover, added, p)
            if ok and name not in r.required:
                self.add(
                    "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    p,
                    f"The property '{name}' is added; the {self.writer}'s additional/pattern "
                    "properties already matched it",
                )
            else:
                self.add(
                    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    p,
                    f"The property '{name}' is added and the {self.writer}'s additional/pattern "
                    f"properties may write values for it the {self.reader} rejects",
                )

    def _open_model(self, name: str, w: bool | Node, r: bool | Node, path: str, what: str) -> None:
        w_open = not (w is False or (isinstance(w, Node) and isinstance(_deref(w), NothingNode)))
        r_open = not (r is False or (isinstance(r, Node) and isinstance(_deref(r), NothingNode)))
        if w_open and not r_open:
            self.add(
                f"{name}_REMOVED",
                path,
                f"The {self.reader} no longer accepts additional {what} at '{path}', which the {self.writer} "
                "allows",
            )
        elif r_open and not w_open:
            self.add(f"{name}_ADDED", path, f"The {self.reader} accepts additional {what} at '{path}'")
        elif w_open and r_open:
            if w is True and isinstance(r, Node):
                self.add(
                    f"{name}_NARROWED",
                    path,
                    f"The {self.reader} constrains additional {what} at '{path}' to {_describe_node(r)}",
                )
            elif isinstance(w, Node) and r is True:
                self.add(
                    f"{name}_EXTENDED", path, f"The {self.reader} accepts any additional {what} at '{path}'"
                )
            elif isinstance(w, Node) and isinstance(r, Node):
                self.compare(w, r, path)

    def _dependencies(self, w: TypeNode, r: TypeNode, path: str) -> None:
        for name in sorted(w.dependent_required.keys() | r.dependent_required.keys()):
            p = f"{path}/{name}"
            wd, rd = w.dependent_required.get(name), r.dependent_required.get(name)
            if rd is None:
                self.add("DEPENDENCY_ARRAY_REMOVED", p, f"The dependency of '{name}' is removed")
            elif wd is None:
                self.add(
                    "DEPENDENCY_ARRAY_ADDED",
                    p,
                    f"The {self.reader} adds a dependency of '{name}' on {sorted(rd)}",
                )
            elif rd < wd:
                self.add("DEPENDENCY_ARRAY_NARROWED", p, f"The dependency of '{name}' needs fewer properties")
            elif rd > wd:
                self.add("DEPENDENCY_ARRAY_EXTENDED", p, f"The dependency of '{name}' needs more properties")
            elif rd != wd:
                self.add("DEPENDENCY_ARRAY_CHANGED", p, f"The dependency of '{name}' changed")
        for name in sorted(w.dependent_schemas.keys() | r.dependent_schemas.keys()):
            p = f"{path}/{name}"
            ws, rs = w.dependent_schemas.get(name), r.dependent_schemas.get(name)
            if rs is None:
                self.add("DEPENDENCY_SCHEMA_REMOVED", p, f"The schema dependency of '{name}' is removed")
            elif ws is None:
                self.add(
                    "DEPENDENCY_SCHEMA_ADDED", p, f"The {self.reader} adds a schema dependency of '{name}'"
                )
            else:
                self.compare(ws, rs, p)

    # -- arrays --

    def _array(self, w: TypeNode, r: TypeNode, path: str) -> None:
        for i in range(max(len(w.tuple_items), len(r.tuple_items))):
            p = f"{path}/items/{i}"
            if i < len(w.tuple_items) and i < len(r.tuple_items):
                self.compare(w.tuple_items[i], r.tuple_items[i], p)
            elif i < len(r.tuple_items):  # a position the reader describes and the writer did not
                self._item_added(w.additional_items, r.tuple_items[i], p)
            else:
                self._item_removed(w.tuple_items[i], r.additional_items, p)
        self._open_model("ADDITIONAL_ITEMS", w.additional_items, r.additional_items, f"{path}/items", "items")
        self._bound("MAX_ITEMS", w.max_items, r.max_items, f"{path}/maxItems", upper=True)
        self._bound("MIN_ITEMS", w.min_items, r.min_items, f"{path}/minItems", upper=False)
        if w.unique_items != r.unique_items:
            if r.unique_items:
                self.add(
                    "UNIQUE_ITEMS_ADDED", f"{path}/uniqueItems", f"The {self.reader} requires unique items"
                )
            else:
                self.add("UNIQUE_ITEMS_REMOVED", f"{path}/uniqueItems", "Items no longer need to be unique")

    def _item_added(self, cover: bool | Node, added: Node, p: str) -> None:
        if cover is False:
            self.add("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", p, f"An item is added at '{p}'")
        elif cover is True:
            if isinstance(_deref(added), AnyNode):
                self.add(
                    "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", p, f"An item is added at '{p}'"
                )
            else:
                self.add(
                    "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
                    p,
                    f"The {self.writer} may write any item at '{p}' but the {self.reader} constrains it to "
                    f"{_describe_node(added)}",
                )
        else:
            ok, _ = self.compatible_with(cover, added, p)
            kind = "ITEM_ADDED_IS_COVERED_BY" if ok else "ITEM_ADDED_NOT_COVERED_BY"
            self.add(f"{kind}_PARTIALLY_OPEN_CONTENT_MODEL", p, f"An item is added at '{p}'")

    def _item_removed(self, removed: Node, cover: bool | Node, p: str) -> None:
        if isinstance(_deref(removed), NothingNode):
            self.add("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", p, f"An item is removed at '{p}'")
        elif cover is True:
            self.add("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", p, f"An item is removed at '{p}'")
        elif cover is False:
            self.add(
                "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                p,
                f"The {self.writer} writes an item at '{p}' that the {self.reader}'s closed array rejects",
            )
        else:
            ok, _ = self.compatible_with(removed, cover, p)
            kind = "ITEM_REMOVED_IS_COVERED_BY" if ok else "ITEM_REMOVED_NOT_COVERED_BY"
            self.add(f"{kind}_PARTIALLY_OPEN_CONTENT_MODEL", p, f"An item is removed at '{p}'")


# --- the format -----------------------------------------------------------------------------------


class JsonSchema(ParsedSchema):
    schema_type = SchemaType.JSON

    def __init__(
        self,
        text: str,
        canonical: str,
        references: Sequence[SchemaReference],
        document: Any,
        root: Node,
    ) -> None:
        super().__init__(text, canonical, references)
        #: The schema document (parsed JSON).
        self.document = document
        self.root = root

    def changes_from(self, writer: ParsedSchema, *, reader_role: str, writer_role: str) -> list[Change]:
        if not isinstance(writer, JsonSchema):
            return [
                Change(
                    "TYPE_CHANGED",
                    "#",
                    f"The {reader_role} is a JSON schema but the {writer_role} is a "
                    f"{writer.schema_type.value} schema",
                )
            ]
        diff = _Diff(reader_role, writer_role)
        diff.compare(writer.root, self.root, "#")
        return diff.changes


class JsonSchemaFormat(SchemaFormat):
    schema_type = SchemaType.JSON

    def parse(
        self, text: str, references: Sequence[SchemaReference] = (), dependencies: Sequence[Dependency] = ()
    ) -> JsonSchema:
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from None
        if not isinstance(document, dict | bool):
            raise InvalidSchemaError("Invalid schema: a JSON schema must be an object or a boolean")
        validator = validator_for(document, default=Draft7Validator)
        try:
            validator.check_schema(document)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "(root)"
            raise InvalidSchemaError(f"Invalid JSON schema at {where}: {exc.message}") from None
        dialect = document.get("$schema") if isinstance(document, dict) else None
        if not isinstance(dialect, str) or not dialect:
            dialect = _DEFAULT_DIALECT
        specification = referencing.jsonschema.specification_with(dialect, default=_DRAFT7)
        root_resource = specification.create_resource(document)
        root_id = document.get("$id") if isinstance(document, dict) else None
        resources: list[tuple[str, referencing.Resource[Any]]] = []
        for dep in dependencies:
            if dep.schema_type is not SchemaType.JSON:
                raise InvalidSchemaError(
                    f"Invalid schema: reference {dep.name!r} is a {dep.schema_type.value} schema, "
                    "a JSON schema can only reference JSON schemas"
                )
            resource = specification.create_resource(orjson.loads(dep.text))
            resources.append((dep.name, resource))
            if isinstance(root_id, str) and root_id:
                # A relative $ref resolves against the root's $id: register the name there too.
                resources.append((urljoin(root_id, dep.name), resource))
        registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
        resolver = registry.resolver_with_root(root_resource)
        try:
            root = _Builder(dialect).build(document, resolver)
        except RecursionError:
            raise InvalidSchemaError("Invalid schema: nested too deeply") from None
        return JsonSchema(
            orjson.dumps(document).decode(),
            orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode(),
            references,
            document,
            root,
        )
