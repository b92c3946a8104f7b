"""The schema-store contract, run against every backend (sqlite and postgres)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from tests.integration.schemas.conftest import StoreFactory

from shopops.schemas.errors import (
    IncompatibleSchemaError,
    ReferenceExistsError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from shopops.schemas.model import NewSchema, SchemaReference, SchemaType, SubjectVersion


def schema(n: int, refs: Sequence[SchemaReference] = ()) -> NewSchema:
    return NewSchema(SchemaType.AVRO, f'{{"type":"fixed","name":"F{n}","size":{n}}}', f"fp-{n}", tuple(refs))


def accept(_: Sequence[SubjectVersion]) -> None:
    """A check that accepts everything."""


def test_ids_are_global_and_the_same_schema_keeps_its_id(store_factory: StoreFactory) -> None:
    store = store_factory()
    first = store.register("a", schema(1), accept)
    assert (first.version, first.created) == (1, True)
    again = store.register("a", schema(1), accept)
    assert (again.id, again.version, again.created) == (first.id, 1, False)
    elsewhere = store.register("b", schema(1), accept)
    assert (elsewhere.id, elsewhere.version, elsewhere.created) == (first.id, 1, True)
    second = store.register("a", schema(2), accept)
    assert second.id != first.id
    assert second.version == 2
    assert store.schema_by_id(first.id) is not None
    assert store.schema_by_id(first.id).text == schema(1).text  # type: ignore[union-attr]
    assert store.schema_usages(first.id) == [("a", 1, False), ("b", 1, False)]
    assert store.subjects() == ["a", "b"]


def test_the_check_sees_live_versions_oldest_first_and_can_refuse(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.register("s", schema(1), accept)
    store.register("s", schema(2), accept)
    seen: list[list[int]] = []

    def refuse(live: Sequence[SubjectVersion]) -> None:
        seen.append([v.version for v in live])
        raise IncompatibleSchemaError("s", ["no"])

    with pytest.raises(IncompatibleSchemaError):
        store.register("s", schema(3), refuse)
    assert seen == [[1, 2]]
    assert [v.version for v in store.versions("s")] == [1, 2]
    assert store.lookup("s", "fp-3") is None


def test_soft_delete_hides_a_version_and_reregistering_makes_a_new_one(store_factory: StoreFactory) -> None:
    store = store_factory()
    one = store.register("s", schema(1), accept)
    store.register("s", schema(2), accept)
    assert store.delete_version("s", 1, permanent=False) == 1
    assert [v.version for v in store.versions("s")] == [2]
    assert [(v.version, v.deleted) for v in store.versions("s", include_deleted=True)] == [
        (1, True),
        (2, False),
    ]
    assert store.lookup("s", "fp-1") is None
    found = store.lookup("s", "fp-1", include_deleted=True)
    assert found is not None
    assert found.deleted
    back = store.register("s", schema(1), accept)
    assert (back.id, back.version, back.created) == (one.id, 3, True)


def test_delete_rules(store_factory: StoreFactory) -> None:
    store = store_factory()
    with pytest.raises(SubjectNotFoundError):
        store.delete_subject("nope", permanent=False)
    with pytest.raises(SubjectNotFoundError):
        store.delete_version("nope", 1, permanent=False)
    store.register("s", schema(1), accept)
    store.register("s", schema(2), accept)
    with pytest.raises(VersionNotFoundError):
        store.delete_version("s", 9, permanent=False)
    with pytest.raises(VersionNotSoftDeletedError):
        store.delete_version("s", 1, permanent=True)
    store.delete_version("s", 1, permanent=False)
    with pytest.raises(VersionSoftDeletedError):
        store.delete_version("s", 1, permanent=False)
    with pytest.raises(SubjectNotSoftDeletedError):
        store.delete_subject("s", permanent=True)
    assert store.delete_subject("s", permanent=False) == [2]
    with pytest.raises(SubjectSoftDeletedError):
        store.delete_subject("s", permanent=False)
    assert store.subjects() == []
    assert store.subjects(include_deleted=True) == ["s"]


def test_permanent_delete_removes_everything_and_ids_are_never_reused(store_factory: StoreFactory) -> None:
    store = store_factory()
    one = store.register("s", schema(1), accept)
    store.set_setting("compatibility", "s", "FULL")
    store.delete_subject("s", permanent=False)
    assert store.delete_subject("s", permanent=True) == [1]
    assert store.schema_by_id(one.id) is None
    assert store.versions("s", include_deleted=True) == []
    assert store.get_setting("compatibility", "s") is None
    two = store.register("s", schema(2), accept)
    assert two.id > one.id
    assert two.version == 1


def test_a_referenced_version_cannot_be_deleted(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.register("address", schema(1), accept)
    user = store.register("user", schema(2, [SchemaReference("Addr", "address", 1)]), accept)
    assert store.referenced_by("address", 1) == [user.id]
    stored = store.schema_by_id(user.id)
    assert stored is not None
    assert stored.references == (SchemaReference("Addr", "address", 1),)
    with pytest.raises(ReferenceExistsError, match="address"):
        store.delete_version("address", 1, permanent=False)
    store.delete_subject("user", permanent=False)
    assert store.referenced_by("address", 1) == []
    assert store.delete_version("address", 1, permanent=False) == 1


def test_settings(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.get_setting("compatibility", None) is None
    store.set_setting("compatibility", None, "FULL")
    store.set_setting("compatibility", None, "NONE")
    store.set_setting("mode", "s", "READONLY")
    assert store.get_setting("compatibility", None) == "NONE"
    assert store.get_setting("mode", "s") == "READONLY"
    assert store.get_setting("mode", None) is None
    assert store.delete_setting("mode", "s") == "READONLY"
    assert store.delete_setting("mode", "s") is None


def test_data_survives_reopening(store_factory: StoreFactory) -> None:
    store = store_factory()
    reg = store.register("s", schema(7), accept)
    store.close()
    reopened = store_factory()
    assert reopened.lookup("s", "fp-7") is not None
    assert reopened.register("s", schema(7), accept).id == reg.id
    reopened.ping()
