"""Checks on a question before any model sees it: is it within the agent's scope, does it ask for a
customer's personal data. Pure functions over the text; the runtime answers for them.

Both are deliberately plain: a scope is the vocabulary of the agent's domain (English, Vietnamese
with and without diacritics) plus the ids of the shop's entities; a question with neither is not
sent to the model — it gets a short "this is not something I can help with". Personal data (email,
phone, address, full name, card) of a customer is never given out by any agent, whatever the model
would do with the request.
"""

from __future__ import annotations

import re

from shopops.agents.model import CUSTOMER_ID, ORDER_ID, SHIPMENT_ID, SKU, fold

_SUPPORT_WORDS = (
    "order",
    "deliver",
    "ship",
    "parcel",
    "package",
    "arriv",
    "track",
    "courier",
    "carrier",
    "refund",
    "return",
    "money back",
    "cancel",
    "pay",
    "card",
    "charge",
    "dispute",
    "price",
    "fee",
    "tax",
    "vat",
    "gst",
    "voucher",
    "discount",
    "coupon",
    "stock",
    "product",
    "item",
    "sku",
    "buy",
    "bought",
    "purchase",
    "account",
    "address",
    "damag",
    "broken",
    "wrong",
    "missing",
    "late",
    "warehouse",
    "invoice",
    "receipt",
    "currency",
    "wallet",
    "bank",
    "policy",
    "warranty",
    "exchange",
    "compensat",
    "shop",
    # Vietnamese, compared without diacritics
    "don hang",
    "giao hang",
    "duoc giao",
    "nhan hang",
    "nhan duoc",
    "hoan tien",
    "tra hang",
    "doi tra",
    "huy don",
    "thanh toan",
    "van chuyen",
    "phi ",
    "gia ",
    "san pham",
    "ton kho",
    "con hang",
    "tai khoan",
    "dia chi",
    "bi hong",
    "giao tre",
    "kien hang",
    "tru tien",
    "boi hoan",
    "chinh sach",
    "mua hang",
)
_OPS_WORDS = (
    "reconcil",
    "ledger",
    "payment",
    "settle",
    "exception",
    "break",
    "schema",
    "drift",
    "quarantin",
    "subject",
    "topic",
    "cdc",
    "stream",
    "registry",
    "contract",
    "quality",
    "check",
    "dataset",
    "metric",
    "alert",
    "runbook",
    "oversell",
    "reservation",
    "hold",
    "stock",
    "inventory",
    "sweeper",
    "outbox",
    "chargeback",
    "fraud",
    "dispute",
    "model",
    "lag",
    "consumer",
    "kafka",
    "event",
    "lake",
    "iceberg",
    "table",
    "pipeline",
    "job",
    "incident",
    "on-call",
    "on call",
    "page",
    "latency",
    "error",
    "fail",
    "fx",
    "currency",
    "refund",
    "order",
    "shipment",
    "late",
    "carrier",
    "warehouse",
    "burst",
    "checkout",
    "region",
    "provider",
    "audit",
    "policy",
    "replay",
    "quarantine",
    "platform",
    "shopops",
    "doi soat",
    "gian lan",
    "canh bao",
    "su co",
)
SCOPES: dict[str, tuple[str, ...]] = {"support": _SUPPORT_WORDS, "ops-copilot": _OPS_WORDS}

_PERSONAL = re.compile(
    r"\b(e-?mail|phone|mobile number|home address|postal address|address of|full name|card number|"
    r"date of birth|so dien thoai|dia chi|ho ten)\b"
)
_SOMEONE = re.compile(r"\b(customer|khach hang|user|client|nguoi khac|someone)\b")


def _has_id(text: str) -> bool:
    return any(p.search(text) for p in (ORDER_ID, CUSTOMER_ID, SHIPMENT_ID, SKU))


def in_scope(agent: str, question: str) -> bool:
    """Does ``question`` belong to ``agent``'s domain (or name one of the shop's ids)?

    Agents without a scope list (the triage bot, whose input is an alert) take everything.
    """
    words = SCOPES.get(agent)
    if words is None or _has_id(question):
        return True
    folded = f" {fold(question)} "
    return any(word in folded for word in words)


def asks_for_personal_data(question: str, customer_id: str | None = None) -> bool:
    """Does ``question`` ask for a customer's personal data — another customer's, or any customer's
    when no customer is acting? Asking how to change one's own e-mail is not such a question."""
    folded = fold(question)
    if not _PERSONAL.search(folded):
        return False
    others = [m.group(0) for m in CUSTOMER_ID.finditer(question) if m.group(0) != customer_id]
    return bool(others) or (customer_id is None and bool(_SOMEONE.search(folded)))


def decline(agent: str, lang: str) -> str:
    """What an agent says to a question outside its scope."""
    if agent == "support":
        if lang == "vi":
            return (
                "Tôi không biết câu trả lời: tôi chỉ hỗ trợ về đơn hàng, giao hàng, hoàn tiền và trả hàng, "
                "thanh toán và các chính sách của cửa hàng."
            )
        return (
            "I don't know: I can only help with your orders, deliveries, refunds and returns, payments and "
            "the shop's policies."
        )
    return (
        "I don't know: I answer questions about the platform — reconciliation, schema drift, data quality, "
        "reservations and oversell, chargebacks, metrics and their runbooks."
    )


def refuse_personal_data(lang: str) -> str:
    if lang == "vi":
        return (
            "Tôi không thể cung cấp dữ liệu cá nhân của khách hàng (email, số điện thoại, địa chỉ, họ tên)."
        )
    return (
        "I cannot share customers' personal data (e-mail, phone, address, name): no agent has access to it. "
        "See the account and personal data policy."
    )
