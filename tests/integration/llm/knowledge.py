"""A few knowledge documents (English and Vietnamese) the offline model is tested against."""

from __future__ import annotations

from pathlib import Path

KNOWLEDGE = {
    "runbooks/api-keys.md": """---
doc_id: runbook-api-keys
title: API keys
lang: en
audience: internal
---
# API keys

## Rotating a key

To rotate an API key, create a new key with the same roles using `shopops auth create-key`.
Deploy the new key to every client that used the old one.
Then revoke the old key with `shopops auth revoke`; other processes refuse it within five seconds.

## Lost keys

A lost key cannot be recovered: only its hash is stored. Revoke it and create another.
""",
    "policies/refunds.md": """---
doc_id: policy-refunds
title: Refunds and returns
lang: en
audience: customer
---
# Refunds and returns

## Return window

You can return an item for a refund within a number of days after delivery.

| country | return window |
| --- | --- |
| Vietnam | 7 days |
| Singapore | 14 days |

## Paying the refund

Refunds are paid to the original payment method within 5 business days after the warehouse receives the item.
""",
    "policies/refunds.vi.md": """---
doc_id: policy-refunds-vi
title: Hoàn tiền và đổi trả
lang: vi
audience: customer
translation_of: policy-refunds
---
# Hoàn tiền và đổi trả

## Thời hạn trả hàng

Bạn có thể trả hàng để được hoàn tiền trong vòng 7 ngày sau khi nhận hàng tại Việt Nam.

## Chuyển tiền hoàn

Tiền hoàn được chuyển về phương thức thanh toán ban đầu trong vòng 5 ngày làm việc sau khi kho nhận lại hàng.
""",
}


def write_knowledge(folder: Path) -> Path:
    for name, text in KNOWLEDGE.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
