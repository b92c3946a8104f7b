"""Terms of the BM25 side: normalisation, Vietnamese syllables and folding, stemming, weights."""

from __future__ import annotations

import pytest

from shopops.rag.text import (
    FOLDED_QUERY_WEIGHT,
    IDENTIFIER_QUERY_WEIGHT,
    detect_lang,
    document_vector,
    fold,
    identifiers,
    normalize,
    query_vector,
    stem,
    term_index,
    terms,
)


def test_fold_removes_diacritics_and_d_stroke() -> None:
    assert fold("hoàn tiền") == "hoan tien"
    assert fold("Đổi trả") == "Doi tra"
    assert fold("đường") == "duong"


def test_normalize_is_nfc_and_casefolded() -> None:
    decomposed = "Hoa\u0300n"  # "Hoàn" with a combining grave accent
    assert normalize(decomposed) == "hoàn"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("refunds", "refund"),
        ("refunded", "refund"),
        ("refunding", "refund"),
        ("charge", "charg"),
        ("charged", "charg"),
        ("charges", "charg"),
        ("shipped", "ship"),
        ("shipping", "ship"),
        ("applies", "apply"),
        ("applied", "apply"),
        ("billing", "bill"),
        ("status", "status"),
        ("days", "day"),
        ("hàng", "hàng"),  # Vietnamese syllables are left alone
    ],
)
def test_light_stemmer(word: str, expected: str) -> None:
    assert stem(word) == expected


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Tôi muốn đổi trả hàng", "vi"),
        ("hoan tien bao lau", "vi"),
        ("phi van chuyen o singapore la bao nhieu", "vi"),
        ("How long do refunds take?", "en"),
        ("ledger_break", "en"),
        ("", "en"),
    ],
)
def test_detect_lang(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_vietnamese_syllables_pairs_and_folded_forms() -> None:
    bag, length = terms("Hoàn tiền trong 7 ngày")
    assert {"hoàn", "tiền", "hoàn_tiền", "hoan", "tien", "hoan_tien", "ngày", "ngay"} <= set(bag)
    assert length == 5


def test_stop_words_are_dropped_in_both_languages() -> None:
    bag, _ = terms("What is the refund policy? Chính sách hoàn tiền là gì?")
    assert not {"what", "is", "the", "là", "gì"} & set(bag)
    assert {"refund", "policy", "refund_policy", "chính_sách"} <= set(bag)


def test_identifiers_yield_their_parts() -> None:
    bag, _ = terms("`ledger_break` exceptions")
    assert {"ledger_break", "ledger", "break", "exception"} <= set(bag)
    assert identifiers("alert SchemaDriftIncompatible and shopops_schema_drift_total") == {
        "schemadriftincompatibl",
        "shopops_schema_drift_total",
    }


def test_bigrams_stay_inside_a_sentence() -> None:
    bag, _ = terms("refund. policy")
    assert "refund_policy" not in bag


def test_accentless_question_meets_accented_text() -> None:
    doc = set(document_vector("Hoàn tiền ví điện tử trong 1-3 ngày")[0])
    plain = set(query_vector("hoan tien vi dien tu")[0])
    accented = set(query_vector("hoàn tiền ví điện tử")[0])
    assert plain <= doc
    assert accented <= doc


def test_query_weights_folded_forms_and_identifiers() -> None:
    indices, values = query_vector("cảnh báo SchemaDriftIncompatible")
    weights = dict(zip(indices, values, strict=True))
    assert weights[term_index("cảnh")] == 1.0
    assert weights[term_index("canh")] == FOLDED_QUERY_WEIGHT
    assert weights[term_index("schemadriftincompatibl")] == IDENTIFIER_QUERY_WEIGHT


def test_document_weights_saturate_and_indices_are_sorted_and_stable() -> None:
    once = dict(zip(*document_vector("refund"), strict=True))
    many = dict(zip(*document_vector("refund refund refund refund"), strict=True))
    index = term_index("refund")
    assert once[index] < many[index] < 2.2 + 1e-9  # k1 + 1 bounds BM25's term frequency part
    indices, _ = document_vector("partial refund of a damaged item")
    assert indices == sorted(indices)
    assert term_index("refund") == term_index("refund")
