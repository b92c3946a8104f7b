"""The knowledge base itself: enough documents, complete front-matter, every customer policy in
both languages, links that resolve, facts that agree with the simulated company."""

from __future__ import annotations

import re

import yaml
from tests.integration.rag.conftest import KNOWLEDGE

from shopops.rag.chunking import kind_of, parse_document, split_front_matter
from shopops.rag.service import discover
from shopops.simulator.model import REGION_PROFILES

FILES = discover(KNOWLEDGE)


def _front(path: object) -> dict[str, object]:
    front, _ = split_front_matter(path.read_text(encoding="utf-8"))  # type: ignore[attr-defined]
    return front


def test_at_least_thirty_documents_each_with_front_matter() -> None:
    assert len(FILES) >= 30
    ids = []
    for file in FILES:
        kind = kind_of(file.name)
        assert kind is not None
        meta, sections = parse_document(file.relative_to(KNOWLEDGE).as_posix(), file.read_text(), kind)
        assert sections, file
        ids.append(meta.doc_id)
        if kind != "html":
            front = _front(file)
            assert {"doc_id", "title", "lang", "audience"} <= set(front), file
    assert len(ids) == len(set(ids)), "doc ids must be unique"


def test_every_customer_policy_exists_in_english_and_vietnamese() -> None:
    customer = {f for f in FILES if _front(f).get("audience") == "customer"}
    english = {f for f in customer if _front(f)["lang"] == "en"}
    vietnamese = {f for f in customer if _front(f)["lang"] == "vi"}
    assert len(english) >= 14
    by_id = {_front(f)["doc_id"]: f for f in english}
    translated = {_front(f).get("translation_of") for f in vietnamese}
    assert translated == set(by_id)
    for f in vietnamese:
        assert f.name.endswith(".vi.md")
        assert (f.parent / f.name.replace(".vi.md", ".md")) in english


def test_relative_links_resolve() -> None:
    for file in FILES:
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|html|txt))\)", file.read_text()):
            assert (file.parent / target).is_file(), f"{file}: {target}"


def test_shipping_pages_state_the_simulated_fees_and_carriers() -> None:
    for code, profile in REGION_PROFILES.items():
        page = (KNOWLEDGE / "policies" / f"shipping-{code}.md").read_text()
        for carrier in profile.carriers:
            assert carrier.name in page, (code, carrier.name)
        for city in profile.remote_cities:
            assert city in page, (code, city)
        assert f"{round(profile.tax_rate * 100)}%" in page
    payments = (KNOWLEDGE / "policies" / "payments.md").read_text()
    assert all(p.provider in payments for p in REGION_PROFILES.values())


def test_golden_sources_and_agent_settings_agree_with_the_policies() -> None:
    from shopops.core.settings import AgentsSettings

    windows = AgentsSettings().refund_window_days
    table = (KNOWLEDGE / "policies" / "refunds-and-returns.md").read_text()
    countries = {
        "vn": "Vietnam",
        "sg": "Singapore",
        "th": "Thailand",
        "my": "Malaysia",
        "id": "Indonesia",
        "ph": "Philippines",
    }
    for code, days in windows.items():
        assert f"| {countries[code]} | {days} days |" in table, code
    golden = yaml.safe_load((KNOWLEDGE.parents[1] / "tests" / "golden" / "rag.yaml").read_text())
    assert all((KNOWLEDGE.parents[1] / s).is_file() for q in golden["questions"] for s in q["sources"])
