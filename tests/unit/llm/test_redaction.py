"""Personal data found and redacted in prompts, with governance's column tags and masking."""

from __future__ import annotations

import orjson

from shopops.governance.model import ColumnTag, DatasetTags
from shopops.llm.model import ChatCompletionRequest, parse_chat_request
from shopops.llm.redaction import Redactor, luhn_ok

TAGS = {
    "shop.customers": DatasetTags(
        "shop.customers", {"email": ColumnTag.PII, "full_name": ColumnTag.PII, "phone": ColumnTag.PII}
    ),
    "shop.orders": DatasetTags("shop.orders", {"card_fingerprint": ColumnTag.SECRET}),
}


def _request(*messages: dict[str, object]) -> ChatCompletionRequest:
    return parse_chat_request({"model": "m", "messages": list(messages)})


def test_emails_phones_and_cards_in_free_text() -> None:
    request = _request(
        {
            "role": "user",
            "content": "I am jane.doe@example.com, call +84 90 123 4567; "
            "card 4111 1111 1111 1111 was charged twice",
        }
    )
    redactor = Redactor(lambda: TAGS)
    redacted, findings = redactor.redact(request)
    assert dict(findings.kinds) == {"email": 1, "phone": 1, "card": 1}
    text = redacted.messages[0].text
    assert text == ("I am [redacted email], call [redacted phone]; card [redacted card] was charged twice")


def test_ids_dates_and_amounts_are_not_personal_data() -> None:
    request = _request(
        {
            "role": "user",
            "content": "order vn-o-000000123 of 2026-01-05 for 125000000 VND, sku VN-SKU-00042, 1,250,000.00",
        }
    )
    assert not Redactor(lambda: TAGS).scan(request)


def test_a_tool_result_row_is_masked_by_governance_and_its_values_redacted_everywhere() -> None:
    row = {
        "customer_id": "vn-c-0000042",
        "full_name": "Nguyen Van An",
        "email": "an@example.vn",
        "card_fingerprint": "fp-9f8e7d",
        "orders": [{"id": "vn-o-000000001", "status": "shipped"}],
    }
    request = _request(
        {"role": "user", "content": "why was nguyen van an's order late?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "customer", "arguments": '{"name": "Nguyen Van An"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": orjson.dumps(row).decode()},
    )
    redacted, findings = Redactor(lambda: TAGS).redact(request)
    assert {"full_name", "email", "card_fingerprint"} <= set(findings.kinds)
    masked = orjson.loads(redacted.messages[2].text)
    # governance's mask_row: pii masked, secret removed, the rest untouched
    assert masked == {
        "customer_id": "vn-c-0000042",
        "full_name": "***",
        "email": "***",
        "orders": [{"id": "vn-o-000000001", "status": "shipped"}],
    }
    assert redacted.messages[0].text == "why was [redacted full_name]'s order late?"
    assert redacted.messages[1].tool_calls is not None
    assert orjson.loads(redacted.messages[1].tool_calls[0].function.arguments) == {
        "name": "[redacted full_name]"
    }
    # the original request is left as it was
    assert "Nguyen Van An" in request.messages[2].text


def test_nothing_found_returns_the_same_request() -> None:
    request = _request({"role": "user", "content": "how do refunds work?"})
    redacted, findings = Redactor(lambda: TAGS).redact(request)
    assert redacted is request
    assert not findings


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
