"""Reading tool arguments out of text, per JSON-Schema parameters."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shopops.llm.extraction import detect_lang, extract_arguments, find_dates, find_ids, find_regions

TODAY = date(2026, 1, 10)


def _schema(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or []}


def _extract(schema: dict[str, Any], text: str) -> tuple[dict[str, Any], list[str]]:
    found = extract_arguments(schema, text, today=TODAY)
    return found.arguments, found.missing


def test_entity_ids_by_parameter_name() -> None:
    schema = _schema(["order_id"], order_id={"type": "string"}, customer_id={"type": "string"})
    assert _extract(schema, "Where is order VN-O-000000123 of vn-c-0001234?") == (
        {"order_id": "vn-o-000000123", "customer_id": "vn-c-0001234"},
        [],
    )
    assert _extract(schema, "where is my order?") == ({}, ["order_id"])


def test_skus_warehouses_and_quantities() -> None:
    schema = _schema(
        ["sku", "warehouse", "quantity"],
        sku={"type": "string"},
        warehouse={"type": "string", "description": "warehouse id"},
        quantity={"type": "integer", "minimum": 1},
    )
    args, missing = _extract(schema, "Hold 3 units of vn-sku-00042 in vn-wh-01 please")
    assert args == {"sku": "VN-SKU-00042", "warehouse": "vn-wh-01", "quantity": 3}
    assert missing == []


def test_a_schema_pattern_is_used_as_given() -> None:
    schema = _schema(["ticket"], ticket={"type": "string", "pattern": "^TCK-[0-9]{4}$"})
    assert _extract(schema, "escalate tck-0042 now") == ({"ticket": "tck-0042"}, [])


def test_enums_match_exactly_or_closely() -> None:
    schema = _schema(status={"type": "string", "enum": ["pending", "in_transit", "delivered", "delayed"]})
    assert _extract(schema, "which shipments are in transit?")[0] == {"status": "in_transit"}
    assert _extract(schema, "list the delayd ones")[0] == {"status": "delayed"}
    assert _extract(schema, "anything at all")[0] == {}


def test_regions_by_code_name_vietnamese_name_or_id_prefix() -> None:
    schema = _schema(region={"type": "string", "enum": ["vn", "sg", "th"]})
    assert _extract(schema, "payments in Singapore")[0] == {"region": "sg"}
    assert _extract(schema, "đơn hàng ở Thái Lan")[0] == {"region": "th"}
    assert _extract(schema, "order th-o-000000001")[0] == {"region": "th"}
    assert _extract(schema, "the VN market")[0] == {"region": "vn"}
    # "my" and "id" are words before they are Malaysia and Indonesia
    assert find_regions("show my orders by id") == []


def test_dates_fill_from_and_to_in_order() -> None:
    schema = _schema(
        date_from={"type": "string", "format": "date"}, date_to={"type": "string", "format": "date"}
    )
    assert _extract(schema, "between 1 January 2026 and 2026-01-05")[0] == {
        "date_from": "2026-01-01",
        "date_to": "2026-01-05",
    }
    assert _extract(schema, "from yesterday")[0] == {"date_from": "2026-01-09"}
    one = _schema(day={"type": "string", "format": "date"})
    assert _extract(one, "orders on 3/1/2026")[0] == {"day": "2026-01-03"}  # day first
    assert _extract(one, "ngày 5 tháng 1")[0] == {"day": "2026-01-05"}
    stamp = _schema(at={"type": "string", "format": "date-time"})
    assert _extract(stamp, "since 2026-01-05T10:30:00Z")[0] == {"at": "2026-01-05T10:30:00Z"}


def test_dates_are_not_read_as_numbers_or_phone_numbers() -> None:
    found = find_dates("on 2026-01-05, Jan 7 2026 and 31/02/2026", TODAY)
    assert [d.day.isoformat() for d in found] == ["2026-01-05", "2026-01-07"]  # 31 Feb does not exist
    schema = _schema(limit={"type": "integer"})
    assert _extract(schema, "orders of 2026-01-05, top 5")[0] == {"limit": 5}


def test_numbers_go_to_the_parameter_named_next_to_them() -> None:
    schema = _schema(limit={"type": "integer", "maximum": 100}, days={"type": "integer"})
    assert _extract(schema, "the first 20 late payments of the last 3 days")[0] == {"limit": 20, "days": 3}
    assert _extract(schema, "top 500 please")[0] == {}  # above the maximum
    money = _schema(amount={"type": "number"}, currency={"type": "string"})
    assert _extract(money, "refund 1,250,000 VND")[0] == {"amount": 1250000.0, "currency": "VND"}
    assert _extract(money, "refund 1.250.000 vnd")[0] == {"amount": 1250000.0, "currency": "VND"}


def test_a_lone_number_goes_to_the_only_numeric_parameter() -> None:
    schema = _schema(["ttl_ms"], ttl_ms={"type": "integer"})
    assert _extract(schema, "extend it to 60000")[0] == {"ttl_ms": 60000}


def test_booleans_and_negations() -> None:
    schema = _schema(include_revoked={"type": "boolean"})
    assert _extract(schema, "list keys including revoked ones")[0] == {"include_revoked": True}
    assert _extract(schema, "list keys but not revoked")[0] == {"include_revoked": False}
    assert _extract(schema, "list keys")[0] == {}


def test_free_text_and_quoted_strings() -> None:
    schema = _schema(["query"], query={"type": "string"})
    assert _extract(schema, "how do I rotate an API key?")[0] == {"query": "how do I rotate an API key?"}
    note = _schema(order_id={"type": "string"}, reason={"type": "string"})
    assert _extract(note, 'cancel vn-o-000000001 because "customer changed their mind"')[0] == {
        "order_id": "vn-o-000000001",
        "reason": "customer changed their mind",
    }


def test_contact_data() -> None:
    schema = _schema(email={"type": "string"}, phone={"type": "string"})
    assert _extract(schema, "write to jane.doe@example.com or call 090 123 4567")[0] == {
        "email": "jane.doe@example.com",
        "phone": "090 123 4567",
    }


def test_arrays_collect_every_match() -> None:
    schema = _schema(order_ids={"type": "array", "items": {"type": "string", "description": "order id"}})
    assert _extract(schema, "compare vn-o-000000001 and vn-o-000000002")[0] == {
        "order_ids": ["vn-o-000000001", "vn-o-000000002"]
    }
    regions = _schema(regions={"type": "array", "items": {"type": "string", "enum": ["vn", "sg", "th"]}})
    assert _extract(regions, "sg and th only")[0] == {"regions": ["sg", "th"]}


def test_every_id_shape() -> None:
    ids = find_ids(
        "vn-o-000000001 sg-pay-vn000000002 vn-pay-000000003 th-c-0000004 vn-p-00005 VN-SKU-00006 "
        "vn-wh-07 vn-s-000000008 vn-j-000000009"
    )
    assert {entity: [v for _, _, v in found] for entity, found in ids.items()} == {
        "order": ["vn-o-000000001"],
        "payment": ["sg-pay-vn000000002", "vn-pay-000000003"],
        "customer": ["th-c-0000004"],
        "product": ["vn-p-00005"],
        "sku": ["VN-SKU-00006"],
        "warehouse": ["vn-wh-07"],
        "shipment": ["vn-s-000000008"],
        "journal": ["vn-j-000000009"],
    }


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Đơn hàng của tôi ở đâu?", "vi"),
        ("Chính sách hoàn tiền là gì", "vi"),
        ("Where is my order?", "en"),
        ("Café au lait", "en"),
        ("", "en"),
    ],
)
def test_language(text: str, lang: str) -> None:
    assert detect_lang(text) == lang
