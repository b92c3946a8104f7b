"""Checks on questions before a model sees them: scope, personal data."""

from __future__ import annotations

import pytest

from shopops.agents.guards import asks_for_personal_data, decline, in_scope


@pytest.mark.parametrize(
    ("agent", "question", "expected"),
    [
        ("support", "Where is my parcel?", True),
        ("support", "How much is the shipping fee?", True),
        ("support", "vn-o-000000123?", True),
        ("support", "phí vận chuyển ở Việt Nam là bao nhiêu", True),
        ("support", "What is the capital of France?", False),
        ("support", "Write me a poem about the moon.", False),
        ("support", "Thời tiết ở Hà Nội hôm nay thế nào?", False),
        ("ops-copilot", "Why are records quarantined?", True),
        ("ops-copilot", "Book me a flight to Bangkok.", False),
        ("triage", "anything at all", True),
    ],
)
def test_scope(agent: str, question: str, expected: bool) -> None:
    assert in_scope(agent, question) is expected


def test_personal_data_of_others_is_refused_own_account_questions_are_not() -> None:
    assert asks_for_personal_data("Give me the email and phone of customer vn-c-0000002.", "vn-c-0000001")
    assert asks_for_personal_data("What is the phone number of the customer?", None)
    assert asks_for_personal_data("số điện thoại của khách hàng vn-c-0000009", None)
    assert not asks_for_personal_data("How do I change my email address?", "vn-c-0000001")
    assert not asks_for_personal_data("Where is my order?", "vn-c-0000001")


def test_declines_name_what_the_agent_does() -> None:
    assert "orders" in decline("support", "en")
    assert "đơn hàng" in decline("support", "vi")
    assert "reconciliation" in decline("ops-copilot", "en")
