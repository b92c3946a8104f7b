"""Where source columns go in a silver table, and the schema changes that needs — no I/O."""

from __future__ import annotations

from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType, StringType

from shopops.lake.evolution import METADATA, ColumnResolver, resolve_all

BASE = {name: kind for name, kind in METADATA}


def test_a_new_table_gets_its_key_columns_then_optional_columns() -> None:
    targets, evolution = resolve_all(
        BASE, [("order_id", StringType())], [("status", StringType()), ("n", IntegerType())], empty=True
    )
    assert targets == {
        ("order_id", StringType()): "order_id",
        ("status", StringType()): "status",
        ("n", IntegerType()): "n",
    }
    assert evolution.keys == [("order_id", StringType())]
    assert evolution.add == [("status", StringType()), ("n", IntegerType())]
    assert not evolution.widen


def test_same_narrower_and_promotable_types_stay_in_their_column() -> None:
    columns = {**BASE, "n": IntegerType(), "x": DoubleType(), "f": FloatType()}
    resolver = ColumnResolver(columns, empty=False)
    assert resolver.column("n", IntegerType()) == "n"
    assert resolver.column("x", FloatType()) == "x"  # narrower: widened on write
    assert resolver.column("n", LongType()) == "n"  # promoted in place
    assert resolver.column("f", DoubleType()) == "f"
    assert resolver.evolution.widen == [("n", LongType()), ("f", DoubleType())]
    assert not resolver.evolution.add


def test_an_incompatible_type_change_gets_a_versioned_column_and_keeps_the_old_one() -> None:
    columns = {**BASE, "weight_kg": DoubleType()}
    resolver = ColumnResolver(columns, empty=False)
    assert resolver.column("weight_kg", StringType()) == "weight_kg__v2"
    assert resolver.column("weight_kg", DoubleType()) == "weight_kg"  # old events still land there
    assert resolver.column("weight_kg", StringType()) == "weight_kg__v2"
    # Iceberg does not promote int to double: another version.
    assert resolver.column("weight_kg", IntegerType()) == "weight_kg__v3"
    assert resolver.evolution.add == [("weight_kg__v2", StringType()), ("weight_kg__v3", IntegerType())]


def test_renamed_and_metadata_named_columns() -> None:
    columns = {**BASE, "phone": StringType()}
    resolver = ColumnResolver(columns, empty=False)
    assert resolver.column("phone_number", StringType()) == "phone_number"  # a rename arrives as a new name
    assert resolver.column("_op", StringType()) == "_op__v2"  # never a metadata column
    assert resolver.key("customer_id", StringType()) == "customer_id"
    assert ("customer_id", StringType()) in resolver.evolution.add  # not empty: added as optional
