"""The agents' pure model: ids, languages, alerts, runbook steps and the evaluation measures."""

from __future__ import annotations

import pytest

from shopops.agents.model import (
    claims,
    detect_lang,
    first_hit,
    groundedness,
    hit_at_k,
    parse_alerts,
    percentile,
    reciprocal_rank,
    region_of,
    runbook_steps,
    source_matches,
    split_sources,
    validate_customer_id,
)
from shopops.core.errors import InvalidInputError


@pytest.mark.parametrize(
    ("identifier", "region"),
    [
        ("vn-o-000000123", "vn"),
        ("sg-c-0000001", "sg"),
        ("th-s-000000042", "th"),
        ("VN-SKU-00027", "vn"),
        ("order 12", None),
    ],
)
def test_region_of_ids(identifier: str, region: str | None) -> None:
    assert region_of(identifier) == region


def test_customer_ids_are_validated() -> None:
    assert validate_customer_id(" vn-c-0000001 ") == "vn-c-0000001"
    with pytest.raises(InvalidInputError, match="invalid customer id"):
        validate_customer_id("alice")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Where is my order?", "en"),
        ("Đơn hàng của tôi đang ở đâu?", "vi"),
        ("don hang cua toi dang o dau", "vi"),
        ("chinh sach hoan tien", "vi"),
    ],
)
def test_language(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_alertmanager_webhook_body() -> None:
    body = {
        "receiver": "shopops",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "SchemaDriftIncompatible", "subject": "vn.shop.orders-value"},
                "annotations": {"summary": "Incompatible schema change"},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "abc",
            },
            {"labels": {"alertname": "ChargebackSpike", "region": "th"}},
        ],
    }
    first, second = parse_alerts(body)
    assert first.name == "SchemaDriftIncompatible"
    assert first.region == "vn"
    assert first.triage_id == parse_alerts(body["alerts"][0])[0].triage_id
    assert second.region == "th"
    assert second.fingerprint  # derived from the labels when Alertmanager gives none
    assert second.status == "firing"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"alerts": []}, "no alert"),
        ({"labels": {"severity": "page"}}, "no labels.alertname"),
        ({"labels": "x"}, "labels must be an object"),
        ("text", "no alert"),
    ],
)
def test_bad_alerts(payload: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_alerts(payload)


def test_runbook_steps_are_the_numbered_lines() -> None:
    text = (
        "## Steps\n\n1. Run the audit: `shopops inventory audit`.\n2. Sync the stock:\n"
        "   `shopops inventory sync-cdc`\n   - or restock by hand\n\nAfterwards:\n\n- tell finance\n"
    )
    assert runbook_steps(text) == [
        "Run the audit: `shopops inventory audit`.",
        "Sync the stock: `shopops inventory sync-cdc` or restock by hand",
    ]
    assert runbook_steps("- check the lag\n- restart the worker") == ["check the lag", "restart the worker"]


def test_sources_match_paths_globs_and_short_names() -> None:
    source = "docs/knowledge/policies/shipping-vn.vi.md"
    assert source_matches(source, ["policies/shipping-vn*"])
    assert source_matches("docs/knowledge/runbooks/schema-drift.md", ["runbooks/schema-drift"])
    assert not source_matches(source, ["policies/shipping-sg*"])


def test_hit_at_k_and_reciprocal_rank() -> None:
    ranked = ["docs/knowledge/policies/a.md", "docs/knowledge/policies/b.md", "docs/knowledge/policies/c.md"]
    assert first_hit(ranked, ["policies/b"]) == 2
    assert hit_at_k(ranked, ["policies/c"], 5)
    assert not hit_at_k(ranked, ["policies/c"], 2)
    assert reciprocal_rank(ranked, ["policies/b"]) == 0.5
    assert reciprocal_rank(ranked, ["policies/z"]) == 0.0


def test_claims_of_an_answer_that_cites_tools_and_passages() -> None:
    answer = (
        "order_status(order_id=vn-o-000000001) returned [1]:\n"
        "- Order vn-o-000000001 is shipped with RedRiver.\n"
        "\n"
        "Returns are accepted within 7 days of delivery. [2]\n"
        "\n"
        "Sources:\n[1] tool order_status(order_id=vn-o-000000001)\n"
        "[2] docs/knowledge/policies/refunds.md — Window"
    )
    found = claims(answer)
    assert found == [
        ("Order vn-o-000000001 is shipped with RedRiver.", [1]),
        ("Returns are accepted within 7 days of delivery.", [2]),
    ]
    body, listed = split_sources(answer)
    assert body.endswith("[2]")
    assert listed[2] == ("docs/knowledge/policies/refunds.md", "Window")
    cited = {
        1: "Order vn-o-000000001 is shipped with RedRiver, promised by Monday.",
        2: "Items return within 7 days.",
    }
    assert groundedness(answer, cited) == 0.5  # the second claim's "accepted", "delivery" are not in [2]
    assert groundedness("No citation here.", {}) is None


def test_percentile() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
