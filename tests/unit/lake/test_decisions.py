"""Which events of a batch silver asks the schema registry about, and how a verdict becomes a
decision — no I/O (the registry is a stub)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pyiceberg.types import DoubleType, StringType

from shopops.core.errors import BackendUnavailableError
from shopops.events.debezium import Column, Op, encode_key, encode_value, value_schema
from shopops.events.model import Record
from shopops.lake.changes import ChangeBatch, ChangeDecoder
from shopops.lake.decisions import SchemaDecision, is_declared, shape, undecided
from shopops.lake.evolution import METADATA
from shopops.lake.registry import RegistrySchemaDecisions, refusal_reason
from shopops.schemas.drift import Verdict

TOPIC = "vn.logistics.shipments"
V1 = [Column("shipment_id", "string"), Column("weight_kg", "float64")]
V2 = [Column("shipment_id", "string"), Column("weight_kg", "string")]
TABLE = {**dict(METADATA), "shipment_id": StringType(), "weight_kg": DoubleType()}


def _record(offset: int, op: Op, row: dict[str, Any] | None, columns: list[Column] | None) -> Record:
    schema = orjson.dumps(value_schema(TOPIC, columns)) if columns is not None else None
    key = {"shipment_id": (row or {}).get("shipment_id", "s-1")}
    value = encode_value(op, row if op == Op.DELETE else None, None if op == Op.DELETE else row,
                         {"lsn": offset + 1, "ts_ms": offset}, offset, schema)  # fmt: skip
    return Record(TOPIC, 0, offset, encode_key(key), value, offset)


def _decode(records: list[Record]) -> tuple[ChangeBatch, ChangeDecoder]:
    decoder = ChangeDecoder()
    return decoder.decode(records), decoder


def test_every_event_of_a_declared_schema_the_table_has_not_accepted_is_asked_about_once() -> None:
    records = [
        _record(0, Op.CREATE, {"shipment_id": "s-1", "weight_kg": 1.5}, V1),
        _record(1, Op.UPDATE, {"shipment_id": "s-1", "weight_kg": "2.000"}, V2),
        _record(2, Op.DELETE, {"shipment_id": "s-2", "weight_kg": "3.000"}, V2),
        Record(TOPIC, 0, 3, encode_key({"shipment_id": "s-2"}), None, 3),  # a tombstone: no schema
    ]
    batch, decoder = _decode(records)
    v1, v2 = decoder.schema_keys
    questions = undecided(batch, decoder, TABLE, ["shipment_id"], accepted={v1})
    assert list(questions) == [v2]
    assert questions[v2].events == [1, 2]  # the update and the delete of the new schema
    assert is_declared(v2)
    # Once accepted (e.g. stored with the table), nothing is asked; refused events are left out.
    assert undecided(batch, decoder, TABLE, ["shipment_id"], accepted={v1, v2}) == {}
    assert undecided(batch, decoder, TABLE, ["shipment_id"], accepted={v1}, excluded={1, 2}) == {}
    # A new table has accepted nothing: its first schema is asked about too.
    assert set(undecided(batch, decoder, {}, [], accepted=set(), empty=True)) == {v1, v2}


def test_plain_rows_are_asked_about_only_when_they_bring_a_column_change() -> None:
    fits = {"shipment_id": "s-1", "weight_kg": 1.5}
    added = {"shipment_id": "s-2", "weight_kg": 2.5, "carrier": "ghn"}
    added_null = {"shipment_id": "s-3", "weight_kg": 2.5, "carrier": None}
    retyped = {"shipment_id": "s-4", "weight_kg": "3.000"}
    records = [_record(n, Op.UPDATE, row, None) for n, row in enumerate([fits, added, added_null, retyped])]
    batch, decoder = _decode(records)
    questions = undecided(batch, decoder, TABLE, ["shipment_id"], accepted=set())
    assert {q.identity: q.events for q in questions.values()} == {
        "plain:" + shape(added): [1],  # a new column with a value
        "plain:" + shape(retyped): [3],  # text in a double column: a versioned column
    }
    assert not any(is_declared(identity) for identity in questions)
    assert shape(added) == "shipment_id:string,weight_kg:number,carrier:string"
    # Rows that fit the table as it is need no verdict.
    only_fitting, decoder = _decode(records[:1] + records[2:3])
    with_carrier = {**TABLE, "carrier": StringType()}
    assert undecided(only_fitting, decoder, with_carrier, ["shipment_id"], accepted=()) == {}
    # A plain delete carries no row to judge.
    deleted, decoder = _decode([_record(0, Op.DELETE, added, None)])
    assert undecided(deleted, decoder, TABLE, ["shipment_id"], accepted=()) == {}


class _Gate:
    def __init__(self, verdict: Verdict | Exception) -> None:
        self.verdict = verdict
        self.asked: list[Record] = []

    def check(self, record: Record) -> Verdict:
        self.asked.append(record)
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict


REFUSED = Verdict(
    "quarantine",
    f"{TOPIC}-value",
    1,
    kind="incompatible_schema",
    messages=(
        "{errorType:'TYPE_CHANGED', description:'The type at '#/properties/weight_kg' is number in the "
        "old schema but string in the new schema'}",
        "{oldSchemaVersion: 1}",
        "{validateFields: 'false', compatibility: 'BACKWARD'}",
    ),
)


@pytest.mark.parametrize("outcome", ["pass", "registered"])
def test_a_registered_or_compatible_schema_is_accepted(outcome: Any) -> None:
    gate = _Gate(Verdict(outcome, f"{TOPIC}-value", 2))
    record = _record(0, Op.CREATE, {"shipment_id": "s-1", "weight_kg": 1.5}, V1)
    assert RegistrySchemaDecisions(gate).decide(record) == SchemaDecision(accepted=True)
    assert gate.asked == [record]


def test_a_refused_schema_carries_the_registry_s_reasons_and_level() -> None:
    decision = RegistrySchemaDecisions(_Gate(REFUSED)).decide(
        _record(0, Op.CREATE, {"shipment_id": "s-1", "weight_kg": "1.000"}, V2)
    )
    assert not decision.accepted
    assert decision.reason == (
        f"{TOPIC}-value: incompatible schema under BACKWARD: {{errorType:'TYPE_CHANGED', description:'The "
        "type at '#/properties/weight_kg' is number in the old schema but string in the new schema'}"
    )
    # Without Confluent-style messages: the first reason, and no level.
    bare = Verdict("quarantine", "s-value", kind="registration_refused", messages=("subject is read-only",))
    assert refusal_reason(bare) == "s-value: registration refused: subject is read-only"


def test_an_unreachable_registry_is_raised_not_guessed() -> None:
    gate = _Gate(BackendUnavailableError("schema registry at http://registry:8081 is unreachable"))
    with pytest.raises(BackendUnavailableError):
        RegistrySchemaDecisions(gate).decide(_record(0, Op.CREATE, {"shipment_id": "s-1"}, V1))
